//! Native ingest: identify, track and batch are queued (202 + job id),
//! applied in order by the background applier, and read back through the
//! contacts, events and jobs routes.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use convene::config::ServeConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::ingest_support::{
    all_contacts, all_events, barrier, contact_by, contact_events, find_contact, ingest, job_header, queue,
    wait_applied, wait_job,
};
use crate::support::{MASTER, TestApp, assert_error, body, spawn_app, spawn_app_with};

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn identify_is_queued_then_readable() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;

    let r = app
        .with_token(Method::POST, "/v1/identify", &token)
        .json(&json!({"email": "Ada@Example.com", "external_id": "u-1", "traits": {"plan": "pro", "seats": 3}}))
        .send()
        .await
        .unwrap();
    let header = job_header(&r);
    let (status, answer) = body(r).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"job_id": header, "status": "queued"}));
    assert!(header.starts_with("job_"), "{header}");

    let job = wait_applied(&app, &token, &header).await;
    assert_eq!(job["total"], 1, "{job}");
    assert_eq!(job["applied"], 1, "{job}");
    assert_eq!(job["duplicates"], 0, "{job}");
    assert_eq!(job["errors"], json!([]), "{job}");
    assert!(job["finished_at"].is_string(), "{job}");

    let contact = contact_by(&app, &token, "email", "ada@example.com").await;
    assert_eq!(contact["email"], "ada@example.com", "{contact}");
    assert_eq!(contact["external_id"], "u-1", "{contact}");
    assert_eq!(contact["traits"]["plan"], "pro", "{contact}");
    assert_eq!(contact["traits"]["seats"], 3, "{contact}");

    // A second identify by the same external id updates the same contact.
    ingest(&app, &token, "/v1/identify", json!({"external_id": "u-1", "traits": {"plan": "team"}})).await;
    let again = contact_by(&app, &token, "email", "ada@example.com").await;
    assert_eq!(again["id"], contact["id"]);
    assert_eq!(again["traits"]["plan"], "team", "{again}");
    assert_eq!(again["traits"]["seats"], 3, "{again}");
    assert_eq!(all_contacts(&app, &token).await.len(), 1);
}

#[tokio::test]
async fn track_is_readable_in_both_event_lists() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let before = Utc::now();
    ingest(
        &app,
        &token,
        "/v1/track",
        json!({"email": "t@x.io", "event": "made_sale", "properties": {"amount": 12.5, "sku": "A-1"},
               "timestamp": "2024-05-01T10:00:00Z", "message_id": "sale-1"}),
    )
    .await;
    ingest(&app, &token, "/v1/track", json!({"email": "t@x.io", "event": "logged_in"})).await;

    let contact = contact_by(&app, &token, "email", "t@x.io").await;
    let id = contact["id"].as_i64().unwrap();
    let events = all_events(&app, &token).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let sale = &events[0];
    assert_eq!(sale["event"], "made_sale", "{sale}");
    assert_eq!(sale["kind"], "track", "{sale}");
    assert_eq!(sale["contact_id"], id, "{sale}");
    assert_eq!(sale["properties"], json!({"amount": 12.5, "sku": "A-1"}), "{sale}");
    assert_eq!(time(&sale["timestamp"]), time(&json!("2024-05-01T10:00:00Z")), "{sale}");
    assert_eq!(sale["message_id"], "sale-1", "{sale}");
    let received = time(&sale["received_at"]);
    assert!(
        received >= before - ChronoDuration::seconds(2) && received <= Utc::now() + ChronoDuration::seconds(2),
        "{sale}"
    );

    let login = &events[1];
    assert_eq!(login["event"], "logged_in", "{login}");
    assert_eq!(login["properties"], json!({}), "{login}");
    assert!(login["message_id"].is_null(), "{login}");
    assert_eq!(
        login["timestamp"], login["received_at"],
        "without a timestamp the event time is the arrival time: {login}"
    );

    let own = contact_events(&app, &token, id).await;
    assert_eq!(own, events, "the contact's events are the same events");

    // Filter by name, and another contact's list is empty.
    let (status, page) = app.get("/v1/events?name=logged_in", &token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    let other = app.contact(&token, json!({"email": "other@x.io"})).await;
    assert!(contact_events(&app, &token, other["id"].as_i64().unwrap()).await.is_empty());
    let (status, err) = app.get("/v1/contacts/999999/events", &token).await;
    assert_error(status, &err, 404, "not_found");
}

#[tokio::test]
async fn a_batch_with_an_invalid_item_is_refused_whole() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, err) = app
        .post(
            "/v1/batch",
            &token,
            json!({"batch": [
                {"type": "identify", "external_id": "b-0", "traits": {"plan": "pro"}},
                {"type": "track", "external_id": "b-0", "event": "ok_event"},
                {"type": "identify", "email": "not-an-email"},
                {"type": "identify", "external_id": "b-3"}
            ]}),
        )
        .await;
    let error = assert_error(status, &err, 400, "validation_error");
    assert_eq!(error["row"], 2, "{err}");
    assert!(error["message"].as_str().unwrap().contains("item 2"), "{err}");

    // Unknown type and a non-object item name their index too.
    let (status, err) = app
        .post("/v1/batch", &token, json!({"batch": [{"type": "identify", "external_id": "c"}, {"type": "nope"}]}))
        .await;
    let error = assert_error(status, &err, 400, "validation_error");
    assert_eq!(error["row"], 1, "{err}");
    assert!(error["message"].as_str().unwrap().contains("item 1"), "{err}");
    let (status, err) = app.post("/v1/batch", &token, json!({"batch": [7]})).await;
    let error = assert_error(status, &err, 400, "validation_error");
    assert_eq!(error["row"], 0, "{err}");

    // Nothing of the refused requests was queued: after a later job applied,
    // none of their contacts or events exist.
    barrier(&app, &token).await;
    assert!(find_contact(&app, &token, "external_id", "b-0").await.is_none());
    assert!(find_contact(&app, &token, "external_id", "b-3").await.is_none());
    assert!(find_contact(&app, &token, "external_id", "c").await.is_none());
    assert!(all_events(&app, &token).await.is_empty());
    assert_eq!(all_contacts(&app, &token).await.len(), 1, "only the barrier's contact");

    // The same batch without the bad item applies every row.
    let job = ingest(
        &app,
        &token,
        "/v1/batch",
        json!({"batch": [
            {"type": "identify", "external_id": "b-0", "traits": {"plan": "pro"}},
            {"type": "track", "external_id": "b-0", "event": "ok_event"},
            {"type": "identify", "external_id": "b-3"}
        ]}),
    )
    .await;
    assert_eq!((job["total"].as_u64(), job["applied"].as_u64()), (Some(3), Some(3)), "{job}");
    assert_eq!(all_events(&app, &token).await.len(), 1);
}

#[tokio::test]
async fn concurrent_increments_all_count() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    const N: usize = 12;
    let mut tasks = Vec::new();
    for _ in 0..N {
        let (client, url, token) = (app.client.clone(), app.url("/v1/identify"), token.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"external_id": "counter", "traits": {"visits": {"$inc": 1}, "score": {"$inc": 2.5}}}))
                .send()
                .await
                .unwrap();
            let (status, answer) = body(r).await;
            assert_eq!(status, 202, "{answer}");
            answer["job_id"].as_str().unwrap().to_string()
        }));
    }
    let mut jobs = Vec::new();
    for t in tasks {
        jobs.push(t.await.unwrap());
    }
    for job in &jobs {
        wait_applied(&app, &token, job).await;
    }
    let contact = contact_by(&app, &token, "external_id", "counter").await;
    assert_eq!(contact["traits"]["visits"], N as i64, "{contact}");
    assert_eq!(contact["traits"]["score"].as_f64(), Some(2.5 * N as f64), "{contact}");
    assert_eq!(all_contacts(&app, &token).await.len(), 1, "the racing first writes made one contact");
}

#[tokio::test]
async fn list_add_and_remove() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    ingest(&app, &token, "/v1/identify", json!({"external_id": "l", "traits": {"tags": {"add": ["a", "b", "c"]}}}))
        .await;
    let c = contact_by(&app, &token, "external_id", "l").await;
    assert_eq!(c["traits"]["tags"], json!(["a", "b", "c"]), "{c}");
    ingest(
        &app,
        &token,
        "/v1/identify",
        json!({"external_id": "l", "traits": {"tags": {"add": ["d", "a"], "remove": ["b"]}}}),
    )
    .await;
    let c = contact_by(&app, &token, "external_id", "l").await;
    assert_eq!(c["traits"]["tags"], json!(["a", "c", "d"]), "{c}");
    ingest(
        &app,
        &token,
        "/v1/identify",
        json!({"external_id": "l", "traits": {"tags": {"remove": ["a", "c", "d", "zz"]}}}),
    )
    .await;
    let c = contact_by(&app, &token, "external_id", "l").await;
    assert_eq!(c["traits"]["tags"], json!([]), "{c}");
}

#[tokio::test]
async fn a_duplicate_identity_fails_its_row_only() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    // Two contacts: one holds the email, the other the external id.
    ingest(&app, &token, "/v1/identify", json!({"email": "held@x.io", "traits": {"who": "holder"}})).await;
    ingest(&app, &token, "/v1/identify", json!({"external_id": "u-2"})).await;

    let job = queue(
        &app,
        &token,
        "/v1/batch",
        json!({"batch": [
            {"type": "identify", "external_id": "u-1", "traits": {"n": 1}},
            {"type": "identify", "external_id": "u-2", "email": "held@x.io", "traits": {"n": 2}},
            {"type": "track", "external_id": "u-3", "event": "after"}
        ]}),
    )
    .await;
    let job = wait_job(&app, &token, &job).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["total"], 3, "{job}");
    assert_eq!(job["applied"], 2, "{job}");
    assert_eq!(job["failed"], 1, "{job}");
    assert_eq!(job["duplicates"], 0, "{job}");
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{job}");
    assert_eq!(errors[0]["row"], 1, "{job}");
    assert_eq!(errors[0]["code"], "conflict", "{job}");
    assert_eq!(errors[0]["field"], "email", "{job}");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{job}");

    // The failed row changed nothing; the others applied.
    let holder = contact_by(&app, &token, "email", "held@x.io").await;
    assert_eq!(holder["traits"], json!({"who": "holder"}), "{holder}");
    assert!(holder["external_id"].is_null(), "{holder}");
    let u2 = contact_by(&app, &token, "external_id", "u-2").await;
    assert!(u2["email"].is_null(), "{u2}");
    assert!(u2["traits"].get("n").is_none(), "the failed row is rolled back whole: {u2}");
    assert_eq!(contact_by(&app, &token, "external_id", "u-1").await["traits"]["n"], 1);
    let u3 = contact_by(&app, &token, "external_id", "u-3").await;
    assert_eq!(contact_events(&app, &token, u3["id"].as_i64().unwrap()).await.len(), 1);
}

#[tokio::test]
async fn a_message_id_applies_once() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let event = json!({"external_id": "m", "event": "paid", "properties": {"amount": 5}, "message_id": "msg-1"});
    let first = ingest(&app, &token, "/v1/track", event.clone()).await;
    assert_eq!((first["applied"].as_u64(), first["duplicates"].as_u64()), (Some(1), Some(0)), "{first}");
    let second = ingest(&app, &token, "/v1/track", event).await;
    assert_eq!(second["status"], "applied", "a duplicate is not a failure: {second}");
    assert_eq!((second["applied"].as_u64(), second["duplicates"].as_u64()), (Some(0), Some(1)), "{second}");
    assert_eq!(all_events(&app, &token).await.len(), 1);

    // Identify message ids too: the $inc applies once.
    let write = json!({"external_id": "m", "traits": {"credits": {"$inc": 10}}, "message_id": "msg-2"});
    ingest(&app, &token, "/v1/identify", write.clone()).await;
    let job = ingest(&app, &token, "/v1/identify", write).await;
    assert_eq!(job["duplicates"], 1, "{job}");
    assert_eq!(contact_by(&app, &token, "external_id", "m").await["traits"]["credits"], 10);

    // Message ids are per workspace: another workspace applies its own.
    let ws2 = app.workspace("other").await;
    let token2 = app.key(&ws2, json!({"name": "k", "kind": "full"})).await["token"].as_str().unwrap().to_string();
    let job =
        ingest(&app, &token2, "/v1/track", json!({"external_id": "m", "event": "paid", "message_id": "msg-1"})).await;
    assert_eq!(job["applied"], 1, "{job}");
    assert_eq!(all_events(&app, &token2).await.len(), 1);
    assert_eq!(all_events(&app, &token).await.len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retry_apply_once() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let send = |path: &'static str, key: &'static str, body: Value| {
        let rb = app.with_token(Method::POST, path, &token).header("Idempotency-Key", key).json(&body);
        async move {
            let (status, answer) = body_of(rb).await;
            assert_eq!(status, 202, "{answer}");
            answer["job_id"].as_str().unwrap().to_string()
        }
    };
    let write = json!({"external_id": "i", "traits": {"visits": {"$inc": 1}}});
    let a = send("/v1/identify", "retry-1", write.clone()).await;
    let b = send("/v1/identify", "retry-1", write.clone()).await;
    assert_ne!(a, b, "each request is its own job");
    wait_applied(&app, &token, &a).await;
    let job = wait_applied(&app, &token, &b).await;
    assert_eq!((job["applied"].as_u64(), job["duplicates"].as_u64()), (Some(0), Some(1)), "{job}");
    assert_eq!(contact_by(&app, &token, "external_id", "i").await["traits"]["visits"], 1);

    // A batch: item i gets key#i, so the retried batch is all duplicates.
    let batch = json!({"batch": [
        {"type": "track", "external_id": "i", "event": "e0"},
        {"type": "track", "external_id": "i", "event": "e1"}
    ]});
    let a = send("/v1/batch", "retry-2", batch.clone()).await;
    let b = send("/v1/batch", "retry-2", batch).await;
    wait_applied(&app, &token, &a).await;
    let job = wait_applied(&app, &token, &b).await;
    assert_eq!(job["duplicates"], 2, "{job}");
    let events = all_events(&app, &token).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["message_id"], "retry-2#0");
    assert_eq!(events[1]["message_id"], "retry-2#1");

    // A different key is a different request.
    send("/v1/identify", "retry-3", write).await;
    barrier(&app, &token).await;
    assert_eq!(contact_by(&app, &token, "external_id", "i").await["traits"]["visits"], 2);

    // An empty or overlong key is refused.
    let (status, err) = body_of(
        app.with_token(Method::POST, "/v1/track", &token)
            .header("Idempotency-Key", "x".repeat(201))
            .json(&json!({"external_id": "i", "event": "e"})),
    )
    .await;
    let error = assert_error(status, &err, 400, "validation_error");
    assert_eq!(error["field"], "Idempotency-Key", "{err}");
}

async fn body_of(rb: reqwest::RequestBuilder) -> (u16, Value) {
    body(rb.send().await.unwrap()).await
}

#[tokio::test]
async fn message_ids_are_remembered_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(ServeConfig::for_tests(dir.path(), MASTER), dir).await;
    let (_, token) = app.full_key().await;
    let event = json!({"external_id": "r", "event": "paid", "message_id": "restart-1"});
    let first = ingest(&app, &token, "/v1/track", event.clone()).await;
    let write = json!({"external_id": "r", "traits": {"n": {"$inc": 1}}, "message_id": "restart-2"});
    ingest(&app, &token, "/v1/identify", write.clone()).await;

    let app: TestApp = app.restart().await;
    let (status, job) = app.get(&format!("/v1/jobs/{}", first["id"].as_str().unwrap()), &token).await;
    assert_eq!(status, 200, "job results survive a restart: {job}");
    assert_eq!(job["status"], "applied", "{job}");
    let job = ingest(&app, &token, "/v1/track", event).await;
    assert_eq!(job["duplicates"], 1, "{job}");
    let job = ingest(&app, &token, "/v1/identify", write).await;
    assert_eq!(job["duplicates"], 1, "{job}");
    assert_eq!(all_events(&app, &token).await.len(), 1);
    assert_eq!(contact_by(&app, &token, "external_id", "r").await["traits"]["n"], 1);
}

#[tokio::test]
async fn a_full_backlog_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::for_tests(dir.path(), MASTER);
    config.ingest.max_backlog = 5;
    let app = spawn_app_with(config, dir).await;
    let (_, token) = app.full_key().await;

    let items = |n: usize| json!({"batch": (0..n).map(|i| json!({"type": "identify", "external_id": format!("bp-{i}")})).collect::<Vec<_>>()});
    let r = app.with_token(Method::POST, "/v1/batch", &token).json(&items(6)).send().await.unwrap();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let (status, err) = body(r).await;
    assert_error(status, &err, 503, "unavailable");
    let secs: u64 = retry_after.expect("a Retry-After header").parse().expect("Retry-After in seconds");
    assert!((1..=60).contains(&secs), "{secs}");

    // Nothing of it was queued; a request within the bound is accepted.
    ingest(&app, &token, "/v1/batch", items(5)).await;
    assert_eq!(all_contacts(&app, &token).await.len(), 5);
    ingest(&app, &token, "/v1/identify", json!({"external_id": "after"})).await;

    // Under a flood of requests, every answer is 202 or 503 with Retry-After,
    // and every accepted job applies.
    let mut tasks = Vec::new();
    for t in 0..20 {
        let (client, url, token) = (app.client.clone(), app.url("/v1/batch"), token.clone());
        let batch = json!({"batch": (0..3).map(|i| json!({"type": "identify", "external_id": format!("f-{t}-{i}")})).collect::<Vec<_>>()});
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(token).json(&batch).send().await.unwrap();
            let has_retry = r.headers().contains_key("retry-after");
            let (status, answer) = body(r).await;
            match status {
                202 => Some(answer["job_id"].as_str().unwrap().to_string()),
                503 => {
                    assert!(has_retry, "{answer}");
                    None
                }
                other => panic!("unexpected {other}: {answer}"),
            }
        }));
    }
    for t in tasks {
        if let Some(job) = t.await.unwrap() {
            wait_applied(&app, &token, &job).await;
        }
    }
}

#[tokio::test]
async fn client_clock_skew_is_corrected() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    // The client's clock is an hour fast; it recorded the event 90 s before sending.
    let skew = ChronoDuration::hours(1);
    let sent_at = Utc::now() + skew;
    let original = sent_at - ChronoDuration::seconds(90);
    ingest(
        &app,
        &token,
        "/v1/track",
        json!({"external_id": "s", "event": "skewed", "sent_at": sent_at.to_rfc3339(), "original_timestamp": original.to_rfc3339()}),
    )
    .await;
    let events = all_events(&app, &token).await;
    let e = &events[0];
    let (timestamp, received) = (time(&e["timestamp"]), time(&e["received_at"]));
    let expected = received - ChronoDuration::seconds(90);
    assert!(
        (timestamp - expected).num_milliseconds().abs() <= 5,
        "timestamp = received_at − (sent_at − original): {e}"
    );
    let truth = Utc::now() - ChronoDuration::seconds(90);
    assert!((timestamp - truth).num_seconds().abs() <= 3, "{e}");

    // Without sent_at, the timestamp is taken as sent.
    ingest(
        &app,
        &token,
        "/v1/track",
        json!({"external_id": "s", "event": "plain", "timestamp": "2020-01-02T03:04:05Z"}),
    )
    .await;
    let events = all_events(&app, &token).await;
    assert_eq!(time(&events[1]["timestamp"]), time(&json!("2020-01-02T03:04:05Z")));
}

#[tokio::test]
async fn analytics_keys_write_but_do_not_read_events() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let analytics =
        app.key(&ws, json!({"name": "a", "kind": "analytics"})).await["token"].as_str().unwrap().to_string();
    let full = app.key(&ws, json!({"name": "f", "kind": "full"})).await["token"].as_str().unwrap().to_string();

    let job = queue(&app, &analytics, "/v1/identify", json!({"external_id": "a-1", "traits": {"plan": "pro"}})).await;
    wait_applied(&app, &analytics, &job).await;
    let job = queue(&app, &analytics, "/v1/track", json!({"external_id": "a-1", "event": "e"})).await;
    wait_applied(&app, &analytics, &job).await;
    let job = queue(
        &app,
        &analytics,
        "/v1/batch",
        json!({"batch": [{"type": "identify", "external_id": "a-2"}, {"type": "track", "external_id": "a-2", "event": "e"}]}),
    )
    .await;
    wait_applied(&app, &analytics, &job).await;

    let (status, err) = app.get("/v1/events", &analytics).await;
    assert_error(status, &err, 403, "forbidden");
    let c = contact_by(&app, &full, "external_id", "a-1").await;
    let (status, err) = app.get(&format!("/v1/contacts/{}/events", c["id"]), &analytics).await;
    assert_error(status, &err, 403, "forbidden");
    let (status, err) = app.get("/v1/contacts", &analytics).await;
    assert_error(status, &err, 403, "forbidden");
    assert_eq!(all_events(&app, &full).await.len(), 2);

    // Scoped keys: track needs events:write, identify contacts:write, and a
    // batch is checked item by item.
    let contacts_only = app.key_with_scopes(&ws, &["contacts:write"]).await;
    let (status, err) = app.post("/v1/track", &contacts_only, json!({"external_id": "a-1", "event": "e"})).await;
    assert_error(status, &err, 403, "forbidden");
    let (status, err) = app
        .post("/v1/batch", &contacts_only, json!({"batch": [{"type": "identify", "external_id": "z"}, {"type": "track", "external_id": "z", "event": "e"}]}))
        .await;
    assert_error(status, &err, 403, "forbidden");
    let events_only = app.key_with_scopes(&ws, &["events:write"]).await;
    let (status, err) = app.post("/v1/identify", &events_only, json!({"external_id": "z"})).await;
    assert_error(status, &err, 403, "forbidden");
    queue(&app, &events_only, "/v1/track", json!({"external_id": "a-1", "event": "e"})).await;
    let reader = app.key_with_scopes(&ws, &["contacts:read"]).await;
    let (status, err) = app.get(&format!("/v1/jobs/{job}"), &reader).await;
    assert_error(status, &err, 403, "forbidden");
    barrier(&app, &full).await;
    assert!(find_contact(&app, &full, "external_id", "z").await.is_none());
}

#[tokio::test]
async fn jobs_belong_to_their_workspace() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let job = queue(&app, &token, "/v1/identify", json!({"external_id": "w"})).await;
    wait_applied(&app, &token, &job).await;
    let (_, other) = app.full_key().await;
    let (status, err) = app.get(&format!("/v1/jobs/{job}"), &other).await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = app.get("/v1/jobs/job_doesnotexist", &token).await;
    assert_error(status, &err, 404, "not_found");
}

/// Regression: the backlog counter was incremented after the inbox append,
/// so the applier could apply a job (and subtract its items) first; the late
/// increment then stayed in the backlog for good and ingest drifted towards
/// permanent 503s. After a flood is applied, the backlog is exactly 0 (a
/// refusal's message says how many items are waiting).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_backlog_returns_to_zero_after_a_flood() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::for_tests(dir.path(), MASTER);
    config.ingest.max_backlog = 5_000;
    let app = spawn_app_with(config, dir).await;
    let (_, token) = app.full_key().await;
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (client, url, token) = (app.client.clone(), app.url("/v1/identify"), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut jobs = Vec::new();
            for i in 0..100 {
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"external_id": format!("f-{t}-{i}")}))
                    .send()
                    .await
                    .unwrap();
                let (status, answer) = body(r).await;
                assert_eq!(status, 202, "{answer}");
                jobs.push(answer["job_id"].as_str().unwrap().to_string());
                if i % 10 == 0 {
                    // Let the backlog drain now and then: the lost count showed when it was near 0.
                    tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(0..100))).await;
                }
            }
            jobs
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().len(), 100);
    }
    // Jobs apply in arrival order: once a later one applied, all of them did.
    barrier(&app, &token).await;
    // One more than the bound is always refused, and says what is waiting.
    let items: Vec<Value> = (0..5_001).map(|i| json!({"type": "identify", "external_id": format!("x-{i}")})).collect();
    let (status, err) = app.post("/v1/batch", &token, json!({"batch": items})).await;
    let error = assert_error(status, &err, 503, "unavailable");
    assert!(
        error["message"].as_str().unwrap().contains("(0 items waiting)"),
        "every applied item left the backlog: {err}"
    );
    // And a request of exactly the bound is accepted.
    let items: Vec<Value> = (0..5_000).map(|i| json!({"type": "identify", "external_id": format!("x-{i}")})).collect();
    queue(&app, &token, "/v1/batch", json!({"batch": items})).await;
}

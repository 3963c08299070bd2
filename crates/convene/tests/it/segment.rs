//! The Segment tracking API at `/compat/segment` (docs/compat/segment.md):
//! write keys (Basic or in the body), gzip bodies, size limits, every
//! message type, and what each becomes in convene.

use std::io::Write;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::ingest_support::{
    all_contacts, all_events, barrier, contact_by, contact_events, find_contact, wait_applied, wait_job,
};
use crate::support::{MASTER, TestApp, spawn_app, spawn_app_with};

/// A raw answer.
struct Answer {
    status: u16,
    job: Option<String>,
    body: Value,
}

async fn answer(rb: RequestBuilder) -> Answer {
    read(rb.send().await.expect("an answer")).await
}

async fn read(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let job = r.headers().get("convene-job-id").map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    Answer { status, job, body }
}

/// A track whose body claims `Content-Encoding: encoding`.
async fn send_encoded(app: &TestApp, key: &str, encoding: &str, body: Vec<u8>) -> Answer {
    answer(
        app.req(Method::POST, &url("track"))
            .basic_auth(key, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body),
    )
    .await
}

fn url(kind: &str) -> String {
    format!("/compat/segment/v1/{kind}")
}

/// `POST /compat/segment/v1/{kind}` with the write key as Basic user name.
async fn send(app: &TestApp, kind: &str, write_key: &str, body: &Value) -> Answer {
    answer(app.req(Method::POST, &url(kind)).basic_auth(write_key, Some("")).json(body)).await
}

/// Sends, asserts `{"success": true}`, waits for the job to apply; returns it.
async fn applied(app: &TestApp, kind: &str, write_key: &str, body: Value) -> Value {
    let a = send(app, kind, write_key, &body).await;
    assert_success(&a);
    wait_applied(app, write_key, &a.job.unwrap()).await
}

fn assert_success(a: &Answer) {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, json!({"success": true}));
    assert!(a.job.as_deref().is_some_and(|j| j.starts_with("job_")), "a Convene-Job-Id header: {:?}", a.job);
}

/// Asserts Segment's error shape; returns the message.
fn assert_failure(a: &Answer, status: u16, code: &str) -> String {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["success"], false, "{}", a.body);
    assert_eq!(a.body["code"], code, "{}", a.body);
    assert!(a.job.is_none(), "nothing queued: {}", a.body);
    a.body["message"].as_str().expect("a message").to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn the_write_key_comes_as_basic_user_or_in_the_body() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    let a = send(&app, "identify", &key, &json!({"userId": "basic-1", "traits": {"plan": "pro"}})).await;
    assert_success(&a);
    wait_applied(&app, &key, a.job.as_deref().unwrap()).await;
    assert_eq!(contact_by(&app, &key, "external_id", "basic-1").await["traits"]["plan"], "pro");

    // writeKey in the body, no header.
    let a = answer(
        app.req(Method::POST, &url("track")).json(&json!({"writeKey": key, "userId": "basic-1", "event": "Body Key"})),
    )
    .await;
    assert_success(&a);
    wait_applied(&app, &key, a.job.as_deref().unwrap()).await;
    assert_eq!(all_events(&app, &key).await[0]["event"], "Body Key");

    // An analytics key is a valid write key.
    let ws = app.workspace("analytics").await;
    let analytics =
        app.key(&ws, json!({"name": "a", "kind": "analytics"})).await["token"].as_str().unwrap().to_string();
    applied(
        &app,
        "batch",
        &analytics,
        json!({"batch": [{"type": "identify", "userId": "x"}, {"type": "track", "userId": "x", "event": "e"}]}),
    )
    .await;

    // Bad and missing keys.
    assert_failure(&send(&app, "identify", "cvn_wrong", &json!({"userId": "x"})).await, 401, "unauthenticated");
    let a =
        answer(app.req(Method::POST, &url("identify")).json(&json!({"writeKey": "cvn_wrong", "userId": "x"}))).await;
    assert_failure(&a, 401, "unauthenticated");
    let a = answer(app.req(Method::POST, &url("identify")).json(&json!({"userId": "x"}))).await;
    assert_failure(&a, 401, "unauthenticated");
    // A key without the scopes: 403.
    let reader = app.key_with_scopes(&ws, &["contacts:read"]).await;
    assert_failure(&send(&app, "identify", &reader, &json!({"userId": "x"})).await, 403, "forbidden");
    let contacts_only = app.key_with_scopes(&ws, &["contacts:write"]).await;
    assert_failure(&send(&app, "track", &contacts_only, &json!({"userId": "x", "event": "e"})).await, 403, "forbidden");
}

#[tokio::test]
async fn gzip_bodies_are_read() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    let batch = json!({"batch": [
        {"type": "identify", "userId": "gz-1", "traits": {"email": "gz@x.io"}},
        {"type": "track", "userId": "gz-1", "event": "Compressed", "properties": {"ok": true}}
    ]});
    let a = answer(
        app.req(Method::POST, &url("batch"))
            .basic_auth(&key, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzip(batch.to_string().as_bytes())),
    )
    .await;
    assert_success(&a);
    wait_applied(&app, &key, &a.job.unwrap()).await;
    let c = contact_by(&app, &key, "email", "gz@x.io").await;
    assert_eq!(c["external_id"], "gz-1", "{c}");
    assert_eq!(all_events(&app, &key).await[0]["properties"], json!({"ok": true}));

    // Garbage that claims to be gzip is a 400, not a crash.
    let a = send_encoded(&app, &key, "gzip", b"definitely not gzip".to_vec()).await;
    let message = assert_failure(&a, 400, "validation_error");
    assert!(!message.contains("larger than"), "a corrupt body is not a size problem: {message}");
    assert!(message.contains("gzip") || message.contains("decompress"), "{message}");

    // Another encoding is a 415 in the dialect's envelope, naming it.
    let a = send_encoded(&app, &key, "deflate", b"x".to_vec()).await;
    let message = assert_failure(&a, 415, "unsupported_media_type");
    assert!(message.contains("deflate"), "{message}");
}

#[tokio::test]
async fn every_message_type_is_translated() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    applied(
        &app,
        "identify",
        &key,
        json!({"userId": "u-1", "traits": {"email": "U1@X.io", "name": "Una", "logins": 3}}),
    )
    .await;
    let c = contact_by(&app, &key, "external_id", "u-1").await;
    assert_eq!(c["email"], "u1@x.io", "traits.email is the email identity: {c}");
    assert_eq!(c["traits"]["name"], "Una", "{c}");
    assert_eq!(c["traits"]["logins"], 3, "{c}");
    assert!(c["traits"].get("email").is_none(), "the identity is not also a trait: {c}");
    let id = c["id"].as_i64().unwrap();

    applied(&app, "track", &key, json!({"userId": "u-1", "event": "Order Completed", "properties": {"total": 30}}))
        .await;
    applied(&app, "page", &key, json!({"userId": "u-1", "name": "Pricing", "properties": {"path": "/pricing"}})).await;
    applied(&app, "page", &key, json!({"userId": "u-1"})).await;
    applied(&app, "screen", &key, json!({"userId": "u-1", "name": "Home"})).await;
    applied(&app, "screen", &key, json!({"userId": "u-1"})).await;
    let events = contact_events(&app, &key, id).await;
    let got: Vec<(&str, &str)> =
        events.iter().map(|e| (e["kind"].as_str().unwrap(), e["event"].as_str().unwrap())).collect();
    assert_eq!(
        got,
        vec![
            ("track", "Order Completed"),
            ("page", "Pricing"),
            ("page", "Loaded a Page"),
            ("screen", "Home"),
            ("screen", "Loaded a Screen")
        ]
    );
    assert_eq!(events[0]["properties"], json!({"total": 30}));
    assert_eq!(events[1]["properties"], json!({"path": "/pricing"}));

    applied(&app, "group", &key, json!({"userId": "u-1", "groupId": "acme", "traits": {"industry": "rockets"}})).await;
    let c = contact_by(&app, &key, "external_id", "u-1").await;
    assert!(c["company_id"].is_i64(), "{c}");

    applied(&app, "track", &key, json!({"anonymousId": "anon-9", "event": "Visited"})).await;
    applied(&app, "alias", &key, json!({"previousId": "anon-9", "userId": "u-1"})).await;
    assert_eq!(all_contacts(&app, &key).await.len(), 1);
    assert_eq!(contact_events(&app, &key, id).await.len(), 6);

    // batch and its old name, import.
    let job = applied(
        &app,
        "batch",
        &key,
        json!({"batch": [
            {"type": "identify", "userId": "u-2", "traits": {"plan": "free"}},
            {"type": "track", "userId": "u-2", "event": "Signed Up"},
            {"type": "page", "userId": "u-2", "name": "Docs"},
            {"type": "screen", "userId": "u-2", "name": "Settings"},
            {"type": "group", "userId": "u-2", "groupId": "acme"},
            {"type": "alias", "previousId": "u-2-old", "userId": "u-2"}
        ]}),
    )
    .await;
    assert_eq!((job["total"].as_u64(), job["applied"].as_u64()), (Some(6), Some(6)), "{job}");
    let u2 = contact_by(&app, &key, "external_id", "u-2").await;
    assert_eq!(u2["traits"]["plan"], "free");
    assert_eq!(u2["company_id"], c["company_id"], "the same groupId is the same company");
    assert_eq!(contact_events(&app, &key, u2["id"].as_i64().unwrap()).await.len(), 3);
    applied(&app, "import", &key, json!({"batch": [{"type": "identify", "userId": "u-3"}]})).await;
    assert!(find_contact(&app, &key, "external_id", "u-3").await.is_some());
}

#[tokio::test]
async fn ids_map_to_identities() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    // Anonymous first: a contact with only an anonymous id.
    applied(&app, "track", &key, json!({"anonymousId": "anon-1", "event": "Landed"})).await;
    let contacts = all_contacts(&app, &key).await;
    assert_eq!(contacts.len(), 1);
    let anon = &contacts[0];
    assert_eq!(anon["anonymous_id"], "anon-1", "{anon}");
    assert!(anon["external_id"].is_null() && anon["email"].is_null(), "{anon}");

    // Identify with both ids: the anonymous contact takes the user id and email.
    applied(
        &app,
        "identify",
        &key,
        json!({"userId": "user-1", "anonymousId": "anon-1", "traits": {"email": "u@x.io"}}),
    )
    .await;
    let contacts = all_contacts(&app, &key).await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let c = &contacts[0];
    assert_eq!(c["id"], anon["id"]);
    assert_eq!(c["external_id"], "user-1", "{c}");
    assert_eq!(c["anonymous_id"], "anon-1", "{c}");
    assert_eq!(c["email"], "u@x.io", "{c}");

    // userId finds first; numeric ids are strings.
    applied(&app, "track", &key, json!({"userId": "user-1", "anonymousId": "anon-other", "event": "Again"})).await;
    applied(&app, "identify", &key, json!({"userId": 42, "traits": {"n": 1}})).await;
    assert_eq!(contact_by(&app, &key, "external_id", "42").await["traits"]["n"], 1);
    assert_eq!(all_events(&app, &key).await.iter().filter(|e| e["contact_id"] == c["id"]).count(), 2);

    // A message without any id is refused.
    let a = send(&app, "track", &key, &json!({"event": "nobody"})).await;
    let message = assert_failure(&a, 400, "validation_error");
    assert!(message.contains("userId"), "{message}");
}

#[tokio::test]
async fn size_limits_are_32_kb_per_message_and_500_kb_per_request() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    // Just under 32 KB passes (traits are not limited to 15).
    let fits = json!({"userId": "big", "traits": {"a": "x".repeat(15_000), "b": "y".repeat(15_000)}});
    assert!(fits.to_string().len() < 32 * 1024);
    applied(&app, "identify", &key, fits).await;

    let too_big = json!({"userId": "big", "traits": {"a": "x".repeat(17_000), "b": "y".repeat(17_000)}});
    assert!(too_big.to_string().len() > 32 * 1024);
    let message = assert_failure(&send(&app, "identify", &key, &too_big).await, 400, "validation_error");
    assert!(message.contains("32768"), "{message}");
    let batch = json!({"batch": [{"type": "identify", "userId": "ok"}, {"type": "identify", "userId": "big", "traits": too_big["traits"]}]});
    let message = assert_failure(&send(&app, "batch", &key, &batch).await, 400, "validation_error");
    assert!(message.contains("item 1"), "{message}");

    // A batch over 500 KB of messages that each fit.
    let message = |i: usize| json!({"type": "track", "userId": format!("many-{i}"), "event": "e", "properties": {"pad": "z".repeat(25_000)}});
    let batch = json!({"batch": (0..21).map(message).collect::<Vec<_>>()});
    let raw = batch.to_string();
    assert!(raw.len() > 500 * 1024);
    let a = send(&app, "batch", &key, &batch).await;
    let text = assert_failure(&a, 400, "validation_error");
    assert!(text.contains("512000"), "{text}");
    // Also when gzip makes it small on the wire.
    let a = answer(
        app.req(Method::POST, &url("batch"))
            .basic_auth(&key, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzip(raw.as_bytes())),
    )
    .await;
    let text = assert_failure(&a, 400, "validation_error");
    assert!(text.contains("512000"), "the limit applies to the decompressed body: {text}");
    // Under the limit, the same messages pass.
    let batch = json!({"batch": (0..19).map(message).collect::<Vec<_>>()});
    assert!(batch.to_string().len() < 500 * 1024);
    applied(&app, "batch", &key, batch).await;

    // A batch-level context of 20 KB does not count against each message's 32 KB.
    let batch = json!({"context": {"pad": "c".repeat(20_000)}, "batch": [
        {"type": "track", "userId": "ctx", "event": "e", "properties": {"pad": "p".repeat(15_000)}},
        {"type": "track", "userId": "ctx", "event": "f", "properties": {"pad": "q".repeat(15_000)}}
    ]});
    applied(&app, "batch", &key, batch).await;

    barrier(&app, &key).await;
    assert!(find_contact(&app, &key, "external_id", "ok").await.is_none(), "refused requests queue nothing");
    assert!(find_contact(&app, &key, "external_id", "many-20").await.is_none());
    assert!(find_contact(&app, &key, "external_id", "many-18").await.is_some());
}

#[tokio::test]
async fn an_invalid_message_refuses_the_request() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    let props: Value = Value::Object((0..16).map(|i| (format!("p{i}"), json!(i))).collect());
    let batch = json!({"batch": [
        {"type": "identify", "userId": "v-1"},
        {"type": "track", "userId": "v-1", "event": "Too Many", "properties": props}
    ]});
    let message = assert_failure(&send(&app, "batch", &key, &batch).await, 400, "validation_error");
    assert!(message.contains("Too Many") && message.contains("item 1"), "{message}");
    let batch = json!({"batch": [{"type": "identify", "userId": "v-1"}, {"type": "teleport", "userId": "v-1"}]});
    let message = assert_failure(&send(&app, "batch", &key, &batch).await, 400, "validation_error");
    assert!(message.contains("teleport"), "{message}");
    assert_failure(&send(&app, "group", &key, &json!({"userId": "v-1"})).await, 400, "validation_error");
    assert_failure(&send(&app, "alias", &key, &json!({"userId": "v-1"})).await, 400, "validation_error");
    assert_failure(&send(&app, "track", &key, &json!({"userId": "v-1"})).await, 400, "validation_error");
    let a = answer(
        app.req(Method::POST, &url("track"))
            .basic_auth(&key, Some(""))
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    assert_failure(&a, 400, "validation_error");
    barrier(&app, &key).await;
    assert!(find_contact(&app, &key, "external_id", "v-1").await.is_none());
}

#[tokio::test]
async fn group_links_the_contact_to_a_company() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    applied(
        &app,
        "group",
        &key,
        json!({"userId": "g-1", "groupId": "acme", "traits": {"name": "Acme", "employees": 10}}),
    )
    .await;
    let g1 = contact_by(&app, &key, "external_id", "g-1").await;
    let company = g1["company_id"].as_i64().expect("company_id set");
    applied(
        &app,
        "group",
        &key,
        json!({"anonymousId": "g-anon", "groupId": "acme", "traits": {"employees": {"$inc": 5}}}),
    )
    .await;
    let contacts = all_contacts(&app, &key).await;
    let anon = contacts.iter().find(|c| c["anonymous_id"] == "g-anon").expect("the anonymous contact");
    assert_eq!(anon["company_id"], company, "the same group is the same company");
    applied(&app, "group", &key, json!({"userId": "g-1", "groupId": "globex"})).await;
    let moved = contact_by(&app, &key, "external_id", "g-1").await;
    assert!(moved["company_id"].is_i64() && moved["company_id"] != company, "{moved}");
    // Company traits become company fields, not contact fields.
    let (status, fields) = app.get("/v1/fields?entity=company&limit=1000", &key).await;
    assert_eq!(status, 200, "{fields}");
    assert!(
        fields["data"].as_array().unwrap().iter().any(|f| f["name"] == "employees" && f["type"] == "number"),
        "{fields}"
    );
}

#[tokio::test]
async fn alias_merges_the_anonymous_profile_into_the_user() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    applied(&app, "track", &key, json!({"anonymousId": "visitor-7", "event": "Viewed Pricing"})).await;
    applied(
        &app,
        "identify",
        &key,
        json!({"anonymousId": "visitor-7", "traits": {"utm_source": "ads", "plan": "trial"}}),
    )
    .await;
    applied(&app, "identify", &key, json!({"userId": "customer-7", "traits": {"email": "c7@x.io", "plan": "pro"}}))
        .await;
    applied(&app, "track", &key, json!({"userId": "customer-7", "event": "Signed Up"})).await;
    assert_eq!(all_contacts(&app, &key).await.len(), 2);

    applied(&app, "alias", &key, json!({"previousId": "visitor-7", "userId": "customer-7"})).await;
    let contacts = all_contacts(&app, &key).await;
    assert_eq!(contacts.len(), 1, "one contact left: {contacts:?}");
    let c = &contacts[0];
    assert_eq!(c["external_id"], "customer-7", "{c}");
    assert_eq!(c["anonymous_id"], "visitor-7", "the anonymous id joins the kept profile: {c}");
    assert_eq!(c["email"], "c7@x.io", "{c}");
    assert_eq!(c["traits"]["plan"], "pro", "the kept profile's traits win: {c}");
    assert_eq!(c["traits"]["utm_source"], "ads", "traits it lacked are copied: {c}");
    let events = contact_events(&app, &key, c["id"].as_i64().unwrap()).await;
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Viewed Pricing", "Signed Up"], "events re-pointed");
    assert_eq!(all_events(&app, &key).await.len(), 2);

    // Later messages with the anonymous id find the merged contact.
    applied(&app, "track", &key, json!({"anonymousId": "visitor-7", "event": "Came Back"})).await;
    assert_eq!(all_contacts(&app, &key).await.len(), 1);
    assert_eq!(contact_events(&app, &key, c["id"].as_i64().unwrap()).await.len(), 3);

    // Alias of an unknown previous id just makes sure the user exists.
    applied(&app, "alias", &key, json!({"previousId": "never-seen", "userId": "customer-8"})).await;
    assert!(find_contact(&app, &key, "external_id", "customer-8").await.is_some());
}

#[tokio::test]
async fn a_message_id_applies_once() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    let track = json!({"userId": "d-1", "event": "Paid", "messageId": "seg-msg-1"});
    applied(&app, "track", &key, track.clone()).await;
    let job = applied(&app, "track", &key, track.clone()).await;
    assert_eq!((job["applied"].as_u64(), job["duplicates"].as_u64()), (Some(0), Some(1)), "{job}");
    // In a batch too, next to a new message.
    let mut in_batch = track;
    in_batch["type"] = json!("track");
    let job = applied(
        &app,
        "batch",
        &key,
        json!({"batch": [in_batch, {"type": "identify", "userId": "d-1", "traits": {"n": {"$inc": 1}}, "messageId": "seg-msg-2"}]}),
    )
    .await;
    assert_eq!((job["applied"].as_u64(), job["duplicates"].as_u64()), (Some(1), Some(1)), "{job}");
    let job = applied(
        &app,
        "identify",
        &key,
        json!({"userId": "d-1", "traits": {"n": {"$inc": 1}}, "messageId": "seg-msg-2"}),
    )
    .await;
    assert_eq!(job["duplicates"], 1, "{job}");
    let events = all_events(&app, &key).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["message_id"], "seg-msg-1");
    assert_eq!(contact_by(&app, &key, "external_id", "d-1").await["traits"]["n"], 1);
}

#[tokio::test]
async fn client_clock_skew_is_corrected_from_sent_at() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    // The client clock is 10 minutes slow; the event happened 30 s before sending.
    let sent_at = Utc::now() - ChronoDuration::minutes(10);
    let original = sent_at - ChronoDuration::seconds(30);
    let a = send(
        &app,
        "batch",
        &key,
        &json!({"sentAt": sent_at.to_rfc3339(), "batch": [
            {"type": "track", "userId": "sk", "event": "Skewed", "originalTimestamp": original.to_rfc3339()},
            {"type": "track", "userId": "sk", "event": "Stamped", "timestamp": "2021-06-01T12:00:00Z"}
        ]}),
    )
    .await;
    assert_success(&a);
    let job = wait_job(&app, &key, &a.job.unwrap()).await;
    assert_eq!(job["status"], "applied", "{job}");
    let events = all_events(&app, &key).await;
    let e = &events[0];
    let (timestamp, received) = (time(&e["timestamp"]), time(&e["received_at"]));
    assert!((timestamp - (received - ChronoDuration::seconds(30))).num_milliseconds().abs() <= 5, "{e}");
    assert!((timestamp - (Utc::now() - ChronoDuration::seconds(30))).num_seconds().abs() <= 3, "{e}");
    assert_eq!(time(&events[1]["timestamp"]), time(&json!("2021-06-01T12:00:00Z")), "{}", events[1]);
}

#[tokio::test]
async fn alias_of_a_previous_user_id_renames_the_profile() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    applied(&app, "identify", &key, json!({"userId": "old-id", "traits": {"plan": "pro"}})).await;
    applied(&app, "track", &key, json!({"userId": "old-id", "event": "Before"})).await;
    applied(&app, "alias", &key, json!({"previousId": "old-id", "userId": "new-id"})).await;
    let contacts = all_contacts(&app, &key).await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let c = &contacts[0];
    assert_eq!(c["external_id"], "new-id", "{c}");
    assert!(c["anonymous_id"].is_null(), "a previous user id is not an anonymous id: {c}");
    assert_eq!(c["traits"]["plan"], "pro", "{c}");
    assert_eq!(contact_events(&app, &key, c["id"].as_i64().unwrap()).await.len(), 1);
    // An anonymous previous id with no user profile yet: the user id joins it.
    applied(&app, "identify", &key, json!({"anonymousId": "anon-x", "traits": {"seen": true}})).await;
    applied(&app, "alias", &key, json!({"previousId": "anon-x", "userId": "user-x"})).await;
    let c = contact_by(&app, &key, "external_id", "user-x").await;
    assert_eq!(c["anonymous_id"], "anon-x", "{c}");
    assert_eq!(c["traits"]["seen"], true, "{c}");
    assert_eq!(all_contacts(&app, &key).await.len(), 2);
}

#[tokio::test]
async fn a_full_backlog_is_a_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = convene::config::ServeConfig::for_tests(dir.path(), MASTER);
    config.ingest.max_backlog = 2;
    let app = spawn_app_with(config, dir).await;
    let (_, key) = app.full_key().await;
    let batch =
        json!({"batch": (0..3).map(|i| json!({"type": "identify", "userId": format!("bp-{i}")})).collect::<Vec<_>>()});
    let r = app.req(Method::POST, &url("batch")).basic_auth(&key, Some("")).json(&batch).send().await.unwrap();
    assert!(r.headers().get("retry-after").is_some(), "Retry-After: {:?}", r.headers());
    let a = read(r).await;
    assert_failure(&a, 503, "unavailable");
}

/// Alias reads its ids as every other message does: trimmed, and refused
/// beyond 254 characters (naming the field), so a padded `userId` merges
/// into the profile it names instead of writing a new, unreachable id.
#[tokio::test]
async fn alias_ids_are_trimmed_and_bounded() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    applied(&app, "identify", &key, json!({"userId": "pad1", "traits": {"plan": "pro"}})).await;
    applied(&app, "identify", &key, json!({"anonymousId": "padanon", "traits": {"utm": "ads"}})).await;
    applied(&app, "alias", &key, json!({"previousId": " padanon ", "userId": " pad1 "})).await;
    let contacts = all_contacts(&app, &key).await;
    assert_eq!(contacts.len(), 1, "merged: {contacts:?}");
    assert_eq!(
        (contacts[0]["external_id"].clone(), contacts[0]["traits"]["utm"].clone()),
        (json!("pad1"), json!("ads"))
    );
    for body in [
        json!({"previousId": "anon-long", "userId": "u".repeat(255)}),
        json!({"previousId": "p".repeat(255), "userId": "ok"}),
    ] {
        let message = assert_failure(&send(&app, "alias", &key, &body).await, 400, "validation_error");
        assert!(message.contains("254"), "{message}");
    }
    assert_eq!(all_contacts(&app, &key).await.len(), 1, "nothing of the refused aliases was queued");
}

/// `timestamp` takes the ISO-8601 forms clients send besides RFC 3339: an
/// offset without its colon, no zone (UTC), a date alone (midnight UTC).
#[tokio::test]
async fn timestamps_take_the_common_iso_8601_forms() {
    let app = spawn_app().await;
    let (_, key) = app.full_key().await;
    let forms = ["2024-01-01T00:00:00+0000", "2024-01-01T01:00:00+0100", "2024-01-01T00:00:00", "2024-01-01"];
    let batch: Vec<Value> = forms
        .iter()
        .map(|t| json!({"type": "track", "userId": "iso", "event": format!("At {t}"), "timestamp": t}))
        .collect();
    let a = send(&app, "batch", &key, &json!({"batch": batch})).await;
    assert_success(&a);
    let job = wait_job(&app, &key, &a.job.unwrap()).await;
    assert_eq!(job["status"], "applied", "{job}");
    let events = all_events(&app, &key).await;
    assert_eq!(events.len(), forms.len());
    for e in &events {
        assert_eq!(time(&e["timestamp"]), time(&json!("2024-01-01T00:00:00Z")), "{e}");
    }
    let bad = json!({"userId": "iso", "event": "Bad", "timestamp": "01/02/2024"});
    let message = assert_failure(&send(&app, "track", &key, &bad).await, 400, "validation_error");
    assert!(message.contains("timestamp"), "{message}");
}

//! The ConveYour dialect at `/compat/conveyour` (docs/compat/conveyour.md):
//! its headers, its exact success body and error envelope, its `id`
//! conventions, and its writes read back through the native API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::ingest_support::{
    all_contacts, all_events, all_pages, barrier, contact_by, contact_events, find_contact, wait_applied, wait_job,
};
use crate::support::{MASTER, TestApp, spawn_app, spawn_app_with};

const IDENTIFY: &str = "/compat/conveyour/api/analytics/identify";
const TRACK: &str = "/compat/conveyour/api/analytics/track";
const OK_BODY: &str = r#"{"status":"ok","message":"queued","data":[]}"#;

/// A raw answer: status, job id header, body text.
struct Answer {
    status: u16,
    job: Option<String>,
    content_type: Option<String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> Answer {
    let r = app
        .req(Method::POST, path)
        .header("x-conveyour-token", token)
        .header("x-conveyour-appkey", "some-app-key-that-is-ignored")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let job = r.headers().get("convene-job-id").map(|v| v.to_str().unwrap().to_string());
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    Answer { status, job, content_type, text: r.text().await.unwrap() }
}

/// Posts, asserts the exact success answer, returns the job id.
async fn accepted(app: &TestApp, path: &str, token: &str, body: Value) -> String {
    let a = post(app, path, token, &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.text, OK_BODY);
    a.job.expect("a Convene-Job-Id header")
}

/// Posts and waits for every row to apply.
async fn applied(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let job = accepted(app, path, token, body).await;
    wait_applied(app, token, &job).await
}

/// Asserts the vendor's error envelope; returns the message.
fn assert_envelope(a: &Answer, status: u16) -> String {
    assert_eq!(a.status, status, "{}", a.text);
    assert!(a.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")), "{:?}", a.content_type);
    assert!(a.job.is_none(), "nothing was queued");
    let v = a.json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{}", a.text);
    assert_eq!(v["status"], "error", "{}", a.text);
    assert_eq!(v["data"], json!([]), "{}", a.text);
    let message = v["message"].as_str().unwrap_or_else(|| panic!("a message: {}", a.text)).to_string();
    assert!(!message.is_empty());
    assert!(
        a.text.starts_with(r#"{"status":"error","message":"#) && a.text.ends_with(r#","data":[]}"#),
        "vendor key order: {}",
        a.text
    );
    message
}

#[tokio::test]
async fn success_is_the_vendors_exact_body_with_a_job_header() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let a =
        post(&app, IDENTIFY, &token, &json!({"id": "$email", "traits": {"email": "exact@x.io", "first_name": "Ex"}}))
            .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.text.as_bytes(), OK_BODY.as_bytes());
    assert!(a.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")), "{:?}", a.content_type);
    let job = a.job.expect("Convene-Job-Id");
    assert!(job.starts_with("job_"), "{job}");
    let done = wait_applied(&app, &token, &job).await;
    assert_eq!(done["total"], 1, "{done}");
    assert_eq!(contact_by(&app, &token, "email", "exact@x.io").await["traits"]["first_name"], "Ex");

    let a = post(
        &app,
        TRACK,
        &token,
        &json!({"id": "exact@x.io", "events": [{"event": "opened", "properties": {"n": 1}}]}),
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (200, OK_BODY));
    wait_applied(&app, &token, &a.job.unwrap()).await;

    // An analytics key is enough for both calls.
    let ws = app.workspace("analytics").await;
    let analytics =
        app.key(&ws, json!({"name": "a", "kind": "analytics"})).await["token"].as_str().unwrap().to_string();
    applied(&app, IDENTIFY, &analytics, json!({"id": "a-1", "traits": {}})).await;
    applied(&app, TRACK, &analytics, json!({"id": "a-1", "events": [{"event": "e"}]})).await;
}

#[tokio::test]
async fn identify_takes_one_object_or_an_array() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    applied(&app, IDENTIFY, &token, json!({"id": "$email", "traits": {"email": "one@x.io", "plan": "pro"}})).await;
    let job = applied(
        &app,
        IDENTIFY,
        &token,
        json!([
            {"id": "$email", "traits": {"email": "two@x.io", "plan": "free"}},
            {"id": "$email", "traits": {"email": "three@x.io"}},
            {"id": "$email", "traits": {"email": "one@x.io", "plan": "team"}}
        ]),
    )
    .await;
    assert_eq!((job["total"].as_u64(), job["applied"].as_u64()), (Some(3), Some(3)), "{job}");
    assert_eq!(all_contacts(&app, &token).await.len(), 3);
    assert_eq!(contact_by(&app, &token, "email", "one@x.io").await["traits"]["plan"], "team");
    assert_eq!(contact_by(&app, &token, "email", "two@x.io").await["traits"]["plan"], "free");
}

#[tokio::test]
async fn the_id_names_the_identity() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    applied(
        &app,
        IDENTIFY,
        &token,
        json!([
            {"id": "$email", "traits": {"email": "Mixed@Case.io", "first_name": "E"}},
            {"id": "$mobile", "traits": {"mobile": "+1 (555) 010-0001", "first_name": "M"}},
            {"id": "lit@x.io", "traits": {"first_name": "L"}},
            {"id": "crm-42", "traits": {"first_name": "X"}},
            {"id": 1234, "traits": {"first_name": "N"}}
        ]),
    )
    .await;
    let by_email = contact_by(&app, &token, "email", "mixed@case.io").await;
    assert_eq!(by_email["traits"]["first_name"], "E", "{by_email}");
    assert!(by_email["external_id"].is_null(), "{by_email}");
    let by_mobile = contact_by(&app, &token, "mobile", "+15550100001").await;
    assert_eq!(by_mobile["traits"]["first_name"], "M", "{by_mobile}");
    assert!(by_mobile["email"].is_null() && by_mobile["external_id"].is_null(), "{by_mobile}");
    let literal = contact_by(&app, &token, "email", "lit@x.io").await;
    assert_eq!(literal["traits"]["first_name"], "L", "a literal email address identifies by email: {literal}");
    assert!(literal["external_id"].is_null(), "{literal}");
    let external = contact_by(&app, &token, "external_id", "crm-42").await;
    assert_eq!(external["traits"]["first_name"], "X", "{external}");
    assert!(external["email"].is_null(), "{external}");
    assert_eq!(contact_by(&app, &token, "external_id", "1234").await["traits"]["first_name"], "N");
    assert_eq!(all_contacts(&app, &token).await.len(), 5);

    // The same ids find the same contacts again; an external id contact may
    // take an email from its traits.
    applied(
        &app,
        IDENTIFY,
        &token,
        json!([
            {"id": "$mobile", "traits": {"mobile": "+15550100001", "last_name": "Mob"}},
            {"id": "crm-42", "traits": {"email": "crm42@x.io"}}
        ]),
    )
    .await;
    assert_eq!(contact_by(&app, &token, "mobile", "+15550100001").await["traits"]["last_name"], "Mob");
    assert_eq!(contact_by(&app, &token, "email", "crm42@x.io").await["id"], external["id"]);
    assert_eq!(all_contacts(&app, &token).await.len(), 5);

    // $email without traits.email, and a malformed email, are refused.
    let a = post(&app, IDENTIFY, &token, &json!({"id": "$email", "traits": {"first_name": "nobody"}})).await;
    let message = assert_envelope(&a, 400);
    assert!(message.contains("email"), "{message}");
    let a = post(&app, IDENTIFY, &token, &json!([{"id": "ok-1"}, {"id": "$email", "traits": {"email": "nope"}}])).await;
    let message = assert_envelope(&a, 400);
    assert!(message.contains("item 1"), "{message}");
    barrier(&app, &token).await;
    assert!(
        find_contact(&app, &token, "external_id", "ok-1").await.is_none(),
        "nothing of a refused request is queued"
    );
}

#[tokio::test]
async fn lists_and_increments_as_in_the_vendor_doc() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    applied(
        &app,
        IDENTIFY,
        &token,
        json!({"id": "$email", "traits": {
            "email": "john@example.com", "first_name": "John", "last_name": "Doe",
            "tags": {"add": ["customer", "newsletter"]},
            "points": {"$inc": 5}
        }}),
    )
    .await;
    let c = contact_by(&app, &token, "email", "john@example.com").await;
    assert_eq!(c["traits"]["tags"], json!(["customer", "newsletter"]), "{c}");
    assert_eq!(c["traits"]["points"], 5, "{c}");
    applied(
        &app,
        IDENTIFY,
        &token,
        json!({"id": "$email", "traits": {
            "email": "john@example.com",
            "tags": {"add": ["vip"], "remove": ["newsletter"]},
            "points": {"$inc": 10}
        }}),
    )
    .await;
    let c = contact_by(&app, &token, "email", "john@example.com").await;
    assert_eq!(c["traits"]["tags"], json!(["customer", "vip"]), "{c}");
    assert_eq!(c["traits"]["points"], 15, "{c}");
    assert_eq!(c["traits"]["first_name"], "John", "{c}");
    applied(&app, IDENTIFY, &token, json!({"id": "john@example.com", "traits": {"points": {"$inc": -3}}})).await;
    assert_eq!(contact_by(&app, &token, "email", "john@example.com").await["traits"]["points"], 12);
}

#[tokio::test]
async fn unknown_traits_create_inferred_fields() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    applied(
        &app,
        IDENTIFY,
        &token,
        json!({"id": "f-1", "traits": {"favorite_color": "teal", "lucky_number": 7, "is_member": true, "renewal_date": "2025-03-01"}}),
    )
    .await;
    let fields = all_pages(&app, &token, "/v1/fields?entity=contact").await;
    let field = |name: &str| {
        fields.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no field {name} in {fields:?}")).clone()
    };
    for (name, ty) in
        [("favorite_color", "text"), ("lucky_number", "number"), ("is_member", "boolean"), ("renewal_date", "date")]
    {
        let f = field(name);
        assert_eq!(f["type"], ty, "{f}");
        assert_eq!(f["inferred"], true, "{f}");
        assert_eq!(f["entity"], "contact", "{f}");
    }
    // A later value of the wrong type fails that row (the field is a number now).
    let job =
        accepted(&app, IDENTIFY, &token, json!([{"id": "f-2", "traits": {"lucky_number": "many"}}, {"id": "f-3"}]))
            .await;
    let job = wait_job(&app, &token, &job).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["errors"][0]["row"], 0, "{job}");
    assert_eq!(job["errors"][0]["code"], "invalid_value", "{job}");
    assert_eq!(job["errors"][0]["field"], "lucky_number", "{job}");
    assert!(find_contact(&app, &token, "external_id", "f-3").await.is_some());
}

#[tokio::test]
async fn track_allows_fifteen_properties_not_sixteen() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let props = |n: usize| Value::Object((0..n).map(|i| (format!("p{i}"), json!(i))).collect());
    let job = applied(
        &app,
        TRACK,
        &token,
        json!({"id": "buyer-1", "events": [
            {"event": "made_sale", "properties": props(15)},
            {"event": "visited", "properties": {"page": "/x"}, "timestamp": "2024-01-01T00:00:00Z"}
        ]}),
    )
    .await;
    assert_eq!(job["applied"], 2, "{job}");
    let c = contact_by(&app, &token, "external_id", "buyer-1").await;
    let events = contact_events(&app, &token, c["id"].as_i64().unwrap()).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"], "made_sale");
    assert_eq!(events[0]["properties"], props(15));
    assert_eq!(events[1]["timestamp"].as_str().unwrap().get(..19), Some("2024-01-01T00:00:00"), "{}", events[1]);

    let a = post(
        &app,
        TRACK,
        &token,
        &json!({"id": "t@x.io", "events": [{"event": "fine"}, {"event": "big_purchase", "properties": props(16)}]}),
    )
    .await;
    let message = assert_envelope(&a, 400);
    assert!(message.contains("big_purchase"), "the message names the event: {message}");
    assert!(message.contains("item 1"), "{message}");
    barrier(&app, &token).await;
    assert!(find_contact(&app, &token, "email", "t@x.io").await.is_none(), "nothing of it was queued");
    assert_eq!(all_events(&app, &token).await.len(), 2);
}

#[tokio::test]
async fn errors_keep_the_vendor_envelope() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let body = json!({"id": "x", "traits": {}});
    // A bad token, and none at all.
    let a = post(&app, IDENTIFY, "cvn_not-a-real-token", &body).await;
    assert_envelope(&a, 401);
    let r = app.req(Method::POST, IDENTIFY).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_envelope(&Answer { status, job: None, content_type: Some("application/json".into()), text }, 401);
    // Bad input: malformed JSON, a wrong shape, a missing id, a bad events list.
    let r = app
        .req(Method::POST, IDENTIFY)
        .header("x-conveyour-token", &token)
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .await
        .unwrap();
    let (status, ct) = (r.status().as_u16(), r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()));
    assert_envelope(&Answer { status, job: None, content_type: ct, text: r.text().await.unwrap() }, 400);
    assert_envelope(&post(&app, IDENTIFY, &token, &json!("just a string")).await, 400);
    assert_envelope(&post(&app, IDENTIFY, &token, &json!({"traits": {"a": 1}})).await, 400);
    assert_envelope(&post(&app, TRACK, &token, &json!({"id": "x", "events": "nope"})).await, 400);
    assert_envelope(&post(&app, TRACK, &token, &json!({"id": "x", "events": [{"properties": {}}]})).await, 400);
    // A key without the scope: 403 in the same envelope.
    let ws = app.workspace("scoped").await;
    let reader = app.key_with_scopes(&ws, &["contacts:read"]).await;
    assert_envelope(&post(&app, IDENTIFY, &reader, &body).await, 403);
    assert_envelope(&post(&app, TRACK, &reader, &json!({"id": "x", "events": [{"event": "e"}]})).await, 403);
}

#[tokio::test]
async fn a_duplicate_identity_fails_its_row_in_the_job() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    applied(&app, IDENTIFY, &token, json!({"id": "$email", "traits": {"email": "taken@x.io", "first_name": "Holder"}}))
        .await;
    let job = accepted(
        &app,
        IDENTIFY,
        &token,
        json!([
            {"id": "cust-1", "traits": {"first_name": "One"}},
            {"id": "cust-2", "traits": {"email": "taken@x.io", "first_name": "Two"}},
            {"id": "$email", "traits": {"email": "free@x.io"}}
        ]),
    )
    .await;
    let job = wait_job(&app, &token, &job).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(
        (job["total"].as_u64(), job["applied"].as_u64(), job["failed"].as_u64()),
        (Some(3), Some(2), Some(1)),
        "{job}"
    );
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{job}");
    assert_eq!(errors[0]["row"], 1, "{job}");
    assert_eq!(errors[0]["code"], "conflict", "{job}");
    assert_eq!(errors[0]["field"], "email", "{job}");

    assert!(find_contact(&app, &token, "external_id", "cust-2").await.is_none(), "the failed row created nothing");
    assert_eq!(contact_by(&app, &token, "email", "taken@x.io").await["traits"]["first_name"], "Holder");
    assert_eq!(contact_by(&app, &token, "external_id", "cust-1").await["traits"]["first_name"], "One");
    assert!(find_contact(&app, &token, "email", "free@x.io").await.is_some());
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retry_apply_once() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let send = || {
        app.req(Method::POST, TRACK)
            .header("x-conveyour-token", &token)
            .header("Idempotency-Key", "cy-retry-1")
            .json(&json!({"id": "r@x.io", "events": [{"event": "a"}, {"event": "b"}]}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first = first.headers()["convene-job-id"].to_str().unwrap().to_string();
    let second = send().await.unwrap();
    let second = second.headers()["convene-job-id"].to_str().unwrap().to_string();
    wait_applied(&app, &token, &first).await;
    let job = wait_applied(&app, &token, &second).await;
    assert_eq!(job["duplicates"], 2, "{job}");
    assert_eq!(all_events(&app, &token).await.len(), 2);
}

#[tokio::test]
async fn a_full_backlog_is_a_503_in_the_vendor_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = convene::config::ServeConfig::for_tests(dir.path(), MASTER);
    config.ingest.max_backlog = 2;
    let app = spawn_app_with(config, dir).await;
    let (_, token) = app.full_key().await;
    let r = app
        .req(Method::POST, IDENTIFY)
        .header("x-conveyour-token", &token)
        .json(&json!([{"id": "a"}, {"id": "b"}, {"id": "c"}]))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("retry-after").is_some(), "Retry-After: {:?}", r.headers());
    let (status, content_type) =
        (r.status().as_u16(), r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()));
    let a = Answer { status, job: None, content_type, text: r.text().await.unwrap() };
    assert_envelope(&a, 503);
    applied(&app, IDENTIFY, &token, json!([{"id": "a"}, {"id": "b"}])).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_under_the_dialect_keep_its_envelope() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let a = post(&app, "/compat/conveyour/api/analytics/nope", &token, &json!({})).await;
    assert_envelope(&a, 404);
    let r = app.req(Method::GET, "/compat/conveyour/api/analytics/identify").send().await.unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "error");
    let r = app.req(Method::POST, "/compat/segment/v1/nope").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["success"], false, "{v}");
}

/// Only `$email` and `$mobile` name a trait: any other `$…` id would be one
/// literal external id shared by every contact sent with it, so it is
/// refused (the whole request, naming the id), for identify and track.
#[tokio::test]
async fn an_id_of_another_dollar_form_is_refused() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for id in ["$employee_id", "$EMAIL", "$phone"] {
        let body = json!([
            {"id": "ok-1", "traits": {"first_name": "Kept out"}},
            {"id": id, "traits": {"employee_id": "E1", "email": "a@x.io", "phone": "+15550100001"}}
        ]);
        let answer = post(&app, IDENTIFY, &token, &body).await;
        assert_envelope(&answer, 400);
        assert!(answer.text.contains("item 1") && answer.text.contains(id), "{}", answer.text);
        let answer = post(&app, TRACK, &token, &json!({"id": id, "events": [{"event": "e"}]})).await;
        assert_envelope(&answer, 400);
    }
    let (status, found) = app.get("/v1/contacts?external_id=ok-1", &token).await;
    assert_eq!((status, found["data"].clone()), (200, json!([])), "nothing of a refused request is queued");
}

/// Track finds its contact by the top-level `id`, else by each event's
/// `properties.id` (the vendor text asks that it match the identify id);
/// `$email` reads `traits` sent with the track; a numeric `timestamp` is
/// Unix seconds, any other non-text one is refused.
#[tokio::test]
async fn track_ids_from_properties_and_numeric_timestamps() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let job = applied(
        &app,
        TRACK,
        &token,
        json!({"events": [
            {"event": "made_sale", "properties": {"id": "20432766", "amt": 39}, "timestamp": 1_700_000_000},
            {"event": "visited", "properties": {"id": "20432721"}}
        ]}),
    )
    .await;
    assert_eq!(job["applied"], 2, "{job}");
    let first = contact_by(&app, &token, "external_id", "20432766").await;
    let events = contact_events(&app, &token, first["id"].as_i64().unwrap()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["timestamp"].as_str().unwrap().get(..19), Some("2023-11-14T22:13:20"), "{}", events[0]);
    let second = contact_by(&app, &token, "external_id", "20432721").await;
    assert_eq!(contact_events(&app, &token, second["id"].as_i64().unwrap()).await.len(), 1);

    applied(&app, TRACK, &token, json!({"id": "$email", "traits": {"email": "T@X.io"}, "events": [{"event": "e"}]}))
        .await;
    assert!(find_contact(&app, &token, "email", "t@x.io").await.is_some());

    let a = post(&app, TRACK, &token, &json!({"events": [{"event": "e", "properties": {"amt": 1}}]})).await;
    assert!(assert_envelope(&a, 400).contains("properties.id"));
    let a = post(&app, TRACK, &token, &json!({"id": "x", "events": [{"event": "e", "timestamp": true}]})).await;
    assert!(assert_envelope(&a, 400).contains("timestamp"));
}

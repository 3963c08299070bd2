//! The Convot dialect at `/compat/convot` (docs/compat/convot.md): contacts
//! found-or-created, conversations paged by number, typed messages with
//! operators, scopes, errors and rate limits in its envelope.

use convene::config::ServeConfig;
use convene::http::ratelimit::RateLimitSettings;
use convene_core::ratelimit::Quota;
use serde_json::{Value, json};

use crate::support::{MASTER, TestApp, spawn_app, spawn_app_with};

const BASE: &str = "/compat/convot/v1";

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    app.post(&format!("{BASE}{path}"), token, body).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    app.get(&format!("{BASE}{path}"), token).await
}

/// Asserts the dialect's error envelope: exactly `{"error": {"code", "message"}}`.
fn error(status: u16, body: &Value, want: u16, code: &str) -> String {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["error"].as_object().unwrap().len(), 2, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn contacts_are_found_or_created_and_custom_data_merges() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, first) = post(
        &app,
        "/contacts",
        &token,
        json!({"email": "Jane@X.io", "name": "Jane Doe", "custom_data": {"plan": "pro"}}),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let c = &first["contact"];
    assert!(c["id"].is_i64());
    assert_eq!(
        (c["email"].clone(), c["name"].clone(), c["custom_data"].clone()),
        (json!("jane@x.io"), json!("Jane Doe"), json!({"plan": "pro"}))
    );
    let (status, again) =
        post(&app, "/contacts", &token, json!({"email": "jane@x.io", "custom_data": {"seats": 5}})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["contact"]["id"], c["id"], "the same contact");
    assert_eq!(again["contact"]["custom_data"], json!({"plan": "pro", "seats": 5}));
    assert_eq!(again["contact"]["name"], "Jane Doe");
    let (status, by_ext) = post(&app, "/contacts", &token, json!({"external_id": "crm-7", "name": "Ext"})).await;
    assert_eq!(status, 201);
    let (status, same) = post(&app, "/contacts", &token, json!({"external_id": "crm-7"})).await;
    assert_eq!((status, same["contact"]["id"].clone()), (200, by_ext["contact"]["id"].clone()));
    for body in [
        json!({"name": "No id"}),
        json!({"email": "bad"}),
        json!({"email": "a@x.io", "custom_data": 1}),
        json!({"email": "a@x.io", "phone": "1"}),
    ] {
        let (status, err) = post(&app, "/contacts", &token, body).await;
        error(status, &err, 400, "bad_request");
    }
}

#[tokio::test]
async fn conversations_open_page_and_change() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, conv) =
        post(&app, "/conversations", &token, json!({"email": "new@x.io", "content": "Hi, following up."})).await;
    assert_eq!(status, 201, "{conv}");
    let c = &conv["conversation"];
    assert_eq!((c["status"].clone(), c["messages_count"].clone()), (json!("open"), json!(1)));
    let id = c["id"].as_str().unwrap().to_string();
    let (_, contact) = post(&app, "/contacts", &token, json!({"email": "new@x.io"})).await;
    assert_eq!(contact["contact"]["id"], c["contact_id"], "the contact was created by email");
    let (status, by_id) =
        post(&app, "/conversations", &token, json!({"contact_id": c["contact_id"], "content": "Again"})).await;
    assert_eq!(status, 201, "{by_id}");
    for body in [
        json!({"content": "x"}),
        json!({"email": "a@x.io"}),
        json!({"email": "a@x.io", "contact_id": 1, "content": "x"}),
    ] {
        let (status, err) = post(&app, "/conversations", &token, body).await;
        error(status, &err, 400, "bad_request");
    }
    // Pages of 2 over 5 conversations: has_more is exact at the boundary.
    for i in 0..3 {
        post(&app, "/conversations", &token, json!({"email": format!("p{i}@x.io"), "content": "x"})).await;
    }
    let (status, p1) = get(&app, "/conversations?per_page=2", &token).await;
    assert_eq!(status, 200, "{p1}");
    assert_eq!(p1["meta"], json!({"page": 1, "per_page": 2, "has_more": true}));
    assert_eq!(p1["conversations"][0]["id"], id.as_str());
    let (_, p3) = get(&app, "/conversations?per_page=2&page=3", &token).await;
    assert_eq!((p3["conversations"].as_array().unwrap().len(), p3["meta"]["has_more"].clone()), (1, json!(false)));
    let (_, exact) = get(&app, "/conversations?per_page=5", &token).await;
    assert_eq!(
        (exact["conversations"].as_array().unwrap().len(), exact["meta"]["has_more"].clone()),
        (5, json!(false))
    );
    let (_, default) = get(&app, "/conversations", &token).await;
    assert_eq!(default["meta"], json!({"page": 1, "per_page": 30, "has_more": false}));
    for q in ["per_page=101", "per_page=0", "page=0", "status=closed"] {
        let (status, err) = get(&app, &format!("/conversations?{q}"), &token).await;
        error(status, &err, 400, "bad_request");
    }
    // Resolve and reopen write activity messages.
    let (status, resolved) =
        app.patch(&format!("{BASE}/conversations/{id}"), &token, json!({"status": "resolved"})).await;
    assert_eq!((status, resolved["conversation"]["status"].clone()), (200, json!("resolved")));
    app.patch(&format!("{BASE}/conversations/{id}"), &token, json!({"status": "open"})).await;
    let (_, open) = get(&app, "/conversations?status=open&per_page=100", &token).await;
    assert_eq!(open["conversations"].as_array().unwrap().len(), 5);
    let (_, msgs) = get(&app, &format!("/conversations/{id}/messages"), &token).await;
    let types: Vec<&str> = msgs["messages"].as_array().unwrap().iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["outgoing", "activity", "activity"]);
    let (status, err) = app.patch(&format!("{BASE}/conversations/{id}"), &token, json!({"labels": ["x"]})).await;
    error(status, &err, 400, "bad_request");
}

#[tokio::test]
async fn messages_are_typed_filtered_and_sent_by_operators() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (_, agent) = app.post("/v1/users", &token, json!({"name": "Agent", "email": "agent@x.io"})).await;
    let (_, gone) = app.post("/v1/users", &token, json!({"name": "Gone", "email": "gone@x.io", "active": false})).await;
    let (_, conv) = post(&app, "/conversations", &token, json!({"email": "c@x.io", "content": "Hello"})).await;
    let id = conv["conversation"]["id"].as_str().unwrap().to_string();
    let path = format!("/conversations/{id}/messages");
    let (status, m) =
        post(&app, &path, &token, json!({"content": "Your refund is on the way.", "operator_id": agent["id"]})).await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(
        (m["message"]["type"].clone(), m["message"]["operator_id"].clone()),
        (json!("outgoing"), agent["id"].clone())
    );
    let (status, note) = post(&app, &path, &token, json!({"content": "VIP", "type": "note"})).await;
    assert_eq!((status, note["message"]["operator_id"].clone()), (201, Value::Null));
    for operator in [gone["id"].clone(), json!(424_242)] {
        let (status, err) = post(&app, &path, &token, json!({"content": "x", "operator_id": operator})).await;
        error(status, &err, 422, "unprocessable_entity");
    }
    let (status, err) = post(&app, &path, &token, json!({"content": "x", "type": "incoming"})).await;
    error(status, &err, 400, "bad_request");
    // Customer replies come through the native API.
    let (status, _) = app
        .post(&format!("/v1/conversations/{id}/messages"), &token, json!({"content": "Thanks", "type": "incoming"}))
        .await;
    assert_eq!(status, 201);
    let (_, thread) = get(&app, &format!("{path}?type=incoming,outgoing"), &token).await;
    let contents: Vec<&str> =
        thread["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["Hello", "Your refund is on the way.", "Thanks"]);
    let (_, all) = get(&app, &path, &token).await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 4);
    let (_, page2) = get(&app, &format!("{path}?per_page=3&page=2"), &token).await;
    assert_eq!((page2["messages"].as_array().unwrap().len(), page2["meta"]["has_more"].clone()), (1, json!(false)));
    let (status, err) = get(&app, &format!("{path}?type=sms"), &token).await;
    error(status, &err, 400, "bad_request");
    let (status, err) = get(&app, "/conversations/9b1f0000-0000-0000-0000-000000000000/messages", &token).await;
    error(status, &err, 404, "not_found");
    let (status, err) = post(&app, "/conversations/nope/messages", &token, json!({"content": "x"})).await;
    error(status, &err, 404, "not_found");
}

#[tokio::test]
async fn scopes_and_credentials_in_the_vendor_envelope() {
    let app = spawn_app().await;
    let ws = app.workspace("w").await;
    let reader = app.key_with_scopes(&ws, &["conversations:read"]).await;
    let (status, err) = post(&app, "/conversations", &reader, json!({"email": "a@x.io", "content": "x"})).await;
    assert!(error(status, &err, 403, "forbidden").contains("conversations:write"));
    let (status, err) = post(&app, "/contacts", &reader, json!({"email": "a@x.io"})).await;
    assert!(error(status, &err, 403, "forbidden").contains("contacts:write"));
    let (status, _) = get(&app, "/conversations", &reader).await;
    assert_eq!(status, 200);
    let (status, err) = app.call(reqwest::Method::GET, &format!("{BASE}/conversations"), None, None).await;
    error(status, &err, 401, "unauthorized");
    let (status, err) = get(&app, "/nowhere", &reader).await;
    error(status, &err, 404, "not_found");
}

#[tokio::test]
async fn a_burst_beyond_the_bucket_gets_429_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::for_tests(dir.path(), MASTER);
    config.rate_limits = RateLimitSettings { full: Quota { per_second: 0.01, burst: 3 }, ..Default::default() };
    let app = spawn_app_with(config, dir).await;
    let ws = app.workspace("w").await;
    let key = app.key(&ws, json!({"name": "k", "kind": "full"})).await;
    let token = key["token"].as_str().unwrap();
    let mut answers = Vec::new();
    for i in 0..5 {
        let r = app
            .with_token(reqwest::Method::POST, &format!("{BASE}/contacts"), token)
            .json(&json!({"email": format!("b{i}@x.io")}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(r.headers().contains_key("ratelimit-policy") && r.headers().contains_key("ratelimit"));
        if status == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        let body: Value = r.json().await.unwrap();
        answers.push((status, body));
    }
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
    error(answers[3].0, &answers[3].1, 429, "rate_limited");
    let other = app.key(&ws, json!({"name": "k2", "kind": "full"})).await;
    let (_, list) = app.get("/v1/contacts", other["token"].as_str().unwrap()).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3, "refused requests wrote nothing");
}

#[tokio::test]
async fn a_subject_has_at_most_1000_characters() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let body = |subject: String| json!({"email": "s@x.io", "content": "Hello", "subject": subject});
    let (status, err) = post(&app, "/conversations", &token, body("é".repeat(1001))).await;
    error(status, &err, 400, "bad_request");
    let (status, made) = post(&app, "/conversations", &token, body(format!(" {} ", "é".repeat(998)))).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["conversation"]["subject"], "é".repeat(998), "trimmed, as in the native API");
}

/// A conversation refused for its operator or its subject creates no
/// contact by email: the request writes nothing.
#[tokio::test]
async fn a_refused_conversation_creates_no_contact() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let refused = [
        (json!({"email": "orphan@x.io", "content": "Hi", "operator_id": 99}), 422, "unprocessable_entity"),
        (json!({"email": "orphan@x.io", "content": "Hi", "subject": "é".repeat(1001)}), 400, "bad_request"),
        (json!({"email": "orphan@x.io", "content": ""}), 400, "bad_request"),
    ];
    for (body, want, code) in refused {
        let (status, err) = post(&app, "/conversations", &token, body.clone()).await;
        error(status, &err, want, code);
        let (status, found) = app.get("/v1/contacts?email=orphan@x.io", &token).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["data"], json!([]), "{body} created a contact: {found}");
    }
    let (status, made) = post(&app, "/conversations", &token, json!({"email": "orphan@x.io", "content": "Hi"})).await;
    assert_eq!(status, 201, "{made}");
    let (_, found) = app.get("/v1/contacts?email=orphan@x.io", &token).await;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));
}

/// A conversation's UUID in capitals (as some UUID types print it) finds
/// the conversation, through the dialect and the native API.
#[tokio::test]
async fn a_conversation_id_is_found_whatever_its_case() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, conv) = post(&app, "/conversations", &token, json!({"email": "case@x.io", "content": "Hi"})).await;
    assert_eq!(status, 201, "{conv}");
    let id = conv["conversation"]["id"].as_str().unwrap().to_string();
    let upper = id.to_uppercase();
    assert_ne!(upper, id);
    let (status, found) = get(&app, &format!("/conversations/{upper}"), &token).await;
    assert_eq!((status, found["conversation"]["id"].clone()), (200, json!(id)), "{found}");
    let (status, reply) =
        post(&app, &format!("/conversations/{upper}/messages"), &token, json!({"content": "Again"})).await;
    assert_eq!(status, 201, "{reply}");
    let (status, messages) = get(&app, &format!("/conversations/{upper}/messages"), &token).await;
    assert_eq!(status, 200, "{messages}");
    let (status, native) = app.get(&format!("/v1/conversations/{upper}"), &token).await;
    assert_eq!((status, native["id"].clone()), (200, json!(id)), "{native}");
}

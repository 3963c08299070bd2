//! The Conversion.ai dialect at `/compat/conversion/api/v1`
//! (docs/compat/conversion.md): exact envelopes, each validation rule,
//! not-found and delete semantics, workspace isolation, all-or-nothing
//! batches, and its writes read back through the native API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

const BASE: &str = "/compat/conversion/api/v1";

/// A raw answer: status and body text.
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The body with volatile values (times, numeric ids) replaced, for snapshots.
    fn pinned(&self) -> String {
        let mut text = self.text.clone();
        for key in ["createdAt", "updatedAt"] {
            text = replace_values(&text, &format!("\"{key}\":\""), '"', "<time>");
        }
        replace_values(&text, "\"id\":", ',', "<id>")
    }
}

/// Replaces what follows each `marker` up to `end` (exclusive) with `with`,
/// when it is a number or (for string markers) anything.
fn replace_values(text: &str, marker: &str, end: char, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        let stop = rest.find([end, '}']).unwrap_or(rest.len());
        let value = &rest[..stop];
        if end == '"' || value.chars().all(|c| c.is_ascii_digit()) && !value.is_empty() {
            out.push_str(with);
            rest = &rest[stop..];
        }
    }
    out.push_str(rest);
    out
}

async fn call(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    let mut rb = app.req(method, &format!("{BASE}{path}"));
    if let Some(token) = token {
        rb = rb.bearer_auth(token);
    }
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    assert_eq!(content_type.as_deref(), Some("application/json"), "{status} {text}");
    Answer { status, text }
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Answer {
    call(app, Method::POST, path, Some(token), Some(body)).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> Answer {
    call(app, Method::GET, path, Some(token), None).await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> Answer {
    call(app, Method::DELETE, path, Some(token), None).await
}

/// Asserts the vendor's error envelope; returns the error object.
fn error(a: &Answer, status: u16, code: &str) -> Value {
    assert_eq!(a.status, status, "{}", a.text);
    let body = a.json();
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body["error"].clone()
}

/// Asserts success; returns `data`.
fn data(a: &Answer, status: u16) -> Value {
    assert_eq!(a.status, status, "{}", a.text);
    let body = a.json();
    assert_eq!(body["success"], true, "{body}");
    body["data"].clone()
}

async fn app_and_key() -> (TestApp, String) {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    (app, token)
}

#[tokio::test]
async fn success_envelopes_are_pinned() {
    let (app, token) = app_and_key().await;
    let batch = post(
        &app,
        "/contacts/batch",
        &token,
        json!({"contacts": [{"email": "Ann@Example.com", "variables": {"first_name": "Ann", "title": "CTO"},
                             "externalContact": {"crmId": "c-9", "source": "crm"}}]}),
    )
    .await;
    insta::assert_snapshot!(batch.pinned(), @r#"{"success":true,"data":{"created":1,"updated":0,"contacts":[{"id":<id>,"email":"ann@example.com","variables":{"first_name":"Ann","title":"CTO"},"externalContact":{"crmId":"c-9","source":"crm"},"subscriptionStatus":"SUBSCRIBED","createdAt":"<time>","updatedAt":"<time>"}]}}"#);
    let one = get(&app, "/contacts/by-email/ann@example.com", &token).await;
    insta::assert_snapshot!(one.pinned(), @r#"{"success":true,"data":{"id":<id>,"email":"ann@example.com","variables":{"first_name":"Ann","title":"CTO"},"externalContact":{"crmId":"c-9","source":"crm"},"subscriptionStatus":"SUBSCRIBED","createdAt":"<time>","updatedAt":"<time>"}}"#);
    let subs = post(
        &app,
        "/contacts/batch-subscription",
        &token,
        json!({"contacts": [{"email": "ann@example.com", "subscriptionStatus": "UNSUBSCRIBED"}]}),
    )
    .await;
    insta::assert_snapshot!(subs.pinned(), @r#"{"success":true,"data":{"updated":1,"contacts":[{"email":"ann@example.com","subscriptionStatus":"UNSUBSCRIBED"}]}}"#);
    let engagement = post(
        &app,
        "/contacts/engagements",
        &token,
        json!({"contactEmail": "ann@example.com", "type": "ACTIVITY", "name": "Demo call",
               "description": "Walked through pricing", "data": {"duration_minutes": 30, "outcome": "positive"}}),
    )
    .await;
    assert_eq!(engagement.status, 201, "{}", engagement.text);
    insta::assert_snapshot!(engagement.pinned(), @r#"{"success":true,"data":{"id":<id>,"contactEmail":"ann@example.com","type":"ACTIVITY","name":"Demo call","description":"Walked through pricing","data":{"duration_minutes":30,"outcome":"positive"},"createdAt":"<time>"}}"#);
    let companies = post(
        &app,
        "/companies/batch",
        &token,
        json!({"companies": [{"id": "acme-1", "baseDomain": "Acme.com", "variables": {"industry": "Retail", "size": "11-50"}}]}),
    )
    .await;
    insta::assert_snapshot!(companies.pinned(), @r#"{"success":true,"data":{"created":1,"updated":0,"companies":[{"id":"acme-1","baseDomain":"acme.com","variables":{"industry":"Retail","size":"11-50"},"createdAt":"<time>","updatedAt":"<time>"}]}}"#);
    let company = get(&app, "/companies/by-external-id/acme-1", &token).await;
    insta::assert_snapshot!(company.pinned(), @r#"{"success":true,"data":{"id":"acme-1","baseDomain":"acme.com","variables":{"industry":"Retail","size":"11-50"},"createdAt":"<time>","updatedAt":"<time>"}}"#);
    let gone = delete(&app, "/companies/by-external-id/acme-1", &token).await;
    insta::assert_snapshot!(gone.text, @r#"{"success":true,"data":{"deleted":true,"id":"acme-1"}}"#);
    let gone = delete(&app, "/contacts/by-email/ann@example.com", &token).await;
    insta::assert_snapshot!(gone.text, @r#"{"success":true,"data":{"deleted":true,"email":"ann@example.com"}}"#);
}

#[tokio::test]
async fn error_envelopes_are_pinned() {
    let (app, token) = app_and_key().await;
    let missing = call(&app, Method::GET, "/contacts/by-email/a@b.co", None, None).await;
    insta::assert_snapshot!(format!("{} {}", missing.status, missing.text), @r#"401 {"success":false,"error":{"code":"UNAUTHORIZED","message":"missing API key: send 'Authorization: Bearer <token>', 'X-API-Key', 'x-conveyour-token' or HTTP Basic"}}"#);
    let bad = get(&app, "/contacts/by-email/a@b.co", "cv_live_not-a-real-key").await;
    insta::assert_snapshot!(format!("{} {}", bad.status, bad.text), @r#"401 {"success":false,"error":{"code":"UNAUTHORIZED","message":"invalid API key"}}"#);
    let unknown = get(&app, "/contacts/by-email/nobody@example.com", &token).await;
    insta::assert_snapshot!(format!("{} {}", unknown.status, unknown.text), @r#"404 {"success":false,"error":{"code":"NOT_FOUND","message":"contact not found"}}"#);
    let invalid =
        post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "a@b.co"}, {"email": "nope"}]})).await;
    insta::assert_snapshot!(format!("{} {}", invalid.status, invalid.text), @r#"400 {"success":false,"error":{"code":"VALIDATION_ERROR","message":"contacts[1].email: 'nope' is not a valid email address: it has no '@'","details":{"field":"email","row":1}}}"#);
    let twice =
        post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "a@b.co"}, {"email": "A@B.CO"}]})).await;
    insta::assert_snapshot!(format!("{} {}", twice.status, twice.text), @r#"409 {"success":false,"error":{"code":"DUPLICATE_ERROR","message":"contacts[1].email: 'a@b.co' appears twice in this batch (also contacts[0])","details":{"field":"email","row":1}}}"#);
    let route = get(&app, "/nothing-here", &token).await;
    error(&route, 404, "NOT_FOUND");
    let not_json = app
        .req(Method::POST, &format!("{BASE}/contacts/batch"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("email=a@b.co")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{body}");
    let malformed = app
        .req(Method::POST, &format!("{BASE}/contacts/batch"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"contacts\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
}

#[tokio::test]
async fn contact_rows_are_validated_one_rule_at_a_time() {
    let (app, token) = app_and_key().await;
    let cases = [
        (json!({"contacts": [{"variables": {"first_name": "A"}}]}), "email"),
        (json!({"contacts": [{"email": ""}]}), "email"),
        (json!({"contacts": [{"email": 42}]}), "email"),
        (json!({"contacts": [{"email": "a@b.co", "variables": ["x"]}]}), "variables"),
        (json!({"contacts": [{"email": "a@b.co", "externalContact": "crm-1"}]}), "externalContact"),
        (json!({"contacts": [{"email": "a@b.co", "nickname": "A"}]}), "nickname"),
        (json!({"contacts": [{"email": "a@b.co", "variables": {"$bad": 1}}]}), "variables.$bad"),
        (json!({"contacts": [{"email": "a@b.co", "variables": {"email": "other@b.co"}}]}), "variables.email"),
        (json!({"contacts": []}), "contacts"),
        (json!({"people": []}), "contacts"),
        (json!({"contacts": [1]}), ""),
    ];
    for (body, field) in cases {
        let a = post(&app, "/contacts/batch", &token, body.clone()).await;
        let e = error(&a, 400, "VALIDATION_ERROR");
        if !field.is_empty() {
            assert_eq!(e["details"]["field"], field, "{body} → {e}");
        }
    }
    let many: Vec<Value> = (0..1001).map(|i| json!({"email": format!("u{i}@b.co")})).collect();
    let e = error(&post(&app, "/contacts/batch", &token, json!({"contacts": many})).await, 400, "VALIDATION_ERROR");
    assert!(e["message"].as_str().unwrap().contains("1000"), "{e}");
    let thousand: Vec<Value> = (0..1000).map(|i| json!({"email": format!("u{i}@b.co")})).collect();
    let ok = data(&post(&app, "/contacts/batch", &token, json!({"contacts": thousand})).await, 200);
    assert_eq!(ok["created"], 1000);
}

#[tokio::test]
async fn one_bad_row_writes_nothing() {
    let (app, token) = app_and_key().await;
    // Invalid input: refused before anything is written.
    let a =
        post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "good@b.co"}, {"email": "bad"}]})).await;
    error(&a, 400, "VALIDATION_ERROR");
    error(&get(&app, "/contacts/by-email/good@b.co", &token).await, 404, "NOT_FOUND");
    // A value that does not fit its field's type, found while writing: the
    // whole batch is rolled back.
    data(
        &post(
            &app,
            "/contacts/batch",
            &token,
            json!({"contacts": [{"email": "typed@b.co", "variables": {"age": 30}}]}),
        )
        .await,
        200,
    );
    let a = post(
        &app,
        "/contacts/batch",
        &token,
        json!({"contacts": [{"email": "second@b.co", "variables": {"plan": "pro"}},
                            {"email": "typed@b.co", "variables": {"age": "thirty"}}]}),
    )
    .await;
    let e = error(&a, 400, "VALIDATION_ERROR");
    assert_eq!((e["details"]["row"].clone(), e["details"]["field"].clone()), (json!(1), json!("age")), "{e}");
    assert!(e["message"].as_str().unwrap().starts_with("contacts[1].age:"), "{e}");
    error(&get(&app, "/contacts/by-email/second@b.co", &token).await, 404, "NOT_FOUND");
    let (_, fields) = app.get("/v1/fields?entity=contact&limit=1000", &token).await;
    assert!(
        !fields["data"].as_array().unwrap().iter().any(|f| f["name"] == "plan"),
        "no field from the rolled-back batch"
    );
    // Companies too.
    let a = post(
        &app,
        "/companies/batch",
        &token,
        json!({"companies": [{"id": "c-1"}, {"id": "c-2", "baseDomain": "not a domain"}]}),
    )
    .await;
    let e = error(&a, 400, "VALIDATION_ERROR");
    assert_eq!((e["details"]["row"].clone(), e["details"]["field"].clone()), (json!(1), json!("baseDomain")), "{e}");
    error(&get(&app, "/companies/by-external-id/c-1", &token).await, 404, "NOT_FOUND");
}

#[tokio::test]
async fn batches_create_then_merge_variables() {
    let (app, token) = app_and_key().await;
    let first = data(
        &post(
            &app,
            "/contacts/batch",
            &token,
            json!({"contacts": [
                {"email": "a@b.co", "variables": {"first_name": "Ann", "phone": "+1 555 0100", "linkedin_url": "https://l.in/ann"}},
                {"email": "b@b.co"}
            ]}),
        )
        .await,
        200,
    );
    assert_eq!((first["created"].clone(), first["updated"].clone()), (json!(2), json!(0)));
    let second = data(
        &post(
            &app,
            "/contacts/batch",
            &token,
            json!({"contacts": [
                {"email": "A@b.co", "variables": {"last_name": "Lee", "first_name": "Anne"}, "externalContact": {"id": 7}},
                {"email": "c@b.co", "variables": {"company_name": "Acme"}}
            ]}),
        )
        .await,
        200,
    );
    assert_eq!((second["created"].clone(), second["updated"].clone()), (json!(1), json!(1)));
    let ann = data(&get(&app, "/contacts/by-email/a@b.co", &token).await, 200);
    assert_eq!(
        ann["variables"],
        json!({"first_name": "Anne", "last_name": "Lee", "phone": "+1 555 0100", "linkedin_url": "https://l.in/ann"})
    );
    assert_eq!(ann["externalContact"], json!({"id": 7}));
    // A later batch without externalContact keeps it; the native API sees the same contact.
    post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "a@b.co", "variables": {"title": "CTO"}}]}))
        .await;
    let ann = data(&get(&app, "/contacts/by-email/a@b.co", &token).await, 200);
    assert_eq!(ann["externalContact"], json!({"id": 7}));
    let (status, native) = app.get(&format!("/v1/contacts/{}", ann["id"]), &token).await;
    assert_eq!(status, 200);
    assert_eq!((native["email"].clone(), native["traits"]["title"].clone()), (json!("a@b.co"), json!("CTO")));
    // Encoded path segments work.
    data(&get(&app, "/contacts/by-email/a%40b.co", &token).await, 200);
}

#[tokio::test]
async fn delete_and_not_found_semantics() {
    let (app, token) = app_and_key().await;
    post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "a@b.co"}]})).await;
    data(&delete(&app, "/contacts/by-email/a@b.co", &token).await, 200);
    error(&get(&app, "/contacts/by-email/a@b.co", &token).await, 404, "NOT_FOUND");
    error(&delete(&app, "/contacts/by-email/a@b.co", &token).await, 404, "NOT_FOUND");
    error(&get(&app, "/contacts/by-email/not-an-email", &token).await, 404, "NOT_FOUND");
    error(&delete(&app, "/companies/by-external-id/none", &token).await, 404, "NOT_FOUND");
    // Deleted and created again: a new contact.
    let again = data(&post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "a@b.co"}]})).await, 200);
    assert_eq!(again["created"], 1);
}

#[tokio::test]
async fn workspaces_are_isolated() {
    let (app, token) = app_and_key().await;
    let (_, other) = app.full_key().await;
    post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "a@b.co"}]})).await;
    post(&app, "/companies/batch", &token, json!({"companies": [{"id": "c-1"}]})).await;
    error(&get(&app, "/contacts/by-email/a@b.co", &other).await, 404, "NOT_FOUND");
    error(&delete(&app, "/contacts/by-email/a@b.co", &other).await, 404, "NOT_FOUND");
    error(&get(&app, "/companies/by-external-id/c-1", &other).await, 404, "NOT_FOUND");
    let subs = post(
        &app,
        "/contacts/batch-subscription",
        &other,
        json!({"contacts": [{"email": "a@b.co", "subscriptionStatus": "PENDING"}]}),
    )
    .await;
    error(&subs, 404, "NOT_FOUND");
    let eng = post(
        &app,
        "/contacts/engagements",
        &other,
        json!({"contactEmail": "a@b.co", "type": "ACTIVITY", "name": "n", "description": "d"}),
    )
    .await;
    error(&eng, 404, "NOT_FOUND");
    // The same email in the other workspace is another contact.
    let created = data(&post(&app, "/contacts/batch", &other, json!({"contacts": [{"email": "a@b.co"}]})).await, 200);
    assert_eq!(created["created"], 1);
    data(&get(&app, "/contacts/by-email/a@b.co", &token).await, 200);
}

#[tokio::test]
async fn subscription_batches_validate_and_are_recorded() {
    let (app, token) = app_and_key().await;
    post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "a@b.co"}, {"email": "b@b.co"}]})).await;
    for status in [json!("subscribed"), json!("OPTED_OUT"), json!(null), json!(1)] {
        let a = post(
            &app,
            "/contacts/batch-subscription",
            &token,
            json!({"contacts": [{"email": "a@b.co", "subscriptionStatus": status}]}),
        )
        .await;
        let e = error(&a, 400, "VALIDATION_ERROR");
        assert_eq!(e["details"]["field"], "subscriptionStatus", "{e}");
    }
    // An unknown email anywhere: NOT_FOUND naming the row, nothing changed.
    let a = post(
        &app,
        "/contacts/batch-subscription",
        &token,
        json!({"contacts": [{"email": "a@b.co", "subscriptionStatus": "PENDING"},
                            {"email": "zed@b.co", "subscriptionStatus": "PENDING"}]}),
    )
    .await;
    let e = error(&a, 404, "NOT_FOUND");
    assert_eq!(e["details"]["row"], 1, "{e}");
    assert!(e["message"].as_str().unwrap().contains("zed@b.co"), "{e}");
    assert_eq!(data(&get(&app, "/contacts/by-email/a@b.co", &token).await, 200)["subscriptionStatus"], "SUBSCRIBED");
    let twice = post(
        &app,
        "/contacts/batch-subscription",
        &token,
        json!({"contacts": [{"email": "a@b.co", "subscriptionStatus": "PENDING"},
                            {"email": "a@b.co", "subscriptionStatus": "SUBSCRIBED"}]}),
    )
    .await;
    error(&twice, 409, "DUPLICATE_ERROR");
    let ok = data(
        &post(
            &app,
            "/contacts/batch-subscription",
            &token,
            json!({"contacts": [{"email": "a@b.co", "subscriptionStatus": "PENDING"},
                                {"email": "b@b.co", "subscriptionStatus": "UNSUBSCRIBED"}]}),
        )
        .await,
        200,
    );
    assert_eq!(ok["updated"], 2);
    let a = data(&get(&app, "/contacts/by-email/a@b.co", &token).await, 200);
    assert_eq!(a["subscriptionStatus"], "PENDING");
    let (status, history) = app.get(&format!("/v1/contacts/{}/subscription-history", a["id"]), &token).await;
    assert_eq!(status, 200, "{history}");
    let changes = history["data"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{history}");
    assert_eq!(
        (changes[0]["previous"].clone(), changes[0]["status"].clone(), changes[0]["source"].clone()),
        (json!("SUBSCRIBED"), json!("PENDING"), json!("conversion"))
    );
}

#[tokio::test]
async fn engagements_are_validated_and_join_the_timeline() {
    let (app, token) = app_and_key().await;
    post(&app, "/contacts/batch", &token, json!({"contacts": [{"email": "a@b.co"}]})).await;
    let good =
        json!({"contactEmail": "a@b.co", "type": "ACTIVITY", "name": "Call", "description": "Discussed renewal"});
    for (field, value) in [
        ("contactEmail", Value::Null),
        ("contactEmail", json!("not-an-email")),
        ("type", Value::Null),
        ("type", json!("activity")),
        ("type", json!("NOTE")),
        ("name", Value::Null),
        ("name", json!("")),
        ("description", Value::Null),
        ("description", json!(7)),
        ("data", json!([1, 2])),
    ] {
        let mut body = good.clone();
        body[field] = value.clone();
        let e = error(&post(&app, "/contacts/engagements", &token, body).await, 400, "VALIDATION_ERROR");
        assert_eq!(e["details"]["field"], field, "{field}={value} → {e}");
    }
    let mut unknown = good.clone();
    unknown["contactEmail"] = json!("nobody@b.co");
    error(&post(&app, "/contacts/engagements", &token, unknown).await, 404, "NOT_FOUND");
    let mut with_data = good.clone();
    with_data["data"] = json!({"next_steps": "send quote", "tags": ["renewal"], "priority": "high"});
    let recorded = data(&post(&app, "/contacts/engagements", &token, with_data).await, 201);
    assert_eq!(recorded["data"]["next_steps"], "send quote");
    data(&post(&app, "/contacts/engagements", &token, good).await, 201);
    let contact = data(&get(&app, "/contacts/by-email/a@b.co", &token).await, 200);
    let (status, events) = app.get(&format!("/v1/contacts/{}/events", contact["id"]), &token).await;
    assert_eq!(status, 200, "{events}");
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["kind"], "engagement");
    assert_eq!(events[0]["event"], "Call");
    assert_eq!(events[0]["description"], "Discussed renewal");
    assert_eq!(events[0]["properties"]["priority"], "high");
}

#[tokio::test]
async fn companies_upsert_by_id_and_refuse_duplicates() {
    let (app, token) = app_and_key().await;
    for (body, field) in [
        (json!({"companies": [{"baseDomain": "a.com"}]}), "id"),
        (json!({"companies": [{"id": ""}]}), "id"),
        (json!({"companies": [{"id": true}]}), "id"),
        (json!({"companies": [{"id": "c", "baseDomain": 5}]}), "baseDomain"),
        (json!({"companies": [{"id": "c", "variables": "x"}]}), "variables"),
        (json!({"companies": [{"id": "c", "name": "x"}]}), "name"),
    ] {
        let e = error(&post(&app, "/companies/batch", &token, body.clone()).await, 400, "VALIDATION_ERROR");
        assert_eq!(e["details"]["field"], field, "{body} → {e}");
    }
    let twice = post(&app, "/companies/batch", &token, json!({"companies": [{"id": "c-1"}, {"id": "c-1"}]})).await;
    error(&twice, 409, "DUPLICATE_ERROR");
    let first = data(
        &post(
            &app,
            "/companies/batch",
            &token,
            json!({"companies": [{"id": "c-1", "baseDomain": "acme.com", "variables": {"industry": "Retail"}}, {"id": 42}]}),
        )
        .await,
        200,
    );
    assert_eq!(first["created"], 2);
    assert_eq!(first["companies"][1]["id"], "42", "numeric ids are kept as text");
    let second = data(
        &post(&app, "/companies/batch", &token, json!({"companies": [{"id": "c-1", "variables": {"size": "51-200"}}]}))
            .await,
        200,
    );
    assert_eq!((second["created"].clone(), second["updated"].clone()), (json!(0), json!(1)));
    let c = data(&get(&app, "/companies/by-external-id/c-1", &token).await, 200);
    assert_eq!(c["variables"], json!({"industry": "Retail", "size": "51-200"}));
    // The same row again leaves the company as it was (updatedAt too) and counts as updated.
    let again = data(
        &post(&app, "/companies/batch", &token, json!({"companies": [{"id": "c-1", "variables": {"size": "51-200"}}]}))
            .await,
        200,
    );
    assert_eq!((again["created"].clone(), again["updated"].clone()), (json!(0), json!(1)));
    assert_eq!(again["companies"][0], c);
    assert_eq!(data(&get(&app, "/companies/by-external-id/c-1", &token).await, 200), c);
    assert_eq!(c["baseDomain"], "acme.com", "a row without baseDomain keeps it");
    // The native API sees the same company.
    let (status, list) = app.get("/v1/companies?external_id=c-1", &token).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"][0]["domain"], "acme.com");
    data(&delete(&app, "/companies/by-external-id/c-1", &token).await, 200);
    error(&get(&app, "/companies/by-external-id/c-1", &token).await, 404, "NOT_FOUND");
}

#[tokio::test]
async fn scopes_are_enforced_in_the_vendor_envelope() {
    let app = spawn_app().await;
    let ws = app.workspace("w").await;
    let reader = app.key_with_scopes(&ws, &["contacts:read"]).await;
    let a = post(&app, "/contacts/batch", &reader, json!({"contacts": [{"email": "a@b.co"}]})).await;
    let e = error(&a, 403, "UNAUTHORIZED");
    assert!(e["message"].as_str().unwrap().contains("contacts:write"), "{e}");
    error(&get(&app, "/companies/by-external-id/x", &reader).await, 403, "UNAUTHORIZED");
    error(&get(&app, "/contacts/by-email/a@b.co", &reader).await, 404, "NOT_FOUND");
}

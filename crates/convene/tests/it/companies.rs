//! Native companies (`/v1/companies`), contacts linked to them, batch
//! upserts with per-row results and dry runs, and the subscription history.

use serde_json::{Value, json};

use crate::support::{assert_error, spawn_app};

#[tokio::test]
async fn companies_round_trip_with_filters_and_paging() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, body) = app.post("/v1/companies", &token, json!({"domain": "acme.com"})).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "external_id");
    let (status, acme) = app
        .post(
            "/v1/companies",
            &token,
            json!({"external_id": "acme", "domain": "HTTPS://Acme.com/", "traits": {"size": 10}}),
        )
        .await;
    assert_eq!(status, 201, "{acme}");
    assert_eq!((acme["domain"].clone(), acme["traits"]["size"].clone()), (json!("acme.com"), json!(10)));
    let (status, body) = app.post("/v1/companies", &token, json!({"external_id": "acme"})).await;
    assert_eq!(assert_error(status, &body, 409, "conflict")["field"], "external_id");
    let (status, body) = app.post("/v1/companies", &token, json!({"external_id": "x", "domain": "a b"})).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "domain");
    let (status, body) = app.post("/v1/companies", &token, json!({"external_id": "x", "industry": "retail"})).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "industry");
    for i in 0..3 {
        let (status, _) =
            app.post("/v1/companies", &token, json!({"external_id": format!("b{i}"), "domain": "beta.io"})).await;
        assert_eq!(status, 201);
    }
    let id = acme["id"].as_i64().unwrap();
    let (status, got) = app.get(&format!("/v1/companies/{id}"), &token).await;
    assert_eq!((status, got["external_id"].clone()), (200, json!("acme")));
    let (status, patched) = app
        .patch(
            &format!("/v1/companies/{id}"),
            &token,
            json!({"traits": {"size": {"$inc": 5}, "tier": "gold"}, "domain": null}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["traits"]["size"].clone(), patched["domain"].clone()), (json!(15), Value::Null));
    let (_, by_domain) = app.get("/v1/companies?domain=Beta.io&limit=2", &token).await;
    assert_eq!(by_domain["data"].as_array().unwrap().len(), 2);
    let cursor = by_domain["next_cursor"].as_str().expect("a second page").to_string();
    let (_, rest) = app.get(&format!("/v1/companies?domain=beta.io&limit=2&cursor={cursor}"), &token).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let (_, by_id) = app.get("/v1/companies?external_id=b1", &token).await;
    assert_eq!(by_id["data"][0]["external_id"], "b1");
    let (_, fields) = app.get("/v1/fields?entity=company", &token).await;
    let names: Vec<&str> = fields["data"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(names.contains(&"size") && names.contains(&"tier"), "{names:?}");
    // Another workspace sees none of it.
    let (_, other) = app.full_key().await;
    let (status, body) = app.get(&format!("/v1/companies/{id}"), &other).await;
    assert_error(status, &body, 404, "not_found");
    let (_, list) = app.get("/v1/companies", &other).await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = app.delete(&format!("/v1/companies/{id}"), &token).await;
    assert_eq!(status, 204);
    let (status, body) = app.get(&format!("/v1/companies/{id}"), &token).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get("/v1/companies/not-a-number", &token).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn contacts_link_to_a_company_and_are_listed_by_it() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (_, acme) = app.post("/v1/companies", &token, json!({"external_id": "acme"})).await;
    let company = acme["id"].as_i64().unwrap();
    let ann = app.contact(&token, json!({"email": "ann@x.io", "company_id": company})).await;
    assert_eq!(ann["company_id"], company);
    let bob = app.contact(&token, json!({"email": "bob@x.io"})).await;
    let (status, linked) =
        app.patch(&format!("/v1/contacts/{}", bob["id"]), &token, json!({"company_id": company})).await;
    assert_eq!((status, linked["company_id"].clone()), (200, json!(company)));
    let (status, body) = app.post("/v1/contacts", &token, json!({"email": "c@x.io", "company_id": 999_999})).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "company_id");
    let (status, members) = app.get(&format!("/v1/companies/{company}/contacts?limit=1"), &token).await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["data"][0]["email"], "ann@x.io");
    let cursor = members["next_cursor"].as_str().unwrap();
    let (_, more) = app.get(&format!("/v1/companies/{company}/contacts?limit=1&cursor={cursor}"), &token).await;
    assert_eq!(more["data"][0]["email"], "bob@x.io");
    let (status, unlinked) =
        app.patch(&format!("/v1/contacts/{}", bob["id"]), &token, json!({"company_id": null})).await;
    assert_eq!((status, unlinked["company_id"].clone()), (200, Value::Null));
    let (status, _) = app.delete(&format!("/v1/companies/{company}"), &token).await;
    assert_eq!(status, 204);
    let (_, ann) = app.get(&format!("/v1/contacts/{}", ann["id"]), &token).await;
    assert_eq!(ann["company_id"], Value::Null, "deleting a company unlinks its contacts");
    let (status, body) = app.get(&format!("/v1/companies/{company}/contacts"), &token).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn contact_batches_report_every_row() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    app.contact(&token, json!({"email": "old@x.io", "traits": {"score": 1}})).await;
    app.contact(&token, json!({"email": "held@x.io", "external_id": "e-1"})).await;
    let rows = json!({"contacts": [
        {"email": "new@x.io", "traits": {"plan": "pro"}},
        {"email": "old@x.io", "traits": {"score": {"$inc": 2}}},
        {"email": "not-an-email"},
        {"traits": {"plan": "x"}},
        {"email": "old@x.io", "external_id": "e-1"},
        {"external_id": "e-1", "traits": {"vip": true}},
        {"email": "c@x.io", "company_id": 1},
        "not an object"
    ]});
    let (status, report) = app.post("/v1/contacts/batch", &token, rows).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["created"].clone(), report["updated"].clone(), report["failed"].clone(), report["written"].clone()),
        (json!(1), json!(2), json!(5), json!(true))
    );
    let results = report["results"].as_array().unwrap();
    let statuses: Vec<&str> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["created", "updated", "failed", "failed", "failed", "updated", "failed", "failed"]);
    assert_eq!(results.iter().map(|r| r["row"].as_u64().unwrap()).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    assert_eq!(
        (results[2]["error"]["code"].clone(), results[2]["error"]["field"].clone()),
        (json!("validation_error"), json!("email"))
    );
    assert_eq!(results[4]["error"]["code"], "conflict");
    assert_eq!(results[6]["error"]["field"], "company_id");
    assert_eq!(results[1]["object"]["traits"]["score"], 3);
    assert_eq!(results[5]["object"]["email"], "held@x.io");
    let (_, found) = app.get("/v1/contacts?email=new@x.io", &token).await;
    assert_eq!(found["data"][0]["traits"]["plan"], "pro");
    let (_, held) = app.get("/v1/contacts?external_id=e-1", &token).await;
    assert_eq!(held["data"][0]["email"], "held@x.io", "the conflicting row changed nothing");
}

#[tokio::test]
async fn dry_runs_report_and_write_nothing() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let rows = json!({"contacts": [{"email": "a@x.io", "traits": {"dry_field": 1}}, {"email": "bad"}]});
    let (status, report) = app.post("/v1/contacts/batch?dry_run=true", &token, rows.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["dry_run"].clone(), report["written"].clone(), report["created"].clone(), report["failed"].clone()),
        (json!(true), json!(false), json!(1), json!(1))
    );
    let (_, list) = app.get("/v1/contacts", &token).await;
    assert_eq!(list["data"], json!([]));
    let (_, fields) = app.get("/v1/fields?limit=1000", &token).await;
    assert!(!fields["data"].as_array().unwrap().iter().any(|f| f["name"] == "dry_field"));
    let (status, report) = app.post("/v1/contacts/batch?dry_run=false", &token, rows).await;
    assert_eq!((status, report["written"].clone(), report["created"].clone()), (200, json!(true), json!(1)));
    let companies = json!({"companies": [{"external_id": "c1", "domain": "c1.io"}, {"domain": "no-id.io"}]});
    let (status, report) = app.post("/v1/companies/batch?dry_run=true", &token, companies.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["created"].clone(), report["failed"].clone()), (json!(1), json!(1)));
    assert_eq!(report["results"][1]["error"]["field"], "external_id");
    let (_, list) = app.get("/v1/companies", &token).await;
    assert_eq!(list["data"], json!([]));
    let (_, report) = app.post("/v1/companies/batch", &token, companies).await;
    assert_eq!(report["created"], 1);
    let (_, report) = app
        .post("/v1/companies/batch", &token, json!({"companies": [{"external_id": "c1", "traits": {"n": 1}}]}))
        .await;
    assert_eq!(
        (report["updated"].clone(), report["results"][0]["object"]["domain"].clone()),
        (json!(1), json!("c1.io"))
    );
    let (status, body) =
        app.post("/v1/contacts/batch?dry_run=maybe", &token, json!({"contacts": [{"email": "a@x.io"}]})).await;
    assert_error(status, &body, 400, "validation_error");
}

#[tokio::test]
async fn batch_limits_are_enforced_with_a_message() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let many: Vec<Value> = (0..1001).map(|i| json!({"email": format!("u{i}@x.io")})).collect();
    let (status, body) = app.post("/v1/contacts/batch", &token, json!({"contacts": many})).await;
    let e = assert_error(status, &body, 400, "validation_error");
    assert!(e["message"].as_str().unwrap().contains("1000"), "{e}");
    for bad in [json!({"contacts": []}), json!({"contacts": {}}), json!({}), json!({"contacts": [], "x": 1})] {
        let (status, body) = app.post("/v1/contacts/batch", &token, bad).await;
        assert_error(status, &body, 400, "validation_error");
    }
    let thousand: Vec<Value> =
        (0..1000).map(|i| json!({"email": format!("u{i}@x.io"), "traits": {"a": i, "b": "x", "c": true}})).collect();
    let (status, body) = app.post("/v1/contacts/batch", &token, json!({"contacts": thousand})).await;
    assert_eq!((status, body["created"].clone()), (200, json!(1000)));
}

#[tokio::test]
async fn subscription_changes_can_be_read_back() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let c = app.contact(&token, json!({"email": "a@x.io", "subscription_status": "PENDING"})).await;
    let id = c["id"].as_i64().unwrap();
    app.patch(&format!("/v1/contacts/{id}"), &token, json!({"subscription_status": "SUBSCRIBED"})).await;
    app.patch(&format!("/v1/contacts/{id}"), &token, json!({"traits": {"x": 1}})).await;
    app.post(
        "/v1/contacts/batch",
        &token,
        json!({"contacts": [{"email": "a@x.io", "subscription_status": "UNSUBSCRIBED"}]}),
    )
    .await;
    let (status, history) = app.get(&format!("/v1/contacts/{id}/subscription-history"), &token).await;
    assert_eq!(status, 200, "{history}");
    let seen: Vec<(Value, Value)> =
        history["data"].as_array().unwrap().iter().map(|h| (h["previous"].clone(), h["status"].clone())).collect();
    assert_eq!(
        seen,
        vec![
            (Value::Null, json!("PENDING")),
            (json!("PENDING"), json!("SUBSCRIBED")),
            (json!("SUBSCRIBED"), json!("UNSUBSCRIBED")),
        ]
    );
    assert!(history["data"][0]["changed_at"].is_string());
    assert_eq!(history["data"][0]["source"], "api");
    let (status, body) = app.get("/v1/contacts/999999/subscription-history", &token).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn company_routes_need_company_scopes() {
    let app = spawn_app().await;
    let ws = app.workspace("w").await;
    let contacts_only = app.key_with_scopes(&ws, &["contacts:read", "contacts:write"]).await;
    let (status, body) = app.post("/v1/companies", &contacts_only, json!({"external_id": "c"})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app.get("/v1/companies", &contacts_only).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) =
        app.post("/v1/companies/batch", &contacts_only, json!({"companies": [{"external_id": "c"}]})).await;
    assert_error(status, &body, 403, "forbidden");
    let readers = app.key_with_scopes(&ws, &["companies:read"]).await;
    let (status, body) = app.post("/v1/companies", &readers, json!({"external_id": "c"})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = app.get("/v1/companies", &readers).await;
    assert_eq!(status, 200);
}

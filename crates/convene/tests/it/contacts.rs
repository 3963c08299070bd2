//! Contacts: CRUD, identities, trait operations, paging, filters, refusals.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{assert_error, send, spawn_app};

const SHAPE: [&str; 10] = [
    "anonymous_id",
    "company_id",
    "created_at",
    "email",
    "external_id",
    "id",
    "mobile",
    "subscription_status",
    "traits",
    "updated_at",
];

fn keys_of(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn crud_round_trip() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;

    let (status, created) = app
        .post(
            "/v1/contacts",
            &token,
            json!({"email": "ann@example.com", "mobile": "+15550100000", "external_id": "crm-1", "traits": {"plan": "pro", "tags": ["vip"]}, "subscription_status": "PENDING"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(keys_of(&created), SHAPE.to_vec());
    let id = created["id"].as_i64().expect("an integer id");
    assert!(id > 0);
    assert_eq!(created["email"], "ann@example.com");
    assert_eq!(created["mobile"], "+15550100000");
    assert_eq!(created["external_id"], "crm-1");
    assert_eq!(created["traits"], json!({"plan": "pro", "tags": ["vip"]}));
    assert_eq!(created["subscription_status"], "PENDING");
    assert!(created["company_id"].is_null());
    assert!(created["anonymous_id"].is_null());
    assert!(chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap()).is_ok());
    assert_eq!(created["created_at"], created["updated_at"]);

    let path = format!("/v1/contacts/{id}");
    assert_eq!(app.get(&path, &token).await, (200, created.clone()));

    let (status, changed) = app
        .patch(
            &path,
            &token,
            json!({"external_id": null, "traits": {"plan": "enterprise"}, "subscription_status": "unsubscribed"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(keys_of(&changed), SHAPE.to_vec());
    assert_eq!(changed["id"], id);
    assert_eq!(changed["email"], "ann@example.com", "left out: unchanged");
    assert!(changed["external_id"].is_null(), "null unsets");
    assert_eq!(changed["traits"], json!({"plan": "enterprise", "tags": ["vip"]}));
    assert_eq!(changed["subscription_status"], "UNSUBSCRIBED");
    assert_eq!(changed["created_at"], created["created_at"]);
    assert!(changed["updated_at"].as_str().unwrap() >= created["updated_at"].as_str().unwrap());
    assert_eq!(app.get(&path, &token).await, (200, changed));

    // A contact with nothing at all is allowed, and new contacts are SUBSCRIBED.
    let empty = app.contact(&token, json!({})).await;
    assert_eq!(empty["subscription_status"], "SUBSCRIBED");
    assert_eq!(empty["traits"], json!({}));
    assert!(empty["id"].as_i64().unwrap() > id);

    let (status, nothing) = app.delete(&path, &token).await;
    assert_eq!(status, 204);
    assert!(nothing.is_null(), "204 has no body: {nothing}");
    for method in [Method::GET, Method::DELETE, Method::PATCH] {
        let (status, err) = app.call(method, &path, Some(&token), Some(&json!({}))).await;
        assert_error(status, &err, 404, "not_found");
    }
    // Its identities are free again.
    app.contact(&token, json!({"email": "ann@example.com", "mobile": "+15550100000"})).await;
}

#[tokio::test]
async fn emails_are_lower_cased_and_matched_case_insensitively() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let ann = app.contact(&token, json!({"email": "  Ann.Lee@Example.COM "})).await;
    app.contact(&token, json!({"email": "bob@example.com"})).await;
    assert_eq!(ann["email"], "ann.lee@example.com");

    for query in ["ann.lee@example.com", "ANN.LEE@EXAMPLE.COM", "Ann.Lee@example.Com"] {
        let (status, list) =
            send(app.req(Method::GET, "/v1/contacts").bearer_auth(&token).query(&[("email", query)])).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["data"], json!([ann.clone()]), "{query}");
        assert!(list["next_cursor"].is_null());
    }
    let (status, list) =
        send(app.req(Method::GET, "/v1/contacts").bearer_auth(&token).query(&[("email", "nobody@example.com")])).await;
    assert_eq!((status, &list["data"]), (200, &json!([])));

    // The identity also arrives through traits.
    let via_traits = app.contact(&token, json!({"traits": {"email": "Cy@Example.com", "plan": "x"}})).await;
    assert_eq!(via_traits["email"], "cy@example.com");
    assert_eq!(via_traits["traits"], json!({"plan": "x"}));

    // Invalid emails are refused naming the field.
    for bad in ["ann", "ann@example", "a b@example.com", ""] {
        let (status, err) = app.post("/v1/contacts", &token, json!({"email": bad})).await;
        assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "email", "{bad}");
    }
    let (status, err) = app.post("/v1/contacts", &token, json!({"email": 42})).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "email");
}

#[tokio::test]
async fn mobiles_are_normalised() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let c = app.contact(&token, json!({"mobile": "+1 (555) 010-0000"})).await;
    assert_eq!(c["mobile"], "+15550100000");
    let (status, list) =
        send(app.req(Method::GET, "/v1/contacts").bearer_auth(&token).query(&[("mobile", "+1 555.010.0000")])).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"][0]["id"], c["id"]);
    let (status, err) = app.post("/v1/contacts", &token, json!({"mobile": "555-CALL-NOW"})).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "mobile");
    let (status, err) = app.post("/v1/contacts", &token, json!({"mobile": "12"})).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "mobile");
}

#[tokio::test]
async fn identity_conflicts_are_409_naming_the_field() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let first = app
        .contact(&token, json!({"email": "ann@example.com", "mobile": "+15550100000", "external_id": "crm-1", "anonymous_id": "anon-1"}))
        .await;
    let second = app
        .contact(&token, json!({"email": "bob@example.com", "mobile": "+15550100001", "external_id": "crm-2", "anonymous_id": "anon-2"}))
        .await;

    let taken = [
        ("email", json!("ANN@example.com")),
        ("mobile", json!("+1 555 010 0000")),
        ("external_id", json!("crm-1")),
        ("anonymous_id", json!("anon-1")),
    ];
    for (field, value) in &taken {
        let (status, err) = app.post("/v1/contacts", &token, json!({ *field: value })).await;
        assert_eq!(assert_error(status, &err, 409, "conflict")["field"], *field, "create");

        let path = format!("/v1/contacts/{}", second["id"]);
        let (status, err) = app.patch(&path, &token, json!({ *field: value, "traits": {"plan": "stolen"} })).await;
        assert_eq!(assert_error(status, &err, 409, "conflict")["field"], *field, "patch");
        assert_eq!(app.get(&path, &token).await, (200, second.clone()), "a refused patch changes nothing");
    }
    let (_, all) = app.get("/v1/contacts", &token).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2, "no contact created: {all}");

    // Setting a contact's own identity again is no conflict.
    let path = format!("/v1/contacts/{}", first["id"]);
    let (status, same) = app.patch(&path, &token, json!({"email": "Ann@Example.com", "external_id": "crm-1"})).await;
    assert_eq!(status, 200, "{same}");
}

#[tokio::test]
async fn every_trait_operation_applies() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let c = app
        .contact(
            &token,
            json!({"traits": {"plan": "free", "note": "x", "tags": ["a", "b"], "visits": 2, "first_source": "ads"}}),
        )
        .await;
    let path = format!("/v1/contacts/{}", c["id"]);

    let (status, c) = app
        .patch(
            &path,
            &token,
            json!({"traits": {
                "plan": "pro",
                "note": null,
                "never_set": null,
                "tags": {"add": ["c", "a"], "remove": ["b"]},
                "visits": {"$inc": 3},
                "score": {"$inc": 1.5},
                "first_source": {"$set_once": "email"},
                "first_seen": {"$set_once": "2024-01-31"}
            }}),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        c["traits"],
        json!({"plan": "pro", "tags": ["a", "c"], "visits": 5, "score": 1.5, "first_source": "ads", "first_seen": "2024-01-31"})
    );

    // Removing everything leaves an empty list; $inc by a negative number decrements.
    let (_, c) =
        app.patch(&path, &token, json!({"traits": {"tags": {"remove": ["a", "c"]}, "visits": {"$inc": -5}}})).await;
    assert_eq!(c["traits"]["tags"], json!([]));
    assert_eq!(c["traits"]["visits"], 0);
    let (_, c) = app.patch(&path, &token, json!({"traits": {"tags": {"add": ["z"]}}})).await;
    assert_eq!(c["traits"]["tags"], json!(["z"]));

    // Refused operations: unknown $-operation, $inc on text, $inc without a number, add on a non-list.
    for (traits, field, status_code) in [
        (json!({"plan": {"$mul": 2}}), "plan", 400),
        (json!({"visits": {"$inc": "2"}}), "visits", 400),
        (json!({"plan": {"$inc": 1}}), "plan", 422),
        (json!({"visits": {"add": [1]}}), "visits", 422),
        (json!({"$weird": 1}), "$weird", 400),
    ] {
        let (status, err) = app.patch(&path, &token, json!({"traits": traits})).await;
        assert_eq!(status, status_code, "{traits}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    assert_eq!(app.get(&path, &token).await.1, c, "refused operations change nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_sum_exactly() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let c = app.contact(&token, json!({"traits": {"logins": 0}})).await;
    let url = app.url(&format!("/v1/contacts/{}", c["id"]));
    let mut tasks = Vec::new();
    for i in 1..=20 {
        let rb = app
            .client
            .patch(&url)
            .bearer_auth(&token)
            .json(&json!({"traits": {"logins": {"$inc": i}, "hits": {"$inc": 1}}}));
        tasks.push(tokio::spawn(async move { send(rb).await }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (_, c) = app.get(&format!("/v1/contacts/{}", c["id"]), &token).await;
    assert_eq!(c["traits"]["logins"], (1..=20).sum::<i64>(), "{c}");
    assert_eq!(c["traits"]["hits"], 20);
}

#[tokio::test]
async fn cursor_paging_visits_every_contact_once() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(app.contact(&token, json!({"external_id": format!("c{i}")})).await["id"].as_i64().unwrap());
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut rb = app.req(Method::GET, "/v1/contacts").bearer_auth(&token).query(&[("limit", "3")]);
        if let Some(c) = &cursor {
            rb = rb.query(&[("cursor", c)]);
        }
        let (status, page) = send(rb).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        sizes.push(data.len());
        seen.extend(data.iter().map(|c| c["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(sizes.len() < 10, "paging does not end");
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(seen, created, "every contact once, in id order");

    // Exactly a page's worth: no cursor to an empty page.
    let (_, page) = app.get("/v1/contacts?limit=7", &token).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 7);
    assert!(page["next_cursor"].is_null());
    let (_, page) = app.get("/v1/contacts", &token).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 7, "default page size is larger");
}

#[tokio::test]
async fn list_parameters_are_checked() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    app.contact(&token, json!({"email": "ann@example.com"})).await;
    for limit in ["0", "1001", "-1"] {
        let (status, err) = app.get(&format!("/v1/contacts?limit={limit}"), &token).await;
        assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "limit", "{limit}");
    }
    for limit in ["abc", "1.5", "99999999999999999999"] {
        let (status, err) = app.get(&format!("/v1/contacts?limit={limit}"), &token).await;
        assert_error(status, &err, 400, "validation_error");
    }
    assert_eq!(app.get("/v1/contacts?limit=1000", &token).await.0, 200);
    assert_eq!(app.get("/v1/contacts?limit=1", &token).await.0, 200);

    // "!!" is not base64; "YWJj" is base64 of "abc", not an id.
    for cursor in ["!!", "YWJj", "%00"] {
        let (status, err) = app.get(&format!("/v1/contacts?cursor={cursor}"), &token).await;
        assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "cursor", "{cursor}");
    }
    for other in ["/v1/keys", "/v1/service-accounts", "/v1/fields"] {
        let (status, err) = app.get(&format!("{other}?cursor=!!"), &token).await;
        assert_error(status, &err, 400, "validation_error");
        let (status, err) = app.get(&format!("{other}?limit=0"), &token).await;
        assert_error(status, &err, 400, "validation_error");
    }

    for query in [
        "email=ann@example.com&mobile=5550100000",
        "email=ann@example.com&external_id=x",
        "mobile=5550100000&external_id=x",
    ] {
        let (status, err) = app.get(&format!("/v1/contacts?{query}"), &token).await;
        assert_error(status, &err, 400, "validation_error");
    }
}

#[tokio::test]
async fn a_non_integer_id_is_404() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for id in ["abc", "1.5", "99999999999999999999999", "-1", "0", "12345"] {
        let path = format!("/v1/contacts/{id}");
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let (status, err) = app.call(method.clone(), &path, Some(&token), Some(&json!({}))).await;
            assert_error(status, &err, 404, "not_found");
        }
    }
}

#[tokio::test]
async fn unknown_body_keys_are_refused_and_read_only_keys_ignored() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for key in ["emial", "name", "tags"] {
        let (status, err) = app.post("/v1/contacts", &token, json!({"email": "ann@example.com", key: "x"})).await;
        let error = assert_error(status, &err, 400, "validation_error");
        assert_eq!(error["field"], key);
        assert!(error["message"].as_str().unwrap().contains(key));
    }
    for (body, field) in [
        (json!({"traits": "plan"}), "traits"),
        (json!({"subscription_status": "MAYBE"}), "subscription_status"),
        (json!({"email": "ann@example.com", "traits": {"email": "other@example.com"}}), "email"),
    ] {
        let (status, err) = app.post("/v1/contacts", &token, body).await;
        assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], field);
    }
    let (_, list) = app.get("/v1/contacts", &token).await;
    assert_eq!(list["data"], json!([]), "nothing was created");

    let c = app
        .contact(
            &token,
            json!({"id": 999_999, "created_at": "1999-01-01T00:00:00Z", "company_id": null, "email": "ann@example.com"}),
        )
        .await;
    assert_ne!(c["id"], 999_999);
    assert!(c["company_id"].is_null());
    assert_ne!(c["created_at"], "1999-01-01T00:00:00Z");

    // A client may send back what it read.
    let path = format!("/v1/contacts/{}", c["id"]);
    let mut echoed = c.clone();
    echoed["traits"] = json!({"plan": "pro"});
    let other_id = c["id"].as_i64().unwrap() + 1000;
    echoed["id"] = json!(other_id);
    echoed["created_at"] = json!("not even a time");
    let (status, changed) = app.patch(&path, &token, echoed).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["id"], c["id"]);
    assert_eq!(changed["created_at"], c["created_at"]);
    assert_eq!(changed["traits"], json!({"plan": "pro"}));
    let (status, err) = app.get(&format!("/v1/contacts/{other_id}"), &token).await;
    assert_error(status, &err, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_with_one_email_make_one_contact() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let url = app.url("/v1/contacts");
    let mut tasks = Vec::new();
    for i in 0..12 {
        // The same address in different cases, each with its own trait.
        let email = if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" };
        let rb =
            app.client.post(&url).bearer_auth(&token).json(&json!({"email": email, "traits": {format!("t{i}"): i}}));
        tasks.push(tokio::spawn(async move { send(rb).await }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            _ => assert_eq!(assert_error(status, &body, 409, "conflict")["field"], "email"),
        }
    }
    assert_eq!(created, 1);
    let (_, list) = app.get("/v1/contacts", &token).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn numeric_identities_are_read_as_text_except_email() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let c = app.contact(&token, json!({"external_id": 12345, "mobile": 15550100000_i64})).await;
    assert_eq!(c["external_id"], "12345");
    assert_eq!(c["mobile"], "15550100000");
    let (status, list) = app.get("/v1/contacts?external_id=12345", &token).await;
    assert_eq!((status, &list["data"][0]["id"]), (200, &c["id"]));
    let (status, err) = app.post("/v1/contacts", &token, json!({"email": 12345})).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "email");
    for bad in [json!(true), json!(["x"]), json!({"a": 1})] {
        let (status, err) = app.post("/v1/contacts", &token, json!({"external_id": bad})).await;
        assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "external_id");
    }
}

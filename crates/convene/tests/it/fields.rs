//! The fields registry: built-ins, inference, creation, coercion, and
//! refused writes that leave no trace.

use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, spawn_app};

async fn fields(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, list) = app.get("/v1/fields?limit=1000", token).await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().unwrap().clone()
}

async fn field(app: &TestApp, token: &str, name: &str) -> Option<Value> {
    fields(app, token).await.into_iter().find(|f| f["name"] == name)
}

#[tokio::test]
async fn tags_is_built_in() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let all = fields(&app, &token).await;
    assert_eq!(all.len(), 1, "a new workspace has only the built-ins: {all:?}");
    let tags = &all[0];
    assert_eq!(tags["name"], "tags");
    assert_eq!(tags["type"], "list");
    assert_eq!(tags["builtin"], true);
    assert_eq!(tags["inferred"], false);
    assert_eq!(tags["entity"], "contact");
    assert_eq!(tags["label"], "Tags");
    let (status, list) = app.get("/v1/fields?entity=company", &token).await;
    assert_eq!((status, &list["data"]), (200, &json!([])));
    let (status, err) = app.get("/v1/fields?entity=planet", &token).await;
    assert_error(status, &err, 400, "validation_error");

    // tags takes only lists.
    let (status, err) = app.post("/v1/contacts", &token, json!({"traits": {"tags": "vip"}})).await;
    assert_eq!(assert_error(status, &err, 422, "invalid_value")["field"], "tags");
}

#[tokio::test]
async fn unknown_traits_get_an_inferred_type() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let traits = json!({
        "revenue": 1500,
        "ratio": 0.25,
        "active": true,
        "colors": ["red", "blue"],
        "birthday": "2024-01-31",
        "signed_up_at": "2024-01-31T10:00:00Z",
        "city": "Lisbon",
        "meta": {"a": 1, "b": [1, 2]},
        "counter": {"$inc": 2},
        "first_touch": {"$set_once": "ads"},
        "labels": {"add": ["x"]}
    });
    let c = app.contact(&token, json!({"traits": traits})).await;
    assert_eq!(c["traits"]["meta"], json!({"a": 1, "b": [1, 2]}));
    assert_eq!(c["traits"]["signed_up_at"], "2024-01-31T10:00:00.000Z", "datetimes are kept in one form");
    for (name, ty) in [
        ("revenue", "number"),
        ("ratio", "number"),
        ("active", "boolean"),
        ("colors", "list"),
        ("birthday", "date"),
        ("signed_up_at", "datetime"),
        ("city", "text"),
        ("meta", "json"),
        ("counter", "number"),
        ("first_touch", "text"),
        ("labels", "list"),
    ] {
        let f = field(&app, &token, name).await.unwrap_or_else(|| panic!("no field {name}"));
        assert_eq!(f["type"], ty, "{name}");
        assert_eq!(f["inferred"], true, "{name}");
        assert_eq!(f["builtin"], false, "{name}");
        assert_eq!(f["label"], name, "{name}");
    }
    // The inferred type holds for later writes: "yes" is no boolean.
    let (status, err) =
        app.patch(&format!("/v1/contacts/{}", c["id"]), &token, json!({"traits": {"active": "yes"}})).await;
    assert_eq!(assert_error(status, &err, 422, "invalid_value")["field"], "active");
    // And an invalid date is text when first seen.
    app.contact(&token, json!({"traits": {"not_a_date": "2024-02-30"}})).await;
    assert_eq!(field(&app, &token, "not_a_date").await.unwrap()["type"], "text");
}

#[tokio::test]
async fn fields_of_every_type_can_be_created() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let types = ["text", "number", "integer", "boolean", "date", "datetime", "list", "json"];
    for ty in types {
        let (status, f) = app.post("/v1/fields", &token, json!({"name": format!("f_{ty}"), "type": ty})).await;
        assert_eq!(status, 201, "{f}");
        assert_eq!(f["name"], format!("f_{ty}"));
        assert_eq!(f["label"], format!("f_{ty}"), "the label defaults to the name");
        assert_eq!(f["type"], ty);
        assert_eq!(f["entity"], "contact");
        assert_eq!(f["inferred"], false);
        assert_eq!(f["builtin"], false);
    }
    let (status, f) = app
        .post(
            "/v1/fields",
            &token,
            json!({"name": "career_sales", "label": "Career sales", "type": "number", "entity": "company"}),
        )
        .await;
    assert_eq!(status, 201, "{f}");
    assert_eq!((&f["label"], &f["entity"]), (&json!("Career sales"), &json!("company")));

    let all = fields(&app, &token).await;
    assert_eq!(all.len(), 1 + types.len() + 1);
    for ty in types {
        assert!(all.iter().any(|f| f["name"] == format!("f_{ty}") && f["type"] == ty), "{ty} listed");
    }
    let (_, company) = app.get("/v1/fields?entity=company", &token).await;
    assert_eq!(company["data"].as_array().unwrap().len(), 1);

    // A created type governs the first value.
    let c = app.contact(&token, json!({"traits": {"f_text": 12, "f_date": "2024-01-31T00:00:00Z", "f_json": {"add": [1]}, "f_list": ["a"]}})).await;
    assert_eq!(c["traits"], json!({"f_text": "12", "f_date": "2024-01-31", "f_json": {"add": [1]}, "f_list": ["a"]}));
}

#[tokio::test]
async fn field_creation_refuses_bad_input() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, _) = app.post("/v1/fields", &token, json!({"name": "plan", "type": "text"})).await;
    assert_eq!(status, 201);
    for name in ["plan", "tags"] {
        let (status, err) = app.post("/v1/fields", &token, json!({"name": name, "type": "number"})).await;
        assert_eq!(assert_error(status, &err, 409, "conflict")["field"], "name", "{name}");
    }
    // An inferred field's name is taken too.
    app.contact(&token, json!({"traits": {"seen": 1}})).await;
    let (status, err) = app.post("/v1/fields", &token, json!({"name": "seen", "type": "text"})).await;
    assert_error(status, &err, 409, "conflict");
    // The same name on another entity is another field.
    let (status, _) =
        app.post("/v1/fields", &token, json!({"name": "plan", "type": "text", "entity": "company"})).await;
    assert_eq!(status, 201);

    for body in [
        json!({"name": "x", "type": "float"}),
        json!({"name": "x"}),
        json!({"name": "x", "type": "text", "entity": "planet"}),
        json!({"name": "x", "type": "text", "colour": "red"}),
        json!({"name": "", "type": "text"}),
        json!({"name": "$x", "type": "text"}),
        json!({"name": "a".repeat(129), "type": "text"}),
        json!({"name": "x", "type": "text", "label": ""}),
    ] {
        let (status, err) = app.post("/v1/fields", &token, body.clone()).await;
        assert_error(status, &err, 400, "validation_error");
    }
    assert!(field(&app, &token, "x").await.is_none());
    assert_eq!(field(&app, &token, "plan").await.unwrap()["type"], "text", "the first definition stands");
}

#[tokio::test]
async fn values_are_coerced_to_the_field_type() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for (name, ty) in [("revenue", "number"), ("age", "integer"), ("opted_in", "boolean"), ("joined", "datetime")] {
        let (status, _) = app.post("/v1/fields", &token, json!({"name": name, "type": ty})).await;
        assert_eq!(status, 201);
    }
    let c = app
        .contact(&token, json!({"traits": {"revenue": "1500", "age": "42", "opted_in": "true", "joined": "2024-01-02T03:04:05+02:00"}}))
        .await;
    assert_eq!(
        c["traits"],
        json!({"revenue": 1500, "age": 42, "opted_in": true, "joined": "2024-01-02T01:04:05.000Z"})
    );
    let path = format!("/v1/contacts/{}", c["id"]);
    let (status, c) =
        app.patch(&path, &token, json!({"traits": {"revenue": "12.5", "age": 7.0, "opted_in": "FALSE"}})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["traits"]["revenue"], 12.5);
    assert_eq!(c["traits"]["age"], 7);
    assert_eq!(c["traits"]["opted_in"], false);

    for (traits, field) in [
        (json!({"age": 1.5}), "age"),
        (json!({"age": "1.5"}), "age"),
        (json!({"revenue": "lots"}), "revenue"),
        (json!({"opted_in": 1}), "opted_in"),
        (json!({"joined": "yesterday"}), "joined"),
        (json!({"age": [1]}), "age"),
    ] {
        let (status, err) = app.patch(&path, &token, json!({"traits": traits})).await;
        let error = assert_error(status, &err, 422, "invalid_value");
        assert_eq!(error["field"], field, "{traits}");
        assert!(error["message"].as_str().unwrap().contains(field), "{error}");
    }
    assert_eq!(app.get(&path, &token).await, (200, c));
}

#[tokio::test]
async fn a_refused_write_changes_nothing() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, _) = app.post("/v1/fields", &token, json!({"name": "age", "type": "integer"})).await;
    assert_eq!(status, 201);
    let c = app
        .contact(&token, json!({"email": "ann@example.com", "traits": {"plan": "free", "age": 30, "tags": ["a"]}}))
        .await;
    let path = format!("/v1/contacts/{}", c["id"]);
    let before = fields(&app, &token).await;

    // On update: valid operations before and after the bad one are not applied.
    let (status, err) = app
        .patch(
            &path,
            &token,
            json!({"email": "new@example.com", "subscription_status": "UNSUBSCRIBED",
                   "traits": {"plan": "pro", "brand_new": "x", "tags": {"add": ["b"]}, "age": 1.5, "after": {"$inc": 1}}}),
        )
        .await;
    assert_eq!(assert_error(status, &err, 422, "invalid_value")["field"], "age");
    assert_eq!(app.get(&path, &token).await, (200, c.clone()), "contact unchanged");
    assert_eq!(fields(&app, &token).await, before, "no field created");

    // On create: no contact, no field.
    let (status, err) = app
        .post("/v1/contacts", &token, json!({"email": "bob@example.com", "traits": {"newfield": 1, "age": "old"}}))
        .await;
    assert_eq!(assert_error(status, &err, 422, "invalid_value")["field"], "age");
    let (_, list) = app.get("/v1/contacts?email=bob@example.com", &token).await;
    assert_eq!(list["data"], json!([]));
    assert_eq!(fields(&app, &token).await, before, "no field created");
}

#[tokio::test]
async fn a_conflicting_write_leaves_no_inferred_field() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    app.contact(&token, json!({"email": "ann@example.com"})).await;
    let before = fields(&app, &token).await;

    // The traits apply, then the unique email refuses the row: the field
    // inferred on the way must go too.
    let (status, err) =
        app.post("/v1/contacts", &token, json!({"email": "ann@example.com", "traits": {"when": "2024-01-31"}})).await;
    assert_eq!(assert_error(status, &err, 409, "conflict")["field"], "email");
    assert_eq!(fields(&app, &token).await, before, "no field created");

    // And the next write infers afresh: "when" is text now, not a date.
    let c = app.contact(&token, json!({"email": "bob@example.com", "traits": {"when": "soon"}})).await;
    assert_eq!(c["traits"]["when"], "soon");
    assert_eq!(field(&app, &token, "when").await.unwrap()["type"], "text");
}

#[tokio::test]
async fn the_field_list_pages_by_entity_and_name() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for name in ["b", "a", "d", "c"] {
        let (status, _) = app.post("/v1/fields", &token, json!({"name": name, "type": "text"})).await;
        assert_eq!(status, 201);
    }
    let (status, _) = app.post("/v1/fields", &token, json!({"name": "z", "type": "text", "entity": "company"})).await;
    assert_eq!(status, 201);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/fields?limit=2".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.get(&path, &token).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| format!("{}/{}", f["entity"].as_str().unwrap(), f["name"].as_str().unwrap())),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(seen.len() < 20);
    }
    assert_eq!(seen, ["company/z", "contact/a", "contact/b", "contact/c", "contact/d", "contact/tags"]);
}

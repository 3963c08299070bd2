//! Users, conversations, messages and the contact timeline on the native API.

use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, spawn_app};

async fn user(app: &TestApp, token: &str, email: &str) -> Value {
    let (status, u) = app.post("/v1/users", token, json!({"name": "Agent", "email": email})).await;
    assert_eq!(status, 201, "{u}");
    u
}

#[tokio::test]
async fn users_are_created_changed_and_checked() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let ann = user(&app, &token, "Ann@X.io").await;
    assert_eq!(
        (ann["email"].clone(), ann["role"].clone(), ann["active"].clone()),
        (json!("ann@x.io"), json!("agent"), json!(true))
    );
    let (status, body) = app.post("/v1/users", &token, json!({"name": "Again", "email": "ann@x.io"})).await;
    assert_eq!(assert_error(status, &body, 409, "conflict")["field"], "email");
    for (body, field) in [
        (json!({"email": "b@x.io"}), "name"),
        (json!({"name": "B"}), "email"),
        (json!({"name": "B", "email": "b@x.io", "role": "owner"}), "role"),
        (json!({"name": "B", "email": "b@x.io", "password": "secret"}), "password"),
    ] {
        let (status, err) = app.post("/v1/users", &token, body).await;
        assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], field);
    }
    let (status, changed) =
        app.patch(&format!("/v1/users/{}", ann["id"]), &token, json!({"role": "admin", "active": false})).await;
    assert_eq!((status, changed["role"].clone(), changed["active"].clone()), (200, json!("admin"), json!(false)));
    let (_, list) = app.get("/v1/users", &token).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, other) = app.full_key().await;
    let (status, body) = app.get(&format!("/v1/users/{}", ann["id"]), &other).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn conversations_open_change_and_record_activity() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let contact = app.contact(&token, json!({"email": "c@x.io"})).await;
    let agent = user(&app, &token, "agent@x.io").await;
    let (status, conv) = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": contact["id"], "subject": "Refund", "labels": ["billing", "vip"], "channel": "Email",
                   "message": {"content": "Hi, how can we help?"}}),
        )
        .await;
    assert_eq!(status, 201, "{conv}");
    assert_eq!(
        (conv["status"].clone(), conv["messages_count"].clone(), conv["channel"].clone(), conv["labels"].clone()),
        (json!("open"), json!(1), json!("email"), json!(["billing", "vip"]))
    );
    assert_eq!(conv["id"].as_str().unwrap().len(), 36, "a UUID");
    let id = conv["id"].as_str().unwrap();
    let (status, reply) = app
        .post(
            &format!("/v1/conversations/{id}/messages"),
            &token,
            json!({"content": "I want a refund", "type": "incoming"}),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["sender"], json!({"type": "contact", "id": contact["id"].to_string()}));
    let (status, note) = app
        .post(
            &format!("/v1/conversations/{id}/messages"),
            &token,
            json!({"content": "check order", "type": "note", "operator_id": agent["id"]}),
        )
        .await;
    assert_eq!((status, note["sender"]["type"].clone()), (201, json!("user")));
    let (status, patched) = app
        .patch(&format!("/v1/conversations/{id}"), &token, json!({"status": "resolved", "assignee_id": agent["id"]}))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["status"].clone(), patched["assignee_id"].clone(), patched["messages_count"].clone()),
        (json!("resolved"), agent["id"].clone(), json!(5))
    );
    let (_, reopened) =
        app.patch(&format!("/v1/conversations/{id}"), &token, json!({"status": "open", "assignee_id": null})).await;
    assert_eq!(reopened["messages_count"], 7);
    let (_, all) = app.get(&format!("/v1/conversations/{id}/messages"), &token).await;
    let types: Vec<&str> = all["data"].as_array().unwrap().iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["outgoing", "incoming", "note", "activity", "activity", "activity", "activity"]);
    let contents: Vec<&str> = all["data"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents[3], "Conversation resolved");
    assert!(contents[4].starts_with("Assigned to Agent"), "{contents:?}");
    assert_eq!(contents[5], "Conversation reopened (open)");
    assert_eq!(contents[6], "Unassigned");
    let (_, some) = app.get(&format!("/v1/conversations/{id}/messages?type=incoming,outgoing"), &token).await;
    assert_eq!(some["data"].as_array().unwrap().len(), 2);
    let (_, page) = app.get(&format!("/v1/conversations/{id}/messages?limit=4"), &token).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app.get(&format!("/v1/conversations/{id}/messages?limit=4&cursor={cursor}"), &token).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 3);
    assert!(rest["next_cursor"].is_null());
    let (status, body) = app.get(&format!("/v1/conversations/{id}/messages?type=email"), &token).await;
    assert_error(status, &body, 400, "validation_error");
}

#[tokio::test]
async fn operators_and_assignees_must_be_active_users() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let contact = app.contact(&token, json!({"email": "c@x.io"})).await;
    let gone = user(&app, &token, "gone@x.io").await;
    app.patch(&format!("/v1/users/{}", gone["id"]), &token, json!({"active": false})).await;
    let (status, body) =
        app.post("/v1/conversations", &token, json!({"contact_id": contact["id"], "assignee_id": gone["id"]})).await;
    assert_eq!(assert_error(status, &body, 422, "invalid_value")["field"], "assignee_id");
    let (status, body) = app.post("/v1/conversations", &token, json!({"contact_id": 999_999})).await;
    assert_eq!(assert_error(status, &body, 422, "invalid_value")["field"], "contact_id");
    let (_, conv) = app.post("/v1/conversations", &token, json!({"contact_id": contact["id"]})).await;
    let id = conv["id"].as_str().unwrap();
    for operator in [gone["id"].clone(), json!(999_999)] {
        let (status, body) = app
            .post(&format!("/v1/conversations/{id}/messages"), &token, json!({"content": "x", "operator_id": operator}))
            .await;
        assert_eq!(assert_error(status, &body, 422, "invalid_value")["field"], "operator_id");
    }
    let (status, body) = app
        .post(
            &format!("/v1/conversations/{id}/messages"),
            &token,
            json!({"content": "x", "type": "incoming", "operator_id": 1}),
        )
        .await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "operator_id");
    for (body, field) in [
        (json!({"content": ""}), "content"),
        (json!({"content": "x".repeat(150_001)}), "content"),
        (json!({"content": "x", "type": "activity"}), "type"),
        (json!({"text": "x"}), "text"),
    ] {
        let (status, err) = app.post(&format!("/v1/conversations/{id}/messages"), &token, body).await;
        let e = assert_error(
            status,
            &err,
            if field == "content" && status == 413 { 413 } else { 400 },
            if status == 413 { "payload_too_large" } else { "validation_error" },
        );
        if status == 400 {
            assert_eq!(e["field"], field);
        }
    }
    let (status, body) = app.patch(&format!("/v1/conversations/{id}"), &token, json!({"status": "closed"})).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "status");
    let (status, body) = app.get("/v1/conversations/00000000-0000-0000-0000-000000000000", &token).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.post("/v1/conversations/nope/messages", &token, json!({"content": "x"})).await;
    assert_error(status, &body, 404, "not_found");
    let (_, other) = app.full_key().await;
    let (status, body) = app.get(&format!("/v1/conversations/{id}"), &other).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn conversation_lists_filter_by_status_assignee_contact_and_label() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let a = app.contact(&token, json!({"email": "a@x.io"})).await;
    let b = app.contact(&token, json!({"email": "b@x.io"})).await;
    let agent = user(&app, &token, "agent@x.io").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let contact = if i % 2 == 0 { &a } else { &b };
        let mut body = json!({"contact_id": contact["id"]});
        if i == 1 {
            body["labels"] = json!(["vip"]);
        }
        if i == 2 {
            body["assignee_id"] = agent["id"].clone();
        }
        let (_, c) = app.post("/v1/conversations", &token, body).await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    app.patch(&format!("/v1/conversations/{}", ids[3]), &token, json!({"status": "pending"})).await;
    let got = |q: String| {
        let app = &app;
        let token = token.clone();
        async move {
            let (status, list) = app.get(&format!("/v1/conversations?{q}"), &token).await;
            assert_eq!(status, 200, "{list}");
            list["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(got("status=pending".into()).await, vec![ids[3].clone()]);
    assert_eq!(got("label=vip".into()).await, vec![ids[1].clone()]);
    assert_eq!(got(format!("assignee_id={}", agent["id"])).await, vec![ids[2].clone()]);
    assert_eq!(got(format!("contact_id={}", b["id"])).await, vec![ids[1].clone(), ids[3].clone()]);
    assert_eq!(got("status=open&limit=2".into()).await.len(), 2);
    let (status, body) = app.get("/v1/conversations?status=closed", &token).await;
    assert_error(status, &body, 400, "validation_error");
}

#[tokio::test]
async fn a_contact_timeline_merges_events_and_messages() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let contact = app.contact(&token, json!({"email": "t@x.io"})).await;
    let id = contact["id"].as_i64().unwrap();
    let (status, _) = app
        .post(
            "/compat/conversion/api/v1/contacts/engagements",
            &token,
            json!({"contactEmail": "t@x.io", "type": "ACTIVITY", "name": "Call", "description": "First call"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, conv) =
        app.post("/v1/conversations", &token, json!({"contact_id": id, "message": {"content": "Follow-up"}})).await;
    app.post(
        &format!("/v1/conversations/{}/messages", conv["id"].as_str().unwrap()),
        &token,
        json!({"content": "Thanks!", "type": "incoming"}),
    )
    .await;
    let mut seen = Vec::new();
    let mut path = format!("/v1/contacts/{id}/timeline?limit=2");
    loop {
        let (status, page) = app.get(&path, &token).await;
        assert_eq!(status, 200, "{page}");
        for item in page["data"].as_array().unwrap() {
            seen.push(match item["type"].as_str().unwrap() {
                "event" => format!("event:{}", item["event"]["event"].as_str().unwrap()),
                _ => format!("message:{}", item["message"]["content"].as_str().unwrap()),
            });
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/contacts/{id}/timeline?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["event:Call", "message:Follow-up", "message:Thanks!"]);
    let (status, body) = app.get("/v1/contacts/999999/timeline", &token).await;
    assert_error(status, &body, 404, "not_found");
}

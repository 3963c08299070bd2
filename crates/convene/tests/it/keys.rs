//! API keys: the token is shown once, its format, expiry, revocation,
//! analytics keys, service accounts, the admin routes, last use.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{MASTER, assert_error, spawn_app};

fn preview_of(token: &str) -> String {
    format!("cvn_…{}", &token[token.len() - 4..])
}

fn assert_no_token(key: &Value, token: &str) {
    assert!(key.get("token").is_none(), "a listed key shows its token: {key}");
    assert!(!key.to_string().contains(token), "the token leaks: {key}");
    assert_eq!(key["preview"], preview_of(token), "{key}");
}

#[tokio::test]
async fn creation_returns_the_token_once() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let created = app.key(&ws, json!({"name": "ci", "kind": "full"})).await;
    let token = created["token"].as_str().expect("the creation response holds the token").to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("key_"), "{created}");
    assert_eq!(created["name"], "ci");
    assert_eq!(created["kind"], "full");
    assert_eq!(created["status"], "active");
    assert_eq!(created["preview"], preview_of(&token));
    assert!(created["last_used_at"].is_null());
    assert!(created["revoked_at"].is_null());

    // The operator's list and get never show it again.
    let (status, list) = app.get(&format!("/v1/workspaces/{ws}/keys"), MASTER).await;
    assert_eq!(status, 200, "{list}");
    let listed = list["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_no_token(&listed[0], &token);
    let (status, one) = app.get(&format!("/v1/workspaces/{ws}/keys/{id}"), MASTER).await;
    assert_eq!(status, 200, "{one}");
    assert_no_token(&one, &token);

    // Nor do the admin routes, with the key itself.
    let (status, list) = app.get("/v1/keys", &token).await;
    assert_eq!(status, 200, "{list}");
    for key in list["data"].as_array().unwrap() {
        assert_no_token(key, &token);
    }
    let (status, one) = app.get(&format!("/v1/keys/{id}"), &token).await;
    assert_eq!(status, 200, "{one}");
    assert_no_token(&one, &token);
}

#[tokio::test]
async fn tokens_are_well_formed_and_distinct() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let token = app.key(&ws, json!({"name": "k", "kind": "full"})).await["token"].as_str().unwrap().to_string();
        let rest = token.strip_prefix("cvn_").expect("prefix cvn_");
        assert_eq!(rest.len(), 38, "32 random + 6 checksum characters: {token}");
        assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric()), "{token}");
        assert!(convene_core::token::well_formed(&token), "{token}");
        assert!(!seen.contains(&token));
        let (status, body) = app.get("/v1/contacts", &token).await;
        assert_eq!(status, 200, "a fresh token works: {body}");
        seen.push(token);
    }
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(2000);
    let created = app.key(&ws, json!({"name": "short", "kind": "full", "expires_at": expires.to_rfc3339()})).await;
    let token = created["token"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["status"], "active");
    assert!(created["expires_at"].is_string());

    let (status, body) = app.get("/v1/contacts", token).await;
    assert_eq!(status, 200, "usable before expiry: {body}");

    let wait = (expires - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(150);
    tokio::time::sleep(wait).await;
    let (status, body) = app.get("/v1/contacts", token).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, key) = app.get(&format!("/v1/workspaces/{ws}/keys/{id}"), MASTER).await;
    assert_eq!(status, 200);
    assert_eq!(key["status"], "expired", "{key}");
}

#[tokio::test]
async fn expires_at_must_be_in_the_future() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let past = chrono::Utc::now() - chrono::Duration::seconds(5);
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/keys"),
            MASTER,
            json!({"name": "k", "kind": "full", "expires_at": past.to_rfc3339()}),
        )
        .await;
    let error = assert_error(status, &body, 400, "validation_error");
    assert_eq!(error["field"], "expires_at");
    let (_, list) = app.get(&format!("/v1/workspaces/{ws}/keys"), MASTER).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "no key was created");
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let created = app.key(&ws, json!({"name": "doomed", "kind": "full"})).await;
    let token = created["token"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(app.get("/v1/contacts", token).await.0, 200);

    let (status, revoked) = app.delete(&format!("/v1/workspaces/{ws}/keys/{id}"), MASTER).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string());
    assert!(revoked.get("token").is_none());

    let (status, body) = app.get("/v1/contacts", token).await;
    let error = assert_error(status, &body, 401, "unauthenticated");
    assert!(error["message"].as_str().unwrap().contains("revoked"), "{error}");

    let (_, list) = app.get(&format!("/v1/workspaces/{ws}/keys"), MASTER).await;
    let listed = list["data"].as_array().unwrap().iter().find(|k| k["id"] == id).expect("still listed");
    assert_eq!(listed["status"], "revoked");

    // Revoking again keeps the first revocation time.
    let (status, again) = app.delete(&format!("/v1/workspaces/{ws}/keys/{id}"), MASTER).await;
    assert_eq!(status, 200);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
}

#[tokio::test]
async fn an_admin_key_revokes_through_v1_keys() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let admin = app.key_with_scopes(&ws, &["admin"]).await;
    let victim = app.key(&ws, json!({"name": "victim", "kind": "full"})).await;
    let victim_token = victim["token"].as_str().unwrap();
    assert_eq!(app.get("/v1/contacts", victim_token).await.0, 200);
    let (status, body) = app.delete(&format!("/v1/keys/{}", victim["id"].as_str().unwrap()), &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    let (status, body) = app.get("/v1/contacts", victim_token).await;
    assert_error(status, &body, 401, "unauthenticated");
    assert_eq!(app.get("/v1/keys", &admin).await.0, 200, "the admin key itself still works");
}

#[tokio::test]
async fn analytics_keys_hold_write_scopes_only() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let path = format!("/v1/workspaces/{ws}/keys");
    for extra in ["contacts:read", "admin", "events:read", "companies:write"] {
        let (status, body) = app
            .post(&path, MASTER, json!({"name": "a", "kind": "analytics", "scopes": ["contacts:write", extra]}))
            .await;
        let error = assert_error(status, &body, 400, "validation_error");
        assert_eq!(error["field"], "scopes", "{extra}");
    }
    let plain = app.key(&ws, json!({"name": "a", "kind": "analytics"})).await;
    assert_eq!(plain["scopes"], json!(["contacts:write", "events:write"]));
    let narrowed = app.key(&ws, json!({"name": "a", "kind": "analytics", "scopes": ["contacts:write"]})).await;
    assert_eq!(narrowed["scopes"], json!(["contacts:write"]));

    // An analytics key on a service account with every scope still only writes.
    let (status, sa) = app
        .post(
            &format!("/v1/workspaces/{ws}/service-accounts"),
            MASTER,
            json!({"name": "all", "scopes": ["contacts:read", "contacts:write", "admin"]}),
        )
        .await;
    assert_eq!(status, 201, "{sa}");
    let on_sa = app.key(&ws, json!({"name": "a", "kind": "analytics", "service_account_id": sa["id"]})).await;
    assert_eq!(on_sa["scopes"], json!(["contacts:write"]));
    let (status, body) = app.get("/v1/contacts", on_sa["token"].as_str().unwrap()).await;
    assert_error(status, &body, 403, "forbidden");

    // Unknown scope names and kinds are refused.
    let (status, body) =
        app.post(&path, MASTER, json!({"name": "a", "kind": "full", "scopes": ["contacts:nope"]})).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "scopes");
    let (status, body) = app.post(&path, MASTER, json!({"name": "a", "kind": "superuser"})).await;
    assert_error(status, &body, 400, "validation_error");
}

#[tokio::test]
async fn a_full_key_follows_its_service_account() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let (status, sa) = app
        .post(
            &format!("/v1/workspaces/{ws}/service-accounts"),
            MASTER,
            json!({"name": "Sales Production", "description": "CRM sync", "teams": ["sales"], "scopes": ["contacts:read"]}),
        )
        .await;
    assert_eq!(status, 201, "{sa}");
    let sa_id = sa["id"].as_str().unwrap().to_string();
    assert!(sa_id.starts_with("sa_"));
    assert_eq!(sa["scopes"], json!(["contacts:read"]));
    assert_eq!(sa["teams"], json!(["sales"]));

    let key = app.key(&ws, json!({"name": "sync", "kind": "full", "service_account_id": sa_id})).await;
    assert_eq!(key["scopes"], json!(["contacts:read"]), "exactly the account's scopes");
    assert_eq!(key["service_account_id"], sa_id);
    let token = key["token"].as_str().unwrap();
    let key_path = format!("/v1/workspaces/{ws}/keys/{}", key["id"].as_str().unwrap());

    assert_eq!(app.get("/v1/contacts", token).await.0, 200);
    let (status, body) = app.post("/v1/contacts", token, json!({"email": "a@example.com"})).await;
    assert_error(status, &body, 403, "forbidden");

    // "Edit Permissions": the key follows at once.
    let (status, sa) = app
        .patch(&format!("/v1/workspaces/{ws}/service-accounts/{sa_id}"), MASTER, json!({"scopes": ["contacts:write"]}))
        .await;
    assert_eq!(status, 200, "{sa}");
    assert_eq!(sa["scopes"], json!(["contacts:write"]));
    assert_eq!(sa["name"], "Sales Production", "parts left out stay");
    let (status, body) = app.get("/v1/contacts", token).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app.post("/v1/contacts", token, json!({"email": "a@example.com"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(app.get(&key_path, MASTER).await.1["scopes"], json!(["contacts:write"]));

    // Wildcards expand; a key narrowed at creation never exceeds its account.
    let narrowed = app
        .key(&ws, json!({"name": "n", "kind": "full", "service_account_id": sa_id, "scopes": ["contacts:read"]}))
        .await;
    assert_eq!(narrowed["scopes"], json!([]));
    let (status, sa) = app
        .patch(
            &format!("/v1/workspaces/{ws}/service-accounts/{sa_id}"),
            MASTER,
            json!({"scopes": ["contacts:*", "companies:*"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(sa["scopes"], json!(["contacts:read", "contacts:write", "companies:read", "companies:write"]));
    let (_, narrowed) =
        app.get(&format!("/v1/workspaces/{ws}/keys/{}", narrowed["id"].as_str().unwrap()), MASTER).await;
    assert_eq!(narrowed["scopes"], json!(["contacts:read"]));
    let (_, key) = app.get(&key_path, MASTER).await;
    assert_eq!(key["scopes"], json!(["contacts:read", "contacts:write", "companies:read", "companies:write"]));
}

#[tokio::test]
async fn an_admin_key_manages_its_own_workspace_only() {
    let app = spawn_app().await;
    let ws_a = app.workspace("a").await;
    let ws_b = app.workspace("b").await;
    let admin_a = app.key_with_scopes(&ws_a, &["admin", "contacts:read"]).await;
    let (status, sa_b) =
        app.post(&format!("/v1/workspaces/{ws_b}/service-accounts"), MASTER, json!({"name": "b-sa"})).await;
    assert_eq!(status, 201);
    let key_b = app.key(&ws_b, json!({"name": "b-key", "kind": "full"})).await;

    // Its own workspace: create, list, get, change accounts; create, list keys.
    let (status, sa) = app
        .post("/v1/service-accounts", &admin_a, json!({"name": "bot", "description": "d", "scopes": ["contacts:read"]}))
        .await;
    assert_eq!(status, 201, "{sa}");
    let sa_id = sa["id"].as_str().unwrap();
    let (status, list) = app.get("/v1/service-accounts", &admin_a).await;
    assert_eq!(status, 200);
    let ids: Vec<&Value> = list["data"].as_array().unwrap().iter().map(|a| &a["id"]).collect();
    assert_eq!(ids, vec![&sa["id"]], "only workspace A's accounts");
    let (status, got) = app.get(&format!("/v1/service-accounts/{sa_id}"), &admin_a).await;
    assert_eq!((status, &got["name"]), (200, &json!("bot")));
    let (status, changed) =
        app.patch(&format!("/v1/service-accounts/{sa_id}"), &admin_a, json!({"name": "robot", "teams": ["x"]})).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "robot");
    assert_eq!(changed["description"], "d");
    assert_eq!(changed["scopes"], json!(["contacts:read"]));

    let (status, key) =
        app.post("/v1/keys", &admin_a, json!({"name": "k", "kind": "full", "service_account_id": sa_id})).await;
    assert_eq!(status, 201, "{key}");
    assert!(key["token"].as_str().unwrap().starts_with("cvn_"));
    assert_eq!(key["scopes"], json!(["contacts:read"]));
    let (status, keys) = app.get("/v1/keys", &admin_a).await;
    assert_eq!(status, 200);
    assert_eq!(keys["data"].as_array().unwrap().len(), 2, "the admin key and the new one: {keys}");
    assert!(keys["data"].as_array().unwrap().iter().all(|k| k["id"] != key_b["id"]));

    // Workspace B's objects do not exist for it.
    let sa_b_id = sa_b["id"].as_str().unwrap();
    let key_b_id = key_b["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/v1/service-accounts/{sa_b_id}")),
        (Method::PATCH, format!("/v1/service-accounts/{sa_b_id}")),
        (Method::GET, format!("/v1/keys/{key_b_id}")),
        (Method::DELETE, format!("/v1/keys/{key_b_id}")),
    ] {
        let (status, body) = app.call(method.clone(), &path, Some(&admin_a), Some(&json!({"name": "hijacked"}))).await;
        assert_error(status, &body, 404, "not_found");
    }
    let (_, sa_b_now) = app.get(&format!("/v1/workspaces/{ws_b}/service-accounts/{sa_b_id}"), MASTER).await;
    assert_eq!(sa_b_now, sa_b, "B's account unchanged");
    assert_eq!(app.get("/v1/contacts", key_b["token"].as_str().unwrap()).await.0, 200, "B's key still works");

    // And it is no operator.
    let (status, body) = app.get(&format!("/v1/workspaces/{ws_a}/keys"), &admin_a).await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn a_service_account_of_another_workspace_is_refused() {
    let app = spawn_app().await;
    let ws_a = app.workspace("a").await;
    let ws_b = app.workspace("b").await;
    let (_, sa_b) = app
        .post(&format!("/v1/workspaces/{ws_b}/service-accounts"), MASTER, json!({"name": "b", "scopes": ["admin"]}))
        .await;
    let body = json!({"name": "k", "kind": "full", "service_account_id": sa_b["id"]});

    let (status, err) = app.post(&format!("/v1/workspaces/{ws_a}/keys"), MASTER, body.clone()).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "service_account_id");
    let admin_a = app.key_with_scopes(&ws_a, &["admin"]).await;
    let (status, err) = app.post("/v1/keys", &admin_a, body).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "service_account_id");
    let (status, err) =
        app.post("/v1/keys", &admin_a, json!({"name": "k", "kind": "full", "service_account_id": "sa_nope"})).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "service_account_id");

    let (_, keys) = app.get(&format!("/v1/workspaces/{ws_a}/keys"), MASTER).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "only the admin key: {keys}");
}

#[tokio::test]
async fn last_used_at_is_recorded() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let created = app.key(&ws, json!({"name": "k", "kind": "full"})).await;
    let unused = app.key(&ws, json!({"name": "unused", "kind": "full"})).await;
    let token = created["token"].as_str().unwrap();
    let path = format!("/v1/workspaces/{ws}/keys/{}", created["id"].as_str().unwrap());
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(app.get("/v1/contacts", token).await.0, 200);

    // Uses are written every 5 s and at shutdown: a graceful restart makes
    // them visible without waiting for the flusher.
    let app = app.restart().await;
    let (status, key) = app.get(&path, MASTER).await;
    assert_eq!(status, 200, "{key}");
    let used = key["last_used_at"].as_str().unwrap_or_else(|| panic!("last_used_at set: {key}"));
    let used = chrono::DateTime::parse_from_rfc3339(used).unwrap();
    assert!(used >= before && used <= chrono::Utc::now(), "{used}");
    let (_, unused) = app.get(&format!("/v1/workspaces/{ws}/keys/{}", unused["id"].as_str().unwrap()), MASTER).await;
    assert!(unused["last_used_at"].is_null(), "{unused}");
    assert_eq!(app.get("/v1/contacts", token).await.0, 200, "keys survive a restart");
}

/// Reads every page of `path` with `limit`; returns the ids in order.
async fn page_through(app: &crate::support::TestApp, path: &str, token: &str, limit: usize) -> Vec<Value> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut rb = app.req(Method::GET, path).bearer_auth(token).query(&[("limit", limit.to_string())]);
        if let Some(c) = &cursor {
            rb = rb.query(&[("cursor", c)]);
        }
        let (status, page) = crate::support::send(rb).await;
        assert_eq!(status, 200, "{path}: {page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit);
        ids.extend(data.iter().map(|item| item["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
    }
    panic!("{path}: paging does not end");
}

#[tokio::test]
async fn key_account_and_workspace_lists_page_through_everything_once() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let mut workspaces = vec![json!(ws)];
    for i in 0..4 {
        workspaces.push(json!(app.workspace(&format!("w{i}")).await));
    }
    let admin = app.key(&ws, json!({"name": "admin", "kind": "full"})).await["token"].as_str().unwrap().to_string();
    let mut keys = Vec::new();
    let mut accounts = Vec::new();
    for i in 0..6 {
        let (status, key) = app.post("/v1/keys", &admin, json!({"name": format!("k{i}"), "kind": "full"})).await;
        assert_eq!(status, 201);
        keys.push(key["id"].clone());
        let (status, sa) = app.post("/v1/service-accounts", &admin, json!({"name": format!("sa{i}")})).await;
        assert_eq!(status, 201);
        accounts.push(sa["id"].clone());
    }
    // Each once; order is by creation time (ties within a millisecond by id).
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(|x| x.to_string());
        v
    };
    let mut listed_keys = page_through(&app, "/v1/keys", &admin, 2).await;
    assert_eq!(listed_keys.len(), 7, "six keys and the admin key");
    listed_keys.retain(|k| keys.contains(k));
    assert_eq!(sorted(listed_keys), sorted(keys.clone()));
    assert_eq!(sorted(page_through(&app, "/v1/service-accounts", &admin, 4).await), sorted(accounts.clone()));
    assert_eq!(
        sorted(page_through(&app, &format!("/v1/workspaces/{ws}/service-accounts"), MASTER, 5).await),
        sorted(accounts)
    );
    assert_eq!(sorted(page_through(&app, "/v1/workspaces", MASTER, 2).await), sorted(workspaces));
}

#[tokio::test]
async fn an_admin_key_cannot_grant_what_it_lacks() {
    let app = spawn_app().await;
    let ws = app.workspace("a").await;
    let admin = app.key_with_scopes(&ws, &["admin", "contacts:read"]).await;
    // A full key with no account would hold every scope: refused.
    let (status, body) = app.post("/v1/keys", &admin, json!({"name": "k", "kind": "full"})).await;
    assert_error(status, &body, 403, "forbidden");
    // Narrowed to what the admin holds: allowed.
    let (status, body) =
        app.post("/v1/keys", &admin, json!({"name": "k", "kind": "full", "scopes": ["contacts:read"]})).await;
    assert_eq!(status, 201, "{body}");
    // An analytics key holds contacts:write, which the admin lacks.
    let (status, body) = app.post("/v1/keys", &admin, json!({"name": "k", "kind": "analytics"})).await;
    assert_error(status, &body, 403, "forbidden");
    // Accounts: neither created nor widened beyond the admin's scopes.
    let (status, body) =
        app.post("/v1/service-accounts", &admin, json!({"name": "sa", "scopes": ["contacts:write"]})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, sa) =
        app.post("/v1/service-accounts", &admin, json!({"name": "sa", "scopes": ["contacts:read"]})).await;
    assert_eq!(status, 201, "{sa}");
    let (status, body) = app
        .patch(
            &format!("/v1/service-accounts/{}", sa["id"].as_str().unwrap()),
            &admin,
            json!({"scopes": ["contacts:read", "reports:read"]}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    // The master key is not bounded.
    let (status, _) =
        app.post(&format!("/v1/workspaces/{ws}/keys"), MASTER, json!({"name": "k", "kind": "full"})).await;
    assert_eq!(status, 201);
}

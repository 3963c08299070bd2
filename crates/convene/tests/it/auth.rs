//! Authentication: every header form, refusals, and the master key's reach.

use reqwest::Method;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::json;

use crate::support::{MASTER, assert_error, body, send, spawn_app};

#[tokio::test]
async fn every_header_form_is_accepted() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let contact = app.contact(&token, json!({"email": "ann@example.com"})).await;
    let forms = [
        (
            "Authorization: Bearer",
            app.req(Method::GET, "/v1/contacts").header("Authorization", format!("Bearer {token}")),
        ),
        (
            "Authorization: bearer",
            app.req(Method::GET, "/v1/contacts").header("Authorization", format!("bearer  {token} ")),
        ),
        ("X-API-Key", app.req(Method::GET, "/v1/contacts").header("X-API-Key", &token)),
        (
            "x-conveyour-token + garbage appkey",
            app.req(Method::GET, "/v1/contacts")
                .header("x-conveyour-token", &token)
                .header("x-conveyour-appkey", "not-a-key-at-all!!"),
        ),
        ("Basic token:", app.req(Method::GET, "/v1/contacts").basic_auth(&token, Some(""))),
        ("Basic token", app.req(Method::GET, "/v1/contacts").basic_auth(&token, None::<&str>)),
    ];
    for (form, rb) in forms {
        let (status, list) = send(rb).await;
        assert_eq!(status, 200, "{form}: {list}");
        assert_eq!(list["data"][0]["id"], contact["id"], "{form}");
    }
}

#[tokio::test]
async fn a_request_without_a_key_is_401_with_www_authenticate() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/v1/contacts"),
        (Method::POST, "/v1/contacts"),
        (Method::GET, "/v1/workspaces"),
        (Method::GET, "/v1/keys"),
    ] {
        let r = app.req(method.clone(), path).json(&json!({})).send().await.unwrap();
        let challenge = r.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_string());
        let (status, err) = body(r).await;
        assert_error(status, &err, 401, "unauthenticated");
        let challenge = challenge.unwrap_or_else(|| panic!("{method} {path}: no WWW-Authenticate"));
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    // Empty credentials count as none.
    for rb in [
        app.req(Method::GET, "/v1/contacts").header("X-API-Key", ""),
        app.req(Method::GET, "/v1/contacts").header("Authorization", "Bearer "),
        app.req(Method::GET, "/v1/contacts").basic_auth("", Some("")),
    ] {
        let (status, err) = send(rb).await;
        assert_error(status, &err, 401, "unauthenticated");
    }
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;

    let mut altered: Vec<char> = token.chars().collect();
    altered[10] = if altered[10] == 'a' { 'b' } else { 'a' };
    let altered: String = altered.into_iter().collect();
    assert_eq!(altered.len(), token.len());
    assert!(!convene_core::token::well_formed(&altered), "the checksum catches one changed character");

    let mut checksum_changed: Vec<char> = token.chars().collect();
    let last = checksum_changed.len() - 1;
    checksum_changed[last] = if checksum_changed[last] == '0' { '1' } else { '0' };
    let checksum_changed: String = checksum_changed.into_iter().collect();

    let unknown = convene_core::token::mint().token;
    assert!(convene_core::token::well_formed(&unknown));

    let cases = [
        ("garbage", "garbage".to_string()),
        ("prefix only", "cvn_".to_string()),
        ("short", "cvn_abc123".to_string()),
        ("wrong prefix", token.replacen("cvn_", "cvx_", 1)),
        ("non-alphanumeric", format!("{}-", &token[..token.len() - 1])),
        ("too long", format!("{token}A")),
        ("changed body character", altered),
        ("changed checksum character", checksum_changed),
        ("unknown well-formed", unknown),
        ("master key with a suffix", format!("{MASTER}x")),
    ];
    for (case, bad) in cases {
        for rb in [
            app.req(Method::GET, "/v1/contacts").bearer_auth(&bad),
            app.req(Method::GET, "/v1/contacts").header("X-API-Key", &bad),
            app.req(Method::GET, "/v1/contacts").basic_auth(&bad, Some("")),
        ] {
            let r = rb.send().await.unwrap();
            assert!(r.headers().contains_key(WWW_AUTHENTICATE), "{case}");
            let (status, err) = body(r).await;
            let error = assert_error(status, &err, 401, "unauthenticated");
            assert!(!error["message"].as_str().unwrap().contains(&token), "{case}: the message echoes a token");
        }
    }

    // Unknown schemes and undecodable Basic credentials.
    for rb in [
        app.req(Method::GET, "/v1/contacts").header("Authorization", format!("Token {token}")),
        app.req(Method::GET, "/v1/contacts").header("Authorization", token.clone()),
        app.req(Method::GET, "/v1/contacts").header("Authorization", "Basic %%%not-base64"),
    ] {
        let (status, err) = send(rb).await;
        assert_error(status, &err, 401, "unauthenticated");
    }

    // The real token still works after all that.
    assert_eq!(app.get("/v1/contacts", &token).await.0, 200);
}

#[tokio::test]
async fn only_the_master_key_manages_workspaces() {
    let app = spawn_app().await;
    let (ws, full) = app.full_key().await;
    let admin = app.key_with_scopes(&ws, &["admin"]).await;

    let (status, list) = app.get("/v1/workspaces", MASTER).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"][0]["id"], ws);
    let (status, one) = app.get(&format!("/v1/workspaces/{ws}"), MASTER).await;
    assert_eq!((status, &one["name"]), (200, &json!("test")));

    for token in [&full, &admin] {
        for (method, path) in [
            (Method::GET, "/v1/workspaces".to_string()),
            (Method::POST, "/v1/workspaces".to_string()),
            (Method::GET, format!("/v1/workspaces/{ws}")),
            (Method::GET, format!("/v1/workspaces/{ws}/keys")),
            (Method::POST, format!("/v1/workspaces/{ws}/keys")),
            (Method::GET, format!("/v1/workspaces/{ws}/service-accounts")),
            (Method::POST, format!("/v1/workspaces/{ws}/service-accounts")),
        ] {
            let (status, err) =
                app.call(method.clone(), &path, Some(token), Some(&json!({"name": "x", "kind": "full"}))).await;
            assert_error(status, &err, 403, "forbidden");
        }
    }
    let (_, list) = app.get("/v1/workspaces", MASTER).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "no workspace was created by an API key");

    // The master key through the other header forms.
    let (status, _) = send(app.req(Method::GET, "/v1/workspaces").header("X-API-Key", MASTER)).await;
    assert_eq!(status, 200);
    let (status, _) = send(app.req(Method::GET, "/v1/workspaces").basic_auth(MASTER, Some(""))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_master_key_is_no_workspace_key() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    for (method, path) in [
        (Method::GET, "/v1/contacts"),
        (Method::POST, "/v1/contacts"),
        (Method::GET, "/v1/contacts/1"),
        (Method::GET, "/v1/fields"),
        (Method::GET, "/v1/keys"),
        (Method::GET, "/v1/service-accounts"),
    ] {
        let (status, err) =
            app.call(method.clone(), path, Some(MASTER), Some(&json!({"email": "a@example.com"}))).await;
        assert_error(status, &err, 403, "forbidden");
    }
}

//! Secrets never reach the log: the real binary runs with every log level
//! on (`trace`, JSON lines) while the master key, API keys in every header
//! form and in Segment's body, wrong and revoked keys, a console password
//! and a session cookie are used; then the whole log is searched for each.

use std::time::Duration;

use reqwest::Client;
use reqwest::redirect::Policy;
use serde_json::json;

use crate::crash::{KEY, master_post, start_logging};

const PASSWORD: &str = "a console password that must stay secret";

#[tokio::test]
async fn secrets_never_appear_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::builder().timeout(Duration::from_secs(10)).redirect(Policy::none()).build().unwrap();
    let server = start_logging(&tmp.path().join("data"), None, tmp.path(), 0, &client, "trace").await;
    let base = server.base.clone();

    let ws = master_post(&client, format!("{base}/v1/workspaces"), json!({"name": "logs"})).await;
    let ws = ws["id"].as_str().unwrap().to_string();
    let key =
        master_post(&client, format!("{base}/v1/workspaces/{ws}/keys"), json!({"name": "k", "kind": "full"})).await;
    let token = key["token"].as_str().unwrap().to_string();
    let doomed =
        master_post(&client, format!("{base}/v1/workspaces/{ws}/keys"), json!({"name": "d", "kind": "full"})).await;
    let revoked = doomed["token"].as_str().unwrap().to_string();
    let r = client
        .delete(format!("{base}/v1/workspaces/{ws}/keys/{}", doomed["id"].as_str().unwrap()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let wrong_master = format!("{KEY}-but-wrong");

    // The key in every header form, a wrong master key, a revoked key.
    let contacts = format!("{base}/v1/contacts");
    assert_eq!(client.get(&contacts).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(client.get(&contacts).basic_auth(&token, Some("")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(&contacts).header("X-API-Key", &token).send().await.unwrap().status(), 200);
    assert_eq!(client.get(&contacts).header("x-conveyour-token", &token).send().await.unwrap().status(), 200);
    assert_eq!(client.get(&contacts).bearer_auth(&revoked).send().await.unwrap().status(), 401);
    assert_eq!(
        client.get(format!("{base}/v1/workspaces")).bearer_auth(&wrong_master).send().await.unwrap().status(),
        401
    );
    assert_eq!(client.get(format!("{base}/v1/workspaces")).bearer_auth(KEY).send().await.unwrap().status(), 200);
    // Segment's write key in the body, accepted and refused.
    for write_key in [&token, &revoked] {
        let r = client
            .post(format!("{base}/compat/segment/v1/identify"))
            .json(&json!({"writeKey": write_key, "userId": "u1", "traits": {"plan": "pro"}}))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 200 || r.status() == 401, "{}", r.status());
    }

    // A console user: created with a password, logged in, the session used.
    let r = client
        .post(format!("{base}/v1/workspaces/{ws}/users"))
        .bearer_auth(KEY)
        .json(&json!({"name": "Ada", "email": "ada@example.com", "role": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let page = client.get(format!("{base}/console/login")).send().await.unwrap();
    let csrf_cookie = cookie(&page, "convene_login_csrf");
    let html = page.text().await.unwrap();
    let at = html.find("name=\"_csrf\" value=\"").expect("a csrf field") + "name=\"_csrf\" value=\"".len();
    let csrf = html[at..].split('"').next().unwrap().to_string();
    for password in ["a wrong password, also secret", PASSWORD] {
        let r = client
            .post(format!("{base}/console/login"))
            .header("cookie", &csrf_cookie)
            .form(&[("_csrf", csrf.as_str()), ("email", "ada@example.com"), ("password", password)])
            .send()
            .await
            .unwrap();
        if password == PASSWORD {
            assert_eq!(r.status(), 303, "login");
            let session = cookie(&r, "convene_session");
            let r = client.get(format!("{base}/console/contacts")).header("cookie", &session).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let secret = session.split_once('=').unwrap().1.split_once('.').unwrap().1.to_string();
            check_log(&server, &[("the session secret", secret.as_str())]);
        }
    }

    let log = server.log_text();
    assert!(log.contains("/v1/contacts") && log.contains("/console/login"), "the log records requests:\n{log}");
    let token_body = token.trim_start_matches("cvn_").to_string();
    check_log(
        &server,
        &[
            ("the master key", KEY),
            ("a wrong master key", &wrong_master),
            ("an API key", &token),
            ("an API key's secret part", &token_body),
            ("a revoked key", &revoked),
            ("the console password", PASSWORD),
            ("a wrong console password", "a wrong password, also secret"),
        ],
    );
}

/// `name=value` of a response's `Set-Cookie` for `name`.
fn cookie(r: &reqwest::Response, name: &str) -> String {
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("a {name} cookie"));
    set.split(';').next().unwrap().to_string()
}

fn check_log(server: &crate::crash::Server, secrets: &[(&str, &str)]) {
    let log = server.log_text();
    for (what, secret) in secrets {
        assert!(!log.contains(secret), "{what} appears in the log:\n{log}");
    }
}

//! Rate limits: a key's bucket (429 with `Retry-After`, `RateLimit-Policy`
//! and `RateLimit` on every response, nothing written when refused), the
//! vendor envelope of a dialect, and the harder limit on failed
//! authentication per client address.

use convene::config::ServeConfig;
use convene::http::ratelimit::RateLimitSettings;
use convene_core::ratelimit::Quota;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{MASTER, TestApp, assert_error, spawn_app_with};

async fn app_with(settings: RateLimitSettings) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::for_tests(dir.path(), MASTER);
    config.rate_limits = settings;
    spawn_app_with(config, dir).await
}

fn slow(burst: u32) -> Quota {
    Quota { per_second: 0.01, burst }
}

#[tokio::test]
async fn a_key_over_its_bucket_gets_429_and_nothing_is_written() {
    let app = app_with(RateLimitSettings { full: slow(3), ..Default::default() }).await;
    let ws = app.workspace("w").await;
    let key = app.key(&ws, json!({"name": "k", "kind": "full"})).await;
    let token = key["token"].as_str().unwrap();
    for i in 0..3 {
        let r = app
            .with_token(Method::POST, "/v1/contacts", token)
            .json(&json!({"email": format!("u{i}@x.io")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(r.headers()["ratelimit-policy"], "\"key\";q=3;w=300");
        assert_eq!(r.headers()["ratelimit"].to_str().unwrap(), format!("\"key\";r={};t={}", 2 - i, (i + 1) * 100));
    }
    let r =
        app.with_token(Method::POST, "/v1/contacts", token).json(&json!({"email": "over@x.io"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=100).contains(&retry), "{retry}");
    assert!(r.headers()["ratelimit"].to_str().unwrap().starts_with("\"key\";r=0;"));
    let body: Value = r.json().await.unwrap();
    assert_error(429, &body, 429, "rate_limited");
    // Another key of the workspace has its own bucket: three contacts, not four.
    let other = app.key(&ws, json!({"name": "k2", "kind": "full"})).await;
    let (status, list) = app.get("/v1/contacts", other["token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    // The master key is not limited.
    for _ in 0..5 {
        let r = app.master(Method::GET, "/v1/workspaces").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers().get("ratelimit").is_none());
    }
}

#[tokio::test]
async fn analytics_keys_have_their_own_quota_and_dialects_their_envelope() {
    let app = app_with(RateLimitSettings { full: slow(1), analytics: slow(2), ..Default::default() }).await;
    let ws = app.workspace("w").await;
    let full = app.key(&ws, json!({"name": "f", "kind": "full"})).await;
    let full = full["token"].as_str().unwrap();
    let batch = json!({"contacts": [{"email": "a@x.io"}]});
    let path = "/compat/conversion/api/v1/contacts/batch";
    let r = app.with_token(Method::POST, path, full).json(&batch).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = app.with_token(Method::POST, path, full).json(&batch).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED");
    let analytics = app.key(&ws, json!({"name": "a", "kind": "analytics"})).await;
    let analytics = analytics["token"].as_str().unwrap();
    let identify = "/compat/conveyour/api/analytics/identify";
    for expected in [200, 200, 429] {
        let r = app
            .req(Method::POST, identify)
            .header("x-conveyour-token", analytics)
            .json(&json!({"id": "a@x.io", "traits": {"n": 1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected);
        assert!(r.headers()["ratelimit-policy"].to_str().unwrap().starts_with("\"analytics-key\";q=2"));
    }
}

#[tokio::test]
async fn failed_authentication_is_limited_per_client_address() {
    let app = app_with(RateLimitSettings { failed_auth: slow(2), ..Default::default() }).await;
    let (_, token) = app.full_key().await;
    for _ in 0..2 {
        let (status, body) = app.get("/v1/contacts", "cvn_not_a_real_token").await;
        assert_error(status, &body, 401, "unauthenticated");
    }
    let (status, body) = app.call(Method::GET, "/v1/contacts", None, None).await;
    assert_error(status, &body, 429, "rate_limited");
    // The address is refused before its credentials are looked at, good ones included.
    let r = app.with_token(Method::GET, "/v1/contacts", &token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers()["ratelimit-policy"].to_str().unwrap().starts_with("\"failed-auth\";q=2"));
}

#[tokio::test]
async fn quotas_are_configurable_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let args = convene::config::ServeArgs {
        data_dir: Some(dir.path().to_path_buf()),
        rate_limit_full: Some("50/100".into()),
        rate_limit_failed_auth: Some("abc".into()),
        ..Default::default()
    };
    let err = ServeConfig::resolve(args).unwrap_err().to_string();
    assert!(err.contains("rate_limit_failed_auth"), "{err}");
    let args = convene::config::ServeArgs { rate_limit_analytics: Some("7/9".into()), ..Default::default() };
    let config = ServeConfig::resolve(args).unwrap();
    assert_eq!(config.rate_limits.analytics, Quota { per_second: 7.0, burst: 9 });
    assert_eq!(config.rate_limits.full, RateLimitSettings::default().full);
}

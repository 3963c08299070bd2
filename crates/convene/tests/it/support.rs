//! Test support: start a server, create workspaces and keys, send requests.

use std::net::SocketAddr;

use convene::app::Application;
use convene::config::ServeConfig;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};

/// The master key every test server uses.
pub const MASTER: &str = "test-master-key-0123456789";

/// A running server and a client for it.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// HTTP client.
    pub client: Client,
    /// Its data directory (removed on drop).
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// The server task.
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a server on port 0 with a fresh data directory.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_with(ServeConfig::for_tests(dir.path(), MASTER), dir).await
}

/// Starts a server with a given configuration.
pub async fn spawn_app_with(config: ServeConfig, dir: tempfile::TempDir) -> TestApp {
    let app = Application::build(config).await.expect("server builds");
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp { addr, client: Client::new(), dir, shutdown: Some(tx), task: Some(task) }
}

impl TestApp {
    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request with no credentials.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with a bearer token.
    pub fn with_token(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.req(method, path).bearer_auth(token)
    }

    /// A request with the master key.
    pub fn master(&self, method: Method, path: &str) -> RequestBuilder {
        self.with_token(method, path, MASTER)
    }

    /// Creates a workspace; returns its id.
    pub async fn workspace(&self, name: &str) -> String {
        let r = self.master(Method::POST, "/v1/workspaces").json(&json!({"name": name})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    /// Creates a key in `ws` with the master key; returns the creation body.
    pub async fn key(&self, ws: &str, body: Value) -> Value {
        let r = self.master(Method::POST, &format!("/v1/workspaces/{ws}/keys")).json(&body).send().await.unwrap();
        let status = r.status();
        let body = r.json::<Value>().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body
    }

    /// A workspace and a full key with every scope; returns (ws, token).
    pub async fn full_key(&self) -> (String, String) {
        let ws = self.workspace("test").await;
        let key = self.key(&ws, json!({"name": "full", "kind": "full"})).await;
        (ws, key["token"].as_str().unwrap().to_string())
    }

    /// A workspace key holding exactly `scopes`.
    pub async fn key_with_scopes(&self, ws: &str, scopes: &[&str]) -> String {
        let key = self.key(ws, json!({"name": "scoped", "kind": "full", "scopes": scopes})).await;
        key["token"].as_str().unwrap().to_string()
    }
}

/// Status and JSON body of a response.
pub async fn body(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, value)
}

/// Asserts a native error envelope with `status` and `code`; returns the error object.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) -> Value {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["error"]["code"], want_code, "body: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message missing: {body}");
    body["error"].clone()
}

//! Test support: start a server, create workspaces and keys, send requests.

use std::net::SocketAddr;
use std::time::Duration;

use convene::app::Application;
use convene::config::{Database, Secret, ServeConfig};
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
    /// Its database (SQLite in `dir`, or a scratch PostgreSQL database).
    pub database: Database,
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

/// True when the suite runs on PostgreSQL (`CONVENE_TEST_BACKEND=postgres`;
/// `.ci/run` runs the suite once per backend).
pub fn on_postgres() -> bool {
    std::env::var("CONVENE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A scratch PostgreSQL database's URL on the test server.
pub async fn scratch_postgres() -> String {
    let admin = convene_store_postgres::scratch::test_admin_url();
    convene_store_postgres::scratch::fresh_database(&admin).await.expect("a scratch PostgreSQL database")
}

/// The `--database` a test server should use: none (SQLite in the data
/// directory) or a scratch PostgreSQL database.
pub async fn test_database_url() -> Option<String> {
    if on_postgres() { Some(scratch_postgres().await) } else { None }
}

/// Starts a server with a given configuration (on a scratch PostgreSQL
/// database instead of its SQLite file when the suite runs on PostgreSQL).
pub async fn spawn_app_with(mut config: ServeConfig, dir: tempfile::TempDir) -> TestApp {
    if on_postgres() && matches!(config.database, Database::Sqlite(_)) {
        config.database = Database::Postgres(Secret::new(scratch_postgres().await));
    }
    spawn_exactly(config, dir).await
}

/// Starts a server with exactly this configuration, whatever the suite's
/// backend (tests of SQLite's own files).
pub async fn spawn_exactly(config: ServeConfig, dir: tempfile::TempDir) -> TestApp {
    let database = config.database.clone();
    let app = Application::build(config).await.expect("server builds");
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp { addr, client: Client::new(), dir, database, shutdown: Some(tx), task: Some(task) }
}

impl TestApp {
    /// Triggers a graceful shutdown and waits (at most 10 s) for the server
    /// task to finish; returns what `run_until` returned.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("the server task is still there");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task does not panic")
    }

    /// Stops the server gracefully and starts a new one on the same data
    /// directory and database (a new port).
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await.expect("the server stops cleanly");
        let placeholder = tempfile::tempdir().expect("temp dir");
        let dir = std::mem::replace(&mut self.dir, placeholder);
        let mut config = ServeConfig::for_tests(dir.path(), MASTER);
        config.database = self.database.clone();
        spawn_app_with(config, dir).await
    }

    /// Sends a request with an optional bearer token and JSON body; returns
    /// status and JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, json: Option<&Value>) -> (u16, Value) {
        let mut rb = self.req(method, path);
        if let Some(token) = token {
            rb = rb.bearer_auth(token);
        }
        if let Some(json) = json {
            rb = rb.json(json);
        }
        send(rb).await
    }

    /// `GET path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// `POST path` with `token` and a JSON body.
    pub async fn post(&self, path: &str, token: &str, json: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(token), Some(&json)).await
    }

    /// `PATCH path` with `token` and a JSON body.
    pub async fn patch(&self, path: &str, token: &str, json: Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(token), Some(&json)).await
    }

    /// `DELETE path` with `token`.
    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Creates a contact with `token`; asserts 201 and returns it.
    pub async fn contact(&self, token: &str, json: Value) -> Value {
        let (status, body) = self.post("/v1/contacts", token, json).await;
        assert_eq!(status, 201, "{body}");
        body
    }

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

/// Sends a request; returns status and JSON body.
pub async fn send(rb: RequestBuilder) -> (u16, Value) {
    body(rb.send().await.expect("the request is answered")).await
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

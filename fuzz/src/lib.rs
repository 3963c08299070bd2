//! The harness the request fuzz targets share: one convene server per fuzz
//! process (SQLite in a temporary directory, the real router with every
//! layer), driven in-process without a socket, and the properties every
//! answer must have whatever the input.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use convene::app::Application;
use convene::config::ServeConfig;
use convene_core::ratelimit::Quota;
use convene_store_sqlite::Synchronous;
use http_body_util::BodyExt;
use tower::ServiceExt;

const MASTER: &str = "fuzz-master-key-0123456789";

/// A running server's router and a key of a workspace holding every scope.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// A full key (every scope) of the fuzzed workspace.
    pub token: String,
    /// A conversation of the workspace (for routes that name one).
    pub conversation: String,
    _app: Application,
    _dir: tempfile::TempDir,
}

/// What a request got back.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// The process's server, built on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(build)
}

fn build() -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServeConfig::for_tests(dir.path(), MASTER);
    // Durability is not what is fuzzed: skip the fsyncs.
    config.sqlite.synchronous = Synchronous::Normal;
    let unlimited = Quota { per_second: 1e9, burst: 1_000_000_000 };
    config.rate_limits.full = unlimited;
    config.rate_limits.analytics = unlimited;
    config.rate_limits.failed_auth = unlimited;
    let app = runtime.block_on(Application::build(config)).expect("the server builds");
    let router = app.router();
    let mut server =
        Server { runtime, router, token: String::new(), conversation: String::new(), _app: app, _dir: dir };
    let ws = server.setup_json(Method::POST, "/v1/workspaces", MASTER, r#"{"name": "Fuzz"}"#)["id"]
        .as_str()
        .expect("workspace id")
        .to_string();
    let key = server.setup_json(
        Method::POST,
        &format!("/v1/workspaces/{ws}/keys"),
        MASTER,
        r#"{"name": "fuzz", "kind": "full"}"#,
    );
    server.token = key["token"].as_str().expect("token").to_string();
    // Records for the routes that name an existing object.
    let token = server.token.clone();
    server.setup_json(Method::POST, "/v1/contacts", &token, r#"{"email": "seed@example.com"}"#);
    server.setup_json(
        Method::POST,
        "/v1/users",
        &token,
        r#"{"name": "Op", "email": "op@example.com", "role": "agent"}"#,
    );
    let conversation = server.setup_json(Method::POST, "/v1/conversations", &token, r#"{"contact_id": 1}"#);
    server.conversation = conversation["id"].as_str().expect("conversation id").to_string();
    server
}

impl Server {
    fn setup_json(&self, method: Method, path: &str, token: &str, body: &str) -> serde_json::Value {
        let answer =
            self.send(method, path, &[("authorization", &format!("Bearer {token}"))], body.as_bytes().to_vec());
        assert!(
            answer.status.is_success(),
            "setup {path}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        serde_json::from_slice(&answer.body).expect("setup answers JSON")
    }

    /// Sends one request through the whole router (every layer) and reads
    /// the whole answer. `path` may carry a query string; a
    /// `Content-Type: application/json` is added unless `headers` name one.
    pub fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut builder = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let Ok(mut request) = builder.body(Body::from(body)) else {
            // Not a request a client could send (a bad URI or header).
            return Answer { status: StatusCode::BAD_REQUEST, content_type: None, body: Vec::new() };
        };
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await.expect("the router is infallible");
            let status = response.status();
            let content_type =
                response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = response.into_body().collect().await.expect("the body is readable").to_bytes().to_vec();
            Answer { status, content_type, body }
        })
    }

    /// Sends a request with this workspace's key as a bearer token and
    /// checks the answer's properties.
    pub fn fuzz(&self, method: Method, path: &str, body: &[u8]) -> Answer {
        let auth = format!("Bearer {}", self.token);
        let answer = self.send(method, path, &[("authorization", &auth)], body.to_vec());
        answer.check(path);
        answer
    }
}

impl Answer {
    /// What every answer must be whatever the input: never a server error
    /// (a panic is caught by the server and becomes a 500), and a JSON
    /// content type means a JSON body.
    pub fn check(&self, path: &str) {
        assert!(
            !self.status.is_server_error() || self.status == StatusCode::SERVICE_UNAVAILABLE,
            "{path}: server error {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        if self.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")) && !self.body.is_empty() {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&self.body).is_ok(),
                "{path}: a JSON content type with a body that is not JSON: {}",
                String::from_utf8_lossy(&self.body)
            );
        }
    }
}

/// Where a route takes the fuzzed bytes.
#[derive(Clone, Copy)]
pub enum Input {
    /// As the body.
    Body,
    /// As the path segment `{}` stands for (percent-encoded).
    Segment,
    /// As the query string (percent-encoded but `&` and `=`).
    Query,
}

/// One fuzzed route: its method, its path (`{conversation}` is replaced by
/// the seeded conversation; `{}` takes the input when `input` is
/// [`Input::Segment`]), and where the input goes.
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path template.
    pub path: &'static str,
    /// Where the fuzzed bytes go.
    pub input: Input,
}

/// A route shorthand.
pub const fn route(method: Method, path: &'static str, input: Input) -> Route {
    Route { method, path, input }
}

/// Runs one fuzz input against a set of routes: its first byte chooses the
/// route (modulo their number), the rest is the route's input.
pub fn run(routes: &[Route], data: &[u8]) {
    let Some((first, rest)) = data.split_first() else { return };
    let route = &routes[*first as usize % routes.len()];
    let server = server();
    let path = route.path.replace("{conversation}", &server.conversation);
    let (path, body) = match route.input {
        Input::Body => (path, rest),
        Input::Segment => (path.replace("{}", &percent_encode(rest, b"")), &[][..]),
        Input::Query => (format!("{path}?{}", percent_encode(rest, b"&=")), &[][..]),
    };
    server.fuzz(route.method.clone(), &path, body);
}

/// Percent-encodes every byte but the unreserved ones and `keep`.
pub fn percent_encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

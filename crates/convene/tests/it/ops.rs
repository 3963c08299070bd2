//! Operations: health, readiness, metrics, request ids, the OpenAPI
//! document, graceful shutdown.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{MASTER, spawn_app};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app.req(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let r = app.req(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ready"}));
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let c = app.contact(&token, json!({"email": "ann@example.com"})).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/contacts", &token).await.0, 200);
    }
    assert_eq!(app.get(&format!("/v1/contacts/{}", c["id"]), &token).await.0, 200);
    assert_eq!(app.get("/v1/contacts/987654", &token).await.0, 404);
    assert_eq!(app.req(Method::GET, "/v1/contacts").send().await.unwrap().status(), 401);
    assert_eq!(app.req(Method::GET, "/no/such/route-123").send().await.unwrap().status(), 404);

    let r = app.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = r.text().await.unwrap();

    assert!(text.contains("# TYPE convene_http_requests_total counter"), "{text}");
    assert!(
        text.contains(r#"convene_http_requests_total{method="GET",route="/v1/contacts",status="200"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"convene_http_requests_total{method="GET",route="/v1/contacts",status="401"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"convene_http_requests_total{method="POST",route="/v1/contacts",status="201"} 1"#),
        "{text}"
    );
    // Routes are templates: ids do not become labels.
    assert!(
        text.contains(r#"convene_http_requests_total{method="GET",route="/v1/contacts/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"convene_http_requests_total{method="GET",route="/v1/contacts/{id}",status="404"} 1"#),
        "{text}"
    );
    assert!(!text.contains("987654"), "{text}");
    assert!(!text.contains("route-123"), "unknown paths do not become labels: {text}");

    assert!(text.contains("# TYPE convene_http_request_duration_seconds histogram"), "{text}");
    assert!(
        text.contains(r#"convene_http_request_duration_seconds_bucket{route="/v1/contacts",le="+Inf"} 5"#),
        "{text}"
    );
    assert!(text.contains(r#"convene_http_request_duration_seconds_count{route="/v1/contacts"} 5"#), "{text}");
    assert!(text.contains(r#"convene_http_request_duration_seconds_sum{route="/v1/contacts"}"#), "{text}");
    assert!(
        text.contains(r#"convene_http_request_duration_seconds_bucket{route="/v1/contacts",le="0.005"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let mut ids = Vec::new();
    let requests = [
        app.req(Method::GET, "/healthz"),
        app.req(Method::GET, "/v1/contacts").bearer_auth(&token),
        app.req(Method::GET, "/v1/contacts"),
        app.req(Method::GET, "/v1/contacts").bearer_auth(MASTER),
        app.req(Method::GET, "/nope"),
        app.req(Method::PUT, "/v1/contacts"),
        app.req(Method::POST, "/v1/contacts").bearer_auth(&token).body("{"),
        app.req(Method::POST, "/v1/contacts").bearer_auth(&token).header("content-type", "application/json").body("{"),
        app.req(Method::GET, "/openapi.json"),
        app.req(Method::GET, "/metrics"),
    ];
    for rb in requests {
        let r = rb.send().await.unwrap();
        let status = r.status();
        let id = r.headers().get("x-request-id").unwrap_or_else(|| panic!("no x-request-id on a {status}"));
        let id = id.to_str().unwrap().to_string();
        assert!(!id.is_empty());
        assert!(!ids.contains(&id), "request ids are unique");
        ids.push(id);
    }

    // A caller's id is echoed back, on success and on error.
    for rb in [
        app.req(Method::GET, "/v1/contacts").bearer_auth(&token),
        app.req(Method::GET, "/v1/contacts"),
        app.req(Method::GET, "/nope"),
    ] {
        let r = rb.header("x-request-id", "trace-abc-123").send().await.unwrap();
        assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = spawn_app().await;
    let r = app.req(Method::GET, "/openapi.json").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "convene");
    assert!(doc["info"]["version"].is_string());

    let paths = doc["paths"].as_object().unwrap();
    let native: [(&str, &[&str]); 15] = [
        ("/v1/workspaces", &["get", "post"]),
        ("/v1/workspaces/{ws}", &["get"]),
        ("/v1/workspaces/{ws}/service-accounts", &["get", "post"]),
        ("/v1/workspaces/{ws}/service-accounts/{id}", &["get", "patch"]),
        ("/v1/workspaces/{ws}/keys", &["get", "post"]),
        ("/v1/workspaces/{ws}/keys/{id}", &["get", "delete"]),
        ("/v1/service-accounts", &["get", "post"]),
        ("/v1/service-accounts/{id}", &["get", "patch"]),
        ("/v1/keys", &["get", "post"]),
        ("/v1/keys/{id}", &["get", "delete"]),
        ("/v1/contacts", &["get", "post"]),
        ("/v1/contacts/{id}", &["get", "patch", "delete"]),
        ("/v1/fields", &["get", "post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ];
    for (path, methods) in native {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} is not documented"));
        for method in methods {
            let op = item.get(*method).unwrap_or_else(|| panic!("{method} {path} is not documented"));
            if path.starts_with("/v1/") {
                let responses = op["responses"].as_object().unwrap();
                for status in ["401", "403", "400"] {
                    assert!(responses.contains_key(status), "{method} {path} documents no {status}");
                }
                assert!(op["responses"]["401"]["description"].as_str().is_some_and(|d| !d.is_empty()));
                assert!(op["security"].is_array(), "{method} {path} has no security");
            }
        }
    }
    assert!(paths.contains_key("/metrics"));

    let create_ws = &doc["components"]["schemas"]["CreateWorkspace"];
    assert_eq!(create_ws["properties"]["name"]["maxLength"], 200, "{create_ws}");
    assert_eq!(create_ws["properties"]["name"]["minLength"], 1, "{create_ws}");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["master_key", "bearer", "api_key"] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
    // The contact list declares its scope.
    let security = &doc["paths"]["/v1/contacts"]["get"]["security"];
    assert!(security.to_string().contains("contacts:read"), "{security}");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let mut app = spawn_app().await;
    let (_, token) = app.full_key().await;
    assert_eq!(app.get("/v1/contacts", &token).await.0, 200, "with an idle keep-alive connection open");
    let started = Instant::now();
    app.shutdown().await.expect("run_until returns Ok");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stopped without waiting out the grace period: {:?}",
        started.elapsed()
    );
    let refused = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(app.addr))
        .await
        .expect("connect answers");
    assert!(refused.is_err(), "the listener is closed");
}

#[tokio::test]
async fn dropping_the_app_stops_the_server() {
    let mut app = spawn_app().await;
    assert_eq!(app.req(Method::GET, "/healthz").send().await.unwrap().status(), 200);
    let task = app.task.take().unwrap();
    drop(app);
    let result = tokio::time::timeout(Duration::from_secs(4), task).await.expect("the server task finishes");
    result.expect("no panic").expect("run_until returns Ok");
}

#[tokio::test]
async fn an_in_flight_request_finishes_during_shutdown() {
    let mut app = spawn_app().await;
    let (_, token) = app.full_key().await;
    // A slow upload: the request is in flight when shutdown starts.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let addr = app.addr;
    let client = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = br#"{"email": "late@example.com"}"#;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/contacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body[..5]).await.unwrap();
        let _ = tx.send(());
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.write_all(&body[5..]).await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut response)).await;
        String::from_utf8_lossy(&response).to_string()
    });
    rx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.shutdown().await.expect("clean stop");
    let response = client.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("late@example.com"), "{response}");
}

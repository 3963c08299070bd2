//! Hostile and broken requests: every one gets a JSON error with the right
//! status, never a 500.

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{MASTER, TestApp, assert_error, body, send, spawn_app};

/// POSTs raw bytes with a content type.
async fn post_raw(app: &TestApp, path: &str, token: &str, content_type: Option<&str>, bytes: Vec<u8>) -> (u16, Value) {
    let mut rb = app.req(Method::POST, path).bearer_auth(token).body(bytes);
    if let Some(ct) = content_type {
        rb = rb.header(CONTENT_TYPE, ct);
    }
    send(rb).await
}

fn nested_object(depth: usize) -> String {
    // {"traits": {"meta": {"k": {"k": ... 1 ...}}}} with `depth` levels of braces.
    assert!(depth >= 3);
    let mut s = String::from(r#"{"traits": {"meta": "#);
    for _ in 0..depth - 2 {
        s.push_str(r#"{"k": "#);
    }
    s.push('1');
    for _ in 0..depth {
        s.push('}');
    }
    s
}

#[tokio::test]
async fn malformed_json_is_400_json() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for bad in [
        "{",
        "{\"email\": }",
        "{\"email\": \"a@b.co\",}",
        "not json",
        "",
        "{\"email\": \"a@b.co\"} trailing",
        "{'email': 'a@b.co'}",
        "{\"email\": NaN}",
    ] {
        let (status, err) =
            post_raw(&app, "/v1/contacts", &token, Some("application/json"), bad.as_bytes().to_vec()).await;
        let error = assert_error(status, &err, 400, "validation_error");
        assert!(error["message"].as_str().unwrap().contains("JSON"), "{bad}: {error}");
    }
    // Valid JSON of the wrong shape.
    for wrong in ["null", "[]", "42", "\"email\"", "true"] {
        let (status, err) =
            post_raw(&app, "/v1/contacts", &token, Some("application/json"), wrong.as_bytes().to_vec()).await;
        assert_error(status, &err, 400, "validation_error");
    }
    // Invalid UTF-8 and a lone surrogate.
    let (status, err) =
        post_raw(&app, "/v1/contacts", &token, Some("application/json"), b"{\"email\": \"\xff\xfe\"}".to_vec()).await;
    assert_error(status, &err, 400, "validation_error");
    let (status, err) =
        post_raw(&app, "/v1/contacts", &token, Some("application/json"), br#"{"traits": {"x": "\ud800"}}"#.to_vec())
            .await;
    assert_error(status, &err, 400, "validation_error");
    let (_, list) = app.get("/v1/contacts", &token).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let (ws, token) = app.full_key().await;
    let json_bytes = br#"{"email": "ann@example.com"}"#.to_vec();
    for ct in
        [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/xml"), Some("json")]
    {
        let (status, err) = post_raw(&app, "/v1/contacts", &token, ct, json_bytes.clone()).await;
        let error = assert_error(status, &err, 415, "unsupported_media_type");
        assert!(error["message"].as_str().unwrap().contains("application/json"), "{error}");
    }
    // The other JSON routes check too.
    for (path, token) in [
        ("/v1/fields", token.as_str()),
        ("/v1/keys", token.as_str()),
        ("/v1/service-accounts", token.as_str()),
        ("/v1/workspaces", MASTER),
    ] {
        let (status, err) = post_raw(&app, path, token, Some("text/plain"), br#"{"name": "x"}"#.to_vec()).await;
        assert_error(status, &err, 415, "unsupported_media_type");
    }
    let (status, err) =
        post_raw(&app, &format!("/v1/workspaces/{ws}/keys"), MASTER, None, br#"{"name": "x"}"#.to_vec()).await;
    assert_error(status, &err, 415, "unsupported_media_type");

    // JSON media types with parameters or a +json suffix are JSON.
    for ct in ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"] {
        let email = format!("{}@example.com", ct.len());
        let (status, c) =
            post_raw(&app, "/v1/contacts", &token, Some(ct), json!({"email": email}).to_string().into_bytes()).await;
        assert_eq!(status, 201, "{ct}: {c}");
    }
}

#[tokio::test]
async fn a_body_over_1_mib_is_413() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    // Valid JSON, one byte over the limit.
    let limit = 1024 * 1024;
    let mut big = String::from(r#"{"traits": {"blob": ""#);
    let fill = limit + 1 - big.len() - 3;
    big.push_str(&"a".repeat(fill));
    big.push_str("\"}}");
    assert_eq!(big.len(), limit + 1);
    let (status, err) = post_raw(&app, "/v1/contacts", &token, Some("application/json"), big.into_bytes()).await;
    let error = assert_error(status, &err, 413, "payload_too_large");
    assert!(error["message"].as_str().unwrap().contains("1048576"), "{error}");

    // Exactly at the limit the body is read (and then refused for the value size, not the body size).
    let mut at = String::from(r#"{"traits": {"blob": ""#);
    let fill = limit - at.len() - 3;
    at.push_str(&"a".repeat(fill));
    at.push_str("\"}}");
    let (status, err) = post_raw(&app, "/v1/contacts", &token, Some("application/json"), at.into_bytes()).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "blob");
}

#[tokio::test]
async fn a_chunked_body_over_1_mib_is_413() {
    // No Content-Length: the limit applies while reading.
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/contacts HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..20 {
        // The server may answer and close before reading it all.
        if stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
}

#[tokio::test]
async fn json_deeper_than_32_levels_is_refused() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;

    let (status, err) =
        post_raw(&app, "/v1/contacts", &token, Some("application/json"), nested_object(33).into_bytes()).await;
    let error = assert_error(status, &err, 400, "validation_error");
    assert!(error["message"].as_str().unwrap().contains("nested deeper than 32"), "{error}");

    // 32 levels pass the parser; this body is also a valid contact.
    let (status, c) =
        post_raw(&app, "/v1/contacts", &token, Some("application/json"), nested_object(32).into_bytes()).await;
    assert_eq!(status, 201, "{c}");
    assert!(c["traits"]["meta"]["k"].is_object());

    // 32 levels of arrays pass the parser and fail validation, not the depth check.
    let arrays = format!("{}{}", "[".repeat(32), "]".repeat(32));
    let (status, err) = post_raw(&app, "/v1/contacts", &token, Some("application/json"), arrays.into_bytes()).await;
    let error = assert_error(status, &err, 400, "validation_error");
    assert!(!error["message"].as_str().unwrap().contains("nested deeper"), "{error}");

    // Brackets inside strings do not count.
    let in_string = json!({"traits": {"note": "[".repeat(100)}}).to_string();
    let (status, c) = post_raw(&app, "/v1/contacts", &token, Some("application/json"), in_string.into_bytes()).await;
    assert_eq!(status, 201, "{c}");
}

#[tokio::test]
async fn a_100000_deep_array_is_refused_quickly() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for body in
        [format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)), "[".repeat(100_000), "{\"a\":".repeat(100_000)]
    {
        let started = Instant::now();
        let (status, err) = post_raw(&app, "/v1/contacts", &token, Some("application/json"), body.into_bytes()).await;
        let error = assert_error(status, &err, 400, "validation_error");
        assert!(error["message"].as_str().unwrap().contains("nested deeper"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
    assert_eq!(app.get("/healthz", &token).await.0, 200, "the server is still up");
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for path in ["/nope", "/v1/nope", "/v1/contacts/1/extra", "/v2/contacts", "/v1/"] {
        for token in [None, Some(token.as_str())] {
            let (status, err) = app.call(Method::GET, path, token, None).await;
            assert_eq!(status, 404, "GET {path}: {err}");
            assert_error(status, &err, 404, "not_found");
        }
    }
    // A path parameter that is not UTF-8 is still answered in JSON.
    for (method, path) in [
        (Method::GET, "/v1/contacts/%ff"),
        (Method::DELETE, "/v1/keys/%ff%fe"),
        (Method::GET, "/v1/service-accounts/%c3"),
    ] {
        let (status, err) = app.call(method.clone(), path, Some(&token), None).await;
        assert!(err["error"]["code"].is_string(), "{method} {path}: {status} {err}");
        assert!(status == 400 || status == 404, "{method} {path}: {status} {err}");
    }
    let (status, err) = app.call(Method::GET, "/v1/workspaces/%ff", Some(MASTER), None).await;
    assert!(err["error"]["code"].is_string() && (status == 400 || status == 404), "{status} {err}");

    // The fallback names the path.
    let (status, err) = app.call(Method::POST, "/v1/unknown-thing", None, Some(&json!({}))).await;
    let error = assert_error(status, &err, 404, "not_found");
    assert!(error["message"].as_str().unwrap().contains("/v1/unknown-thing"), "{error}");
}

#[tokio::test]
async fn a_wrong_method_is_json_405() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for (method, path) in [
        (Method::PUT, "/v1/contacts"),
        (Method::PATCH, "/v1/contacts"),
        (Method::POST, "/v1/contacts/1"),
        (Method::PUT, "/v1/contacts/1"),
        (Method::PATCH, "/v1/keys/key_x"),
        (Method::DELETE, "/v1/fields"),
        (Method::DELETE, "/v1/workspaces"),
        (Method::POST, "/healthz"),
        (Method::POST, "/metrics"),
    ] {
        let r = app.req(method.clone(), path).bearer_auth(&token).send().await.unwrap();
        let content_type = r.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
        let (status, err) = body(r).await;
        assert_error(status, &err, 405, "method_not_allowed");
        assert_eq!(content_type.as_deref(), Some("application/json"), "{method} {path}");
    }
}

#[tokio::test]
async fn a_barrage_of_bad_requests_never_gets_a_500() {
    let app = spawn_app().await;
    let (ws, token) = app.full_key().await;
    let c = app.contact(&token, json!({"email": "ann@example.com", "traits": {"n": 1, "tags": ["a"]}})).await;
    let cpath = format!("/v1/contacts/{}", c["id"]);
    let long = "x".repeat(10_000);
    let cases: Vec<(Method, String, &str, Value)> = vec![
        (Method::POST, "/v1/contacts".into(), &token, json!({"email": long})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"external_id": long})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"external_id": ""})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"external_id": "a\u{0}b"})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"mobile": true})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"traits": {"": 1}})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"traits": {"a\u{1}b": 1}})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"traits": {"big": "y".repeat(70_000)}})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"traits": {"tags": [[1]]}})),
        (Method::POST, "/v1/contacts".into(), &token, json!({"traits": {"tags": {"add": [{"a": 1}]}}})),
        (
            Method::POST,
            "/v1/contacts".into(),
            &token,
            json!({"traits": (0..501).map(|i| (format!("t{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}),
        ),
        (Method::PATCH, cpath.clone(), &token, json!({"traits": {"n": {"$inc": i64::MAX}}})),
        (Method::PATCH, cpath.clone(), &token, json!({"traits": {"tags": {"add": "x"}}})),
        (Method::PATCH, cpath.clone(), &token, json!({"traits": {"n": {"$inc": 1, "$set_once": 2}}})),
        (Method::PATCH, cpath.clone(), &token, json!({"subscription_status": null})),
        (Method::PATCH, "/v1/contacts/-0".into(), &token, json!({})),
        (Method::POST, "/v1/fields".into(), &token, json!({"name": 5, "type": "text"})),
        (Method::POST, "/v1/keys".into(), &token, json!({"name": long, "kind": "full"})),
        (Method::POST, "/v1/keys".into(), &token, json!({"name": "k", "kind": "full", "expires_at": "tomorrow"})),
        (Method::POST, "/v1/keys".into(), &token, json!({"name": "k", "kind": "full", "scopes": "admin"})),
        (Method::POST, "/v1/keys".into(), &token, json!({"name": "\u{7}", "kind": "full"})),
        (
            Method::POST,
            "/v1/service-accounts".into(),
            &token,
            json!({"name": "s", "teams": (0..101).map(|i| i.to_string()).collect::<Vec<_>>()}),
        ),
        (Method::POST, "/v1/service-accounts".into(), &token, json!({"name": "s", "description": "d".repeat(2001)})),
        (Method::POST, "/v1/service-accounts".into(), &token, json!({"name": "s", "scopes": ["root"]})),
        (Method::PATCH, "/v1/service-accounts/sa_nope".into(), &token, json!({"name": "s"})),
        (Method::POST, "/v1/workspaces".into(), MASTER, json!({"name": "w".repeat(201)})),
        (Method::POST, "/v1/workspaces".into(), MASTER, json!({"name": "   "})),
        (Method::POST, "/v1/workspaces".into(), MASTER, json!({"name": "w", "extra": 1})),
        (Method::GET, "/v1/workspaces/ws_nope".into(), MASTER, json!(null)),
        (Method::POST, "/v1/workspaces/ws_nope/keys".into(), MASTER, json!({"name": "k", "kind": "full"})),
        (Method::GET, format!("/v1/workspaces/{ws}/keys/key_nope"), MASTER, json!(null)),
        (Method::GET, format!("/v1/workspaces/{ws}/keys?cursor=YWJj"), MASTER, json!(null)),
        (Method::GET, "/v1/contacts?email=%ff%fe".into(), &token, json!(null)),
        (Method::GET, "/v1/contacts?mobile=abc".into(), &token, json!(null)),
        (Method::GET, "/v1/contacts?limit=1&limit=2".into(), &token, json!(null)),
    ];
    for (method, path, token, json) in cases {
        let json = (!json.is_null()).then_some(json);
        let (status, resp) = app.call(method.clone(), &path, Some(token), json.as_ref()).await;
        assert!((400..500).contains(&status), "{method} {path}: {status} {resp}");
        assert!(resp["error"]["code"].is_string(), "{method} {path}: {resp}");
    }
    let (status, after) = app.get(&cpath, &token).await;
    assert_eq!((status, &after["traits"]), (200, &json!({"n": 1, "tags": ["a"]})), "nothing changed");
}

/// Sends a request head announcing `length` body bytes and reads the answer
/// without sending any of the body: a body over the limit is refused on
/// its announced length, before it is read.
async fn announce_body(app: &TestApp, path: &str, token: &str, length: usize) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    (String::from_utf8_lossy(&response).into_owned(), started.elapsed())
}

/// The latency of a well-formed read, `n` times.
async fn read_latencies(app: &TestApp, path: &str, token: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let (status, body) = app.get(path, token).await;
        assert_eq!(status, 200, "a well-formed request under attack: {body}");
        out.push(started.elapsed());
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_bodies_are_refused_without_harming_other_requests() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let c = app.contact(&token, json!({"email": "ann@example.com"})).await;
    let path = format!("/v1/contacts/{}", c["id"]);
    let quiet = read_latencies(&app, &path, &token, 30).await;

    // A 50 MB body is refused on its announced length, on every body-taking
    // route kind (Converz takes tables up to 64 MB: 100 MB there; Segment
    // and Convot answer an oversized request 400, their vendors' status).
    const MB: usize = 1024 * 1024;
    for (route, length) in [
        ("/v1/contacts", 50 * MB),
        ("/v1/batch", 50 * MB),
        ("/v1/imports?entity=contacts", 50 * MB),
        ("/compat/segment/v1/batch", 50 * MB),
        ("/compat/conveyour/api/analytics/identify", 50 * MB),
        ("/compat/conversion/api/v1/contacts/batch", 50 * MB),
        ("/compat/convot/v1/contacts", 50 * MB),
        ("/compat/converz/api/v1/reps", 100 * MB),
    ] {
        let (text, took) = announce_body(&app, route, &token, length).await;
        let want = if route.starts_with("/compat/segment") || route.starts_with("/compat/convot") {
            "HTTP/1.1 400"
        } else {
            "HTTP/1.1 413"
        };
        assert!(text.starts_with(want) && text.contains("larger than"), "{route}: {text}");
        assert!(took < Duration::from_secs(2), "{route}: refused in {took:?}");
    }

    // Attackers: 50 MB chunked uploads (refused at the limit while reading) and
    // 100,000-deep arrays, over and over, while well-formed reads go on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for a in 0..4 {
        let (addr, token, stop) = (app.addr, token.clone(), stop.clone());
        attackers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut refused = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if a % 2 == 0 {
                    // 50 MB in chunks, no Content-Length: refused once 1 MiB is read.
                    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let head = format!(
                        "POST /v1/contacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    );
                    stream.write_all(head.as_bytes()).await.unwrap();
                    let chunk = vec![b' '; 1024 * 1024];
                    for _ in 0..50 {
                        if stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
                            || stream.write_all(&chunk).await.is_err()
                            || stream.write_all(b"\r\n").await.is_err()
                        {
                            break;
                        }
                    }
                    let mut response = Vec::new();
                    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
                    let text = String::from_utf8_lossy(&response);
                    assert!(text.is_empty() || text.starts_with("HTTP/1.1 413"), "a 50 MB upload got {text}");
                } else {
                    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                    let r = client
                        .post(format!("http://{addr}/v1/contacts"))
                        .bearer_auth(&token)
                        .header(CONTENT_TYPE, "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("a deep array is answered");
                    assert_eq!(r.status(), 400, "a 100,000-deep array");
                }
                refused += 1;
            }
            refused
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let loud = read_latencies(&app, &path, &token, 30).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut refused = 0;
    for a in attackers {
        refused += a.await.expect("an attacker panicked");
    }
    assert!(refused >= 4, "the attackers ran: {refused}");
    // Ratios within one run: the median read stays within a few times its
    // quiet value (plus a small allowance for a shared, noisy machine).
    let (quiet_median, loud_median) = (quiet[quiet.len() / 2], loud[loud.len() / 2]);
    assert!(
        loud_median <= quiet_median * 5 + Duration::from_millis(50),
        "reads slowed from {quiet_median:?} to {loud_median:?} under hostile bodies"
    );
}

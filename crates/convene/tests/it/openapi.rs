//! `/openapi.json` documents every dialect route: each operation under its
//! full mounted path, with its dialect's tag, security scheme and error
//! envelope; every scheme it names exists and every `$ref` resolves.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::support::spawn_app;

/// A dialect: its tag, security scheme, error envelope schema and the error
/// statuses every one of its operations documents.
struct Dialect {
    prefix: &'static str,
    tag: &'static str,
    scheme: &'static str,
    scheme_type: (&'static str, &'static str),
    error_schema: &'static str,
    errors: &'static [&'static str],
    /// (method, path under the prefix, extra error statuses).
    operations: &'static [(&'static str, &'static str, &'static [&'static str])],
}

const COMMON: &[&str] = &["400", "401", "403", "429", "500", "503"];

fn dialects() -> [Dialect; 5] {
    [
        Dialect {
            prefix: "/compat/segment",
            tag: "compat: segment",
            scheme: "segment_write_key",
            scheme_type: ("http", "basic"),
            error_schema: "SegmentError",
            errors: COMMON,
            operations: &[
                ("post", "/v1/identify", &[]),
                ("post", "/v1/track", &[]),
                ("post", "/v1/page", &[]),
                ("post", "/v1/screen", &[]),
                ("post", "/v1/group", &[]),
                ("post", "/v1/alias", &[]),
                ("post", "/v1/batch", &[]),
                ("post", "/v1/import", &[]),
            ],
        },
        Dialect {
            prefix: "/compat/conveyour",
            tag: "compat: conveyour",
            scheme: "conveyour_token",
            scheme_type: ("apiKey", "x-conveyour-token"),
            error_schema: "ConveyourError",
            errors: COMMON,
            operations: &[
                ("post", "/api/analytics/identify", &["413", "415"]),
                ("post", "/api/analytics/track", &["413", "415"]),
            ],
        },
        Dialect {
            prefix: "/compat/conversion",
            tag: "compat: conversion",
            scheme: "conversion_bearer",
            scheme_type: ("http", "bearer"),
            error_schema: "ConversionError",
            errors: COMMON,
            operations: &[
                ("post", "/api/v1/contacts/batch", &["409", "413"]),
                ("get", "/api/v1/contacts/by-email/{email}", &["404"]),
                ("delete", "/api/v1/contacts/by-email/{email}", &["404"]),
                ("post", "/api/v1/contacts/batch-subscription", &["404", "409", "413"]),
                ("post", "/api/v1/contacts/engagements", &["404", "413"]),
                ("post", "/api/v1/companies/batch", &["409", "413"]),
                ("get", "/api/v1/companies/by-external-id/{id}", &["404"]),
                ("delete", "/api/v1/companies/by-external-id/{id}", &["404"]),
            ],
        },
        Dialect {
            prefix: "/compat/convot",
            tag: "compat: convot",
            scheme: "convot_token",
            scheme_type: ("http", "bearer"),
            error_schema: "ConvotError",
            errors: COMMON,
            operations: &[
                ("post", "/v1/contacts", &["422"]),
                ("get", "/v1/conversations", &[]),
                ("post", "/v1/conversations", &["422"]),
                ("get", "/v1/conversations/{id}", &["404"]),
                ("patch", "/v1/conversations/{id}", &["404", "422"]),
                ("get", "/v1/conversations/{id}/messages", &["404"]),
                ("post", "/v1/conversations/{id}/messages", &["404", "422"]),
            ],
        },
        Dialect {
            prefix: "/compat/converz",
            tag: "compat: converz",
            scheme: "converz_api_key",
            scheme_type: ("apiKey", "X-API-Key"),
            error_schema: "ConverzError",
            errors: COMMON,
            operations: &[
                ("get", "/api/v1/reps", &[]),
                ("post", "/api/v1/reps", &["409", "413", "415", "422"]),
                ("get", "/api/v1/calls", &[]),
                ("post", "/api/v1/calls", &["409", "413", "415", "422"]),
                ("get", "/api/v1/report", &[]),
            ],
        },
    ]
}

/// Every `$ref` in `v` (recursively).
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The schema a `#/components/schemas/...` reference names.
fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    let pointer = r.strip_prefix('#')?;
    doc.pointer(pointer)
}

#[tokio::test]
async fn every_dialect_route_is_documented_with_its_tag_security_and_errors() {
    let app = spawn_app().await;
    let r = app.req(Method::GET, "/openapi.json").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let tags: Vec<&Value> = doc["tags"].as_array().unwrap().iter().collect();

    let mut expected = BTreeSet::new();
    for d in dialects() {
        // The tag, with a description naming the vendor's base URL mapping.
        let tag = tags.iter().find(|t| t["name"] == d.tag).unwrap_or_else(|| panic!("no tag {}", d.tag));
        let description = tag["description"].as_str().unwrap_or("");
        assert!(description.contains("convene-host") && description.contains(d.prefix), "{}: {description}", d.tag);
        // The scheme, as the dialect authenticates.
        let scheme = &schemes[d.scheme];
        assert_eq!(scheme["type"], d.scheme_type.0, "{}: {scheme}", d.scheme);
        match d.scheme_type.0 {
            "http" => assert_eq!(scheme["scheme"], d.scheme_type.1, "{}: {scheme}", d.scheme),
            _ => assert_eq!((scheme["in"].as_str(), scheme["name"].as_str()), (Some("header"), Some(d.scheme_type.1))),
        }
        // The envelope.
        assert!(doc["components"]["schemas"][d.error_schema].is_object(), "{} is not a component", d.error_schema);

        for (method, path, extra) in d.operations {
            let full = format!("{}{path}", d.prefix);
            expected.insert(format!("{method} {full}"));
            let op = paths
                .get(&full)
                .and_then(|item| item.get(*method))
                .unwrap_or_else(|| panic!("{method} {full} is not documented"));
            let what = format!("{method} {full}");
            assert_eq!(op["tags"], serde_json::json!([d.tag]), "{what}");
            let security = op["security"].as_array().unwrap_or_else(|| panic!("{what} has no security"));
            assert_eq!(security.len(), 1, "{what}: {security:?}");
            let scopes = security[0][d.scheme].as_array().unwrap_or_else(|| panic!("{what}: {security:?}"));
            assert!(!scopes.is_empty(), "{what} names the scope it needs");
            assert!(
                op["operationId"].as_str().is_some_and(|id| id.starts_with(d.prefix.trim_start_matches("/compat/")))
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{what} documents no success");
            for status in d.errors.iter().chain(extra.iter()) {
                let response = responses.get(*status).unwrap_or_else(|| panic!("{what} documents no {status}"));
                assert!(response["description"].as_str().is_some_and(|s| !s.is_empty()), "{what} {status}");
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"],
                    format!("#/components/schemas/{}", d.error_schema),
                    "{what} {status} is not in the dialect's envelope"
                );
            }
            for (status, response) in responses {
                if !status.starts_with('2') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        format!("#/components/schemas/{}", d.error_schema),
                        "{what} {status}"
                    );
                }
            }
        }
    }

    // Nothing under /compat is documented that the list above lacks.
    let documented: BTreeSet<String> = paths
        .iter()
        .filter(|(p, _)| p.starts_with("/compat/"))
        .flat_map(|(p, item)| {
            item.as_object().unwrap().keys().filter(|m| *m != "parameters").map(move |m| format!("{m} {p}"))
        })
        .collect();
    assert_eq!(documented, expected);

    // Every security requirement names a scheme in components.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{method} {path} names the unknown scheme {name}");
                }
            }
        }
    }
    // Every $ref resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 100, "{} refs", all.len());
    for r in all {
        assert!(resolve(&doc, r).is_some_and(Value::is_object), "the $ref {r} does not resolve");
    }
    // A dialect operation's id is unique in the document.
    let ids: Vec<(&str, &str)> = paths
        .iter()
        .flat_map(|(p, item)| item.as_object().unwrap().values().map(move |op| (p.as_str(), op)))
        .filter_map(|(p, op)| op["operationId"].as_str().map(|id| (p, id)))
        .collect();
    for (path, id) in ids.iter().filter(|(p, _)| p.starts_with("/compat/")) {
        assert_eq!(ids.iter().filter(|(_, other)| other == id).count(), 1, "operationId {id} of {path} twice");
    }
}

#[tokio::test]
async fn every_documented_dialect_operation_answers_401_in_its_envelope_without_credentials() {
    let app = spawn_app().await;
    let doc: Value = app.req(Method::GET, "/openapi.json").send().await.unwrap().json().await.unwrap();
    for d in dialects() {
        let schema = &doc["components"]["schemas"][d.error_schema];
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for (method, path, _) in d.operations {
            let path = format!("{}{}", d.prefix, path.replace("{email}", "a@b.co").replace("{id}", "x"));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut rb = app.req(method.clone(), &path);
            if method != Method::GET && method != Method::DELETE {
                rb = rb.header("content-type", "application/json").body("{}");
            }
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 401, "{method} {path}: {body}");
            let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
            for key in &required {
                assert!(keys.contains(key), "{method} {path}: {body} lacks {key} of {}", d.error_schema);
            }
            for key in &keys {
                assert!(
                    schema["properties"].get(*key).is_some(),
                    "{method} {path}: {key} is not in {}",
                    d.error_schema
                );
            }
        }
    }
}

/// Errors made outside a dialect's router — the request timeout's 503 here —
/// are still in that dialect's documented envelope (and status).
#[tokio::test]
async fn a_timeout_on_a_dialect_route_answers_in_its_envelope() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let mut config = convene::config::ServeConfig::for_tests(dir.path(), crate::support::MASTER);
    config.request_timeout_secs = 1;
    let app = crate::support::spawn_app_with(config, dir).await;
    let (_, token) = app.full_key().await;
    type InEnvelope = fn(&Value) -> bool;
    let cases: [(&str, InEnvelope); 6] = [
        ("/compat/segment/v1/identify", |b| b["success"] == false && b["code"] == "unavailable"),
        ("/compat/conveyour/api/analytics/identify", |b| b["status"] == "error" && b["data"] == serde_json::json!([])),
        ("/compat/conversion/api/v1/contacts/batch", |b| {
            b["success"] == false && b["error"]["code"] == "INTERNAL_ERROR"
        }),
        ("/compat/convot/v1/contacts", |b| {
            b["error"]["code"] == "unavailable" && b["error"].as_object().unwrap().len() == 2
        }),
        ("/compat/converz/api/v1/reps", |b| b["error"]["code"] == "unavailable"),
        ("/v1/contacts", |b| b["error"]["code"] == "unavailable"),
    ];
    for (path, in_envelope) in cases {
        // A body that never finishes arriving.
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\nConnection: close\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 503"), "{path}: {answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap();
        assert!(in_envelope(&body), "{path}: {body}");
    }
}

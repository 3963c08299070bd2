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

/// Every operation of the document (method, path, operation), `parameters` aside.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method != "parameters" {
                out.push((method.clone(), path.clone(), op));
            }
        }
    }
    out
}

async fn document(app: &crate::support::TestApp) -> Value {
    let r = app.req(Method::GET, "/openapi.json").send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Each operation has its own `operationId` in the whole document (native
/// and dialect routes alike): clients generated from it name one method
/// per operation. The operator's and the admin key's routes to the same
/// resource are told apart.
#[tokio::test]
async fn every_operation_id_is_unique_in_the_document() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut seen: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(!id.is_empty(), "{method} {path}");
        seen.entry(id).or_default().push(format!("{method} {path}"));
    }
    let twice: Vec<_> = seen.iter().filter(|(_, ops)| ops.len() > 1).collect();
    assert!(twice.is_empty(), "operationIds shared by several operations: {twice:?}");
    assert!(seen.len() > 90, "{} operations", seen.len());

    // The names of the service-account and key routes (stable: generated clients use them).
    let named = [
        ("post", "/v1/workspaces/{ws}/service-accounts", "create_workspace_service_account"),
        ("get", "/v1/workspaces/{ws}/service-accounts", "list_workspace_service_accounts"),
        ("get", "/v1/workspaces/{ws}/service-accounts/{id}", "get_workspace_service_account"),
        ("patch", "/v1/workspaces/{ws}/service-accounts/{id}", "update_workspace_service_account"),
        ("post", "/v1/service-accounts", "create_service_account"),
        ("get", "/v1/service-accounts", "list_service_accounts"),
        ("get", "/v1/service-accounts/{id}", "get_service_account"),
        ("patch", "/v1/service-accounts/{id}", "update_service_account"),
        ("post", "/v1/workspaces/{ws}/keys", "create_workspace_key"),
        ("get", "/v1/workspaces/{ws}/keys", "list_workspace_keys"),
        ("get", "/v1/workspaces/{ws}/keys/{id}", "get_workspace_key"),
        ("delete", "/v1/workspaces/{ws}/keys/{id}", "revoke_workspace_key"),
        ("post", "/v1/keys", "create_key"),
        ("get", "/v1/keys", "list_keys"),
        ("get", "/v1/keys/{id}", "get_key"),
        ("delete", "/v1/keys/{id}", "revoke_key"),
    ];
    for (method, path, id) in named {
        assert_eq!(doc["paths"][path][method]["operationId"], id, "{method} {path}");
    }
}

/// A path parameter is one its path names (`{name}`); a query filter is
/// documented in the query.
#[tokio::test]
async fn path_parameters_are_in_their_paths() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    for (method, path, op) in operations(&doc) {
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "path" {
                let name = p["name"].as_str().unwrap();
                assert!(
                    path.contains(&format!("{{{name}}}")),
                    "{method} {path}: path parameter {name} is not in the path"
                );
                assert_eq!(p["required"], true, "{method} {path}: {name}");
            }
        }
    }
    let erase = &doc["paths"]["/v1/contacts"]["delete"]["parameters"];
    let places: Vec<(&str, &str)> =
        erase.as_array().unwrap().iter().map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap())).collect();
    assert_eq!(places, [("email", "query"), ("mobile", "query"), ("external_id", "query"), ("erase", "query")]);
}

/// The schema `v` names, through `$ref`s.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => deref(doc, resolve(doc, r).unwrap_or_else(|| panic!("{r} does not resolve"))),
        None => v,
    }
}

/// An object schema's properties and required names, with `allOf` parts
/// merged and the first branch of an `anyOf` (a choice the body must
/// make) taken.
fn object_parts(doc: &Value, schema: &Value) -> (serde_json::Map<String, Value>, Vec<String>) {
    let schema = deref(doc, schema);
    let mut properties = schema["properties"].as_object().cloned().unwrap_or_default();
    let mut required: Vec<String> =
        schema["required"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_string()).collect();
    let parts =
        schema["allOf"].as_array().into_iter().flatten().chain(schema["anyOf"].as_array().and_then(|a| a.first()));
    for part in parts {
        let (more, needed) = object_parts(doc, part);
        for (k, v) in more {
            properties.entry(k).or_insert(v);
        }
        required.extend(needed.into_iter().filter(|n| !required.contains(n)).collect::<Vec<_>>());
    }
    (properties, required)
}

/// The request body schema of an operation.
fn body_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema = &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} has no JSON body");
    schema
}

/// The required properties of an operation's body.
fn required_of(doc: &Value, method: &str, path: &str) -> Vec<String> {
    let mut required = object_parts(doc, body_schema(doc, method, path)).1;
    required.sort();
    required
}

/// A value valid against `schema` with only what it requires: enums take
/// their first value; strings come from `samples` by property name (and
/// must match the schema's pattern and lengths); objects hold their
/// required properties.
fn minimal(doc: &Value, name: &str, schema: &Value, samples: &dyn Fn(&str) -> Value) -> Value {
    let schema = deref(doc, schema);
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    for choice in ["oneOf", "anyOf"] {
        if schema.get("allOf").is_none()
            && let Some(branches) = schema[choice].as_array()
        {
            let branch = branches.iter().find(|b| deref(doc, b)["type"] != "null").expect("a non-null branch");
            return minimal(doc, name, branch, samples);
        }
    }
    let kind = match &schema["type"] {
        Value::Array(types) => types.iter().find(|t| *t != "null").cloned().unwrap_or(Value::Null),
        Value::Null if schema.get("allOf").is_some() || schema.get("properties").is_some() => "object".into(),
        t => t.clone(),
    };
    match kind.as_str() {
        Some("object") => {
            let (properties, required) = object_parts(doc, schema);
            let mut out = serde_json::Map::new();
            for key in required {
                let property =
                    properties.get(&key).unwrap_or_else(|| panic!("{name}.{key} is required but undeclared"));
                out.insert(key.clone(), minimal(doc, &key, property, samples));
            }
            Value::Object(out)
        }
        Some("array") => {
            let n = schema["minItems"].as_u64().unwrap_or(0);
            Value::Array((0..n).map(|_| minimal(doc, name, &schema["items"], samples)).collect())
        }
        Some("string") => {
            let value = samples(name);
            let text = value.as_str().unwrap_or_else(|| panic!("no sample text for {name}"));
            let chars = text.chars().count() as u64;
            assert!(chars >= schema["minLength"].as_u64().unwrap_or(0), "{name}: {text:?} is too short for {schema}");
            assert!(chars <= schema["maxLength"].as_u64().unwrap_or(u64::MAX), "{name}: {text:?} is too long");
            if let Some(pattern) = schema["pattern"].as_str() {
                let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{name}: the pattern {pattern}: {e}"));
                assert!(re.is_match(text), "{name}: {text:?} does not match {pattern}");
            }
            value
        }
        Some("integer") | Some("number") => samples(name),
        Some("boolean") => Value::Bool(true),
        other => panic!("{name}: no minimal value for a schema of type {other:?}: {schema}"),
    }
}

/// Create operations declare what the server requires: their own schema
/// (a `PATCH` of the same resource requires nothing), the fields without
/// which the server refuses the body, and no others.
#[tokio::test]
async fn create_operations_declare_the_fields_the_server_requires() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("post", "/v1/workspaces", &["name"]),
        ("post", "/v1/workspaces/{ws}/service-accounts", &["name"]),
        ("post", "/v1/service-accounts", &["name"]),
        ("post", "/v1/workspaces/{ws}/keys", &["kind", "name"]),
        ("post", "/v1/keys", &["kind", "name"]),
        ("post", "/v1/users", &["email", "name"]),
        ("post", "/v1/workspaces/{ws}/users", &["email", "name"]),
        ("post", "/v1/companies", &["external_id"]),
        ("post", "/v1/reps", &["rep_id"]),
        ("post", "/v1/fields", &["name", "type"]),
        ("post", "/v1/conversations", &["contact_id"]),
        ("post", "/v1/conversations/{id}/messages", &["content"]),
        // An identity is one of four: the first of the choice.
        ("post", "/v1/identify", &["external_id"]),
        ("post", "/v1/track", &["event", "external_id"]),
        ("post", "/v1/batch", &["batch"]),
        // A contact may be created with nothing (and found later by id).
        ("post", "/v1/contacts", &[]),
    ];
    for (method, path, want) in cases {
        assert_eq!(required_of(&doc, method, path), *want, "{method} {path}");
    }
    for (create, update) in [
        ("/v1/users", "/v1/users/{id}"),
        ("/v1/companies", "/v1/companies/{id}"),
        ("/v1/reps", "/v1/reps/{id}"),
        ("/v1/service-accounts", "/v1/service-accounts/{id}"),
    ] {
        assert_ne!(body_schema(&doc, "post", create), body_schema(&doc, "patch", update), "{create}");
        assert_eq!(required_of(&doc, "patch", update), Vec::<String>::new(), "PATCH {update}");
    }
    // Bodies with unknown keys are refused, and the document says so.
    for path in ["/v1/users", "/v1/companies", "/v1/reps", "/v1/contacts", "/v1/conversations", "/v1/keys"] {
        let schema = deref(&doc, body_schema(&doc, "post", path));
        let closed = schema["additionalProperties"] == false
            || schema["allOf"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| deref(&doc, p)["additionalProperties"] == false));
        assert!(closed, "POST {path} does not say that unknown keys are refused: {schema}");
    }
    // Real enums, and no `null` where the server refuses it.
    let user = deref(&doc, body_schema(&doc, "post", "/v1/users"));
    assert_eq!(deref(&doc, &user["properties"]["role"])["enum"], serde_json::json!(["admin", "agent", "viewer"]));
    for key in ["name", "email", "role", "active", "password"] {
        let patch = deref(&doc, body_schema(&doc, "patch", "/v1/users/{id}"));
        let property = patch["properties"][key].to_string();
        assert!(!property.contains("null"), "PATCH /v1/users/{{id}}: {key} may not be null: {property}");
    }
    let scopes = &deref(&doc, body_schema(&doc, "post", "/v1/keys"))["properties"]["scopes"];
    assert!(scopes.to_string().contains("\"companies:*\""), "{scopes}");
}

/// A body made from a create operation's schema with only its required
/// fields is accepted by the server, for each create operation whose
/// server-side rules require fields.
#[tokio::test]
async fn a_body_of_only_the_required_fields_is_accepted() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let (ws, token) = app.full_key().await;
    let contact = app.contact(&token, serde_json::json!({"email": "someone@example.com"})).await;
    let contact_id = contact["id"].as_i64().unwrap();
    let (status, conversation) =
        app.post("/v1/conversations", &token, serde_json::json!({"contact_id": contact_id})).await;
    assert_eq!(status, 201, "{conversation}");
    let conversation = conversation["id"].as_str().unwrap().to_string();

    let cases: Vec<(&str, String, &str)> = vec![
        ("/v1/users", "/v1/users".into(), &token),
        ("/v1/workspaces/{ws}/users", format!("/v1/workspaces/{ws}/users"), crate::support::MASTER),
        ("/v1/companies", "/v1/companies".into(), &token),
        ("/v1/reps", "/v1/reps".into(), &token),
        ("/v1/identify", "/v1/identify".into(), &token),
        ("/v1/track", "/v1/track".into(), &token),
        ("/v1/batch", "/v1/batch".into(), &token),
        ("/v1/keys", "/v1/keys".into(), &token),
        ("/v1/workspaces/{ws}/keys", format!("/v1/workspaces/{ws}/keys"), crate::support::MASTER),
        ("/v1/service-accounts", "/v1/service-accounts".into(), &token),
        ("/v1/fields", "/v1/fields".into(), &token),
        ("/v1/conversations", "/v1/conversations".into(), &token),
        ("/v1/conversations/{id}/messages", format!("/v1/conversations/{conversation}/messages"), &token),
        ("/v1/workspaces", "/v1/workspaces".into(), crate::support::MASTER),
    ];
    for (n, (documented, path, token)) in cases.into_iter().enumerate() {
        let samples = |name: &str| -> Value {
            match name {
                "email" => format!("required-{n}@example.com").into(),
                "name" => format!("Required {n}").into(),
                "external_id" => format!("required-{n}").into(),
                "rep_id" => format!("rep-{n}").into(),
                "event" => "Signed Up".into(),
                "content" => "Hello".into(),
                "contact_id" => contact_id.into(),
                other => panic!("no sample for {other}"),
            }
        };
        let body = minimal(&doc, documented, body_schema(&doc, "post", documented), &samples);
        let (status, answer) = app.post(&path, token, body.clone()).await;
        assert!((200..300).contains(&status), "POST {path} with {body}: {status} {answer}");
    }
}

/// The error `code` of the native envelope and of the dialects that keep
/// convene's codes is documented as the enum of core's table — every name,
/// and only those — and every `$ref` in the document resolves.
#[tokio::test]
async fn error_codes_are_documented_from_the_core_table_and_every_ref_resolves() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        assert!(resolve(&doc, r).is_some(), "dangling reference {r}");
    }
    let code = deref(&doc, &doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]);
    let documented: BTreeSet<&str> =
        code["enum"].as_array().expect("an enum").iter().filter_map(Value::as_str).collect();
    let table: BTreeSet<&str> = convene_core::ErrorCode::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(documented, table);
    for schema in ["SegmentError", "ConverzErrorBody"] {
        let code = deref(&doc, &doc["components"]["schemas"][schema]["properties"]["code"]);
        assert_eq!(code["enum"].as_array().map(Vec::len), Some(table.len()), "{schema}");
    }
    // A real error carries one of them (here: no credentials).
    let r = app.req(Method::GET, "/v1/contacts/999999").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(documented.contains(body["error"]["code"].as_str().unwrap()));
}

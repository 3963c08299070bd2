//! The security matrix: every workspace route, native and dialect, with the
//! scope it needs, run without a key, with a malformed, unknown, expired and
//! revoked key, a key of another workspace and a key lacking the scope (each
//! answered 401/403/404 exactly, in the route's own envelope); workspace
//! isolation; and what an analytics key may do.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{MASTER, TestApp, assert_error, spawn_app};

const ALL_SCOPES: [&str; 12] = [
    "contacts:read",
    "contacts:write",
    "events:write",
    "events:read",
    "companies:read",
    "companies:write",
    "reps:read",
    "reps:write",
    "conversations:read",
    "conversations:write",
    "reports:read",
    "admin",
];

/// Whose envelope a route answers errors in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dialect {
    Native,
    Segment,
    ConveYour,
    Conversion,
    Convot,
    Converz,
}

/// Checks a refusal: its exact status and the route's own error envelope.
fn assert_refused(dialect: Dialect, status: u16, body: &Value, want: u16, what: &str) {
    assert_eq!(status, want, "{what}: {body}");
    let native_code = match want {
        401 => "unauthenticated",
        403 => "forbidden",
        _ => "not_found",
    };
    match dialect {
        Dialect::Native => {
            assert_error(status, body, want, native_code);
        }
        Dialect::Segment => {
            assert_eq!((&body["success"], &body["code"]), (&json!(false), &json!(native_code)), "{what}: {body}")
        }
        Dialect::ConveYour => assert_eq!(body["status"], "error", "{what}: {body}"),
        Dialect::Conversion => {
            let code = if want == 404 { "NOT_FOUND" } else { "UNAUTHORIZED" };
            assert_eq!((&body["success"], &body["error"]["code"]), (&json!(false), &json!(code)), "{what}: {body}")
        }
        Dialect::Convot => {
            let code = match want {
                401 => "unauthorized",
                403 => "forbidden",
                _ => "not_found",
            };
            assert_eq!(body["error"]["code"], code, "{what}: {body}")
        }
        Dialect::Converz => assert_eq!(body["error"]["code"], native_code, "{what}: {body}"),
    }
}

/// One row of the matrix: method, route (with `{contact}`, `{sa}`, `{key}`,
/// `{job}`, `{company}`, `{email}`, `{company_ext}`, … placeholders: see
/// [`fill`]), the scopes it accepts (any one suffices), and a valid body
/// for a caller holding a given scope.
struct Route {
    method: Method,
    route: &'static str,
    scopes: &'static [&'static str],
    body: Option<fn(usize, &str) -> Value>,
    /// Scopes needed besides one of `scopes`.
    also: &'static [&'static str],
    dialect: Dialect,
}

impl Route {
    /// True when the route names one object — in its path, or (the
    /// Conversion.ai subscription and engagement routes) an existing contact
    /// in its body: another workspace gets 404.
    fn names_an_object(&self) -> bool {
        const PLACEHOLDERS: [&str; 12] = [
            "{contact}",
            "{sa}",
            "{key}",
            "{job}",
            "{company}",
            "{user}",
            "{conversation}",
            "{rep}",
            "{email}",
            "{company_ext}",
            "{erasable}",
            "{suppressed}",
        ];
        PLACEHOLDERS.iter().any(|p| self.route.contains(p))
            || self.route.ends_with("/contacts/batch-subscription")
            || self.route.ends_with("/contacts/engagements")
    }
}

fn routes() -> Vec<Route> {
    let r = |method: Method,
             route: &'static str,
             scopes: &'static [&'static str],
             body: Option<fn(usize, &str) -> Value>| Route {
        method,
        route,
        scopes,
        body,
        also: &[],
        dialect: Dialect::Native,
    };
    let d =
        |dialect: Dialect,
         method: Method,
         route: &'static str,
         scopes: &'static [&'static str],
         body: Option<fn(usize, &str) -> Value>| Route { method, route, scopes, body, also: &[], dialect };
    let mut all = native_routes(r);
    all.extend(dialect_routes(d));
    all
}

type NativeRow = fn(Method, &'static str, &'static [&'static str], Option<fn(usize, &str) -> Value>) -> Route;
type DialectRow = fn(Dialect, Method, &'static str, &'static [&'static str], Option<fn(usize, &str) -> Value>) -> Route;

fn dialect_routes(d: DialectRow) -> Vec<Route> {
    use Dialect::*;
    const W: &[&str] = &["contacts:write"];
    const E: &[&str] = &["events:write"];
    vec![
        d(Segment, Method::POST, "/compat/segment/v1/identify", W, Some(|n, _| json!({"userId": format!("s{n}")}))),
        d(
            Segment,
            Method::POST,
            "/compat/segment/v1/track",
            E,
            Some(|n, _| json!({"userId": format!("s{n}"), "event": "E"})),
        ),
        d(
            Segment,
            Method::POST,
            "/compat/segment/v1/page",
            E,
            Some(|n, _| json!({"userId": format!("s{n}"), "name": "Home"})),
        ),
        d(
            Segment,
            Method::POST,
            "/compat/segment/v1/screen",
            E,
            Some(|n, _| json!({"userId": format!("s{n}"), "name": "Main"})),
        ),
        d(
            Segment,
            Method::POST,
            "/compat/segment/v1/group",
            W,
            Some(|n, _| json!({"userId": format!("s{n}"), "groupId": "g1"})),
        ),
        d(
            Segment,
            Method::POST,
            "/compat/segment/v1/alias",
            W,
            Some(|n, _| json!({"userId": format!("s{n}"), "previousId": format!("p{n}")})),
        ),
        d(
            Segment,
            Method::POST,
            "/compat/segment/v1/batch",
            W,
            Some(|n, _| json!({"batch": [{"type": "identify", "userId": format!("s{n}")}]})),
        ),
        d(
            Segment,
            Method::POST,
            "/compat/segment/v1/import",
            W,
            Some(|n, _| json!({"batch": [{"type": "identify", "userId": format!("s{n}")}]})),
        ),
        d(
            ConveYour,
            Method::POST,
            "/compat/conveyour/api/analytics/identify",
            W,
            Some(|n, _| json!({"id": format!("cy{n}@example.com")})),
        ),
        d(
            ConveYour,
            Method::POST,
            "/compat/conveyour/api/analytics/track",
            E,
            Some(|n, _| json!({"id": format!("cy{n}@example.com"), "events": [{"event": "opened"}]})),
        ),
        d(
            Conversion,
            Method::POST,
            "/compat/conversion/api/v1/contacts/batch",
            W,
            Some(|n, _| json!({"contacts": [{"email": format!("cb{n}@example.com")}]})),
        ),
        d(Conversion, Method::GET, "/compat/conversion/api/v1/contacts/by-email/{email}", &["contacts:read"], None),
        d(Conversion, Method::DELETE, "/compat/conversion/api/v1/contacts/by-email/{email}", W, None),
        d(
            Conversion,
            Method::POST,
            "/compat/conversion/api/v1/contacts/batch-subscription",
            W,
            Some(
                |n, _| json!({"contacts": [{"email": format!("cs{n}@example.com"), "subscriptionStatus": "UNSUBSCRIBED"}]}),
            ),
        ),
        d(
            Conversion,
            Method::POST,
            "/compat/conversion/api/v1/contacts/engagements",
            E,
            Some(
                |n, _| json!({"contactEmail": format!("ce{n}@example.com"), "type": "ACTIVITY", "name": "Demo", "description": "d"}),
            ),
        ),
        d(
            Conversion,
            Method::POST,
            "/compat/conversion/api/v1/companies/batch",
            &["companies:write"],
            Some(|n, _| json!({"companies": [{"id": format!("cc{n}")}]})),
        ),
        d(
            Conversion,
            Method::GET,
            "/compat/conversion/api/v1/companies/by-external-id/{company_ext}",
            &["companies:read"],
            None,
        ),
        d(
            Conversion,
            Method::DELETE,
            "/compat/conversion/api/v1/companies/by-external-id/{company_ext}",
            &["companies:write"],
            None,
        ),
        d(
            Convot,
            Method::POST,
            "/compat/convot/v1/contacts",
            W,
            Some(|n, _| json!({"email": format!("cv{n}@example.com")})),
        ),
        d(Convot, Method::GET, "/compat/convot/v1/conversations", &["conversations:read"], None),
        d(
            Convot,
            Method::POST,
            "/compat/convot/v1/conversations",
            &["conversations:write"],
            Some(|n, _| json!({"email": format!("cv{n}@example.com"), "content": "Hi"})),
        ),
        d(Convot, Method::GET, "/compat/convot/v1/conversations/{conversation}", &["conversations:read"], None),
        d(
            Convot,
            Method::PATCH,
            "/compat/convot/v1/conversations/{conversation}",
            &["conversations:write"],
            Some(|_, _| json!({"status": "resolved"})),
        ),
        d(
            Convot,
            Method::GET,
            "/compat/convot/v1/conversations/{conversation}/messages",
            &["conversations:read"],
            None,
        ),
        d(
            Convot,
            Method::POST,
            "/compat/convot/v1/conversations/{conversation}/messages",
            &["conversations:write"],
            Some(|n, _| json!({"content": format!("hello {n}")})),
        ),
        d(Converz, Method::GET, "/compat/converz/api/v1/reps", &["reps:read"], None),
        d(
            Converz,
            Method::POST,
            "/compat/converz/api/v1/reps",
            &["reps:write"],
            Some(|n, _| json!([{"rep_id": format!("zr{n}")}])),
        ),
        d(Converz, Method::GET, "/compat/converz/api/v1/calls", &["conversations:read"], None),
        d(
            Converz,
            Method::POST,
            "/compat/converz/api/v1/calls",
            &["conversations:write"],
            Some(
                |n, _| json!([{"call_id": format!("zc{n}"), "start_time": "2026-03-02T10:00:00Z", "duration": 60, "email": format!("zc{n}@example.com")}]),
            ),
        ),
        d(Converz, Method::GET, "/compat/converz/api/v1/report?metrics=calls", &["reports:read"], None),
    ]
}

fn native_routes(r: NativeRow) -> Vec<Route> {
    vec![
        r(Method::GET, "/v1/contacts", &["contacts:read"], None),
        r(
            Method::POST,
            "/v1/contacts",
            &["contacts:write"],
            Some(|n, _| json!({"email": format!("new{n}@example.com")})),
        ),
        r(Method::GET, "/v1/contacts/{contact}", &["contacts:read"], None),
        r(Method::PATCH, "/v1/contacts/{contact}", &["contacts:write"], Some(|n, _| json!({"traits": {"n": n}}))),
        r(Method::DELETE, "/v1/contacts/{contact}", &["contacts:write"], None),
        r(Method::GET, "/v1/fields", &["contacts:read"], None),
        r(
            Method::POST,
            "/v1/fields",
            &["contacts:write"],
            Some(|n, _| json!({"name": format!("field_{n}"), "type": "text"})),
        ),
        r(Method::GET, "/v1/service-accounts", &["admin"], None),
        r(
            Method::POST,
            "/v1/service-accounts",
            &["admin"],
            // An admin key grants only what it holds.
            Some(|n, _| json!({"name": format!("sa {n}"), "scopes": ["admin"]})),
        ),
        r(Method::GET, "/v1/service-accounts/{sa}", &["admin"], None),
        r(
            Method::PATCH,
            "/v1/service-accounts/{sa}",
            &["admin"],
            Some(|n, _| json!({"description": format!("changed {n}")})),
        ),
        r(Method::GET, "/v1/keys", &["admin"], None),
        r(
            Method::POST,
            "/v1/keys",
            &["admin"],
            Some(|n, _| json!({"name": format!("key {n}"), "kind": "full", "scopes": ["admin"]})),
        ),
        r(Method::GET, "/v1/keys/{key}", &["admin"], None),
        r(Method::DELETE, "/v1/keys/{key}", &["admin"], None),
        r(
            Method::POST,
            "/v1/identify",
            &["contacts:write"],
            Some(|n, _| json!({"external_id": format!("x{n}"), "traits": {"n": n}})),
        ),
        r(
            Method::POST,
            "/v1/track",
            &["events:write"],
            Some(|n, _| json!({"external_id": format!("x{n}"), "event": "Signed Up"})),
        ),
        r(
            Method::POST,
            "/v1/batch",
            &["contacts:write", "events:write"],
            Some(|n, scope| match scope {
                "events:write" => {
                    json!({"batch": [{"type": "track", "external_id": format!("x{n}"), "event": "Clicked"}]})
                }
                _ => json!({"batch": [{"type": "identify", "external_id": format!("x{n}")}]}),
            }),
        ),
        r(Method::GET, "/v1/jobs/{job}", &["contacts:write", "events:write"], None),
        r(Method::GET, "/v1/events", &["events:read"], None),
        r(Method::GET, "/v1/contacts/{contact}/events", &["events:read"], None),
        r(Method::GET, "/v1/contacts/{contact}/subscription-history", &["contacts:read"], None),
        r(
            Method::POST,
            "/v1/contacts/batch",
            &["contacts:write"],
            Some(|n, _| json!({"contacts": [{"email": format!("batch{n}@example.com")}]})),
        ),
        r(
            Method::POST,
            "/v1/imports?entity=contacts",
            &["contacts:write"],
            Some(|n, _| json!([{"email": format!("import{n}@example.com")}])),
        ),
        r(Method::GET, "/v1/companies", &["companies:read"], None),
        r(Method::POST, "/v1/companies", &["companies:write"], Some(|n, _| json!({"external_id": format!("co{n}")}))),
        r(Method::GET, "/v1/companies/{company}", &["companies:read"], None),
        r(Method::PATCH, "/v1/companies/{company}", &["companies:write"], Some(|n, _| json!({"traits": {"n": n}}))),
        r(Method::DELETE, "/v1/companies/{company}", &["companies:write"], None),
        r(Method::GET, "/v1/companies/{company}/contacts", &["contacts:read"], None),
        r(
            Method::POST,
            "/v1/companies/batch",
            &["companies:write"],
            Some(|n, _| json!({"companies": [{"external_id": format!("batch{n}")}]})),
        ),
        r(Method::GET, "/v1/users", &["admin"], None),
        r(
            Method::POST,
            "/v1/users",
            &["admin"],
            Some(|n, _| json!({"name": "U", "email": format!("u{n}@example.com")})),
        ),
        r(Method::GET, "/v1/users/{user}", &["admin"], None),
        r(Method::PATCH, "/v1/users/{user}", &["admin"], Some(|_, _| json!({"role": "viewer"}))),
        r(Method::GET, "/v1/conversations", &["conversations:read"], None),
        r(Method::POST, "/v1/conversations", &["conversations:write"], Some(|_, _| json!({"contact_id": 1}))),
        r(Method::GET, "/v1/conversations/{conversation}", &["conversations:read"], None),
        r(
            Method::PATCH,
            "/v1/conversations/{conversation}",
            &["conversations:write"],
            Some(|_, _| json!({"status": "pending"})),
        ),
        r(Method::GET, "/v1/conversations/{conversation}/messages", &["conversations:read"], None),
        r(
            Method::POST,
            "/v1/conversations/{conversation}/messages",
            &["conversations:write"],
            Some(|n, _| json!({"content": format!("hello {n}")})),
        ),
        r(Method::GET, "/v1/reps", &["reps:read"], None),
        r(Method::POST, "/v1/reps", &["reps:write"], Some(|n, _| json!({"rep_id": format!("new{n}")}))),
        r(Method::GET, "/v1/reps/{rep}", &["reps:read"], None),
        r(Method::PATCH, "/v1/reps/{rep}", &["reps:write"], Some(|_, _| json!({"department": "sales"}))),
        r(Method::DELETE, "/v1/reps/{rep}", &["reps:write"], None),
        r(Method::GET, "/v1/reports", &["reports:read"], None),
        r(Method::DELETE, "/v1/contacts?email={erasable}&erase=true", &["contacts:write"], None),
        r(Method::GET, "/v1/erasures", &["admin"], None),
        r(Method::DELETE, "/v1/suppressions?email={suppressed}", &["admin"], None),
        // One entity stands for all six (each one's scope: tests/it/exports.rs).
        r(Method::GET, "/v1/exports/{entity}", &["contacts:read"], None),
        Route {
            method: Method::GET,
            route: "/v1/contacts/{contact}/timeline",
            scopes: &["conversations:read"],
            body: None,
            also: &["events:read"],
            dialect: Dialect::Native,
        },
    ]
}

/// Fresh objects for a route's placeholders, created with the full key.
async fn fill(app: &TestApp, ws: &str, full: &str, route: &str, n: usize) -> String {
    let mut path = route.to_string();
    if path.contains("{contact}") {
        let contact = app.contact(full, json!({"email": format!("fixture{n}@example.com")})).await;
        path = path.replace("{contact}", &contact["id"].to_string());
    }
    if path.contains("{user}") {
        let (status, user) =
            app.post("/v1/users", full, json!({"name": "F", "email": format!("fixture{n}@example.com")})).await;
        assert_eq!(status, 201, "{user}");
        path = path.replace("{user}", &user["id"].to_string());
    }
    if path.contains("{conversation}") {
        let contact = app.contact(full, json!({"email": format!("conv{n}@example.com")})).await;
        let (status, conv) = app.post("/v1/conversations", full, json!({"contact_id": contact["id"]})).await;
        assert_eq!(status, 201, "{conv}");
        path = path.replace("{conversation}", conv["id"].as_str().unwrap());
    }
    if path.contains("{company}") {
        let (status, company) = app.post("/v1/companies", full, json!({"external_id": format!("fixture{n}")})).await;
        assert_eq!(status, 201, "{company}");
        path = path.replace("{company}", &company["id"].to_string());
    }
    if path.contains("{rep}") {
        let (status, rep) = app.post("/v1/reps", full, json!({"rep_id": format!("fixture{n}")})).await;
        assert_eq!(status, 201, "{rep}");
        path = path.replace("{rep}", rep["rep_id"].as_str().unwrap());
    }
    path = path.replace("{entity}", "contacts");
    if path.contains("{email}") {
        let email = format!("fixture-email{n}@example.com");
        app.contact(full, json!({"email": email})).await;
        path = path.replace("{email}", &email);
    }
    if path.ends_with("/contacts/batch-subscription") {
        // A subscription change is for an existing contact (the body names cs{n}@).
        app.contact(full, json!({"email": format!("cs{n}@example.com")})).await;
    }
    if path.ends_with("/contacts/engagements") {
        // So is an engagement (the body names ce{n}@).
        app.contact(full, json!({"email": format!("ce{n}@example.com")})).await;
    }
    if path.contains("{company_ext}") {
        let external_id = format!("fixture-ext{n}");
        let (status, company) = app.post("/v1/companies", full, json!({"external_id": external_id})).await;
        assert_eq!(status, 201, "{company}");
        path = path.replace("{company_ext}", &external_id);
    }
    if path.contains("{erasable}") {
        let email = format!("erasable{n}@example.com");
        app.contact(full, json!({"email": email})).await;
        path = path.replace("{erasable}", &email);
    }
    if path.contains("{suppressed}") {
        let email = format!("suppressed{n}@example.com");
        app.contact(full, json!({"email": email})).await;
        let (status, body) = app.delete(&format!("/v1/contacts?email={email}&erase=true"), full).await;
        assert_eq!(status, 200, "{body}");
        path = path.replace("{suppressed}", &email);
    }
    if path.contains("{sa}") {
        let (status, sa) = app.post("/v1/service-accounts", full, json!({"name": format!("fixture {n}")})).await;
        assert_eq!(status, 201, "{sa}");
        path = path.replace("{sa}", sa["id"].as_str().unwrap());
    }
    if path.contains("{key}") {
        let key = app.key(ws, json!({"name": format!("fixture {n}"), "kind": "full"})).await;
        path = path.replace("{key}", key["id"].as_str().unwrap());
    }
    if path.contains("{job}") {
        let (status, job) = app.post("/v1/identify", full, json!({"external_id": format!("fixture{n}")})).await;
        assert_eq!(status, 202, "{job}");
        path = path.replace("{job}", job["job_id"].as_str().unwrap());
    }
    path
}

#[tokio::test]
async fn every_route_requires_its_scope() {
    let app = spawn_app().await;
    let (ws, full) = app.full_key().await;
    let mut n = 0;
    for route in routes() {
        let lacking: Vec<&str> = ALL_SCOPES.iter().copied().filter(|s| !route.scopes.contains(s)).collect();
        let lacking = app.key_with_scopes(&ws, &lacking).await;
        let what = format!("{} {}", route.method, route.route);

        n += 1;
        let path = fill(&app, &ws, &full, route.route, n).await;
        let body = route.body.map(|b| b(n, route.scopes[0]));
        let (status, resp) = app.call(route.method.clone(), &path, None, body.as_ref()).await;
        assert_refused(route.dialect, status, &resp, 401, &format!("{what} without a key"));

        n += 1;
        let path = fill(&app, &ws, &full, route.route, n).await;
        let body = route.body.map(|b| b(n, route.scopes[0]));
        let (status, resp) = app.call(route.method.clone(), &path, Some(&lacking), body.as_ref()).await;
        assert_refused(route.dialect, status, &resp, 403, &format!("{what} lacking {:?}", route.scopes));
        assert!(resp.to_string().contains(route.scopes[0]), "{what}: the refusal names the scope: {resp}");

        for scope in route.scopes {
            let mut needed = vec![*scope];
            needed.extend(route.also);
            let exact = app.key_with_scopes(&ws, &needed).await;
            n += 1;
            let path = fill(&app, &ws, &full, route.route, n).await;
            let body = route.body.map(|b| b(n, scope));
            let (status, resp) = app.call(route.method.clone(), &path, Some(&exact), body.as_ref()).await;
            assert!((200..300).contains(&status), "{what} with exactly {scope}: {status} {resp}");
        }
    }
}

/// A path with every `{placeholder}` written `{id}` and no query string.
fn generic_path(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let mut out = String::with_capacity(path.len());
    let mut in_braces = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_braces = true;
                out.push_str("{id}");
            }
            '}' => in_braces = false,
            _ if in_braces => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn the_matrix_lists_every_workspace_route() {
    // Every /v1 route that is not the operator's, and every dialect route,
    // appears in the matrix above.
    let app = spawn_app().await;
    let (status, doc) = app.get("/openapi.json", MASTER).await;
    assert_eq!(status, 200);
    let mut documented: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let workspace_route = path.starts_with("/v1/") && !path.starts_with("/v1/workspaces");
        if !workspace_route && !path.starts_with("/compat/") {
            continue;
        }
        for method in ["get", "post", "patch", "put", "delete"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {}", method.to_uppercase(), generic_path(path)));
            }
        }
    }
    let mut tested: Vec<String> = routes().iter().map(|r| format!("{} {}", r.method, generic_path(r.route))).collect();
    documented.sort();
    tested.sort();
    assert_eq!(documented, tested);
}

/// Every route refuses a caller who is not one of its workspace's keys:
/// 401 for a malformed, an unknown, an expired and a revoked key; 404 for a
/// key of another workspace on a route naming an object (lists and creations
/// are that workspace's own and never show this one's objects).
#[tokio::test]
async fn every_route_refuses_bad_credentials() {
    // Hundreds of failed authentications from one address: the per-address
    // limit (tests/it/ratelimit.rs) is raised so that each is answered as such.
    let dir = tempfile::tempdir().unwrap();
    let mut config = convene::config::ServeConfig::for_tests(dir.path(), MASTER);
    config.rate_limits.failed_auth = convene_core::ratelimit::Quota { per_second: 1000.0, burst: 100_000 };
    let app = crate::support::spawn_app_with(config, dir).await;
    let (ws, full) = app.full_key().await;
    let (_, other) = app.full_key().await;
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let expiring = app.key(&ws, json!({"name": "expiring", "kind": "full", "expires_at": expires.to_rfc3339()})).await;
    let revoked = app.key(&ws, json!({"name": "revoked", "kind": "full"})).await;
    let (status, body) =
        app.delete(&format!("/v1/workspaces/{ws}/keys/{}", revoked["id"].as_str().unwrap()), MASTER).await;
    assert_eq!(status, 200, "{body}");
    let unknown = convene_core::token::mint().token;
    let wait = (expires - chrono::Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_millis(100);
    tokio::time::sleep(wait).await;

    let mut n = 10_000;
    for route in routes() {
        let what = format!("{} {}", route.method, route.route);
        for (label, token) in [
            ("a malformed key", "not-a-convene-key"),
            ("an unknown key", unknown.as_str()),
            ("an expired key", expiring["token"].as_str().unwrap()),
            ("a revoked key", revoked["token"].as_str().unwrap()),
        ] {
            n += 1;
            let path = fill(&app, &ws, &full, route.route, n).await;
            let body = route.body.map(|b| b(n, route.scopes[0]));
            let (status, resp) = app.call(route.method.clone(), &path, Some(token), body.as_ref()).await;
            assert_refused(route.dialect, status, &resp, 401, &format!("{what} with {label}"));
        }
        n += 1;
        let path = fill(&app, &ws, &full, route.route, n).await;
        let body = route.body.map(|b| b(n, route.scopes[0]));
        let (status, resp) = app.call(route.method.clone(), &path, Some(&other), body.as_ref()).await;
        if route.names_an_object() {
            assert_refused(route.dialect, status, &resp, 404, &format!("{what} with another workspace's key"));
        } else {
            assert!((200..300).contains(&status), "{what} with another workspace's key acts there: {status} {resp}");
            let marker = format!("fixture{n}");
            assert!(!resp.to_string().contains(&marker), "{what}: another workspace sees {marker}: {resp}");
        }
    }
}

#[tokio::test]
async fn another_workspace_sees_nothing() {
    let app = spawn_app().await;
    let (ws_a, key_a) = app.full_key().await;
    let (_, key_b) = app.full_key().await;

    let contact = app
        .contact(&key_a, json!({"email": "ann@example.com", "mobile": "+15550100000", "external_id": "a-1", "traits": {"plan": "pro", "tags": ["vip"]}}))
        .await;
    let (status, sa) =
        app.post("/v1/service-accounts", &key_a, json!({"name": "bot", "scopes": ["contacts:read"]})).await;
    assert_eq!(status, 201);
    let victim = app.key(&ws_a, json!({"name": "victim", "kind": "full"})).await;
    let (status, job) = app.post("/v1/identify", &key_a, json!({"external_id": "a-2"})).await;
    assert_eq!(status, 202, "{job}");
    let (cid, sa_id, key_id) = (contact["id"].to_string(), sa["id"].as_str().unwrap(), victim["id"].as_str().unwrap());
    let job_id = job["job_id"].as_str().unwrap();

    for (method, path, body) in [
        (Method::GET, format!("/v1/contacts/{cid}"), None),
        (Method::GET, format!("/v1/contacts/{cid}/events"), None),
        (Method::GET, format!("/v1/jobs/{job_id}"), None),
        (
            Method::PATCH,
            format!("/v1/contacts/{cid}"),
            Some(json!({"email": "mallory@example.com", "traits": {"plan": "free"}})),
        ),
        (Method::DELETE, format!("/v1/contacts/{cid}"), None),
        (Method::GET, format!("/v1/service-accounts/{sa_id}"), None),
        (Method::PATCH, format!("/v1/service-accounts/{sa_id}"), Some(json!({"name": "owned", "scopes": ["admin"]}))),
        (Method::GET, format!("/v1/keys/{key_id}"), None),
        (Method::DELETE, format!("/v1/keys/{key_id}"), None),
    ] {
        let (status, err) = app.call(method.clone(), &path, Some(&key_b), body.as_ref()).await;
        assert_eq!(status, 404, "{method} {path}: {err}");
        assert_error(status, &err, 404, "not_found");
    }

    // Lists and filters of B do not show A's objects.
    for path in [
        "/v1/contacts",
        "/v1/contacts?email=ann@example.com",
        "/v1/contacts?external_id=a-1",
        "/v1/service-accounts",
        "/v1/events",
    ] {
        let (status, list) = app.get(path, &key_b).await;
        assert_eq!(status, 200, "{path}: {list}");
        assert_eq!(list["data"], json!([]), "{path}");
    }
    let (_, keys) = app.get("/v1/keys", &key_b).await;
    assert!(keys["data"].as_array().unwrap().iter().all(|k| k["id"] != victim["id"]));
    let (_, fields) = app.get("/v1/fields", &key_b).await;
    assert!(
        fields["data"].as_array().unwrap().iter().all(|f| f["name"] != "plan"),
        "A's inferred field is A's: {fields}"
    );

    // B may hold the same identities: they are unique per workspace.
    app.contact(&key_b, json!({"email": "ann@example.com", "mobile": "+15550100000", "external_id": "a-1"})).await;

    // A's objects are unchanged.
    assert_eq!(app.get(&format!("/v1/contacts/{cid}"), &key_a).await, (200, contact));
    assert_eq!(app.get(&format!("/v1/service-accounts/{sa_id}"), &key_a).await, (200, sa));
    let (status, victim_now) = app.get(&format!("/v1/keys/{key_id}"), &key_a).await;
    assert_eq!((status, &victim_now["status"]), (200, &json!("active")));
    assert_eq!(app.get("/v1/contacts", victim["token"].as_str().unwrap()).await.0, 200);
}

#[tokio::test]
async fn an_analytics_key_writes_but_never_reads() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let analytics = app.key(&ws, json!({"name": "segment", "kind": "analytics"})).await;
    let token = analytics["token"].as_str().unwrap();

    let contact = app.contact(token, json!({"email": "ann@example.com", "traits": {"plan": "free"}})).await;
    let id = contact["id"].as_i64().unwrap();
    let (status, changed) = app.patch(&format!("/v1/contacts/{id}"), token, json!({"traits": {"plan": "pro"}})).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["traits"]["plan"], "pro");

    for path in [
        "/v1/contacts".to_string(),
        format!("/v1/contacts/{id}"),
        "/v1/fields".into(),
        "/v1/keys".into(),
        "/v1/service-accounts".into(),
    ] {
        let (status, err) = app.get(&path, token).await;
        assert_error(status, &err, 403, "forbidden");
    }
}

/// Server-owned fields sent by a client — `id`, `workspace_id`,
/// `created_at`, `updated_at`, a message's sender, a key's scopes beyond the
/// caller's — are ignored or refused on every create route, and what is
/// stored (read back through the API, from both workspaces) is the
/// server's.
#[tokio::test]
async fn server_owned_fields_are_ignored_or_refused() {
    let app = spawn_app().await;
    let (ws, full) = app.full_key().await;
    let (other_ws, other) = app.full_key().await;
    let contact = app.contact(&full, json!({"email": "owner@example.com"})).await;
    let (status, conversation) = app.post("/v1/conversations", &full, json!({"contact_id": contact["id"]})).await;
    assert_eq!(status, 201, "{conversation}");
    let conversation = conversation["id"].as_str().unwrap().to_string();
    let owned = json!({"id": 999_999, "workspace_id": other_ws, "created_at": "1999-01-01T00:00:00Z",
                       "updated_at": "1999-01-01T00:00:00Z"});
    let with_owned = |body: Value| {
        let mut body = body;
        for (k, v) in owned.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (create, body, read) in [
        ("/v1/contacts", json!({"email": "new@example.com"}), "/v1/contacts/{id}"),
        ("/v1/companies", json!({"external_id": "acme"}), "/v1/companies/{id}"),
        ("/v1/reps", json!({"rep_id": "r1"}), "/v1/reps/{rep_id}"),
        ("/v1/users", json!({"name": "U", "email": "u@example.com"}), "/v1/users/{id}"),
        ("/v1/conversations", json!({"contact_id": contact["id"]}), "/v1/conversations/{id}"),
        ("/v1/service-accounts", json!({"name": "bot"}), "/v1/service-accounts/{id}"),
        (
            &format!("/v1/conversations/{conversation}/messages"),
            json!({"content": "hi", "sender": {"type": "user", "id": 1}}),
            "",
        ),
    ] {
        let (status, created) = app.post(create, &full, with_owned(body)).await;
        if status == 400 {
            // Refused whole: nothing was written.
            assert!(created["error"]["field"].is_string(), "{create}: a refusal names the field: {created}");
            continue;
        }
        assert!((200..300).contains(&status), "{create}: {status} {created}");
        assert_ne!(created["id"], 999_999, "{create}: {created}");
        assert_ne!(created["created_at"], "1999-01-01T00:00:00Z", "{create}: {created}");
        assert_ne!(created["updated_at"], "1999-01-01T00:00:00Z", "{create}: {created}");
        if created.get("workspace_id").is_some() {
            assert_eq!(created["workspace_id"], ws.as_str(), "{create}: {created}");
        }
        if create.ends_with("/messages") {
            assert_ne!(created["sender"]["type"], "user", "{create}: the sender is the caller: {created}");
            continue;
        }
        let id = created["id"].to_string().trim_matches('"').to_string();
        let rep_id = created["rep_id"].as_str().unwrap_or_default();
        let read = read.replace("{id}", &id).replace("{rep_id}", rep_id);
        let (status, stored) = app.get(&read, &full).await;
        assert_eq!(status, 200, "{read}: {stored}");
        assert_eq!(stored["created_at"], created["created_at"], "{read}: stored as answered");
        let (status, _) = app.get(&read, &other).await;
        assert_eq!(status, 404, "{read}: the other workspace named in the body does not hold it");
    }

    // A key's scopes are the caller's to give only within its own.
    let limited = app.key_with_scopes(&ws, &["admin", "contacts:read"]).await;
    let (status, err) =
        app.post("/v1/keys", &limited, json!({"name": "up", "kind": "full", "scopes": ["contacts:write"]})).await;
    assert_eq!(status, 403, "a key cannot grant a scope it lacks: {err}");
    let (status, created) = app
        .post("/v1/keys", &limited, json!({"name": "k", "kind": "full", "scopes": ["contacts:read"], "id": "key_x",
                                          "workspace_id": other_ws, "status": "active", "created_at": "1999-01-01T00:00:00Z"}))
        .await;
    if status != 400 {
        assert_eq!(status, 201, "{created}");
        assert_ne!(created["id"], "key_x");
        assert_eq!(created["scopes"], json!(["contacts:read"]));
        let (status, _) =
            app.get(&format!("/v1/workspaces/{other_ws}/keys/{}", created["id"].as_str().unwrap()), MASTER).await;
        assert_eq!(status, 404, "the key is not in the workspace the body named");
    }
}

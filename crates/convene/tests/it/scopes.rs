//! Authorization: the scope of every native workspace route, workspace
//! isolation, and what an analytics key may do.

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

/// One row of the matrix: method, route (with `{contact}`, `{sa}`, `{key}`,
/// `{job}` or `{company}` placeholders), the scopes it accepts (any one suffices), and a
/// valid body for a caller holding a given scope.
struct Route {
    method: Method,
    route: &'static str,
    scopes: &'static [&'static str],
    body: Option<fn(usize, &str) -> Value>,
    /// Scopes needed besides one of `scopes`.
    also: &'static [&'static str],
}

fn routes() -> Vec<Route> {
    let r = |method: Method,
             route: &'static str,
             scopes: &'static [&'static str],
             body: Option<fn(usize, &str) -> Value>| Route { method, route, scopes, body, also: &[] };
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
        assert_eq!(status, 401, "{what} without a key: {resp}");
        assert_error(status, &resp, 401, "unauthenticated");

        n += 1;
        let path = fill(&app, &ws, &full, route.route, n).await;
        let body = route.body.map(|b| b(n, route.scopes[0]));
        let (status, resp) = app.call(route.method.clone(), &path, Some(&lacking), body.as_ref()).await;
        assert_eq!(status, 403, "{what} lacking {:?}: {resp}", route.scopes);
        let error = assert_error(status, &resp, 403, "forbidden");
        assert!(error["message"].as_str().unwrap().contains(route.scopes[0]), "{what}: {error}");

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

#[tokio::test]
async fn the_matrix_lists_every_native_workspace_route() {
    // Every /v1 route that is not the operator's appears in the matrix above.
    let app = spawn_app().await;
    let (status, doc) = app.get("/openapi.json", MASTER).await;
    assert_eq!(status, 200);
    let mut documented: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") || path.starts_with("/v1/workspaces") {
            continue;
        }
        for method in ["get", "post", "patch", "put", "delete"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let mut tested: Vec<String> = routes()
        .iter()
        .map(|r| {
            let path = ["{contact}", "{sa}", "{key}", "{job}", "{company}", "{user}", "{conversation}", "{rep}"]
                .iter()
                .fold(r.route.split('?').next().unwrap_or(r.route).to_string(), |p, placeholder| {
                    p.replace(placeholder, "{id}")
                });
            format!("{} {path}", r.method)
        })
        .collect();
    documented.sort();
    tested.sort();
    assert_eq!(documented, tested);
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

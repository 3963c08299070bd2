//! The web console over HTTP: login (cookies, CSRF, rate limit), roles
//! enforced on the server for pages and posted forms, the token shown once,
//! security headers, logout, and `convene users create`.

use reqwest::{Client, Method, StatusCode, redirect};
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

/// A client that does not follow redirects (the tests look at them).
fn browser() -> Client {
    Client::builder().redirect(redirect::Policy::none()).build().expect("client")
}

/// The value of `name=` in a response's `Set-Cookie` headers.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The hidden `_csrf` value of the first form of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a csrf field") + "name=\"_csrf\" value=\"".len();
    html[at..].split('"').next().expect("value").to_string()
}

/// A user of `ws` with `role` and a password, made with the master key.
async fn user(app: &TestApp, ws: &str, email: &str, role: &str) -> Value {
    let body = json!({"name": email, "email": email, "role": role, "password": "correct horse battery"});
    let r = app.master(Method::POST, &format!("/v1/workspaces/{ws}/users")).json(&body).send().await.expect("send");
    assert_eq!(r.status(), 201);
    r.json().await.expect("json")
}

/// A logged-in console session.
pub struct Session {
    client: Client,
    base: String,
    /// `convene_session=…`
    cookie: String,
}

impl Session {
    /// Logs in through the form; panics unless it succeeds.
    pub async fn login(app: &TestApp, email: &str, password: &str) -> Session {
        let (status, r) = attempt(app, email, password, &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "login of {email}");
        let cookie = set_cookie(&r, "convene_session").expect("a session cookie");
        let cookie = cookie.split(';').next().expect("pair").to_string();
        Session { client: browser(), base: app.url(""), cookie }
    }

    /// GET a console path: status and body.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let r =
            self.client.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await.expect("get");
        (r.status(), r.text().await.expect("text"))
    }

    /// POST a form (the CSRF token taken from `from`'s page unless given).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> reqwest::Response {
        let token = match csrf {
            Some(t) => t.to_string(),
            None => csrf_of(&self.get("/console/contacts").await.1),
        };
        let mut form: Vec<(&str, &str)> = vec![("_csrf", &token)];
        form.extend_from_slice(fields);
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .expect("post")
    }
}

/// One login attempt: status and response.
async fn attempt(
    app: &TestApp,
    email: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::Response) {
    let client = browser();
    let page = client.get(app.url("/console/login")).send().await.expect("login page");
    assert_eq!(page.status(), 200);
    let csrf_cookie = set_cookie(&page, "convene_login_csrf").expect("login csrf cookie");
    let pair = csrf_cookie.split(';').next().expect("pair").to_string();
    let html = page.text().await.expect("html");
    let token = csrf_of(&html);
    let mut req = client.post(app.url("/console/login")).header("cookie", pair).form(&[
        ("_csrf", token.as_str()),
        ("email", email),
        ("password", password),
        ("next", "/console/contacts"),
    ]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("login post");
    (r.status(), r)
}

#[tokio::test]
async fn login_sets_a_strict_cookie_and_wrong_passwords_are_refused() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let created = user(&app, &ws, "ada@example.com", "admin").await;
    assert!(created.get("password").is_none(), "the password is never returned");
    let key = app.key(&ws, json!({"name": "full", "kind": "full"})).await["token"].as_str().expect("token").to_string();
    let body = json!({"name": "Eve", "email": "eve@example.com", "role": "admin", "password": "long enough pw"});
    let (status, _) = app.post(&format!("/v1/workspaces/{ws}/users"), &key, body).await;
    assert_eq!(status, 403, "the operator's route needs the master key");
    let short = json!({"name": "Bo", "email": "bo@example.com", "password": "short"});
    let (status, err) = app.post("/v1/users", &key, short).await;
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("password")), "{err}");
    let (status, _) =
        app.post("/v1/users", &key, json!({"name": "Bo", "email": "bo@example.com", "password": 12345678})).await;
    assert_eq!(status, 400);

    let (status, _) = attempt(&app, "ada@example.com", "wrong password!", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = attempt(&app, "nobody@example.com", "correct horse battery", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, r) = attempt(&app, "ADA@example.com", "correct horse battery", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/contacts");
    let cookie = set_cookie(&r, "convene_session").expect("session cookie");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag ({cookie})");
    let (_, r) = attempt(&app, "ada@example.com", "correct horse battery", &[("x-forwarded-proto", "https")]).await;
    assert!(set_cookie(&r, "convene_session").expect("cookie").contains("; Secure"), "behind TLS: Secure");

    // No session → the login page; an open redirect is not followed.
    let r = browser().get(app.url("/console/contacts?q=a")).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/login?next=%2Fconsole%2Fcontacts%3Fq%3Da");
    let page = browser().get(app.url("/console/login?next=//evil.example")).send().await.expect("get");
    assert!(page.text().await.expect("text").contains("name=\"next\" value=\"/console\""));
}

#[tokio::test]
async fn forms_without_the_session_csrf_token_are_refused() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    user(&app, &ws, "ada@example.com", "admin").await;
    let s = Session::login(&app, "ada@example.com", "correct horse battery").await;
    for token in ["", "forged-token"] {
        let r = s.post("/console/settings/service-accounts", &[("name", "Forged")], Some(token)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let (_, page) = s.get("/console/settings/service-accounts").await;
    assert!(!page.contains("Forged"), "nothing was created");
    // The login form itself needs its double-submit cookie.
    let r = browser()
        .post(app.url("/console/login"))
        .form(&[("_csrf", "x"), ("email", "ada@example.com"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r =
        s.post("/console/settings/service-accounts", &[("name", "Real one"), ("scopes", "contacts:read")], None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn roles_are_enforced_on_the_server_even_for_posted_forms() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    user(&app, &ws, "ada@example.com", "admin").await;
    user(&app, &ws, "vic@example.com", "viewer").await;
    user(&app, &ws, "agt@example.com", "agent").await;
    let key = app.key(&ws, json!({"name": "full", "kind": "full"})).await["token"].as_str().expect("token").to_string();
    let contact = app.contact(&key, json!({"email": "zoe@example.com"})).await;
    let (status, conv) = app
        .post(
            "/v1/conversations",
            &key,
            json!({"contact_id": contact["id"], "message": {"type": "incoming", "content": "Hello"}}),
        )
        .await;
    assert_eq!(status, 201, "{conv}");
    let conv_id = conv["id"].as_str().expect("id").to_string();

    let viewer = Session::login(&app, "vic@example.com", "correct horse battery").await;
    for path in [
        "/console/contacts",
        "/console/conversations",
        &format!("/console/conversations/{conv_id}"),
        "/console/reps",
        "/console/companies",
    ] {
        assert_eq!(viewer.get(path).await.0, StatusCode::OK, "{path}");
    }
    let (_, nav) = viewer.get("/console/contacts").await;
    assert!(!nav.contains("href=\"/console/settings\""), "no Settings link for a viewer");
    for path in [
        "/console/settings/keys",
        "/console/settings/service-accounts",
        "/console/settings/users",
        "/console/settings/fields",
    ] {
        assert_eq!(viewer.get(path).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    // Posting the admin forms directly does nothing.
    let posts: [(&str, &[(&str, &str)]); 5] = [
        ("/console/settings/keys", &[("name", "sneaky"), ("kind", "full")]),
        ("/console/settings/service-accounts", &[("name", "sneaky"), ("scopes", "admin")]),
        (
            "/console/settings/users",
            &[("name", "x"), ("email", "x@example.com"), ("role", "admin"), ("password", "12345678910")],
        ),
        ("/console/settings/fields", &[("entity", "contact"), ("name", "sneaky"), ("type", "text")]),
        (&format!("/console/conversations/{conv_id}/messages"), &[("content", "viewer reply"), ("type", "outgoing")]),
    ];
    for (path, fields) in posts {
        assert_eq!(viewer.post(path, fields, None).await.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let (_, keys) = app.get("/v1/keys", &key).await;
    assert!(keys["data"].as_array().expect("keys").iter().all(|k| k["name"] != "sneaky"), "{keys}");
    let (_, users) = app.get("/v1/users", &key).await;
    assert_eq!(users["data"].as_array().expect("users").len(), 3);
    let (_, msgs) = app.get(&format!("/v1/conversations/{conv_id}/messages"), &key).await;
    assert_eq!(msgs["data"].as_array().expect("messages").len(), 1, "{msgs}");

    // An agent works conversations but not settings.
    let agent = Session::login(&app, "agt@example.com", "correct horse battery").await;
    assert_eq!(agent.get("/console/settings/keys").await.0, StatusCode::FORBIDDEN);
    let r = agent
        .post(
            &format!("/console/conversations/{conv_id}/messages"),
            &[("content", "On it"), ("type", "outgoing")],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = agent
        .post(&format!("/console/conversations/{conv_id}/messages"), &[("content", "internal"), ("type", "note")], None)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = agent.post(&format!("/console/conversations/{conv_id}/status"), &[("status", "resolved")], None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, msgs) = app.get(&format!("/v1/conversations/{conv_id}/messages"), &key).await;
    let kinds: Vec<&str> =
        msgs["data"].as_array().expect("messages").iter().map(|m| m["type"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["incoming", "outgoing", "note", "activity"]);
    let (_, thread) = agent.get(&format!("/console/conversations/{conv_id}")).await;
    assert!(
        thread.contains("class=\"note\"") && thread.contains("Reopen"),
        "the thread shows the note and the reopen action"
    );

    // A role change applies to a live session at once.
    let admin = Session::login(&app, "ada@example.com", "correct horse battery").await;
    let (_, users) = app.get("/v1/users", &key).await;
    let agent_id =
        users["data"].as_array().expect("users").iter().find(|u| u["email"] == "agt@example.com").expect("agent")["id"]
            .to_string();
    let r = admin
        .post(&format!("/console/settings/users/{agent_id}"), &[("role", "viewer"), ("active", "true")], None)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = agent.post(&format!("/console/conversations/{conv_id}/status"), &[("status", "open")], None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "demoted to viewer");
    // An admin cannot remove their own admin role.
    let (_, me) = app.get("/v1/users", &key).await;
    let ada_id =
        me["data"].as_array().expect("users").iter().find(|u| u["email"] == "ada@example.com").expect("ada")["id"]
            .to_string();
    let r =
        admin.post(&format!("/console/settings/users/{ada_id}"), &[("role", "viewer"), ("active", "true")], None).await;
    assert!(r.headers()["location"].to_str().expect("loc").contains("error="));
    assert_eq!(admin.get("/console/settings/users").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_new_key_token_is_shown_once_and_pages_carry_security_headers() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    user(&app, &ws, "ada@example.com", "admin").await;
    let s = Session::login(&app, "ada@example.com", "correct horse battery").await;
    let r = s
        .post(
            "/console/settings/service-accounts",
            &[("name", "Sales Production"), ("teams", "Sales, EU"), ("scopes", "contacts:read")],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let account_path = r.headers()["location"].to_str().expect("location").split('?').next().expect("path").to_string();
    let account_id = account_path.rsplit('/').next().expect("id").to_string();
    let r = s
        .post(
            "/console/settings/keys",
            &[("name", "crm sync"), ("kind", "full"), ("service_account_id", &account_id)],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    for (name, value) in
        [("content-security-policy", "default-src 'self'"), ("x-frame-options", "DENY"), ("cache-control", "no-store")]
    {
        assert!(r.headers()[name].to_str().expect("header").contains(value), "{name}");
    }
    let page = r.text().await.expect("html");
    assert!(page.contains("will not be shown again"));
    let at = page.find("cvn_").expect("the token");
    let token: String = page[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let (status, _) = app.get("/v1/contacts", &token).await;
    assert_eq!(status, 200, "the token works with its account's scope");
    let (status, _) = app.get("/v1/users", &token).await;
    assert_eq!(status, 403, "and only that");
    let (_, list) = s.get("/console/settings/keys").await;
    assert!(list.contains("crm sync") && !list.contains(&token), "the token is not shown again");
    assert!(list.contains(&format!("cvn_…{}", &token[token.len() - 4..])), "its preview is");
    let (_, teams) = s.get("/console/settings/teams").await;
    assert!(teams.contains("Sales") && teams.contains("EU") && teams.contains("Sales Production"));

    // Edit permissions: the key follows its account.
    let r = s
        .post(&account_path, &[("name", "Sales Production"), ("scopes", "contacts:read"), ("scopes", "admin")], None)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, _) = app.get("/v1/users", &token).await;
    assert_eq!(status, 200);
    let key_id = app.get("/v1/keys", &token).await.1["data"][0]["id"].as_str().expect("id").to_string();
    let r = s.post(&format!("/console/settings/keys/{key_id}/revoke"), &[], None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get("/v1/contacts", &token).await.0, 401, "revoked at once");
}

#[tokio::test]
async fn logout_ends_the_session_and_logins_are_rate_limited() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    user(&app, &ws, "ada@example.com", "admin").await;
    let s = Session::login(&app, "ada@example.com", "correct horse battery").await;
    assert_eq!(s.get("/console/contacts").await.0, StatusCode::OK);
    let r = s.post("/console/logout", &[], None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&r, "convene_session").expect("cleared").contains("Max-Age=0"));
    assert_eq!(s.get("/console/contacts").await.0, StatusCode::SEE_OTHER, "the old cookie no longer works");

    // Ten attempts per account at once, then 429 even with the right password.
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        last = attempt(&app, "ada@example.com", "not the password", &[]).await.0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let (status, r) = attempt(&app, "ada@example.com", "correct horse battery", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.expect("text").contains("Too many login attempts"));
}

#[tokio::test]
async fn contacts_are_searched_and_shown_with_their_timeline() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    user(&app, &ws, "ada@example.com", "viewer").await;
    let key = app.key(&ws, json!({"name": "full", "kind": "full"})).await["token"].as_str().expect("token").to_string();
    let ann = app.contact(&key, json!({"email": "ann@acme.io", "traits": {"tags": ["vip"], "plan": "pro"}})).await;
    app.contact(&key, json!({"email": "bob@b.io", "traits": {"plan": "free"}})).await;
    let (status, _) = app
        .post("/v1/conversations", &key, json!({"contact_id": ann["id"], "subject": "Renewal", "message": {"type": "incoming", "content": "Can we renew?"}}))
        .await;
    assert_eq!(status, 201);
    let s = Session::login(&app, "ada@example.com", "correct horse battery").await;
    for (query, shown, hidden) in [
        ("q=an", "ann@acme.io", "bob@b.io"),
        ("tag=vip", "ann@acme.io", "bob@b.io"),
        ("field=plan&value=free", "bob@b.io", "ann@acme.io"),
    ] {
        let (status, page) = s.get(&format!("/console/contacts?{query}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(shown) && !page.contains(hidden), "{query}");
    }
    let (status, page) = s.get(&format!("/console/contacts?q={}", "x".repeat(300))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("at most 200 characters"), "a too-long filter is named");
    let (_, page) = s.get(&format!("/console/contacts/{}", ann["id"])).await;
    assert!(
        page.contains("Can we renew?") && page.contains("vip") && page.contains("SUBSCRIBED") && page.contains("pro")
    );
    assert_eq!(s.get("/console/contacts/999999").await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/console/contacts/not-a-number").await.0, StatusCode::NOT_FOUND);
}

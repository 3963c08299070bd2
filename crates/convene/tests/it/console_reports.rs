//! The console's reports dashboard (`/console/reports`): SVG charts over a
//! period, the same numbers as CSV downloads, readable errors, the session
//! check. Also holds [`console_login`], the login steps other console
//! tests can reuse.

use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, redirect};
use serde_json::json;

use crate::ingest_support::ingest;
use crate::support::{TestApp, spawn_app};

/// A client that does not follow redirects (cookies are sent by hand).
fn no_redirects() -> Client {
    Client::builder().redirect(redirect::Policy::none()).build().expect("a client")
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// Logs in to the console at `app_url` (`http://host:port`) as `email`
/// with `password` through the login form (its CSRF cookie and field);
/// returns the `Cookie` header value holding the session.
pub async fn console_login(app_url: &str, email: &str, password: &str) -> String {
    let client = no_redirects();
    let form = client.get(format!("{app_url}/console/login")).send().await.expect("GET /console/login");
    assert_eq!(form.status(), 200);
    let csrf_cookie = set_cookie_value(&form, "convene_login_csrf").expect("the login CSRF cookie");
    let html = form.text().await.expect("the login form");
    let field = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a _csrf field in the login form")
        .to_string();
    assert_eq!(field, csrf_cookie, "double-submit: the field holds the cookie's value");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("_csrf", &field)
        .append_pair("email", email)
        .append_pair("password", password)
        .append_pair("next", "/console")
        .finish();
    let r = client
        .post(format!("{app_url}/console/login"))
        .header(COOKIE, format!("convene_login_csrf={csrf_cookie}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST /console/login");
    assert_eq!(r.status(), 303, "login answers with a redirect");
    let session = set_cookie_value(&r, "convene_session").expect("a session cookie");
    format!("convene_session={session}")
}

/// Creates a console user (role `role`) in `ws` with the master key.
async fn console_user(app: &TestApp, ws: &str, email: &str, password: &str, role: &str) {
    let (status, body) = crate::support::send(
        app.master(reqwest::Method::POST, &format!("/v1/workspaces/{ws}/users"))
            .json(&json!({"name": "Viewer", "email": email, "role": role, "password": password})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// `GET path` with the session cookie: status, headers, body.
async fn get(app: &TestApp, cookie: &str, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = no_redirects().get(app.url(path)).header(COOKIE, cookie).send().await.expect("an answer");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.expect("a body"))
}

/// Two days of calls by two reps (one named like a formula) and events.
async fn seed(app: &TestApp, token: &str) {
    let calls = json!([
        {"call_id": "c1", "rep_id": "mila", "start_time": "2026-03-02T09:00:00Z", "duration": 60},
        {"call_id": "c2", "rep_id": "mila", "start_time": "2026-03-02T10:00:00Z", "duration": 120},
        {"call_id": "c3", "rep_id": "=cmd", "start_time": "2026-03-02T11:00:00Z", "duration": 30},
        {"call_id": "c4", "rep_id": "mila", "start_time": "2026-03-03T09:00:00Z", "duration": 300},
        {"call_id": "c5", "rep_id": "=cmd", "start_time": "2026-03-03T23:30:00Z", "duration": 90},
        {"call_id": "c6", "rep_id": "mila", "start_time": "2026-03-05T09:00:00Z", "duration": 999}
    ]);
    let r = app
        .with_token(reqwest::Method::POST, "/compat/converz/api/v1/calls", token)
        .header("x-api-key", token)
        .json(&calls)
        .send()
        .await
        .expect("calls posted");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let mut batch = Vec::new();
    for (name, day, n) in [
        ("Signed Up", "2026-03-02", 3),
        ("Paid, late", "2026-03-03", 2),
        ("=HYPERLINK(\"x\")", "2026-03-03", 1),
        ("Signed Up", "2026-03-06", 4),
    ] {
        for i in 0..n {
            batch.push(json!({"type": "track", "external_id": format!("u{i}"), "event": name,
                "timestamp": format!("{day}T12:00:00Z")}));
        }
    }
    ingest(app, token, "/v1/batch", json!({ "batch": batch })).await;
}

const PERIOD: &str = "from=2026-03-02&to=2026-03-04&tz=UTC";

#[tokio::test]
async fn the_dashboard_draws_the_period_and_csv_holds_its_numbers() {
    let app = spawn_app().await;
    let (ws, token) = app.full_key().await;
    seed(&app, &token).await;
    console_user(&app, &ws, "viewer@example.com", "correct horse battery", "viewer").await;
    let cookie = console_login(&format!("http://{}", app.addr), "viewer@example.com", "correct horse battery").await;

    let (status, headers, html) = get(&app, &cookie, &format!("/console/reports?{PERIOD}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(html.contains("<svg") && html.contains(r#"role="img""#), "{html}");
    for text in ["mila", "=cmd", "Signed Up", "Paid, late", "=HYPERLINK(&quot;x&quot;)", "2026-03-02", "2026-03-03"] {
        assert!(html.contains(text), "{text} in the page: {html}");
    }
    assert!(!html.contains("style="), "no inline style (CSP): {html}");
    assert!(!html.contains("No data in this period"), "{html}");
    for chart in ["conversations-per-day", "conversations-per-rep", "events-by-name"] {
        let link = format!("/console/reports/{chart}.csv?from=2026-03-02&amp;to=2026-03-04&amp;tz=UTC");
        assert!(html.contains(&link), "{link}: {html}");
    }
    // Summary: 5 conversations, 600 s / 5 = 2 minutes, 6 events.
    assert!(html.contains("<strong>5</strong>") && html.contains("<strong>2m 00s</strong>"), "{html}");
    assert!(html.contains("<strong>6</strong>"), "{html}");
    assert!(html.contains("<details><summary>Table</summary>"), "{html}");
    assert!(html.contains(r#"type="date" name="from" value="2026-03-02""#), "{html}");

    let (status, headers, csv) =
        get(&app, &cookie, &format!("/console/reports/conversations-per-day.csv?{PERIOD}")).await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(headers[CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        headers[CONTENT_DISPOSITION],
        r#"attachment; filename="conversations-per-day-2026-03-02-2026-03-04.csv""#
    );
    assert_eq!(csv, "day,count,avg_duration\r\n2026-03-02,3,70.0\r\n2026-03-03,2,195.0\r\n");

    let (status, _, csv) = get(&app, &cookie, &format!("/console/reports/conversations-per-rep.csv?{PERIOD}")).await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(csv, "rep_id,count,sum_duration\r\n'=cmd,2,120.0\r\nmila,3,480.0\r\n");

    let (status, headers, csv) = get(&app, &cookie, &format!("/console/reports/events-by-name.csv?{PERIOD}")).await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(headers[CONTENT_DISPOSITION], r#"attachment; filename="events-by-name-2026-03-02-2026-03-04.csv""#);
    assert_eq!(csv, "event,count\r\n\"'=HYPERLINK(\"\"x\"\")\",1\r\n\"Paid, late\",2\r\nSigned Up,3\r\n");

    // The time zone moves c5 (23:30 UTC on the 3rd) past the period's end.
    let (_, _, csv) =
        get(&app, &cookie, "/console/reports/conversations-per-day.csv?from=2026-03-02&to=2026-03-04&tz=Europe/Paris")
            .await;
    assert_eq!(csv, "day,count,avg_duration\r\n2026-03-02,3,70.0\r\n2026-03-03,1,300.0\r\n");

    // The same numbers as the native report.
    let (_, native) = app.get(&format!("/v1/reports?group_by=rep&metrics=count,sum:duration&{PERIOD}"), &token).await;
    assert_eq!(
        native["data"],
        json!([{"rep_id": "=cmd", "count": 2, "sum_duration": 120.0},
        {"rep_id": "mila", "count": 3, "sum_duration": 480.0}])
    );
}

#[tokio::test]
async fn errors_are_readable_and_sessions_are_required() {
    let app = spawn_app().await;
    let (ws, _) = app.full_key().await;
    console_user(&app, &ws, "viewer@example.com", "correct horse battery", "viewer").await;
    let cookie = console_login(&format!("http://{}", app.addr), "viewer@example.com", "correct horse battery").await;

    // Nothing in the period: every chart says so.
    let (status, _, html) = get(&app, &cookie, "/console/reports").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.matches("No data in this period").count() >= 5, "{html}");
    assert!(html.contains(r#"name="tz" value="UTC""#), "{html}");
    assert!(!html.contains("style="), "{html}");

    // A bad period: the page explains, no 500.
    for query in ["from=yesterday", "tz=Mars/Olympus", "from=2026-03-05&to=2026-03-01"] {
        let (status, _, html) = get(&app, &cookie, &format!("/console/reports?{query}")).await;
        assert_eq!(status, 200, "{query}: {html}");
        assert!(html.contains(r#"<p class="error" role="alert">"#), "{query}: {html}");
        assert!(!html.contains("<svg"), "{query}: {html}");
    }
    let (_, _, html) = get(&app, &cookie, "/console/reports?tz=Mars/Olympus").await;
    assert!(html.contains("unknown time zone"), "{html}");
    let (status, _, _) = get(&app, &cookie, "/console/reports/events-by-name.csv?from=yesterday").await;
    assert_eq!(status, 400);

    // Unknown charts.
    for path in ["/console/reports/planets.csv", "/console/reports/events-by-name", "/console/reports/.csv"] {
        let (status, _, body) = get(&app, &cookie, path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // Without a session (or with a wrong one): to the login page.
    for cookie in ["", "convene_session=nope"] {
        for path in ["/console/reports", "/console/reports/events-by-name.csv"] {
            let (status, headers, _) = get(&app, cookie, path).await;
            assert_eq!(status, 303, "{path}");
            let to = headers[LOCATION].to_str().unwrap();
            assert!(to.starts_with("/console/login"), "{to}");
        }
    }
}

//! The Converz dialect at `/compat/converz/api/v1` (docs/compat/converz.md):
//! reps in the columnar and row-wise forms with the vendor's null rules,
//! numbered pages from 0 up to 1,000,000 rows (streamed), calls, and the
//! report checked against numbers computed here.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, send, spawn_app};

const BASE: &str = "/compat/converz/api/v1";

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    send(app.with_token(Method::POST, &format!("{BASE}{path}"), token).header("x-api-key", token).json(&body)).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    send(app.req(Method::GET, &format!("{BASE}{path}")).header("X-API-Key", token)).await
}

fn by_id(list: &Value) -> BTreeMap<String, Value> {
    list["data"].as_array().unwrap().iter().map(|r| (r["rep_id"].as_str().unwrap().to_string(), r.clone())).collect()
}

fn error(status: u16, body: &Value, want: u16, field: Option<&str>) {
    assert_eq!(status, want, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn columnar_nulls_leave_values_and_row_wise_gaps_clear_them() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, out) = post(
        &app,
        "/reps",
        &token,
        json!({"rep_id": ["mila", "liam"], "gender": ["f", "m"], "name": ["Mila", "Liam"], "department": ["sales", "support"]}),
    )
    .await;
    assert_eq!((status, out["created"].clone(), out["updated"].clone()), (200, json!(2), json!(0)), "{out}");
    // Columnar: null leaves the value as it is.
    let (status, out) = post(
        &app,
        "/reps",
        &token,
        json!({"rep_id": ["mila", "liam"], "gender": ["x", null], "name": [null, "Liam B"]}),
    )
    .await;
    assert_eq!((status, out["updated"].clone()), (200, json!(2)), "{out}");
    // The same update again changes no rep; the vendor's answer still counts them updated.
    let (status, out) = post(
        &app,
        "/reps",
        &token,
        json!({"rep_id": ["mila", "liam"], "gender": ["x", null], "name": [null, "Liam B"]}),
    )
    .await;
    assert_eq!((status, out), (200, json!({"created": 0, "updated": 2, "rows": 2})));
    let reps = by_id(&get(&app, "/reps?n_per_page=10", &token).await.1);
    assert_eq!((reps["mila"]["gender"].clone(), reps["mila"]["name"].clone()), (json!("x"), json!("Mila")));
    assert_eq!((reps["liam"]["gender"].clone(), reps["liam"]["name"].clone()), (json!("m"), json!("Liam B")));
    // Row-wise: a key some rows have and another lacks is set to null for it
    // (the vendor's own example).
    let (status, _) =
        post(&app, "/reps", &token, json!([{"rep_id": "mila", "gender": "f"}, {"rep_id": "liam", "name": "Liam"}]))
            .await;
    assert_eq!(status, 200);
    let reps = by_id(&get(&app, "/reps", &token).await.1);
    assert_eq!((reps["mila"]["gender"].clone(), reps["mila"]["name"].clone()), (json!("f"), Value::Null));
    assert_eq!((reps["liam"]["gender"].clone(), reps["liam"]["name"].clone()), (Value::Null, json!("Liam")));
    assert_eq!(reps["liam"]["department"], "support", "keys no row names stay");
    assert_eq!((reps["mila"]["active"].clone(), reps["liam"]["active"].clone()), (json!(1), json!(1)));
    // The native API sees the same reps.
    let (status, native) = app.get("/v1/reps/mila", &token).await;
    assert_eq!(
        (status, native["attributes"]["gender"].clone(), native["active"].clone()),
        (200, json!("f"), json!(true))
    );
}

#[tokio::test]
async fn updates_are_all_or_nothing_and_limits_are_enforced() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, body) = post(&app, "/reps", &token, json!({"rep_id": ["a", "b"], "gender": ["f"]})).await;
    error(status, &body, 400, Some("gender"));
    let (status, body) =
        post(&app, "/reps", &token, json!([{"rep_id": "a", "active": 1}, {"rep_id": "b", "active": 7}])).await;
    error(status, &body, 400, Some("active"));
    assert_eq!(body["error"]["row"], 1, "{body}");
    let (status, body) = post(&app, "/reps", &token, json!({"gender": ["f"]})).await;
    error(status, &body, 400, Some("rep_id"));
    let (_, list) = get(&app, "/reps", &token).await;
    assert_eq!(list["total"], 0, "nothing of a refused update is written: {list}");
    // A number field refuses text in a later row: the earlier rows roll back.
    post(&app, "/reps", &token, json!({"rep_id": ["s"], "score": [5]})).await;
    let (status, body) = post(&app, "/reps", &token, json!({"rep_id": ["t", "u"], "score": [1, "high"]})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["row"], 1, "{body}");
    let (_, list) = get(&app, "/reps", &token).await;
    assert_eq!(list["total"], 1, "{list}");
    // 100,000 rows at most: 413 naming the limit.
    let ids: Vec<String> = (0..100_001).map(|i| format!("r{i}")).collect();
    let (status, body) = post(&app, "/reps", &token, json!({ "rep_id": ids })).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("100000"), "{body}");
    // At most 516 distinct columns (row-wise, every row gets every key).
    let wide: Vec<Value> = (0..600).map(|i| json!({"rep_id": format!("w{i}"), format!("attr{i}"): i})).collect();
    let (status, body) = post(&app, "/reps", &token, Value::Array(wide)).await;
    error(status, &body, 400, None);
    assert!(body["error"]["message"].as_str().unwrap().contains("distinct columns"), "{body}");
    // n_per_page: 1..=1,000,000.
    let (status, body) = get(&app, "/reps?n_per_page=1000001", &token).await;
    error(status, &body, 400, Some("n_per_page"));
    let (status, body) = get(&app, "/reps?page=-1", &token).await;
    error(status, &body, 400, Some("page"));
    let (status, list) = get(&app, "/reps?n_per_page=1000000", &token).await;
    assert_eq!((status, list["n_per_page"].clone()), (200, json!(1_000_000)));
    // Authentication and scopes in this envelope.
    let (status, body) = get(&app, "/reps", "cvn_nope").await;
    error(status, &body, 401, None);
}

#[tokio::test]
async fn pages_count_from_zero_and_filters_apply() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let ids: Vec<String> = (0..25).map(|i| format!("rep{i:02}")).collect();
    let depts: Vec<&str> = (0..25).map(|i| if i % 5 == 0 { "support" } else { "sales" }).collect();
    let active: Vec<i64> = (0..25).map(|i| i64::from(i % 2 == 0)).collect();
    let (status, _) = post(&app, "/reps", &token, json!({"rep_id": ids, "department": depts, "active": active})).await;
    assert_eq!(status, 200);
    let (status, first) = get(&app, "/reps", &token).await;
    assert_eq!(status, 200);
    assert_eq!(
        (first["page"].clone(), first["n_per_page"].clone(), first["total"].clone()),
        (json!(0), json!(10), json!(25))
    );
    assert_eq!(first["data"][0]["rep_id"], "rep00");
    let (_, last) = get(&app, "/reps?n_per_page=10&page=2", &token).await;
    let names: Vec<&str> = last["data"].as_array().unwrap().iter().map(|r| r["rep_id"].as_str().unwrap()).collect();
    assert_eq!(names, ["rep20", "rep21", "rep22", "rep23", "rep24"]);
    let (_, past) = get(&app, "/reps?n_per_page=10&page=3", &token).await;
    assert_eq!((past["data"].as_array().unwrap().len(), past["total"].clone()), (0, json!(25)));
    let (_, support) = get(&app, "/reps?department=support&n_per_page=100", &token).await;
    assert_eq!(support["total"], 5);
    let (_, active_support) = get(&app, "/reps?department=support&active=1", &token).await;
    let ids: Vec<&str> =
        active_support["data"].as_array().unwrap().iter().map(|r| r["rep_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["rep00", "rep10", "rep20"]);
    let (_, one) = get(&app, "/reps?rep_id=rep07", &token).await;
    assert_eq!((one["total"].clone(), one["data"][0]["active"].clone()), (json!(1), json!(0)));
}

#[tokio::test]
async fn calls_upsert_by_call_id_and_list_by_start_time() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, out) = post(
        &app,
        "/calls",
        &token,
        json!([
            {"call_id": "c2", "rep_id": "mila", "start_time": "2026-03-02T10:00:00Z", "duration": 120, "email": "a@x.io", "sentiment": 0.5},
            {"call_id": "c1", "rep_id": "liam", "start_time": "2026-03-01T09:00:00Z", "end_time": "2026-03-01T09:05:00Z", "vendor": "aircall"}
        ]),
    )
    .await;
    assert_eq!((status, out["created"].clone()), (200, json!(2)), "{out}");
    let (_, list) = get(&app, "/calls", &token).await;
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|r| r["call_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c1", "c2"], "by start time");
    assert_eq!(list["data"][0]["duration"], 300.0, "from start and end");
    assert_eq!(list["data"][1]["sentiment"], 0.5);
    // Unknown reps were created; the call is a conversation of its contact.
    assert_eq!(app.get("/v1/reps/liam", &token).await.0, 200);
    let conv = list["data"][1]["conversation_id"].as_str().unwrap().to_string();
    let (status, c) = app.get(&format!("/v1/conversations/{conv}"), &token).await;
    assert_eq!((status, c["channel"].clone()), (200, json!("call")), "{c}");
    let contact = c["contact_id"].as_i64().unwrap();
    let (_, timeline) = app.get(&format!("/v1/contacts/{contact}/timeline"), &token).await;
    assert!(timeline["data"].to_string().contains("Call c2"), "{timeline}");
    // Upsert: the same call_id changes it; columnar null keeps the vendor.
    let (status, out) =
        post(&app, "/calls", &token, json!({"call_id": ["c1"], "summary": ["Renewal"], "vendor": [null]})).await;
    assert_eq!((status, out["updated"].clone()), (200, json!(1)), "{out}");
    let (_, list) = get(&app, "/calls?from=2026-03-01&to=2026-03-02&rep_id=liam", &token).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(
        (list["data"][0]["summary"].clone(), list["data"][0]["vendor"].clone()),
        (json!("Renewal"), json!("aircall"))
    );
    let (status, body) = post(&app, "/calls", &token, json!([{"call_id": "c9"}])).await;
    error(status, &body, 400, Some("start_time"));
    // Row-wise, an update and a new call together: the missing-key rule
    // gives c1 a null start_time, which leaves its start as it is.
    let (status, out) = post(
        &app,
        "/calls",
        &token,
        json!([{"call_id": "c1", "summary": "Mixed"}, {"call_id": "c8", "start_time": "2026-03-03"}]),
    )
    .await;
    assert_eq!((status, out["updated"].clone(), out["created"].clone()), (200, json!(1), json!(1)), "{out}");
    let (_, list) = get(&app, "/calls?from=2026-03-01&to=2026-03-02&rep_id=liam", &token).await;
    assert_eq!(list["data"][0]["summary"], "Mixed", "{list}");
    assert_eq!(list["data"][0]["start_time"].as_str().map(|s| &s[..19]), Some("2026-03-01T09:00:00"), "{list}");
    let (status, body) = post(&app, "/calls", &token, json!([{"call_id": "c7", "start_time": null}])).await;
    error(status, &body, 400, Some("start_time"));
}

#[tokio::test]
async fn the_report_matches_numbers_computed_here() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    post(
        &app,
        "/reps",
        &token,
        json!({"rep_id": ["mila", "liam", "noor"], "department": ["sales", "sales", "support"]}),
    )
    .await;
    // 60 calls over three days (in UTC+1), deterministic durations.
    let reps = ["mila", "liam", "noor"];
    let mut rows = Vec::new();
    let mut expected: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for i in 0..60u32 {
        let rep = reps[(i % 3) as usize];
        let hour = (i * 7) % 72; // hours after 2026-05-01T00:00Z
        let duration = f64::from(30 + (i * 37) % 400);
        let start = format!("2026-05-{:02}T{:02}:15:00Z", 1 + hour / 24, hour % 24);
        // Europe/Paris is UTC+2 in May: the local day.
        let local_day = format!("2026-05-{:02}", 1 + (hour + 2) / 24);
        let e = expected.entry((rep.to_string(), local_day)).or_default();
        e.0 += 1;
        e.1 += duration;
        rows.push(json!({"call_id": format!("k{i}"), "rep_id": rep, "start_time": start, "duration": duration}));
    }
    assert_eq!(post(&app, "/calls", &token, json!(rows)).await.0, 200);
    let (status, report) =
        get(&app, "/report?group_by=rep_id,day&metrics=calls,total_duration,avg_duration&tz=Europe/Paris", &token)
            .await;
    assert_eq!(status, 200, "{report}");
    let got: BTreeMap<(String, String), (u64, f64, f64)> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r["rep_id"].as_str().unwrap().to_string(), r["day"].as_str().unwrap().to_string()),
                (
                    r["calls"].as_u64().unwrap(),
                    r["total_duration"].as_f64().unwrap(),
                    r["avg_duration"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "{report}");
    for (k, (n, sum)) in &expected {
        let (gn, gsum, gavg) = got[k];
        assert_eq!((gn, gsum), (*n, *sum), "{k:?}");
        assert!((gavg - sum / *n as f64).abs() < 1e-9, "{k:?}: {gavg}");
    }
    // By department, one period, a filter.
    let (_, by_dept) =
        get(&app, "/report?group_by=department&metrics=calls&from=2026-05-01&to=2026-05-02", &token).await;
    let sales = expected.iter().filter(|((r, d), _)| r != "noor" && d == "2026-05-01").count();
    assert!(sales > 0);
    let dept_calls: u64 = by_dept["data"].as_array().unwrap().iter().map(|r| r["calls"].as_u64().unwrap()).sum();
    let (_, all_day) = app.get("/v1/reports?metrics=count&from=2026-05-01&to=2026-05-02", &token).await;
    assert_eq!(dept_calls, all_day["data"][0]["count"].as_u64().unwrap(), "{by_dept} {all_day}");
    let (_, noor) = get(&app, "/report?metrics=calls&rep_id=noor", &token).await;
    assert_eq!(noor["data"][0]["calls"], 20);
    for (query, field) in
        [("metrics=calls,happiness", "happiness"), ("group_by=planet", "planet"), ("metrics=calls&tz=Mars/Base", "tz")]
    {
        let (status, body) = get(&app, &format!("/report?{query}"), &token).await;
        error(status, &body, 400, Some(field));
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A 200,000-row page is streamed: the answer has no length, arrives whole,
/// and the process (server and client here) grows by far less than the
/// answer's size while it is served — rows are not gathered in memory.
#[tokio::test]
async fn a_200000_row_page_is_streamed_with_flat_memory() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let n = 200_000;
    // Small loads, so that memory freed by them cannot hide a buffered answer.
    for first in (0..n).step_by(10_000) {
        let ids: Vec<String> = (first..first + 10_000).map(|i| format!("r{i:06}")).collect();
        let names: Vec<String> = (first..first + 10_000).map(|i| format!("Representative number {i}")).collect();
        let (status, body) =
            post(&app, "/reps", &token, json!({"rep_id": ids, "name": names, "department": ids})).await;
        assert_eq!(status, 200, "{body}");
    }
    let before = rss_kib();
    let mut r = app
        .req(Method::GET, &format!("{BASE}/reps?n_per_page=1000000"))
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none(), "streamed, not buffered");
    let (mut bytes, mut peak, mut head, mut tail) = (0usize, before, Vec::new(), Vec::new());
    while let Some(chunk) = r.chunk().await.unwrap() {
        if head.len() < 200 {
            head.extend_from_slice(&chunk[..chunk.len().min(200)]);
        }
        tail.extend_from_slice(&chunk);
        let excess = tail.len().saturating_sub(400);
        tail.drain(..excess);
        bytes += chunk.len();
        peak = peak.max(rss_kib());
    }
    let head = String::from_utf8_lossy(&head);
    let tail = String::from_utf8_lossy(&tail);
    assert!(head.starts_with("{\"data\":[{") && head.contains("\"rep_id\":\"r000000\""), "{head}");
    assert!(
        tail.contains("\"rep_id\":\"r199999\"")
            && tail.ends_with(",\"page\":0,\"n_per_page\":1000000,\"total\":200000}"),
        "{tail}"
    );
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    let size_mib = bytes as f64 / (1024.0 * 1024.0);
    assert!(size_mib > 15.0, "{size_mib}");
    assert!(growth_mib < size_mib / 2.0, "memory grew {growth_mib:.1} MiB serving {size_mib:.1} MiB");
}

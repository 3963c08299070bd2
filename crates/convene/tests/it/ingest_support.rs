//! Helpers of the ingest and dialect tests: waiting for queued jobs, reading
//! contacts and events back through the native API.

use std::time::{Duration, Instant};

use reqwest::Response;
use serde_json::Value;

use crate::support::TestApp;

/// The `Convene-Job-Id` header of a response.
pub fn job_header(r: &Response) -> String {
    r.headers()
        .get("convene-job-id")
        .unwrap_or_else(|| panic!("no Convene-Job-Id header in a {} response", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// Polls `GET /v1/jobs/{id}` until the job is no longer `queued` (10 s at
/// most); returns the job.
pub async fn wait_job(app: &TestApp, token: &str, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, job) = app.get(&format!("/v1/jobs/{job_id}"), token).await;
        assert_eq!(status, 200, "GET /v1/jobs/{job_id}: {job}");
        assert_eq!(job["id"], job_id, "{job}");
        if job["status"] != "queued" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {job_id} still queued after 10 s: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a job and asserts it applied every row.
pub async fn wait_applied(app: &TestApp, token: &str, job_id: &str) -> Value {
    let job = wait_job(app, token, job_id).await;
    assert_eq!(job["status"], "applied", "{job}");
    assert_eq!(job["failed"], 0, "{job}");
    job
}

/// Sends a native ingest request (`/v1/identify`, `/v1/track`, `/v1/batch`),
/// asserts 202, and returns the job id (checking body and header agree).
pub async fn queue(app: &TestApp, token: &str, path: &str, body: Value) -> String {
    let (status, answer) = app.post(path, token, body).await;
    assert_eq!(status, 202, "POST {path}: {answer}");
    assert_eq!(answer["status"], "queued", "{answer}");
    answer["job_id"].as_str().expect("a job id").to_string()
}

/// Queues and waits until every row applied; returns the job.
pub async fn ingest(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let job = queue(app, token, path, body).await;
    wait_applied(app, token, &job).await
}

/// The contact with an identity (`email`, `mobile`, `external_id`), if any.
pub async fn find_contact(app: &TestApp, token: &str, kind: &str, value: &str) -> Option<Value> {
    let url = format!("/v1/contacts?{kind}={}", urlencode(value));
    let (status, page) = app.get(&url, token).await;
    assert_eq!(status, 200, "GET {url}: {page}");
    let data = page["data"].as_array().unwrap();
    assert!(data.len() <= 1, "identities are unique: {page}");
    data.first().cloned()
}

/// The contact with an identity; panics when there is none.
pub async fn contact_by(app: &TestApp, token: &str, kind: &str, value: &str) -> Value {
    find_contact(app, token, kind, value).await.unwrap_or_else(|| panic!("no contact with {kind} {value}"))
}

/// Every item of a paged list.
pub async fn all_pages(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=1000&cursor={}", urlencode(c)),
            None => format!("{path}{sep}limit=1000"),
        };
        let (status, page) = app.get(&url, token).await;
        assert_eq!(status, 200, "GET {url}: {page}");
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Every contact of the workspace.
pub async fn all_contacts(app: &TestApp, token: &str) -> Vec<Value> {
    all_pages(app, token, "/v1/contacts").await
}

/// Every event of the workspace.
pub async fn all_events(app: &TestApp, token: &str) -> Vec<Value> {
    all_pages(app, token, "/v1/events").await
}

/// A contact's events.
pub async fn contact_events(app: &TestApp, token: &str, contact_id: i64) -> Vec<Value> {
    all_pages(app, token, &format!("/v1/contacts/{contact_id}/events")).await
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Queues a native identify of a marker contact and waits for it: jobs
/// apply in arrival order, so anything queued before it is applied too.
pub async fn barrier(app: &TestApp, token: &str) {
    let marker = format!("barrier-{}", rand::random::<u64>());
    ingest(app, token, "/v1/identify", serde_json::json!({"external_id": marker})).await;
}

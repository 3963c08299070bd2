//! Erasure: nothing of the identity left in SQLite's files (WAL included),
//! the audit trail in hashes, suppression on every write path until an
//! admin lifts it, `convene erase`.

use std::time::Duration;

use convene::config::ServeConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{MASTER, TestApp, spawn_app, spawn_exactly};

const EMAIL: &str = "erase-me-7f3kq@example.com";
const MOBILE: &str = "+15557303941";
const EXTERNAL: &str = "EXT-erase-9qz2";

/// Waits until the job is no longer queued; returns it.
async fn applied(app: &TestApp, token: &str, job: &str) -> Value {
    for _ in 0..200 {
        let (_, body) = app.get(&format!("/v1/jobs/{job}"), token).await;
        if body["status"] != "queued" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {job} still queued");
}

/// Seeds the contact everywhere its identities can end up (a row error of
/// the batch names the conflicting field, not the value).
async fn seed(app: &TestApp, token: &str) -> i64 {
    let (status, contact) = app
        .post(
            "/v1/contacts",
            token,
            json!({"email": EMAIL, "mobile": MOBILE, "external_id": EXTERNAL,
                                            "traits": {"note": format!("reach me at {EMAIL}"), "plan": "pro"}}),
        )
        .await;
    assert_eq!(status, 201, "{contact}");
    let id = contact["id"].as_i64().expect("id");
    app.contact(token, json!({"external_id": "EXT-other", "email": "other@example.com"})).await;
    // Events mentioning the email; a message id carrying it; a row error naming it.
    let r = app
        .with_token(Method::POST, "/v1/batch", token)
        .header("Idempotency-Key", format!("signup-{EMAIL}"))
        .json(&json!({"batch": [
            {"type": "track", "email": EMAIL, "event": "Signed Up", "properties": {"contact": EMAIL}},
            {"type": "identify", "external_id": "EXT-other", "email": EMAIL},
        ]}))
        .send()
        .await
        .expect("batch");
    let body: Value = r.json().await.expect("json");
    let job = applied(app, token, body["job_id"].as_str().expect("job id")).await;
    assert_eq!(job["failed"], 1, "the second row conflicts: {job}");
    let (status, conv) = app
        .post(
            "/v1/conversations",
            token,
            json!({"contact_id": id, "subject": format!("Refund for {EMAIL}"),
              "message": {"type": "incoming", "content": format!("Hi, I am {EMAIL}, phone {MOBILE}")}}),
        )
        .await;
    assert_eq!(status, 201, "{conv}");
    // One more identify still queued when the erasure starts.
    let (status, _) = app.post("/v1/identify", token, json!({"email": EMAIL, "traits": {"late": true}})).await;
    assert_eq!(status, 202);
    id
}

fn files_holding(dir: &std::path::Path, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).expect("data dir").filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().to_string();
        if !(name.starts_with("convene.db") || name.starts_with("convene.inbox.db")) {
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read");
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                hits.push(format!("{name}: {n}"));
            }
        }
    }
    hits
}

#[tokio::test]
async fn an_erased_identity_is_found_nowhere_in_the_database_files() {
    let dir = tempfile::tempdir().expect("dir");
    let app = spawn_exactly(ServeConfig::for_tests(dir.path(), MASTER), dir).await;
    let (_, token) = app.full_key().await;
    seed(&app, &token).await;
    let data = app.dir.path().to_path_buf();
    assert!(!files_holding(&data, &[EMAIL]).is_empty(), "the seed is on disk before");

    let r = app
        .with_token(Method::DELETE, &format!("/v1/contacts?email={EMAIL}&erase=true"), &token)
        .send()
        .await
        .expect("erase");
    assert_eq!(r.status(), 200);
    let audit: Value = r.json().await.expect("json");
    assert!(!audit.to_string().contains(EMAIL), "the audit record holds hashes: {audit}");
    assert_eq!(audit["removed"]["events"], 1, "{audit}");
    assert_eq!(audit["removed"]["dedupe"], 1, "{audit}");

    let hits = files_holding(&data, &[EMAIL, MOBILE, EXTERNAL]);
    assert!(hits.is_empty(), "found after erasure: {hits:?}");
    let conn = rusqlite_free_integrity(&data.join("convene.db"));
    assert_eq!(conn, "ok");
}

/// `PRAGMA integrity_check` through the sqlite3 file format: the store's
/// own backup module opens it read-only.
fn rusqlite_free_integrity(path: &std::path::Path) -> String {
    match convene_store_sqlite::backup::integrity_check(path) {
        Ok(()) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn erasure_suppresses_until_lifted_and_is_audited() {
    let app = spawn_app().await;
    let (ws, token) = app.full_key().await;
    let id = seed(&app, &token).await;
    let reader = app.key_with_scopes(&ws, &["contacts:read"]).await;
    let (status, _) = app.delete(&format!("/v1/contacts/{id}?erase=true"), &reader).await;
    assert_eq!(status, 403);
    let (other_ws, other) = app.full_key().await;
    let _ = other_ws;
    let (status, _) = app.delete(&format!("/v1/contacts/{id}?erase=true"), &other).await;
    assert_eq!(status, 404, "another workspace cannot erase it");
    let (status, body) = app.delete(&format!("/v1/contacts?email={EMAIL}"), &token).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("erase")), "{body}");

    // `convene erase` by id, through the API.
    let (url, tok) = (app.url(""), token.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_convene"))
            .args(["erase", "--url", &url, "--token", &tok, "--id", &id.to_string()])
            .output()
            .expect("run convene erase")
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{out:?}");
    let audit: Value = serde_json::from_slice(&out.stdout).expect("the audit record");
    assert_eq!(audit["contact_id"], id);
    assert_eq!(app.get(&format!("/v1/contacts/{id}"), &token).await.0, 404);

    // Every write path refuses the identities, naming the field, not the value.
    let (status, body) = app.post("/v1/contacts", &token, json!({"email": EMAIL})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("email")), "{body}");
    assert!(!body.to_string().contains(EMAIL));
    let (status, body) = app.post("/v1/contacts/batch", &token, json!({"contacts": [{"external_id": EXTERNAL}]})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("erased contact"), "{body}");
    let (status, job) = app.post("/v1/identify", &token, json!({"mobile": MOBILE})).await;
    assert_eq!(status, 202);
    let job = applied(&app, &token, job["job_id"].as_str().expect("job")).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(!job.to_string().contains(MOBILE), "{job}");
    let r = app
        .with_token(Method::POST, "/compat/conveyour/api/analytics/identify", &token)
        .json(&json!({"id": EMAIL, "email": EMAIL}))
        .send()
        .await
        .expect("conveyour");
    assert!(r.status().is_success(), "queued; refused when applied");
    let job = r.headers()["convene-job-id"].to_str().expect("job id").to_string();
    let job = applied(&app, &token, &job).await;
    assert_eq!(job["status"], "failed", "the dialect's identify is refused too: {job}");

    // The audit trail (admin), then lifting the suppression lets the email back.
    let (status, list) = app.get("/v1/erasures", &token).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().expect("erasures").len(), 1, "{list}");
    assert_eq!(list["data"][0]["identities"].as_array().expect("ids").len(), 3);
    assert_eq!(app.get("/v1/erasures", &reader).await.0, 403);
    let (status, _) = app.delete(&format!("/v1/suppressions?email={EMAIL}"), &token).await;
    assert_eq!(status, 200);
    let (status, _) = app.delete(&format!("/v1/suppressions?email={EMAIL}"), &token).await;
    assert_eq!(status, 404);
    let (status, body) = app.post("/v1/contacts", &token, json!({"email": EMAIL})).await;
    assert_eq!(status, 201, "{body}");
}

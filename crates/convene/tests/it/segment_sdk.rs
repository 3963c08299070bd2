//! The official Segment Python SDK (`segment-analytics-python`) pointed at
//! `/compat/segment`: what it sends is accepted and lands as contacts and
//! events. `.ci/run` installs the SDK; without it this test fails.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::Command;

use crate::ingest_support::{all_events, contact_events, find_contact};
use crate::support::{TestApp, spawn_app};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/sdk/segment_sdk.py");
const INSTALL: &str = "run .ci/run (it installs it) or `python3 -m pip install segment-analytics-python`";

/// Fails (never skips) when python3 or the SDK is missing.
async fn require_sdk() {
    let out = Command::new("python3")
        .args(["-c", "import segment.analytics"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("python3 is needed for the Segment SDK test ({e}): install Python 3, then {INSTALL}")
        });
    assert!(
        out.status.success(),
        "the Segment Python SDK is not installed: {INSTALL}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn run_sdk(app: &TestApp, write_key: &str, gzip: bool) {
    require_sdk().await;
    let run = Command::new("python3")
        .arg(SCRIPT)
        .env("CONVENE_SEGMENT_HOST", app.url("/compat/segment"))
        .env("CONVENE_WRITE_KEY", write_key)
        .env("CONVENE_GZIP", if gzip { "1" } else { "0" })
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the SDK script finishes within 60 s")
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the SDK script failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits (10 s at most) until the SDK's messages are applied; returns the
/// contact and its events.
async fn wait_for_result(app: &TestApp, token: &str) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = find_contact(app, token, "external_id", "user-1").await {
            let events = contact_events(app, token, c["id"].as_i64().unwrap()).await;
            if events.len() >= 2 && !c["company_id"].is_null() {
                return (c, events);
            }
        }
        assert!(Instant::now() < deadline, "the SDK's messages were not applied within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sdk_round_trip(gzip: bool) {
    let app = spawn_app().await;
    let ws = app.workspace("sdk").await;
    let write_key =
        app.key(&ws, json!({"name": "segment", "kind": "analytics"})).await["token"].as_str().unwrap().to_string();
    let reader = app.key(&ws, json!({"name": "reader", "kind": "full"})).await["token"].as_str().unwrap().to_string();
    run_sdk(&app, &write_key, gzip).await;

    let (contact, events) = wait_for_result(&app, &reader).await;
    assert_eq!(contact["external_id"], "user-1", "{contact}");
    assert_eq!(contact["email"], "sdk@x.io", "{contact}");
    assert_eq!(contact["traits"]["plan"], "pro", "{contact}");
    assert!(contact["company_id"].is_i64(), "group linked a company: {contact}");

    let signed_up =
        events.iter().find(|e| e["event"] == "Signed Up").unwrap_or_else(|| panic!("no Signed Up event: {events:?}"));
    assert_eq!(signed_up["kind"], "track", "{signed_up}");
    assert_eq!(signed_up["properties"], json!({"plan": "pro"}), "{signed_up}");
    let message_id = signed_up["message_id"].as_str().expect("the SDK's messageId is kept");
    assert!(!message_id.is_empty());
    let ts = chrono::DateTime::parse_from_rfc3339(signed_up["timestamp"].as_str().unwrap()).unwrap();
    assert!((chrono::Utc::now() - ts.with_timezone(&chrono::Utc)).num_seconds().abs() < 60, "{signed_up}");
    let page = events.iter().find(|e| e["kind"] == "page").unwrap_or_else(|| panic!("no page event: {events:?}"));
    assert_eq!(page["event"], "Quickstart", "{page}");
    assert_eq!(page["properties"]["path"], "/docs/quickstart", "{page}");
    assert_eq!(all_events(&app, &reader).await.len(), 2);
}

#[tokio::test]
async fn the_official_python_sdk_round_trips() {
    sdk_round_trip(false).await;
}

#[tokio::test]
async fn the_official_python_sdk_round_trips_gzipped() {
    sdk_round_trip(true).await;
}

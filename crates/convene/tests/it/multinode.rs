//! Two convene nodes on one PostgreSQL database (always on PostgreSQL,
//! whatever backend the rest of the suite uses): a write through one node
//! is read through the other, and when one node is SIGKILLed in the middle
//! of a load, the other finishes applying everything it acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

use crate::crash::{master_post, start, wait_until_present, writer};

const WRITERS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_s_acknowledged_writes_are_applied_by_the_other() {
    tokio::time::timeout(Duration::from_secs(60), scenario()).await.expect("the multi-node test finishes within 60 s");
}

async fn scenario() {
    let database = crate::support::scratch_postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut a = start(&tmp.path().join("a"), Some(&database), tmp.path(), 0, &client).await;
    let b = start(&tmp.path().join("b"), Some(&database), tmp.path(), 1, &client).await;

    // Set up through A.
    let ws = master_post(&client, format!("{}/v1/workspaces", a.base), json!({"name": "two nodes"})).await;
    let ws = ws["id"].as_str().unwrap().to_string();
    let key =
        master_post(&client, format!("{}/v1/workspaces/{ws}/keys", a.base), json!({"name": "k", "kind": "full"})).await;
    let token = key["token"].as_str().unwrap().to_string();

    // Identify through A, read through B (B's key cache and applier know nothing of A).
    let r = client
        .post(format!("{}/v1/identify", a.base))
        .bearer_auth(&token)
        .json(&json!({"email": "ada@example.com", "traits": {"plan": "pro"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client
            .get(format!("{}/v1/contacts?email=ada@example.com", b.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        if let Some(c) = page["data"].as_array().and_then(|d| d.first()) {
            assert_eq!(c["traits"]["plan"], "pro", "{c}");
            break;
        }
        assert!(Instant::now() < deadline, "the contact written through A never became readable through B");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Load A, kill it mid-load.
    let stop = Arc::new(AtomicBool::new(false));
    let load_client = Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(load_client.clone(), a.base.clone(), token.clone(), format!("w{w}"), stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(rand::random_range(400..900))).await;
    a.kill();
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.expect("a writer panicked").acked);
    }
    assert!(acked.len() > 50, "A acknowledged only {} writes before the kill", acked.len());

    // Only B is left: it must apply everything A acknowledged, once.
    let wanted: HashSet<&str> = acked.iter().map(String::as_str).collect();
    let all =
        wait_until_present(&client, &b, &token, &wanted, "writes acknowledged by A were never applied by B").await;
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for c in &all {
        if let Some(id) = c["external_id"].as_str() {
            *by_id.entry(id).or_default() += 1;
            assert!(c["traits"]["hits"].as_i64().unwrap_or(0) <= 1, "applied twice: {c}");
        }
    }
    for id in &acked {
        assert_eq!(by_id[id.as_str()], 1, "{id} exists exactly once");
    }
    eprintln!("A acknowledged {} writes before SIGKILL; B applied them all", acked.len());
}

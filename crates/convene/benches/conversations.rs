//! The conversations benchmark: `cargo bench -p convene --bench conversations`.
//!
//! Loads `BENCH_CONVERSATIONS` conversations (default 100,000) with
//! `BENCH_MESSAGES_PER` messages each (default 20: 2,000,000 messages) into a
//! fresh SQLite data directory through the store (the same code the API
//! runs, 64 writers at once so commits are shared), then starts the release
//! `convene` on it and measures, from a load generator on the same two
//! cores: a page of conversations filtered by status (`GET
//! /v1/conversations?status=pending&limit=50`), a conversation's messages
//! (`GET /v1/conversations/{id}/messages?limit=50`), the same two through
//! the Convot dialect, and posting messages (`POST …/messages`), each for
//! `BENCH_SECONDS` (default 10) at `BENCH_CONCURRENCY` (default 8)
//! connections, `BENCH_POST_CONCURRENCY` (default 64) for posting (extra
//! `convene serve` flags in `BENCH_SERVER_ARGS`): writes
//! share commits, so their throughput grows with the requests in flight. The
//! per-key rate limit is raised unless `CONVENE_RATE_LIMIT_FULL` is set.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Proc, env_or, free_port, rss_kib, wait_ready};
use convene_core::Store;
use convene_core::contact::ContactChanges;
use convene_core::conversation::{
    ConversationChanges, ConversationStatus, MessageType, NewConversation, NewMessage, Sender,
};
use convene_core::identity::IdentityKind;
use convene_core::scope::KeyKind;
use convene_core::workspace::NewKey;
use convene_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

const MASTER: &str = "bench-master-key-0123456789";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("conversations bench failed: {e}");
        std::process::exit(1);
    }
}

/// Loads the data set; returns (token, conversation ids).
async fn load(dir: &std::path::Path, conversations: usize, per: usize) -> Result<(String, Vec<String>), String> {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join("convene.db"), SqliteOptions::default()).map_err(|e| e.to_string())?);
    let ws = store.create_workspace("bench".into()).await.map_err(|e| e.to_string())?.id;
    let minted = convene_core::token::mint();
    let key = NewKey {
        name: "bench".into(),
        kind: KeyKind::Full,
        service_account_id: None,
        scopes: None,
        expires_at: None,
        hash: minted.hash,
        preview: minted.preview,
    };
    let key_id = store.create_key(&ws, key).await.map_err(|e| e.to_string())?.id;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, ws, next, key_id) = (store.clone(), ws.clone(), next.clone(), key_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= conversations {
                    return Ok::<_, String>(ids);
                }
                let mut contact = ContactChanges::default();
                contact
                    .set_identity(IdentityKind::Email, &json!(format!("c{i}@example.com")))
                    .map_err(|e| e.to_string())?;
                let contact = store.create_contact(&ws, contact).await.map_err(|e| e.to_string())?;
                let api = Sender::Api(key_id.clone());
                let mut new = NewConversation::new(contact.id);
                new.first_message = Some(
                    NewMessage::new(MessageType::Outgoing, "Hello, how can we help?", api.clone())
                        .map_err(|e| e.to_string())?,
                );
                let conv = store.create_conversation(&ws, new).await.map_err(|e| e.to_string())?;
                for m in 1..per {
                    let (kind, sender) = if m % 2 == 1 {
                        (MessageType::Incoming, Sender::Contact(contact.id))
                    } else {
                        (MessageType::Outgoing, api.clone())
                    };
                    let text = format!("message {m} of conversation {i}: some words of a typical reply");
                    let message = NewMessage::new(kind, &text, sender).map_err(|e| e.to_string())?;
                    store.add_message(&ws, &conv.id, message).await.map_err(|e| e.to_string())?;
                }
                if i.is_multiple_of(3) {
                    let pending =
                        ConversationChanges { status: Some(ConversationStatus::Pending), ..Default::default() };
                    store.update_conversation(&ws, &conv.id, pending, api).await.map_err(|e| e.to_string())?;
                }
                ids.push(conv.id);
            }
        }));
    }
    let mut ids = Vec::with_capacity(conversations);
    for t in tasks {
        ids.extend(t.await.map_err(|e| e.to_string())??);
    }
    eprintln!(
        "loaded {conversations} conversations, {} messages in {:.1} s",
        conversations * per,
        started.elapsed().as_secs_f64()
    );
    Ok((minted.token, ids))
}

struct Figures {
    name: String,
    requests: u64,
    errors: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `request(n)` from `concurrency` loops for `secs`.
async fn measure<F, Fut>(name: String, concurrency: usize, secs: u64, request: F) -> Figures
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (request, next, errors) = (request.clone(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if request(n).await {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let q =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0.0);
    Figures {
        name,
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        per_sec: all.len() as f64 / elapsed,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
    }
}

async fn ok(r: reqwest::Result<reqwest::Response>) -> bool {
    match r {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn run() -> Result<(), String> {
    let (conversations, per) = (env_or("BENCH_CONVERSATIONS", 100_000usize), env_or("BENCH_MESSAGES_PER", 20usize));
    let (secs, conc) = (env_or("BENCH_SECONDS", 10u64), env_or("BENCH_CONCURRENCY", 8usize));
    let post_conc = env_or("BENCH_POST_CONCURRENCY", 64usize);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (token, ids) = load(dir.path(), conversations, per).await?;
    let ids = Arc::new(ids);
    let port = free_port();
    let node = Proc(
        Command::new(env!("CARGO_BIN_EXE_convene"))
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--master-key", MASTER])
            .args(std::env::var("BENCH_SERVER_ARGS").unwrap_or_default().split_whitespace())
            .env("CONVENE_LOG", "warn")
            // The bench measures the server, not the per-key limiter (a full
            // key's 10,000/s, which the read phases pass).
            .env(
                "CONVENE_RATE_LIMIT_FULL",
                std::env::var("CONVENE_RATE_LIMIT_FULL").unwrap_or_else(|_| common::UNLIMITED_RATE.into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().map_err(|e| e.to_string())?;
    wait_ready(&client, &base).await?;
    let mut figures = Vec::new();
    let pick = |n: u64, ids: &[String]| ids[(n.wrapping_mul(2_654_435_761) % ids.len() as u64) as usize].clone();
    {
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let name = "GET /v1/conversations?status=pending&limit=50".to_string();
        figures.push(
            measure(name, conc, secs, move |_| {
                let (c, b, t) = (c.clone(), b.clone(), t.clone());
                async move {
                    ok(c.get(format!("{b}/v1/conversations?status=pending&limit=50")).bearer_auth(t).send().await).await
                }
            })
            .await,
        );
    }
    {
        let (c, b, t, ids) = (client.clone(), base.clone(), token.clone(), ids.clone());
        let name = "GET /v1/conversations/{id}/messages?limit=50".to_string();
        figures.push(
            measure(name, conc, secs, move |n| {
                let (c, b, t, id) = (c.clone(), b.clone(), t.clone(), pick(n, &ids));
                async move {
                    ok(c.get(format!("{b}/v1/conversations/{id}/messages?limit=50")).bearer_auth(t).send().await).await
                }
            })
            .await,
        );
    }
    {
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let name = "Convot GET /v1/conversations?status=pending (page 1, 30)".to_string();
        figures.push(
            measure(name, conc, secs, move |_| {
                let (c, b, t) = (c.clone(), b.clone(), t.clone());
                async move {
                    ok(c.get(format!("{b}/compat/convot/v1/conversations?status=pending")).bearer_auth(t).send().await)
                        .await
                }
            })
            .await,
        );
    }
    {
        let (c, b, t, ids) = (client.clone(), base.clone(), token.clone(), ids.clone());
        let name = "Convot GET /v1/conversations/{id}/messages?type=incoming,outgoing".to_string();
        figures.push(
            measure(name, conc, secs, move |n| {
                let (c, b, t, id) = (c.clone(), b.clone(), t.clone(), pick(n, &ids));
                async move {
                    let url = format!("{b}/compat/convot/v1/conversations/{id}/messages?type=incoming,outgoing");
                    ok(c.get(url).bearer_auth(t).send().await).await
                }
            })
            .await,
        );
    }
    {
        let (c, b, t, ids) = (client.clone(), base.clone(), token.clone(), ids.clone());
        let name = "POST /v1/conversations/{id}/messages".to_string();
        figures.push(
            measure(name, post_conc, secs, move |n| {
                let (c, b, t, id) = (c.clone(), b.clone(), t.clone(), pick(n, &ids));
                async move {
                    let body = json!({"content": format!("reply {n}: your refund is on the way")});
                    ok(c.post(format!("{b}/v1/conversations/{id}/messages")).bearer_auth(t).json(&body).send().await)
                        .await
                }
            })
            .await,
        );
    }
    let (rss, hwm) = rss_kib(node.0.id());
    println!(
        "\n{conversations} conversations, {} messages; {conc} connections ({post_conc} for posting), {secs} s per phase\n",
        conversations * per,
    );
    println!("| phase | requests | errors | req/s | p50 | p99 |\n| --- | --: | --: | --: | --: | --: |");
    for f in &figures {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms |",
            f.name, f.requests, f.errors, f.per_sec, f.p50_ms, f.p99_ms
        );
    }
    println!("\nserver RSS {} MiB, peak {} MiB", rss / 1024, hwm / 1024);
    Ok(())
}

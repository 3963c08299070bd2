//! The console benchmark: `cargo bench -p convene --bench console`.
//!
//! Starts the release `convene` (SQLite, default settings), loads
//! `BENCH_CONTACTS` contacts (default 1,000,000; native batch upserts of
//! 1,000, four connections; one in ten tagged `vip`), `BENCH_CONVERSATIONS`
//! conversations (default 100,000: calls through the Converz dialect spread
//! over the last 30 days and 200 reps, each with a contact, plus 200 chat
//! conversations with messages), and 20,000 events; then logs in as an admin
//! and times every console page `BENCH_RUNS` times (default 5) after one
//! warm-up request. The figure is the round trip on loopback (an upper bound
//! of the server's time), median and worst; the target is under 100 ms.

mod common;

use std::time::Instant;

use common::{Server, env_or, start_server};
use serde_json::{Value, json};

const MASTER: &str = "bench-master-key-0123456789";
const TARGET_MS: f64 = 100.0;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("console bench failed: {e}");
        std::process::exit(1);
    }
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: String) -> Result<Value, String> {
    let r = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{status}: {v}"));
    }
    Ok(v)
}

fn contacts_body(first: usize, n: usize) -> String {
    let rows: Vec<Value> = (first..first + n)
        .map(|i| {
            let mut tags = vec!["customer"];
            if i % 10 == 0 {
                tags.push("vip");
            }
            json!({"email": format!("c{i}@example.com"),
                   "traits": {"tags": tags, "plan": (["free", "pro", "team"][i % 3]), "seats": i % 50, "city": format!("City {}", i % 500)}})
        })
        .collect();
    json!({"contacts": rows}).to_string()
}

fn calls_body(first: usize, n: usize, now: i64) -> String {
    let rows: Vec<Value> = (first..first + n)
        .map(|i| {
            let start = now - 60 - ((i as i64).wrapping_mul(7_919) % (30 * 86_400));
            json!({"call_id": format!("call{i:08}"), "rep_id": format!("rep{:04}", i % 200), "start_time": start,
                   "duration": 30 + (i * 37) % 900, "email": format!("c{}@example.com", (i * 9) % 1_000_000),
                   "vendor": if i % 2 == 0 { "aircall" } else { "zoom" }, "summary": format!("Call number {i}")})
        })
        .collect();
    Value::Array(rows).to_string()
}

async fn load(client: &reqwest::Client, s: &Server) -> Result<(i64, String), String> {
    let contacts = env_or("BENCH_CONTACTS", 1_000_000usize);
    let conversations = env_or("BENCH_CONVERSATIONS", 100_000usize);
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, next, base, token) = (client.clone(), next.clone(), s.base.clone(), s.token.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(1000, std::sync::atomic::Ordering::Relaxed);
                if first >= contacts {
                    return Ok::<(), String>(());
                }
                let n = 1000.min(contacts - first);
                post(&client, format!("{base}/v1/contacts/batch"), &token, contacts_body(first, n)).await?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    eprintln!("loaded {contacts} contacts in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp();
    let calls = conversations.saturating_sub(200);
    for first in (0..calls).step_by(50_000) {
        let n = 50_000.min(calls - first);
        let url = format!("{}/compat/converz/api/v1/calls", s.base);
        let r = client
            .post(url)
            .header("X-API-Key", &s.token)
            .header("content-type", "application/json")
            .body(calls_body(first, n, now))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("calls: {} {}", r.status(), r.text().await.unwrap_or_default()));
        }
    }
    let mut chat = String::new();
    for i in 0..200 {
        let body = json!({"contact_id": i + 1, "subject": format!("Question {i}"), "channel": "chat",
                          "message": {"type": "incoming", "content": format!("Hello, this is question {i}")}});
        let c = post(client, format!("{}/v1/conversations", s.base), &s.token, body.to_string()).await?;
        let id = c["id"].as_str().ok_or("no conversation id")?.to_string();
        for m in 0..10 {
            let kind = ["outgoing", "incoming", "note"][m % 3];
            let body = json!({"type": kind, "content": format!("Message {m} of conversation {i}")});
            post(client, format!("{}/v1/conversations/{id}/messages", s.base), &s.token, body.to_string()).await?;
        }
        chat = id;
    }
    eprintln!("loaded {conversations} conversations in {:.1} s", started.elapsed().as_secs_f64());
    for first in (0..20_000).step_by(500) {
        let batch: Vec<Value> = (first..first + 500)
            .map(|i| json!({"type": "track", "email": format!("c{}@example.com", i % 1000), "event": (["Signed Up", "Viewed Page", "Paid", "Logged In"][i % 4])}))
            .collect();
        post(client, format!("{}/v1/batch", s.base), &s.token, json!({"batch": batch}).to_string()).await?;
    }
    Ok((now, chat))
}

async fn login(client: &reqwest::Client, s: &Server, ws_key: &str) -> Result<String, String> {
    let workspaces = client
        .get(format!("{}/v1/workspaces", s.base))
        .bearer_auth(MASTER)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json::<Value>()
        .await
        .map_err(|e| e.to_string())?;
    let ws = workspaces["data"][0]["id"].as_str().ok_or("no workspace")?.to_string();
    let body =
        json!({"name": "Bench Admin", "email": "admin@example.com", "role": "admin", "password": "bench password 1"});
    post(client, format!("{}/v1/workspaces/{ws}/users", s.base), MASTER, body.to_string()).await?;
    let _ = ws_key;
    let page = client.get(format!("{}/console/login", s.base)).send().await.map_err(|e| e.to_string())?;
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("no login cookie")?
        .to_string();
    let csrf = cookie.split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default();
    let r = client
        .post(format!("{}/console/login", s.base))
        .header("cookie", cookie)
        .form(&[("_csrf", csrf.as_str()), ("email", "admin@example.com"), ("password", "bench password 1")])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .ok_or_else(|| format!("login failed: {}", r.status()))
}

async fn run() -> Result<(), String> {
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().map_err(|e| e.to_string())?;
    let s = start_server(&client, None, MASTER).await?;
    let (_, chat) = load(&client, &s).await?;
    let cookie = login(&client, &s, &s.token).await?;
    let runs = env_or("BENCH_RUNS", 5usize);
    let pages = [
        "/console/conversations".to_string(),
        "/console/conversations?status=open".to_string(),
        format!("/console/conversations/{chat}"),
        "/console/contacts".to_string(),
        "/console/contacts?q=c99999".to_string(),
        "/console/contacts?tag=vip".to_string(),
        "/console/contacts?field=plan&value=team".to_string(),
        "/console/contacts/500000".to_string(),
        "/console/contacts/1".to_string(),
        "/console/reps".to_string(),
        "/console/reps/rep0007".to_string(),
        "/console/companies".to_string(),
        "/console/reports".to_string(),
        "/console/reports/conversations-per-day.csv".to_string(),
        "/console/settings/service-accounts".to_string(),
        "/console/settings/keys".to_string(),
        "/console/settings/fields".to_string(),
        "/console/settings/users".to_string(),
        "/console/settings/teams".to_string(),
    ];
    println!("\n| page | median ms | worst ms | bytes | under {TARGET_MS} ms |\n| --- | --: | --: | --: | --- |");
    let mut all_ok = true;
    for path in &pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for i in 0..=runs {
            let started = Instant::now();
            let r = client
                .get(format!("{}{path}", s.base))
                .header("cookie", &cookie)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if !status.is_success() {
                return Err(format!("{path}: {status}"));
            }
            bytes = body.len();
            if i > 0 {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
        let ok = worst < TARGET_MS;
        all_ok &= ok;
        println!("| `{path}` | {median:.1} | {worst:.1} | {bytes} | {} |", if ok { "yes" } else { "NO" });
    }
    println!("\nall pages under {TARGET_MS} ms: {}", if all_ok { "yes" } else { "no" });
    Ok(())
}

//! The export benchmark: `cargo bench -p convene --bench export`.
//!
//! Starts the release `convene` (SQLite, default settings), loads
//! `BENCH_CONTACTS` contacts (default 1,000,000; native `POST
//! /v1/contacts/batch` of 1,000 rows on four connections; an email, an
//! external id and four traits each), then times `GET
//! /v1/exports/contacts?format=ndjson` `BENCH_RUNS` times (default 3): the
//! body is read as a stream and its rows counted, the server's RSS sampled
//! every 20 ms (growth over the RSS before the request). Reports MB/s and
//! rows/s of each run and the median; target ≥ 150 MB/s with RSS growth
//! under 50 MB. One CSV export is timed too, for comparison.
//! `BENCH_POSTGRES_URL` (an admin URL) runs it again on a fresh PostgreSQL
//! database in the same run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, env_or, rss_kib, start_server};
use serde_json::{Value, json};

const MASTER: &str = "bench-master-key-0123456789";
const TARGET_MB_S: f64 = 150.0;
const TARGET_GROWTH_MIB: f64 = 50.0;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("export bench failed: {e}");
        std::process::exit(1);
    }
}

fn contacts_body(first: usize, n: usize) -> String {
    let rows: Vec<Value> = (first..first + n)
        .map(|i| {
            let mut tags = vec!["customer"];
            if i % 10 == 0 {
                tags.push("vip");
            }
            json!({"email": format!("c{i}@example.com"), "external_id": format!("crm-{i:08}"),
                   "traits": {"tags": tags, "plan": (["free", "pro", "team"][i % 3]), "seats": i % 50,
                              "city": format!("City {}", i % 500)}})
        })
        .collect();
    json!({"contacts": rows}).to_string()
}

async fn load(client: &reqwest::Client, s: &Server, contacts: usize) -> Result<f64, String> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, next, base, token) = (client.clone(), next.clone(), s.base.clone(), s.token.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(1000, Ordering::Relaxed);
                if first >= contacts {
                    return Ok::<(), String>(());
                }
                let r = client
                    .post(format!("{base}/v1/contacts/batch"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(contacts_body(first, 1000.min(contacts - first)))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!("batch: {} {}", r.status(), r.text().await.unwrap_or_default()));
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// One timed export: (bytes, rows, seconds, RSS before, peak RSS), KiB.
async fn export_once(client: &reqwest::Client, s: &Server, pid: u32, format: &str) -> Result<Run, String> {
    let before = rss_kib(pid).0;
    let started = Instant::now();
    let mut r = client
        .get(format!("{}/v1/exports/contacts?format={format}", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("export: {}", r.status()));
    }
    let (mut bytes, mut rows, mut peak, mut last_sample) = (0usize, 0usize, before, Instant::now());
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        bytes += chunk.len();
        rows += chunk.iter().filter(|b| **b == b'\n').count();
        if last_sample.elapsed() > Duration::from_millis(20) {
            peak = peak.max(rss_kib(pid).0);
            last_sample = Instant::now();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    peak = peak.max(rss_kib(pid).0);
    Ok(Run { bytes, rows, secs, before, peak })
}

struct Run {
    bytes: usize,
    rows: usize,
    secs: f64,
    before: u64,
    peak: u64,
}

impl Run {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
    fn growth_mib(&self) -> f64 {
        self.peak.saturating_sub(self.before) as f64 / 1024.0
    }
    fn line(&self) -> String {
        format!(
            "{:.0} MB, {} rows in {:.2} s = **{:.0} MB/s**, {:.0} rows/s; server RSS {} → peak {} MiB (growth {:.1} MiB)",
            self.bytes as f64 / 1e6,
            self.rows,
            self.secs,
            self.mb_s(),
            self.rows as f64 / self.secs,
            self.before / 1024,
            self.peak / 1024,
            self.growth_mib()
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn backend(
    client: &reqwest::Client,
    name: &str,
    database: Option<&str>,
    rows: &mut Vec<String>,
) -> Result<(), String> {
    let mut add = |what: String, value: String| {
        eprintln!("{name}: {what}: {value}");
        rows.push(format!("| {name} | {what} | {value} |"));
    };
    let s = start_server(client, database, MASTER).await?;
    let pid = s.node.0.id();
    let contacts = env_or("BENCH_CONTACTS", 1_000_000usize);
    let runs = env_or("BENCH_RUNS", 3usize).max(1);
    let secs = load(client, &s, contacts).await?;
    add(format!("load {contacts} contacts (batches of 1,000, 4 connections)"), format!("{secs:.1} s"));
    let mut results = Vec::new();
    for i in 0..runs {
        let run = export_once(client, &s, pid, "ndjson").await?;
        if run.rows != contacts {
            return Err(format!("the export held {} rows, not {contacts}", run.rows));
        }
        add(format!("`GET /v1/exports/contacts?format=ndjson` run {}", i + 1), run.line());
        results.push(run);
    }
    let mb_s = median(results.iter().map(Run::mb_s).collect());
    let rows_s = median(results.iter().map(|r| r.rows as f64 / r.secs).collect());
    let growth = results.iter().map(Run::growth_mib).fold(0.0, f64::max);
    add(
        "NDJSON export: median".into(),
        format!(
            "**{mb_s:.0} MB/s**, {rows_s:.0} rows/s (target ≥ {TARGET_MB_S} MB/s: {}); largest RSS growth {growth:.1} MiB \
             (target < {TARGET_GROWTH_MIB} MB: {})",
            if mb_s >= TARGET_MB_S { "met" } else { "not met" },
            if growth < TARGET_GROWTH_MIB { "met" } else { "not met" }
        ),
    );
    let csv = export_once(client, &s, pid, "csv").await?;
    add("`GET /v1/exports/contacts?format=csv` (one run)".into(), csv.line());
    Ok(())
}

async fn run() -> Result<(), String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(1200)).build().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    backend(&client, "SQLite", None, &mut rows).await?;
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let url = convene_store_postgres::scratch::fresh_database(&admin).await.map_err(|e| e.to_string())?;
        backend(&client, "PostgreSQL", Some(&url), &mut rows).await?;
    }
    println!("\n| backend | measure | result |\n| --- | --- | --- |");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

//! The Converz benchmark: `cargo bench -p convene --bench converz`.
//!
//! Starts the release `convene` (default settings) and, through the Converz
//! dialect, measures:
//! 1. `POST /reps` with 100,000 rows in the columnar form, 5 attributes each
//!    (`name`, `department`, `gender`, `region`, `level`): the first run
//!    creates them, the next ones update them;
//! 2. `GET /reps?n_per_page=1000000` over 1,000,000 reps: the body is read
//!    as a stream and counted (MB/s), the server's RSS sampled every 20 ms
//!    (growth over the RSS before the request);
//! 3. `GET /report?group_by=rep_id,day&metrics=calls,total_duration,avg_duration`
//!    over 1,000,000 calls (1,000 reps, 90 days), loaded by `POST /calls`.
//!
//! `BENCH_POSTGRES_URL` (an admin URL) runs it again on a fresh PostgreSQL
//! database in the same run. `BENCH_REPS` and `BENCH_CALLS` change the data
//! set sizes; `BENCH_RUNS` the repetitions of each timed request (default 3);
//! `BENCH_ONLY=reps,page,report` runs only the named phases.

mod common;

use std::time::{Duration, Instant};

use common::{Server, env_or, rss_kib, start_server};
use serde_json::{Value, json};

const MASTER: &str = "bench-master-key-0123456789";
const BATCH: usize = 100_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("converz bench failed: {e}");
        std::process::exit(1);
    }
}

/// Sends a body; returns (seconds, answer).
async fn send(client: &reqwest::Client, s: &Server, path: &str, body: String) -> Result<(f64, Value), String> {
    let started = Instant::now();
    let r = client
        .post(format!("{}/compat/converz/api/v1{path}", s.base))
        .header("X-API-Key", &s.token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let answer: Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{path}: {status} {answer}"));
    }
    Ok((started.elapsed().as_secs_f64(), answer))
}

/// 100,000 reps in the columnar form, numbered from `first`, 5 attributes.
fn reps_body(first: usize, round: usize) -> String {
    let ids: Vec<String> = (first..first + BATCH).map(|i| format!("rep{i:07}")).collect();
    let names: Vec<String> = (first..first + BATCH).map(|i| format!("Rep Number {i} r{round}")).collect();
    let depts: Vec<&str> = (first..first + BATCH).map(|i| ["sales", "support", "success"][i % 3]).collect();
    let genders: Vec<&str> = (first..first + BATCH).map(|i| ["f", "m", "x"][(i + round) % 3]).collect();
    let regions: Vec<&str> = (first..first + BATCH).map(|i| ["emea", "amer", "apac"][(i / 7) % 3]).collect();
    let levels: Vec<usize> = (first..first + BATCH).map(|i| (i + round) % 10).collect();
    json!({"rep_id": ids, "name": names, "department": depts, "gender": genders, "region": regions, "level": levels})
        .to_string()
}

/// 100,000 calls in the row-wise form, numbered from `first`: 1,000 reps, 90 days.
fn calls_body(first: usize) -> String {
    let epoch = 1_767_225_600i64; // 2026-01-01T00:00:00Z
    let rows: Vec<Value> = (first..first + BATCH)
        .map(|i| {
            let start = epoch + ((i as i64).wrapping_mul(7_919) % (90 * 86_400));
            json!({"call_id": format!("call{i:08}"), "rep_id": format!("rep{:07}", i % 1000), "start_time": start,
                   "duration": 30 + (i * 37) % 900, "vendor": if i % 2 == 0 { "aircall" } else { "zoom" }})
        })
        .collect();
    Value::Array(rows).to_string()
}

#[derive(Default)]
struct Figures {
    rows: Vec<String>,
}

impl Figures {
    fn add(&mut self, backend: &str, what: &str, value: String) {
        eprintln!("{backend}: {what}: {value}");
        self.rows.push(format!("| {backend} | {what} | {value} |"));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn backend(client: &reqwest::Client, name: &str, database: Option<&str>, f: &mut Figures) -> Result<(), String> {
    let s = start_server(client, database, MASTER).await?;
    let pid = s.node.0.id();
    let runs = env_or("BENCH_RUNS", 3usize).max(1);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |phase: &str| only.is_empty() || only.split(',').any(|p| p == phase);
    if wanted("reps") || wanted("page") {
        reps_phases(client, &s, name, runs, pid, f, wanted("page")).await?;
    }
    if wanted("report") {
        report_phase(client, &s, name, runs, f).await?;
    }
    Ok(())
}

async fn reps_phases(
    client: &reqwest::Client,
    s: &Server,
    name: &str,
    runs: usize,
    pid: u32,
    f: &mut Figures,
    page: bool,
) -> Result<(), String> {
    // 1. 100,000 reps, columnar, 5 attributes.
    let mut times = Vec::new();
    for round in 0..runs {
        let (secs, answer) = send(client, s, "/reps", reps_body(0, round)).await?;
        let what = if round == 0 { "created" } else { "updated" };
        f.add(
            name,
            &format!("POST /reps, 100,000 rows × 5 attributes (run {}, {what})", round + 1),
            format!("{secs:.2} s ({answer})"),
        );
        times.push(secs);
    }
    f.add(name, "POST /reps, 100,000 rows: median", format!("{:.2} s", median(times)));
    // 2. 1,000,000 reps, one page.
    let total = env_or("BENCH_REPS", 1_000_000usize);
    let started = Instant::now();
    for first in (BATCH..total).step_by(BATCH) {
        send(client, s, "/reps", reps_body(first, 0)).await?;
    }
    f.add(name, &format!("load up to {total} reps"), format!("{:.1} s", started.elapsed().as_secs_f64()));
    for _ in 0..if page { runs } else { 0 } {
        let before = rss_kib(pid).0;
        let started = Instant::now();
        let mut r = client
            .get(format!("{}/compat/converz/api/v1/reps?n_per_page=1000000", s.base))
            .header("X-API-Key", &s.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let (mut bytes, mut peak, mut last_sample) = (0usize, before, Instant::now());
        while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
            bytes += chunk.len();
            if last_sample.elapsed() > Duration::from_millis(20) {
                peak = peak.max(rss_kib(pid).0);
                last_sample = Instant::now();
            }
        }
        let secs = started.elapsed().as_secs_f64();
        peak = peak.max(rss_kib(pid).0);
        f.add(
            name,
            &format!("GET /reps?n_per_page=1000000 over {total} reps"),
            format!(
                "{:.0} MB in {secs:.2} s = {:.0} MB/s; server RSS {} → peak {} MiB (growth {:.1} MiB)",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / secs,
                before / 1024,
                peak / 1024,
                (peak.saturating_sub(before)) as f64 / 1024.0
            ),
        );
    }
    Ok(())
}

async fn report_phase(
    client: &reqwest::Client,
    s: &Server,
    name: &str,
    runs: usize,
    f: &mut Figures,
) -> Result<(), String> {
    // 3. 1,000,000 calls, the report by rep and day.
    let calls = env_or("BENCH_CALLS", 1_000_000usize);
    let started = Instant::now();
    for first in (0..calls).step_by(BATCH) {
        send(client, s, "/calls", calls_body(first)).await?;
    }
    f.add(name, &format!("load {calls} calls"), format!("{:.1} s", started.elapsed().as_secs_f64()));
    for (label, path) in [
        (
            "Converz GET /report?group_by=rep_id,day&metrics=calls,total_duration,avg_duration",
            "/compat/converz/api/v1/report?group_by=rep_id,day&metrics=calls,total_duration,avg_duration",
        ),
        (
            "native GET /v1/reports?group_by=rep_id,day&metrics=count,sum:duration,p90:duration",
            "/v1/reports?group_by=rep_id,day&metrics=count,sum:duration,p90:duration",
        ),
    ] {
        let mut times = Vec::new();
        let mut groups = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let r = client
                .get(format!("{}{path}", s.base))
                .header("X-API-Key", &s.token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let answer: Value = r.json().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{path}: {status} {answer}"));
            }
            times.push(started.elapsed().as_secs_f64());
            groups = answer["data"].as_array().map_or(0, Vec::len);
        }
        let max = times.iter().copied().fold(0.0, f64::max);
        f.add(
            name,
            &format!("{label} over {calls} calls ({groups} groups)"),
            format!("median {:.3} s, max {max:.3} s", median(times)),
        );
    }
    Ok(())
}

async fn run() -> Result<(), String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().map_err(|e| e.to_string())?;
    let mut figures = Figures::default();
    backend(&client, "SQLite", None, &mut figures).await?;
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let url = convene_store_postgres::scratch::fresh_database(&admin).await.map_err(|e| e.to_string())?;
        backend(&client, "PostgreSQL", Some(&url), &mut figures).await?;
    }
    println!("\n| backend | measure | result |\n| --- | --- | --- |");
    for row in figures.rows {
        println!("{row}");
    }
    Ok(())
}

//! The ingestion benchmark: `cargo bench -p convene --bench ingest`.
//!
//! Starts the release `convene` binary on a fresh data directory (default
//! settings: SQLite, synchronous=FULL) and, for comparison, a bare axum
//! server that only parses the JSON (this same executable re-run with
//! `CONVENE_BENCH_BARE=1`). The load generator runs here, on the same two
//! cores as the server: the figures are ratios and rates within one run.
//!
//! Phases: single-event identify (vs. the bare handler), batches of 100,
//! ack latency at half the single-event maximum, sustained mixed load with
//! the backlog watched, apply lag at a fixed rate, resident memory.
//! Environment: `BENCH_SECONDS` (per phase, default 10),
//! `BENCH_SUSTAINED_EPS` (default 40000), `BENCH_LAG_EPS` (default 20000).

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MASTER: &str = "bench-master-key-0123456789";

fn main() {
    if std::env::var("CONVENE_BENCH_BARE").is_ok() {
        bare_server();
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("ingest bench failed: {e}");
        std::process::exit(1);
    }
}

/// The reference: an axum handler that parses the identify JSON and answers.
fn bare_server() {
    let addr: SocketAddr = std::env::var("CONVENE_BENCH_LISTEN").expect("listen").parse().expect("addr");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let app = axum::Router::new().route(
            "/v1/identify",
            axum::routing::post(|body: axum::body::Bytes| async move {
                let parsed: Result<serde_json::Map<String, Value>, _> = serde_json::from_slice(&body);
                match parsed {
                    Ok(map) => (axum::http::StatusCode::ACCEPTED, format!("{{\"fields\":{}}}", map.len())),
                    Err(_) => (axum::http::StatusCode::BAD_REQUEST, String::new()),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A child process killed on drop (only processes this bench started).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<(), String> {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{base} did not become ready"))
}

/// Latencies in microseconds, summarised at the end.
#[derive(Default)]
struct Latencies(Vec<u32>);

impl Latencies {
    fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i] as f64 / 1000.0
    }
}

fn identify_body(id: u64, rng: u64) -> String {
    let plan = ["free", "pro", "team"][(rng % 3) as usize];
    json!({
        "external_id": format!("u{id}"),
        "traits": {
            "first_name": "Jill", "plan": plan,
            "visits": {"$inc": 1}, "tags": {"add": [format!("t{}", rng % 7)]}, "score": rng % 1000
        }
    })
    .to_string()
}

fn batch_body(start: u64, n: u64, existing_every: u64) -> String {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let id = start + i;
            // every `existing_every`-th item updates an earlier contact
            let target = if existing_every > 0 && id.is_multiple_of(existing_every) && id > 1000 { id / 2 } else { id };
            json!({
                "type": "identify", "external_id": format!("u{target}"),
                "traits": {"plan": "pro", "visits": {"$inc": 1}, "tags": {"add": [format!("t{}", id % 7)]},
                           "score": id % 1000, "city": "Lyon"}
            })
        })
        .collect();
    json!({ "batch": items }).to_string()
}

struct Target {
    base: String,
    token: String,
}

/// Posts one JSON body; the latency in µs when answered 2xx, `None` otherwise.
async fn post_once(client: &reqwest::Client, target: &Target, path: &str, body: String) -> Option<u32> {
    let started = Instant::now();
    let r = client
        .post(format!("{}{path}", target.base))
        .bearer_auth(&target.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let _ = r.bytes().await;
    Some(started.elapsed().as_micros() as u32)
}

/// Drives `concurrency` closed-loop workers for `secs`, each sending the
/// request `make(seq)` builds; returns (requests ok, errors, latencies).
async fn closed_loop(
    client: &reqwest::Client,
    target: &Arc<Target>,
    path: &'static str,
    concurrency: usize,
    secs: u64,
    make: fn(u64) -> String,
    seq: Arc<AtomicU64>,
) -> (u64, u64, Latencies) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, target, stop, seq) = (client.clone(), target.clone(), stop.clone(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err, mut lat) = (0u64, 0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match post_once(&client, &target, path, make(seq.fetch_add(1, Ordering::Relaxed))).await {
                    Some(us) => {
                        ok += 1;
                        lat.push(us);
                    }
                    None => err += 1,
                }
            }
            (ok, err, lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut err, mut lat) = (0, 0, Latencies::default());
    for t in tasks {
        if let Ok((o, e, l)) = t.await {
            ok += o;
            err += e;
            lat.0.extend(l);
        }
    }
    (ok, err, lat)
}

#[allow(clippy::too_many_arguments)]
/// Open loop: sends `rate` requests per second for `secs` (paced every
/// 5 ms), each built by `make(seq)`; returns (ok, errors, latencies).
async fn open_loop(
    client: &reqwest::Client,
    target: &Arc<Target>,
    path: &'static str,
    rate: f64,
    secs: u64,
    make: Arc<dyn Fn(u64) -> String + Send + Sync>,
    seq: Arc<AtomicU64>,
    mut during: impl FnMut(),
) -> (u64, u64, Latencies) {
    let ok = Arc::new(AtomicU64::new(0));
    let err = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut last_sample = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            sent += 1;
            if in_flight.load(Ordering::Relaxed) > 2000 {
                err.fetch_add(1, Ordering::Relaxed); // generator saturated: count as a miss
                continue;
            }
            let (client, target, make, seq) = (client.clone(), target.clone(), make.clone(), seq.clone());
            let (ok, err, lat, in_flight) = (ok.clone(), err.clone(), lat.clone(), in_flight.clone());
            in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                match post_once(&client, &target, path, make(seq.fetch_add(1, Ordering::Relaxed))).await {
                    Some(us) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        lat.lock().push(us);
                    }
                    None => {
                        err.fetch_add(1, Ordering::Relaxed);
                    }
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
        if last_sample.elapsed() > Duration::from_secs(1) {
            during();
            last_sample = Instant::now();
        }
    }
    while in_flight.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let latencies = Latencies(std::mem::take(&mut *lat.lock()));
    (ok.load(Ordering::Relaxed), err.load(Ordering::Relaxed), latencies)
}

/// Reads one metric (a plain `name value` line) from /metrics.
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return f64::NAN,
    };
    text.lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The apply-lag histogram's cumulative buckets (le, count).
async fn lag_buckets(client: &reqwest::Client, base: &str) -> Vec<(f64, f64)> {
    let text = client.get(format!("{base}/metrics")).send().await.ok();
    let text = match text {
        Some(r) => r.text().await.unwrap_or_default(),
        None => String::new(),
    };
    text.lines()
        .filter(|l| l.starts_with("convene_ingest_apply_lag_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.split_whitespace().last()?.parse().ok()?))
        })
        .collect()
}

fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| (*le, n - before.iter().find(|(l, _)| l == le).map(|(_, m)| *m).unwrap_or(0.0)))
        .collect();
    let total = deltas.last().map(|(_, n)| *n).unwrap_or(0.0);
    deltas.iter().find(|(_, n)| *n >= total * q).map(|(le, _)| *le).unwrap_or(f64::NAN)
}

async fn run() -> Result<(), String> {
    let secs: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let sustained_eps: f64 = std::env::var("BENCH_SUSTAINED_EPS").ok().and_then(|s| s.parse().ok()).unwrap_or(40_000.0);
    let lag_eps: f64 = std::env::var("BENCH_LAG_EPS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000.0);
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build().map_err(|e| e.to_string())?;

    // The bare reference server.
    let bare_port = free_port();
    let _bare = Proc(
        Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .env("CONVENE_BENCH_BARE", "1")
            .env("CONVENE_BENCH_LISTEN", format!("127.0.0.1:{bare_port}"))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let bare = Arc::new(Target { base: format!("http://127.0.0.1:{bare_port}"), token: "x".into() });
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", bare_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // convene.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_convene"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--master-key", MASTER])
        .env("CONVENE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let _server = Proc(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &base).await?;
    let ws: Value = client
        .post(format!("{base}/v1/workspaces"))
        .bearer_auth(MASTER)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let key: Value = client
        .post(format!("{base}/v1/workspaces/{}/keys", ws["id"].as_str().unwrap_or_default()))
        .bearer_auth(MASTER)
        .json(&json!({"name": "bench", "kind": "analytics"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let target = Arc::new(Target { base: base.clone(), token: key["token"].as_str().unwrap_or_default().to_string() });
    let mut rows: Vec<(String, String)> = Vec::new();
    let seq = Arc::new(AtomicU64::new(1));
    let single = |i: u64| identify_body(i, i.wrapping_mul(2654435761));

    eprintln!("phase 1: single-event identify, bare handler vs convene ({secs} s each, 64 connections)");
    let (bare_ok, _, _) =
        closed_loop(&client, &bare, "/v1/identify", 64, secs, single, Arc::new(AtomicU64::new(1))).await;
    let (ok, err, mut lat) = closed_loop(&client, &target, "/v1/identify", 64, secs, single, seq.clone()).await;
    let (bare_rps, rps) = (bare_ok as f64 / secs as f64, ok as f64 / secs as f64);
    rows.push(("bare axum handler, single identify".into(), format!("{bare_rps:.0} req/s")));
    rows.push((
        "convene single identify (acknowledged, durable)".into(),
        format!(
            "{rps:.0} req/s = {:.0}% of bare; p50 {:.2} ms, p99 {:.2} ms; {err} errors",
            100.0 * rps / bare_rps,
            lat.pct(0.5),
            lat.pct(0.99)
        ),
    ));
    eprintln!("  bare {bare_rps:.0} req/s, convene {rps:.0} req/s");
    drain(&client, &base).await;

    eprintln!("phase 2: batches of 100 ({secs} s, 16 connections)");
    let batch = |i: u64| batch_body(1_000_000_000 + i * 100, 100, 0);
    let (ok, err, mut lat) =
        closed_loop(&client, &target, "/v1/batch", 16, secs, batch, Arc::new(AtomicU64::new(0))).await;
    let eps = ok as f64 * 100.0 / secs as f64;
    rows.push((
        "acknowledged identify events/s, batches of 100".into(),
        format!("{eps:.0} events/s; p99 {:.2} ms; {err} errors", lat.pct(0.99)),
    ));
    eprintln!("  {eps:.0} events/s acknowledged");
    let t = Instant::now();
    drain(&client, &base).await;
    rows.push(("drain after phase 2".into(), format!("{:.1} s", t.elapsed().as_secs_f64())));

    eprintln!("phase 3: ack latency at half the single-event maximum ({:.0} req/s)", rps / 2.0);
    let make: Arc<dyn Fn(u64) -> String + Send + Sync> =
        Arc::new(move |i| identify_body(i, i.wrapping_mul(2654435761)));
    let (ok, err, mut lat) =
        open_loop(&client, &target, "/v1/identify", rps / 2.0, secs, make, seq.clone(), || {}).await;
    rows.push((
        format!("ack latency at {:.0} req/s (half max)", rps / 2.0),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {ok} ok, {err} errors",
            lat.pct(0.5),
            lat.pct(0.99),
            lat.pct(1.0)
        ),
    ));
    drain(&client, &base).await;

    eprintln!(
        "phase 4: sustained {sustained_eps:.0} events/s, batches of 100, half updates of existing contacts ({} s)",
        secs * 2
    );
    let applied_before = metric(&client, &base, "convene_ingest_applied_total").await;
    let backlog_max = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let make: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(|i| batch_body(2_000_000_000 + i * 100, 100, 2));
    let started = Instant::now();
    let sampler = {
        let (client, base, backlog_max, samples) = (client.clone(), base.clone(), backlog_max.clone(), samples.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let h = tokio::spawn(async move {
            while !s2.load(Ordering::Relaxed) {
                let b = metric(&client, &base, "convene_ingest_backlog").await;
                if b.is_finite() {
                    backlog_max.fetch_max(b as u64, Ordering::Relaxed);
                    samples.lock().push(b as u64);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        (stop, h)
    };
    let mut mem_peak = 0;
    let (ok, err, _) = open_loop(
        &client,
        &target,
        "/v1/batch",
        sustained_eps / 100.0,
        secs * 2,
        make,
        Arc::new(AtomicU64::new(0)),
        || {
            mem_peak = mem_peak.max(rss_kib(pid).0);
        },
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    sampler.0.store(true, Ordering::Relaxed);
    let _ = sampler.1.await;
    let applied_during = metric(&client, &base, "convene_ingest_applied_total").await - applied_before;
    let backlog_end = metric(&client, &base, "convene_ingest_backlog").await;
    let t = Instant::now();
    drain(&client, &base).await;
    let trace: Vec<u64> = samples.lock().clone();
    rows.push((
        format!("sustained mixed load, target {sustained_eps:.0} events/s"),
        format!(
            "accepted {:.0} events/s, applied {:.0} events/s; backlog max {}, at end {backlog_end:.0} (drained in {:.1} s); {err} errors",
            ok as f64 * 100.0 / (secs * 2) as f64,
            applied_during / elapsed,
            backlog_max.load(Ordering::Relaxed),
            t.elapsed().as_secs_f64()
        ),
    ));
    rows.push(("backlog samples (1/s)".into(), format!("{trace:?}")));
    rows.push(("server RSS peak during sustained load".into(), format!("{} MiB", mem_peak / 1024)));

    eprintln!("phase 5: apply lag at {lag_eps:.0} events/s ({secs} s)");
    let before = lag_buckets(&client, &base).await;
    let make: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(|i| batch_body(3_000_000_000 + i * 100, 100, 2));
    let (ok, err, _) =
        open_loop(&client, &target, "/v1/batch", lag_eps / 100.0, secs, make, Arc::new(AtomicU64::new(0)), || {}).await;
    drain(&client, &base).await;
    let after = lag_buckets(&client, &base).await;
    rows.push((
        format!("apply lag (acknowledged → readable) at {lag_eps:.0} events/s"),
        format!(
            "p50 ≤ {} s, p99 ≤ {} s (histogram bucket bounds); {ok} batches, {err} errors",
            bucket_quantile(&before, &after, 0.5),
            bucket_quantile(&before, &after, 0.99)
        ),
    ));
    let (rss, hwm) = rss_kib(pid);
    rows.push(("server RSS at end / peak (VmHWM)".into(), format!("{} MiB / {} MiB", rss / 1024, hwm / 1024)));

    println!("\n| measure | result |\n| --- | --- |");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    Ok(())
}

/// Waits until the server's backlog is empty (at most 120 s).
async fn drain(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if metric(client, base, "convene_ingest_backlog").await == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("warning: backlog not drained after 120 s");
}

//! The ingestion benchmark: `cargo bench -p convene --bench ingest`.
//!
//! Starts the release `convene` binary on a fresh data directory (default
//! settings: SQLite, synchronous=FULL) and, for comparison, a bare axum
//! server that only parses the JSON (this same executable re-run with
//! `CONVENE_BENCH_BARE=1`). The load generator runs here, on the same two
//! cores as the server: the figures are ratios and rates within one run.
//!
//! Phases: single-event identify (vs. the bare handler), batches of 100 (new
//! contacts, then half updates of existing ones), each measured acknowledged
//! and until applied, ack latency at half the single-event maximum (right
//! after the maximum, on the same database, and again after the batch phases),
//! sustained mixed load with the backlog watched, apply lag at a fixed rate,
//! resident memory, and the CPU used by convene, PostgreSQL and the bench.
//!
//! With `BENCH_POSTGRES_URL` (an admin URL, e.g. from `scripts/test-postgres
//! start DIR`) the same phases run three times in one run: SQLite, then
//! PostgreSQL with one node, then PostgreSQL with two `convene serve`
//! processes on one database (requests spread round-robin over both), each
//! on a fresh database; then the PostgreSQL ceiling is measured on that
//! server: a bare `contacts` table upserted by batches of 100 from 8
//! connections, by `unnest`, by COPY (binary: the text-format sink needs
//! the `futures` Sink trait) into a staging table, and by one multi-row
//! `VALUES` statement (the plainest form).
//!
//! Environment: `BENCH_SECONDS` (per phase, default 10),
//! `BENCH_SUSTAINED_EPS` (default 40000), `BENCH_LAG_EPS` (default 20000),
//! `BENCH_DRAIN_SECS` (longest wait for the backlog to empty, default 120),
//! `BENCH_POSTGRES_URL`, `BENCH_PASSES` (with PostgreSQL: which passes run,
//! a comma-separated subset of `sqlite,pg1,pg2`, default all three; the
//! ceiling always runs). The nodes inherit the environment, so `CONVENE_*`
//! settings (e.g. `CONVENE_PG_APPLY_PARALLELISM`) can be tried without a
//! change here.

mod common;

use common::{Proc, env_or, free_port, metric, rss_kib, wait_ready};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_postgres::types::ToSql;

const MASTER: &str = "bench-master-key-0123456789";
/// Connections of the PostgreSQL ceiling.
const CEILING_CONNECTIONS: usize = 8;
/// In mixed batches, batch `i` updates the contacts batch `i - MIXED_LAG`
/// created (long applied by then).
const MIXED_LAG: u64 = 64;

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

// ---------------------------------------------------------------------------
// CPU time from /proc.

/// (parent pid, user + system ticks) of a process.
fn proc_stat(pid: &str) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(1)?.parse().ok()?, f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?))
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Measures the CPU used by the convene nodes, the PostgreSQL cluster (its
/// postmaster and every child of it) and this bench.
#[derive(Clone)]
struct CpuProbe {
    convene: Vec<u32>,
    postmaster: Option<u32>,
    tck: f64,
}

struct CpuSnap {
    at: Instant,
    convene: u64,
    postgres: HashMap<u32, u64>,
    bench: u64,
    machine: u64,
}

/// Cores used over an interval; `other` is what the rest of the machine
/// used (other builds: the machine is shared).
struct CpuUse {
    convene: f64,
    postgres: f64,
    bench: f64,
    other: f64,
}

/// Busy ticks of the whole machine (all CPUs), from /proc/stat.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    cpu.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum()
}

impl CpuProbe {
    fn postgres_ticks(&self) -> HashMap<u32, u64> {
        let Some(pm) = self.postmaster else { return HashMap::new() };
        let mut out = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if let Some((ppid, ticks)) = proc_stat(&pid.to_string())
                && (pid == pm || ppid == pm)
            {
                out.insert(pid, ticks);
            }
        }
        out
    }

    fn snap(&self) -> CpuSnap {
        CpuSnap {
            at: Instant::now(),
            convene: self.convene.iter().filter_map(|p| proc_stat(&p.to_string())).map(|(_, t)| t).sum(),
            postgres: self.postgres_ticks(),
            bench: proc_stat("self").map(|(_, t)| t).unwrap_or(0),
            machine: machine_busy_ticks(),
        }
    }

    fn since(&self, before: &CpuSnap) -> CpuUse {
        let now = self.snap();
        let secs = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
        // Backends that started in between count whole.
        let pg: u64 =
            now.postgres.iter().map(|(pid, t)| t.saturating_sub(*before.postgres.get(pid).unwrap_or(&0))).sum();
        let convene = now.convene.saturating_sub(before.convene);
        let bench = now.bench.saturating_sub(before.bench);
        let machine = now.machine.saturating_sub(before.machine);
        let cores = |ticks: u64| ticks as f64 / self.tck / secs;
        CpuUse {
            convene: cores(convene),
            postgres: cores(pg),
            bench: cores(bench),
            other: cores(machine.saturating_sub(convene + pg + bench)),
        }
    }
}

impl CpuUse {
    fn text(&self, with_pg: bool) -> String {
        if with_pg {
            format!(
                "convene {:.2}, PostgreSQL {:.2}, bench {:.2}, other {:.2} cores",
                self.convene, self.postgres, self.bench, self.other
            )
        } else {
            format!("convene {:.2}, bench {:.2}, other {:.2} cores", self.convene, self.bench, self.other)
        }
    }

    /// CPU per request at `rps` requests/s, the measured server named `server`.
    fn per_request(&self, rps: f64, server: &str) -> String {
        let us = |cores: f64| if rps > 0.0 { cores * 1e6 / rps } else { f64::NAN };
        format!("per request: {server} {:.0} µs, bench {:.0} µs", us(self.convene), us(self.bench))
    }
}

// ---------------------------------------------------------------------------
// Requests.

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

// Bodies are written with string formatting, not built as `serde_json::Value`
// trees: the generator shares the two cores with the server, and building
// Values cost it about 0.5 of a core at 1,400 batches/s.

fn identify_body(id: u64, rng: u64) -> String {
    let plan = ["free", "pro", "team"][(rng % 3) as usize];
    format!(
        r#"{{"external_id":"u{id}","traits":{{"first_name":"Jill","plan":"{plan}","visits":{{"$inc":1}},"tags":{{"add":["t{}"]}},"score":{}}}}}"#,
        rng % 7,
        rng % 1000
    )
}

/// Appends one identify item for contact `{prefix}{key}` to a batch body.
fn push_batch_item(out: &mut String, prefix: char, key: u64, id: u64) {
    use std::fmt::Write;
    let _ = write!(
        out,
        r#"{{"type":"identify","external_id":"{prefix}{key}","traits":{{"plan":"pro","visits":{{"$inc":1}},"tags":{{"add":["t{}"]}},"score":{},"city":"Lyon"}}}}"#,
        id % 7,
        id % 1000
    );
}

/// `{"batch": [...]}` of the items `push` writes for each of `keys`.
fn batch_of(keys: impl Iterator<Item = u64>, mut push: impl FnMut(&mut String, u64)) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(r#"{"batch":["#);
    for (n, key) in keys.enumerate() {
        if n > 0 {
            out.push(',');
        }
        push(&mut out, key);
    }
    out.push_str("]}");
    out
}

fn batch_body(start: u64, n: u64, existing_every: u64) -> String {
    batch_of(start..start + n, |out, id| {
        // every `existing_every`-th item updates an earlier contact
        let target = if existing_every > 0 && id.is_multiple_of(existing_every) && id > 1000 { id / 2 } else { id };
        push_batch_item(out, 'u', target, id)
    })
}

/// The contact keys of mixed batch `i` (convene's mixed phase and the
/// PostgreSQL ceiling): 50 new ones and, interleaved, the 50 that batch
/// `i - MIXED_LAG` created (new ones too for the first batches).
fn mixed_keys(i: u64) -> Vec<u64> {
    (0..50)
        .flat_map(|k| {
            let old = if i >= MIXED_LAG { (i - MIXED_LAG) * 50 + k } else { (1 << 40) + i * 50 + k };
            [i * 50 + k, old]
        })
        .collect()
}

fn mixed_batch_body(i: u64) -> String {
    batch_of(mixed_keys(i).into_iter(), |out, k| push_batch_item(out, 'm', k, k))
}

/// Says that a closed loop ended at the backlog's bound, and when.
fn full_note(ended_full: bool, secs: f64) -> String {
    if ended_full {
        format!(" (ended after {secs:.1} s: the backlog reached its bound, ingest answered 503)")
    } else {
        String::new()
    }
}

/// Builds request body `i` of a closed loop.
type BodyFn = fn(u64) -> String;

/// Where requests go: round-robin over the nodes.
struct Target {
    bases: Vec<String>,
    token: String,
    next: AtomicUsize,
}

impl Target {
    fn new(bases: Vec<String>, token: String) -> Arc<Target> {
        Arc::new(Target { bases, token, next: AtomicUsize::new(0) })
    }
    fn base(&self) -> &str {
        &self.bases[self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len()]
    }
}

/// How a posted request ended.
enum Outcome {
    /// Answered 2xx, after this many µs.
    Ok(u32),
    /// Answered 503: the ingest backlog is at its bound.
    Full,
    /// Any other answer or a transport failure.
    Failed,
}

/// Posts one JSON body.
async fn post(client: &reqwest::Client, target: &Target, path: &str, body: String) -> Outcome {
    let started = Instant::now();
    let sent = client
        .post(format!("{}{path}", target.base()))
        .bearer_auth(&target.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let Ok(r) = sent else { return Outcome::Failed };
    let status = r.status();
    let _ = r.bytes().await;
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        Outcome::Full
    } else if status.is_success() {
        Outcome::Ok(started.elapsed().as_micros() as u32)
    } else {
        Outcome::Failed
    }
}

/// Posts one JSON body; the latency in µs when answered 2xx, `None` otherwise.
async fn post_once(client: &reqwest::Client, target: &Target, path: &str, body: String) -> Option<u32> {
    match post(client, target, path, body).await {
        Outcome::Ok(us) => Some(us),
        _ => None,
    }
}

/// What a closed loop measured.
struct Closed {
    /// Requests answered 2xx.
    ok: u64,
    /// Requests that failed (503s excluded).
    errors: u64,
    latencies: Latencies,
    /// Seconds measured: the whole phase, or until the first 503.
    secs: f64,
    /// Whether the phase ended early because the backlog reached its bound.
    ended_full: bool,
}

/// Drives `concurrency` closed-loop workers for `secs`, each sending the
/// request `make(seq)` builds. The first 503 (the backlog at its bound)
/// ends the phase: the rate is measured up to it, and answers after it are
/// not counted.
async fn closed_loop(
    client: &reqwest::Client,
    target: &Arc<Target>,
    path: &'static str,
    concurrency: usize,
    secs: u64,
    make: BodyFn,
    seq: Arc<AtomicU64>,
) -> Closed {
    let stop = Arc::new(AtomicBool::new(false));
    let full_at = Arc::new(parking_lot::Mutex::new(None::<Instant>));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, target, stop, seq, full_at) =
            (client.clone(), target.clone(), stop.clone(), seq.clone(), full_at.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err, mut lat) = (0u64, 0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match post(&client, &target, path, make(seq.fetch_add(1, Ordering::Relaxed))).await {
                    Outcome::Ok(us) if !stop.load(Ordering::Relaxed) => {
                        ok += 1;
                        lat.push(us);
                    }
                    Outcome::Ok(_) => {}
                    Outcome::Full => {
                        full_at.lock().get_or_insert_with(Instant::now);
                        stop.store(true, Ordering::Relaxed);
                    }
                    Outcome::Failed => err += 1,
                }
            }
            (ok, err, lat)
        }));
    }
    let deadline = started + Duration::from_secs(secs);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let ended = Instant::now();
    let (mut ok, mut errors, mut latencies) = (0, 0, Latencies::default());
    for t in tasks {
        if let Ok((o, e, l)) = t.await {
            ok += o;
            errors += e;
            latencies.0.extend(l);
        }
    }
    let full_at = *full_at.lock();
    let secs = full_at.unwrap_or(ended).duration_since(started).as_secs_f64().max(1e-3);
    Closed { ok, errors, latencies, secs, ended_full: full_at.is_some() }
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

/// Ack latency of single identifies sent open-loop at `rate` for `secs`:
/// the report text (percentiles, errors, CPU) and the p99 in ms.
async fn ack_latency(
    client: &reqwest::Client,
    target: &Arc<Target>,
    probe: &CpuProbe,
    with_pg: bool,
    rate: f64,
    secs: u64,
    seq: &Arc<AtomicU64>,
) -> (String, f64) {
    let make: Arc<dyn Fn(u64) -> String + Send + Sync> =
        Arc::new(move |i| identify_body(i, i.wrapping_mul(2654435761)));
    let cpu = probe.snap();
    let (ok, err, mut lat) = open_loop(client, target, "/v1/identify", rate, secs, make, seq.clone(), || {}).await;
    let cpu = probe.since(&cpu);
    let p99 = lat.pct(0.99);
    let text = format!(
        "at {rate:.0} req/s: p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms; {ok} ok, {err} errors; CPU: {}",
        lat.pct(0.5),
        lat.pct(1.0),
        cpu.text(with_pg)
    );
    (text, p99)
}

// ---------------------------------------------------------------------------
// /metrics.

/// A counter summed over the nodes.
async fn metric_sum(client: &reqwest::Client, bases: &[String], name: &str) -> f64 {
    let mut sum = 0.0;
    for base in bases {
        sum += metric(client, base, name).await;
    }
    sum
}

/// The apply-lag histogram's cumulative buckets (le, count), summed over the nodes.
async fn lag_buckets(client: &reqwest::Client, bases: &[String]) -> Vec<(f64, f64)> {
    let mut sum: Vec<(f64, f64)> = Vec::new();
    for base in bases {
        let text = client.get(format!("{base}/metrics")).send().await.ok();
        let text = match text {
            Some(r) => r.text().await.unwrap_or_default(),
            None => String::new(),
        };
        let buckets =
            text.lines().filter(|l| l.starts_with("convene_ingest_apply_lag_seconds_bucket")).filter_map(|l| {
                let le = l.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, l.split_whitespace().last()?.parse::<f64>().ok()?))
            });
        for (le, n) in buckets {
            match sum.iter_mut().find(|(l, _)| *l == le) {
                Some(entry) => entry.1 += n,
                None => sum.push((le, n)),
            }
        }
    }
    sum
}

fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| (*le, n - before.iter().find(|(l, _)| l == le).map(|(_, m)| *m).unwrap_or(0.0)))
        .collect();
    let total = deltas.last().map(|(_, n)| *n).unwrap_or(0.0);
    deltas.iter().find(|(_, n)| *n >= total * q).map(|(le, _)| *le).unwrap_or(f64::NAN)
}

/// Waits until every node's backlog is empty (at most `BENCH_DRAIN_SECS`);
/// returns how long it took, `None` when it did not empty in time.
async fn drain(client: &reqwest::Client, bases: &[String]) -> Option<Duration> {
    let limit = Duration::from_secs(env_or("BENCH_DRAIN_SECS", 120));
    let started = Instant::now();
    while started.elapsed() < limit {
        let mut empty = true;
        for base in bases {
            if metric(client, base, "convene_ingest_backlog").await != 0.0 {
                empty = false;
                break;
            }
        }
        if empty {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("  warning: backlog not drained after {} s", limit.as_secs());
    None
}

// ---------------------------------------------------------------------------
// The convene deployments measured.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres { nodes: usize },
}

impl Backend {
    fn label(self) -> String {
        match self {
            Backend::Sqlite => "SQLite".into(),
            Backend::Postgres { nodes: 1 } => "PostgreSQL, 1 node".into(),
            Backend::Postgres { nodes } => format!("PostgreSQL, {nodes} nodes"),
        }
    }
}

/// Running convene nodes (killed on drop) and their directory.
struct Cluster {
    procs: Vec<Proc>,
    bases: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(client: &reqwest::Client, backend: Backend, database: Option<&str>) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let nodes = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres { nodes } => nodes,
        };
        let mut cluster = Cluster { procs: Vec::new(), bases: Vec::new(), _dir: dir };
        // One after the other: the first one applies the migrations.
        for node in 0..nodes {
            let port = free_port();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_convene"));
            cmd.args(["serve", "--data-dir"])
                .arg(cluster._dir.path().join(format!("node{node}")))
                .args(["--listen", &format!("127.0.0.1:{port}"), "--master-key", MASTER])
                // The bench measures the pipeline, not the key's rate policy:
                // the default 20,000 req/s of an analytics key would cap the
                // single-event phase on a fast machine (answers 429).
                .args(["--rate-limit-analytics", "10000000/10000000"])
                .env("CONVENE_LOG", "warn")
                .stdout(Stdio::null());
            if let Some(url) = database {
                cmd.args(["--database", url]);
            }
            let child = cmd.spawn().map_err(|e| e.to_string())?;
            cluster.procs.push(Proc(child));
            let base = format!("http://127.0.0.1:{port}");
            wait_ready(client, &base).await?;
            cluster.bases.push(base);
        }
        Ok(cluster)
    }

    fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.0.id()).collect()
    }

    /// (highest VmRSS now, highest VmHWM) over the nodes, KiB.
    fn rss(&self) -> (u64, u64) {
        self.pids().into_iter().map(rss_kib).fold((0, 0), |(r, h), (r2, h2)| (r.max(r2), h.max(h2)))
    }
}

/// One figure of a backend: the text shown and the number compared.
struct Row {
    key: String,
    text: String,
    value: Option<f64>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn text(&mut self, key: &str, text: String) {
        self.rows.push(Row { key: key.into(), text, value: None });
    }
    fn num(&mut self, key: &str, text: String, value: f64) {
        self.rows.push(Row { key: key.into(), text, value: Some(value) });
    }
    fn get(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }
    fn value(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|r| r.value)
    }
}

const K_SINGLE: &str = "convene single identify (acknowledged, durable), 64 connections";
const K_BATCH_ACK: &str = "identify events/s, batches of 100 (new contacts), acknowledged";
const K_BATCH_APPLIED: &str = "identify events/s, batches of 100 (new contacts), acknowledged and applied";
const K_MIXED_ACK: &str = "identify events/s, batches of 100 (half updates), acknowledged";
const K_MIXED_APPLIED: &str = "identify events/s, batches of 100 (half updates), acknowledged and applied";
const K_ACK_P99: &str = "ack latency at half the single-event maximum";
const K_ACK_P99_LOADED: &str = "ack latency at the same rate after the batch phases (millions of contacts)";
const K_SUSTAINED_APPLIED: &str = "sustained mixed load: applied events/s";
const K_LAG: &str = "apply lag (acknowledged → readable)";
const K_RSS: &str = "server RSS at end / peak (VmHWM), per node";

struct Settings {
    secs: u64,
    sustained_eps: f64,
    lag_eps: f64,
}

/// Measures one deployment; `bare_rps` is the bare handler's rate.
async fn measure_backend(
    client: &reqwest::Client,
    backend: Backend,
    cluster: &Cluster,
    bare_rps: f64,
    settings: &Settings,
    postmaster: Option<u32>,
) -> Result<Report, String> {
    let Settings { secs, sustained_eps, lag_eps } = *settings;
    let with_pg = matches!(backend, Backend::Postgres { .. });
    let probe = CpuProbe { convene: cluster.pids(), postmaster, tck: clock_ticks_per_sec() };
    let bases = cluster.bases.clone();
    let base = bases[0].clone();
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
    let target = Target::new(bases.clone(), key["token"].as_str().unwrap_or_default().to_string());
    let mut report = Report::default();
    let seq = Arc::new(AtomicU64::new(1));
    let single = |i: u64| identify_body(i, i.wrapping_mul(2654435761));
    let label = backend.label();

    eprintln!("[{label}] phase 1: single-event identify ({secs} s, 64 connections)");
    let cpu = probe.snap();
    let Closed { ok, errors: err, latencies: mut lat, secs: measured, ended_full } =
        closed_loop(client, &target, "/v1/identify", 64, secs, single, seq.clone()).await;
    let cpu = probe.since(&cpu);
    let rps = ok as f64 / measured;
    report.num(
        K_SINGLE,
        format!(
            "{rps:.0} req/s = {:.0}% of bare; p50 {:.2} ms, p99 {:.2} ms; {err} errors{}",
            100.0 * rps / bare_rps,
            lat.pct(0.5),
            lat.pct(0.99),
            full_note(ended_full, measured)
        ),
        rps,
    );
    report.text("CPU during single identify", format!("{}; {}", cpu.text(with_pg), cpu.per_request(rps, "convene")));
    eprintln!("  {rps:.0} req/s");
    drain(client, &bases).await;

    // Right after the maximum was measured, on the same database: the rate
    // is half of what this state allowed (phase 3b repeats it on the
    // database the batch phases have grown).
    eprintln!("[{label}] phase 3: ack latency at half the single-event maximum ({:.0} req/s)", rps / 2.0);
    let (text, p99) = ack_latency(client, &target, &probe, with_pg, rps / 2.0, secs, &seq).await;
    report.num(K_ACK_P99, text, p99);
    drain(client, &bases).await;

    // Batches, closed loop, then until applied.
    let batch_phases: [(&str, &str, &str, BodyFn); 2] = [
        ("new contacts", K_BATCH_ACK, K_BATCH_APPLIED, |i| batch_body(1_000_000_000 + i * 100, 100, 0)),
        ("half updates of existing contacts", K_MIXED_ACK, K_MIXED_APPLIED, mixed_batch_body),
    ];
    for (n, (what, k_ack, k_applied, make)) in batch_phases.into_iter().enumerate() {
        eprintln!("[{label}] phase 2{}: batches of 100, {what} ({secs} s, 16 connections)", ["a", "b"][n]);
        let applied0 = metric_sum(client, &bases, "convene_ingest_applied_total").await;
        let cpu = probe.snap();
        let started = Instant::now();
        let Closed { ok, errors: err, latencies: mut lat, secs: acked_in, ended_full } =
            closed_loop(client, &target, "/v1/batch", 16, secs, make, Arc::new(AtomicU64::new(0))).await;
        let cpu_ack = probe.since(&cpu);
        let drained = drain(client, &bases).await;
        let total = started.elapsed().as_secs_f64();
        let cpu_all = probe.since(&cpu);
        let applied = metric_sum(client, &bases, "convene_ingest_applied_total").await - applied0;
        let events = ok as f64 * 100.0;
        let eps = events / acked_in;
        report.num(
            k_ack,
            format!("{eps:.0} events/s; p99 {:.2} ms; {err} errors{}", lat.pct(0.99), full_note(ended_full, acked_in)),
            eps,
        );
        match drained {
            Some(d) => {
                let sustained = events / total;
                report.num(
                    k_applied,
                    format!(
                        "{sustained:.0} events/s ({events:.0} events acknowledged in {acked_in:.1} s, all applied {:.1} s later)",
                        d.as_secs_f64()
                    ),
                    sustained,
                );
            }
            None => {
                let sustained = applied / total;
                report.num(
                    k_applied,
                    format!("{sustained:.0} events/s applied; backlog NOT drained after {total:.0} s"),
                    sustained,
                );
            }
        }
        report.text(
            &format!("CPU, batches of 100 ({what}): while acknowledging / until applied"),
            format!("{} / {}", cpu_ack.text(with_pg), cpu_all.text(with_pg)),
        );
        eprintln!("  {eps:.0} events/s acknowledged, {:.0} until applied", report.value(k_applied).unwrap_or(0.0));
    }

    eprintln!("[{label}] phase 3b: ack latency at half the single-event maximum, after the batch phases");
    let (text, _) = ack_latency(client, &target, &probe, with_pg, rps / 2.0, secs, &seq).await;
    report.text(K_ACK_P99_LOADED, text);
    drain(client, &bases).await;

    eprintln!(
        "[{label}] phase 4: sustained {sustained_eps:.0} events/s, batches of 100, half updates of existing contacts ({} s)",
        secs * 2
    );
    let applied_before = metric_sum(client, &bases, "convene_ingest_applied_total").await;
    let backlog_max = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let make: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(|i| batch_body(2_000_000_000 + i * 100, 100, 2));
    let cpu = probe.snap();
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
        client,
        &target,
        "/v1/batch",
        sustained_eps / 100.0,
        secs * 2,
        make,
        Arc::new(AtomicU64::new(0)),
        || {
            mem_peak = mem_peak.max(cluster.rss().0);
        },
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = probe.since(&cpu);
    sampler.0.store(true, Ordering::Relaxed);
    let _ = sampler.1.await;
    let applied_during = metric_sum(client, &bases, "convene_ingest_applied_total").await - applied_before;
    let backlog_end = metric(client, &base, "convene_ingest_backlog").await;
    let t = Instant::now();
    let drained = drain(client, &bases).await;
    let trace: Vec<u64> = samples.lock().clone();
    let applied_eps = applied_during / elapsed;
    report.num(
        K_SUSTAINED_APPLIED,
        format!(
            "target {sustained_eps:.0}: accepted {:.0} events/s, applied {applied_eps:.0} events/s; backlog max {}, at end {backlog_end:.0} ({}); {err} errors",
            ok as f64 * 100.0 / (secs * 2) as f64,
            backlog_max.load(Ordering::Relaxed),
            match drained {
                Some(_) => format!("drained in {:.1} s", t.elapsed().as_secs_f64()),
                None => format!("NOT drained after {:.0} s", t.elapsed().as_secs_f64()),
            }
        ),
        applied_eps,
    );
    report.text("backlog samples (1/s)", format!("{trace:?}"));
    report.text("CPU during sustained load", cpu.text(with_pg));
    report.num("server RSS peak during sustained load", format!("{} MiB", mem_peak / 1024), mem_peak as f64 / 1024.0);

    eprintln!("[{label}] phase 5: apply lag at {lag_eps:.0} events/s ({secs} s)");
    let before = lag_buckets(client, &bases).await;
    let make: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(|i| batch_body(3_000_000_000 + i * 100, 100, 2));
    let (ok, err, _) =
        open_loop(client, &target, "/v1/batch", lag_eps / 100.0, secs, make, Arc::new(AtomicU64::new(0)), || {}).await;
    drain(client, &bases).await;
    let after = lag_buckets(client, &bases).await;
    let p99 = bucket_quantile(&before, &after, 0.99);
    report.num(
        K_LAG,
        format!(
            "at {lag_eps:.0} events/s: p50 ≤ {} s, p99 ≤ {p99} s (histogram bucket bounds); {ok} batches, {err} errors",
            bucket_quantile(&before, &after, 0.5),
        ),
        p99,
    );
    let rss: Vec<String> = cluster
        .pids()
        .into_iter()
        .map(rss_kib)
        .map(|(rss, hwm)| format!("{} MiB / {} MiB", rss / 1024, hwm / 1024))
        .collect();
    report.num(K_RSS, rss.join("; "), cluster.rss().1 as f64 / 1024.0);
    Ok(report)
}

// ---------------------------------------------------------------------------
// PostgreSQL: scratch databases and the ceiling.

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The database name of a URL.
fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or_default().to_string()
}

/// Drops a scratch database (its server processes first) and checkpoints,
/// so the next measurement starts from a quiet server.
async fn drop_database(admin: &str, url: &str) {
    let name = database_name(url);
    match pg_connect(admin).await {
        Ok(c) => {
            // Two statements: DROP DATABASE cannot run in the implicit
            // transaction of a multi-statement query.
            for sql in [format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), "CHECKPOINT".into()] {
                if let Err(e) = c.batch_execute(&sql).await {
                    eprintln!("  warning: `{sql}` failed: {}", e.as_db_error().map(|d| d.message()).unwrap_or("?"));
                }
            }
        }
        Err(e) => eprintln!("  warning: {e}"),
    }
}

/// The pid of the server's postmaster (to add up its processes' CPU).
async fn postmaster_pid(admin: &str) -> Option<u32> {
    let c = pg_connect(admin).await.ok()?;
    let row = c.query_one("SHOW data_directory", &[]).await.ok()?;
    let dir: String = row.get(0);
    let pid = std::fs::read_to_string(format!("{dir}/postmaster.pid")).ok()?;
    pid.lines().next()?.trim().parse().ok()
}

/// The rows of ceiling batch `i`: (workspace id, external id, 5 traits).
fn ceiling_rows(i: u64) -> (Vec<String>, Vec<String>, Vec<Value>) {
    let keys = mixed_keys(i);
    let ws = vec!["ws_bench".to_string(); keys.len()];
    let ext = keys.iter().map(|k| format!("m{k}")).collect();
    let traits = keys
        .iter()
        .map(|k| json!({"plan": "pro", "visits": i % 100, "tags": [format!("t{}", k % 7)], "score": k % 1000, "city": "Lyon"}))
        .collect();
    (ws, ext, traits)
}

#[derive(Clone, Copy)]
enum CeilingMode {
    /// `INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE`.
    Unnest,
    /// COPY into a temporary table, then one upsert from it.
    Copy,
    /// `INSERT … VALUES ($1, $2, $3), … ON CONFLICT … DO UPDATE`: one
    /// multi-row statement of 300 parameters, the plainest form.
    Values,
}

const CEILING_TABLE: &str = "DROP TABLE IF EXISTS contacts;
    CREATE TABLE contacts (workspace_id text, external_id text, traits jsonb, PRIMARY KEY (workspace_id, external_id));
    CHECKPOINT";
const UPSERT_CONFLICT: &str =
    "ON CONFLICT (workspace_id, external_id) DO UPDATE SET traits = contacts.traits || excluded.traits";

/// One ceiling connection: upserts batches until `stop`; returns rows written.
async fn ceiling_worker(
    url: String,
    mode: CeilingMode,
    seq: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    let mut c = pg_connect(&url).await?;
    let unnest = c
        .prepare(&format!(
            "INSERT INTO contacts (workspace_id, external_id, traits)
             SELECT w, e, t FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS v(w, e, t) {UPSERT_CONFLICT}"
        ))
        .await
        .map_err(|e| e.to_string())?;
    c.batch_execute(
        "CREATE TEMP TABLE staging (workspace_id text, external_id text, traits jsonb) ON COMMIT DELETE ROWS",
    )
    .await
    .map_err(|e| e.to_string())?;
    let from_staging = c
        .prepare(&format!(
            "INSERT INTO contacts (workspace_id, external_id, traits)
             SELECT workspace_id, external_id, traits FROM staging {UPSERT_CONFLICT}"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let types =
        [tokio_postgres::types::Type::TEXT, tokio_postgres::types::Type::TEXT, tokio_postgres::types::Type::JSONB];
    // The multi-row statement, prepared per batch length.
    let mut values: HashMap<usize, tokio_postgres::Statement> = HashMap::new();
    let mut rows = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (ws, ext, traits) = ceiling_rows(seq.fetch_add(1, Ordering::Relaxed));
        match mode {
            CeilingMode::Unnest => {
                c.execute(&unnest, &[&ws, &ext, &traits]).await.map_err(|e| e.to_string())?;
            }
            CeilingMode::Values => {
                let statement = match values.get(&ws.len()) {
                    Some(statement) => statement.clone(),
                    None => {
                        let tuples: Vec<String> = (0..ws.len())
                            .map(|i| format!("(${}, ${}, ${}::jsonb)", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                            .collect();
                        let sql = format!(
                            "INSERT INTO contacts (workspace_id, external_id, traits) VALUES {} {UPSERT_CONFLICT}",
                            tuples.join(", ")
                        );
                        let statement = c.prepare(&sql).await.map_err(|e| e.to_string())?;
                        values.insert(ws.len(), statement.clone());
                        statement
                    }
                };
                let params: Vec<&(dyn ToSql + Sync)> =
                    ws.iter().zip(&ext).zip(&traits).flat_map(|((w, e), t)| [w as &(dyn ToSql + Sync), e, t]).collect();
                c.execute(&statement, &params).await.map_err(|e| e.to_string())?;
            }
            CeilingMode::Copy => {
                let tx = c.transaction().await.map_err(|e| e.to_string())?;
                let sink = tx.copy_in("COPY staging FROM STDIN (FORMAT binary)").await.map_err(|e| e.to_string())?;
                let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
                let mut writer = std::pin::pin!(writer);
                for ((w, e), t) in ws.iter().zip(&ext).zip(&traits) {
                    writer.as_mut().write(&[w as &(dyn ToSql + Sync), e, t]).await.map_err(|e| e.to_string())?;
                }
                writer.finish().await.map_err(|e| e.to_string())?;
                tx.execute(&from_staging, &[]).await.map_err(|e| e.to_string())?;
                tx.commit().await.map_err(|e| e.to_string())?;
            }
        }
        rows += ws.len() as u64;
    }
    Ok(rows)
}

/// Runs the ceiling on a fresh database: rows/s, and the CPU used.
async fn ceiling(admin: &str, mode: CeilingMode, secs: u64, probe: &CpuProbe) -> Result<(f64, CpuUse), String> {
    let url = convene_store_postgres::scratch::fresh_database(admin).await.map_err(|e| e.to_string())?;
    let result = async {
        pg_connect(&url).await?.batch_execute(CEILING_TABLE).await.map_err(|e| e.to_string())?;
        let (seq, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let cpu = probe.snap();
        let started = Instant::now();
        let tasks: Vec<_> = (0..CEILING_CONNECTIONS)
            .map(|_| tokio::spawn(ceiling_worker(url.clone(), mode, seq.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let mut rows = 0;
        for t in tasks {
            rows += t.await.map_err(|e| e.to_string())??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        Ok::<_, String>((rows as f64 / elapsed, probe.since(&cpu)))
    }
    .await;
    drop_database(admin, &url).await;
    result
}

// ---------------------------------------------------------------------------
// The run.

async fn run() -> Result<(), String> {
    let settings = Settings {
        secs: env_or("BENCH_SECONDS", 10),
        sustained_eps: env_or("BENCH_SUSTAINED_EPS", 40_000.0),
        lag_eps: env_or("BENCH_LAG_EPS", 20_000.0),
    };
    let secs = settings.secs;
    for body in [identify_body(1, 7), batch_body(1_000_000_000, 100, 2), mixed_batch_body(MIXED_LAG + 1)] {
        serde_json::from_str::<Value>(&body).map_err(|e| format!("the generator wrote bad JSON ({e}): {body}"))?;
    }
    let admin = std::env::var("BENCH_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build().map_err(|e| e.to_string())?;
    let run_started = Instant::now();

    // The bare reference server.
    let bare_port = free_port();
    let bare_proc = Proc(
        Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .env("CONVENE_BENCH_BARE", "1")
            .env("CONVENE_BENCH_LISTEN", format!("127.0.0.1:{bare_port}"))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let bare = Target::new(vec![format!("http://127.0.0.1:{bare_port}")], "x".into());
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", bare_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let single = |i: u64| identify_body(i, i.wrapping_mul(2654435761));
    eprintln!("bare axum handler, single identify ({secs} s, 64 connections)");
    let bare_probe = CpuProbe { convene: vec![bare_proc.0.id()], postmaster: None, tck: clock_ticks_per_sec() };
    let bare_cpu = bare_probe.snap();
    let bare_run = closed_loop(&client, &bare, "/v1/identify", 64, secs, single, Arc::new(AtomicU64::new(1))).await;
    let bare_cpu = bare_probe.since(&bare_cpu);
    let bare_rps = bare_run.ok as f64 / bare_run.secs;
    let bare_text = format!(
        "{bare_rps:.0} req/s; CPU: server {:.2}, bench {:.2}, other {:.2} cores; {}",
        bare_cpu.convene,
        bare_cpu.bench,
        bare_cpu.other,
        bare_cpu.per_request(bare_rps, "server")
    );
    eprintln!("  {bare_rps:.0} req/s");
    drop(bare_proc);

    let mut backends = vec![Backend::Sqlite];
    let mut postmaster = None;
    if let Some(admin) = &admin {
        backends.push(Backend::Postgres { nodes: 1 });
        backends.push(Backend::Postgres { nodes: 2 });
        if let Ok(passes) = std::env::var("BENCH_PASSES") {
            let passes: Vec<&str> = passes.split(',').map(str::trim).collect();
            backends.retain(|b| {
                passes.contains(&match b {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres { nodes: 1 } => "pg1",
                    Backend::Postgres { .. } => "pg2",
                })
            });
        }
        postmaster = postmaster_pid(admin).await;
        if postmaster.is_none() {
            eprintln!("warning: cannot find the PostgreSQL postmaster's pid; its CPU is not measured");
        }
    }
    let mut reports: Vec<(Backend, Report)> = Vec::new();
    for backend in backends {
        let started = Instant::now();
        let database = match (&admin, backend) {
            (Some(admin), Backend::Postgres { .. }) => Some(
                convene_store_postgres::scratch::fresh_database(admin)
                    .await
                    .map_err(|e| format!("cannot create a database: {e}"))?,
            ),
            _ => None,
        };
        let outcome = async {
            let cluster = Cluster::start(&client, backend, database.as_deref()).await?;
            let pm = if database.is_some() { postmaster } else { None };
            measure_backend(&client, backend, &cluster, bare_rps, &settings, pm).await
        }
        .await;
        if let (Some(admin), Some(url)) = (&admin, &database) {
            drop_database(admin, url).await;
        }
        reports.push((backend, outcome?));
        eprintln!("[{}] done in {:.0} s", backend.label(), started.elapsed().as_secs_f64());
    }

    // The PostgreSQL ceiling.
    let mut ceilings: Vec<(&str, f64, CpuUse)> = Vec::new();
    if let Some(admin) = &admin {
        let probe = CpuProbe { convene: Vec::new(), postmaster, tck: clock_ticks_per_sec() };
        for (name, mode) in [
            ("(a) `INSERT … SELECT … FROM unnest(…) ON CONFLICT DO UPDATE`", CeilingMode::Unnest),
            ("(b) COPY (binary) into a temporary table + one upsert from it, one transaction", CeilingMode::Copy),
            ("(c) `INSERT … VALUES (…), (…) … ON CONFLICT DO UPDATE`, 100 rows of 3 parameters", CeilingMode::Values),
        ] {
            eprintln!("PostgreSQL ceiling {name} ({secs} s, {CEILING_CONNECTIONS} connections)");
            let (rate, cpu) = ceiling(admin, mode, secs, &probe).await?;
            eprintln!("  {rate:.0} rows/s");
            ceilings.push((name, rate, cpu));
        }
    }

    print_reports(&bare_text, &reports, &ceilings);
    eprintln!("whole run: {:.0} s", run_started.elapsed().as_secs_f64());
    Ok(())
}

/// Prints the tables; `bare` describes the bare handler's run.
fn print_reports(bare: &str, reports: &[(Backend, Report)], ceilings: &[(&str, f64, CpuUse)]) {
    let Some((_, first)) = reports.first() else { return };
    if reports.len() == 1 {
        println!("\n| measure | {} |\n| --- | --- |", reports[0].0.label());
        println!("| bare axum handler, single identify | {bare} |");
        for row in &first.rows {
            println!("| {} | {} |", row.key, row.text);
        }
        print_ceiling(reports, ceilings);
        return;
    }
    let labels: Vec<String> = reports.iter().map(|(b, _)| b.label()).collect();
    println!("\nbare axum handler, single identify: {bare}\n");
    println!("| measure | {} |", labels.join(" | "));
    println!("| --- |{}", " --- |".repeat(labels.len()));
    for row in &first.rows {
        let cells: Vec<&str> =
            reports.iter().map(|(_, r)| r.get(&row.key).map(|x| x.text.as_str()).unwrap_or("")).collect();
        println!("| {} | {} |", row.key, cells.join(" | "));
    }

    println!("\nRatios to SQLite (same run):\n");
    let mut header = vec!["measure".to_string(), labels[0].clone()];
    for l in &labels[1..] {
        header.push(l.clone());
        header.push(format!("{l} / SQLite"));
    }
    println!("| {} |", header.join(" | "));
    println!("| --- |{}", " --: |".repeat(header.len() - 1));
    for row in first.rows.iter().filter(|r| r.value.is_some()) {
        let base = row.value.unwrap_or(f64::NAN);
        let mut cells = vec![row.key.clone(), fmt_num(base)];
        for (_, r) in &reports[1..] {
            let v = r.value(&row.key).unwrap_or(f64::NAN);
            cells.push(fmt_num(v));
            cells.push(format!("{:.2}", v / base));
        }
        println!("| {} |", cells.join(" | "));
    }

    print_ceiling(reports, ceilings);
}

/// The PostgreSQL ceiling and convene's share of it. The ceiling is the
/// fastest of the bare forms measured in the run (the target is judged on it).
fn print_ceiling(reports: &[(Backend, Report)], ceilings: &[(&str, f64, CpuUse)]) {
    let best = ceilings.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some((best_name, ceiling, _)), Some((_, pg1))) =
        (best, reports.iter().find(|(b, _)| *b == Backend::Postgres { nodes: 1 }))
    {
        let label = best_name.split(' ').next().unwrap_or("");
        println!(
            "\nPostgreSQL ceiling (same server, fresh database, {CEILING_CONNECTIONS} connections, batches of 100 rows of 5 traits, half new, half existing):\n"
        );
        println!("| measure | rows/s | CPU |\n| --- | --: | --- |");
        for (name, rate, cpu) in ceilings {
            println!("| {name} | {rate:.0} | {} |", cpu.text(true));
        }
        let applied = pg1.value(K_MIXED_APPLIED).unwrap_or(0.0);
        let acked = pg1.value(K_MIXED_ACK).unwrap_or(0.0);
        let new_applied = pg1.value(K_BATCH_APPLIED).unwrap_or(0.0);
        println!(
            "\n| convene, PostgreSQL 1 node, identify in batches of 100 | events/s | of the fastest ceiling, {label} |\n| --- | --: | --: |"
        );
        println!("| half updates, acknowledged and applied | {applied:.0} | {:.0}% |", 100.0 * applied / ceiling);
        println!("| half updates, acknowledged only | {acked:.0} | {:.0}% |", 100.0 * acked / ceiling);
        println!(
            "| new contacts, acknowledged and applied | {new_applied:.0} | {:.0}% |",
            100.0 * new_applied / ceiling
        );
        let met = applied >= 30_000.0 && applied >= 0.6 * ceiling;
        println!(
            "\nTarget (≥ 30,000 events/s acknowledged and applied, ≥ 60% of the fastest ceiling {label} = {:.0}): {}",
            0.6 * ceiling,
            if met { "met" } else { "NOT met" }
        );
    }
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

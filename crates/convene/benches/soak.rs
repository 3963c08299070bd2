//! The soak run: `cargo bench -p convene --bench soak`.
//!
//! Starts the release `convene` (SQLite in a fresh data directory, or
//! `BENCH_DATABASE_URL`), then drives a mix of every API at once — native
//! contacts (create, update, read, list), queued identify/track, batch
//! upserts, conversations and messages, reps, reports, export, and each
//! dialect (Segment batch, ConveYour identify, Conversion.ai batch, Convot
//! messages, Converz reps and report). First it finds the mix's maximum
//! rate (`BENCH_PROBE_SECONDS`, default 20, closed loop at
//! `BENCH_CONCURRENCY`, default 32, connections); then it holds 70 % of that
//! rate (`BENCH_LOAD`, default 0.7) open-loop for `BENCH_SECONDS` (default
//! 300). Every answer must be a success; the server's memory is sampled
//! every 10 s and must stay flat, and the server must keep up (a request due
//! while 512 are outstanding counts as late; more than 1 % late fails the
//! run). The per-key rate limit is raised (`CONVENE_RATE_LIMIT_FULL`) unless
//! set: the soak measures the server, not its limiter. Prints one line per
//! sample (with the ingest backlog and the three slowest operations) and a
//! summary.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{env_or, metric, rss_kib, start_server};
use serde_json::{Value, json};

const MASTER: &str = "bench-master-key-0123456789";
/// Outstanding requests beyond which the schedule counts as missed.
const MAX_IN_FLIGHT: usize = 512;

fn main() {
    // The soak measures the server, not the per-key limiter (10,000/s by
    // default, which the probe passes): the limit is raised unless set.
    if std::env::var_os("CONVENE_RATE_LIMIT_FULL").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("CONVENE_RATE_LIMIT_FULL", common::UNLIMITED_RATE) };
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("soak failed: {e}");
        std::process::exit(1);
    }
}

/// What every request of the mix shares.
struct Ctx {
    client: reqwest::Client,
    base: String,
    token: String,
    /// A conversation per 1,000 contacts made so far (messages go there).
    conversations: Vec<String>,
    seq: AtomicU64,
    errors: AtomicU64,
    done: AtomicU64,
    /// Latencies of the current window, microseconds.
    latencies: parking_lot::Mutex<Vec<u32>>,
    /// The current window's latencies per operation, microseconds: which
    /// part of the mix is slow when the run falls behind.
    by_op: parking_lot::Mutex<std::collections::HashMap<String, Vec<u32>>>,
    first_error: parking_lot::Mutex<Option<String>>,
}

/// The operations of the mix, in proportion (each listed once per share).
const MIX: &[Op] = &[
    Op::CreateContact,
    Op::CreateContact,
    Op::UpdateContact,
    Op::GetContact,
    Op::GetContact,
    Op::ListContacts,
    Op::Identify,
    Op::Identify,
    Op::Track,
    Op::Track,
    Op::Track,
    Op::Batch,
    Op::BatchUpsert,
    Op::Message,
    Op::Message,
    Op::ListMessages,
    Op::Rep,
    Op::Report,
    Op::SegmentBatch,
    Op::ConveyourIdentify,
    Op::ConversionBatch,
    Op::ConvotMessage,
    Op::ConverzReps,
    Op::ConverzReport,
    Op::Export,
];

#[derive(Clone, Copy, Debug)]
enum Op {
    CreateContact,
    UpdateContact,
    GetContact,
    ListContacts,
    Identify,
    Track,
    Batch,
    BatchUpsert,
    Message,
    ListMessages,
    Rep,
    Report,
    SegmentBatch,
    ConveyourIdentify,
    ConversionBatch,
    ConvotMessage,
    ConverzReps,
    ConverzReport,
    Export,
}

impl Ctx {
    async fn one(&self, op: Op) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let conv = &self.conversations[(n as usize) % self.conversations.len()];
        let (method, path, body): (reqwest::Method, String, Option<Value>) = match op {
            Op::CreateContact => (
                reqwest::Method::POST,
                "/v1/contacts".into(),
                Some(json!({"email": format!("soak{n}@example.com"), "traits": {"plan": "pro", "n": n}})),
            ),
            Op::UpdateContact => (
                reqwest::Method::PATCH,
                format!("/v1/contacts/{}", 1 + n % 1000),
                Some(json!({"traits": {"seen": n, "tags": {"add": ["soak"]}}})),
            ),
            Op::GetContact => (reqwest::Method::GET, format!("/v1/contacts/{}", 1 + n % 1000), None),
            Op::ListContacts => (reqwest::Method::GET, "/v1/contacts?limit=50&tag=soak".into(), None),
            Op::Identify => (
                reqwest::Method::POST,
                "/v1/identify".into(),
                Some(json!({"external_id": format!("q{}", n % 50_000), "traits": {"visits": {"$inc": 1}}})),
            ),
            Op::Track => (
                reqwest::Method::POST,
                "/v1/track".into(),
                Some(json!({"external_id": format!("q{}", n % 50_000), "event": "Viewed", "properties": {"n": n}})),
            ),
            Op::Batch => (
                reqwest::Method::POST,
                "/v1/batch".into(),
                Some(
                    json!({"batch": (0..10).map(|i| json!({"type": "track", "external_id": format!("q{}", (n + i) % 50_000), "event": "Clicked"})).collect::<Vec<_>>()}),
                ),
            ),
            Op::BatchUpsert => (
                reqwest::Method::POST,
                "/v1/contacts/batch".into(),
                Some(
                    json!({"contacts": (0..20).map(|i| json!({"external_id": format!("b{}", (n * 20 + i) % 100_000), "traits": {"score": i}})).collect::<Vec<_>>()}),
                ),
            ),
            Op::Message => (
                reqwest::Method::POST,
                format!("/v1/conversations/{conv}/messages"),
                Some(json!({"content": format!("message {n}"), "type": "incoming"})),
            ),
            Op::ListMessages => (reqwest::Method::GET, format!("/v1/conversations/{conv}/messages?limit=50"), None),
            Op::Rep => (
                reqwest::Method::POST,
                "/v1/reps".into(),
                Some(
                    json!({"rep_id": format!("rep{n}"), "name": "Soak", "department": if n.is_multiple_of(2) { "sales" } else { "support" }}),
                ),
            ),
            Op::Report => (
                reqwest::Method::GET,
                "/v1/reports?source=conversations&group_by=day,status&metrics=count".into(),
                None,
            ),
            Op::SegmentBatch => (
                reqwest::Method::POST,
                "/compat/segment/v1/batch".into(),
                Some(json!({"batch": [
                    {"type": "identify", "userId": format!("s{}", n % 20_000), "traits": {"plan": "pro"}},
                    {"type": "track", "userId": format!("s{}", n % 20_000), "event": "Signed In"}]})),
            ),
            Op::ConveyourIdentify => (
                reqwest::Method::POST,
                "/compat/conveyour/api/analytics/identify".into(),
                Some(json!({"id": format!("cy{}@example.com", n % 20_000), "traits": {"first_name": "C"}})),
            ),
            Op::ConversionBatch => (
                reqwest::Method::POST,
                "/compat/conversion/api/v1/contacts/batch".into(),
                Some(
                    json!({"contacts": [{"email": format!("cv{}@example.com", n % 20_000), "variables": {"tier": "gold"}}]}),
                ),
            ),
            Op::ConvotMessage => (
                reqwest::Method::POST,
                format!("/compat/convot/v1/conversations/{conv}/messages"),
                Some(json!({"content": format!("operator reply {n}")})),
            ),
            Op::ConverzReps => (
                reqwest::Method::POST,
                "/compat/converz/api/v1/reps".into(),
                Some(json!([{"rep_id": format!("z{}", n % 500), "name": "Z", "department": "sales"}])),
            ),
            Op::ConverzReport => {
                (reqwest::Method::GET, "/compat/converz/api/v1/report?group_by=department&metrics=calls".into(), None)
            }
            // The 100 seeded companies: an export whose size does not grow with the run.
            Op::Export => (reqwest::Method::GET, "/v1/exports/companies?format=ndjson".into(), None),
        };
        let started = Instant::now();
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let outcome = match request.send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.map(|_| ()).map_err(|e| e.to_string()),
            Ok(r) => {
                let status = r.status();
                Err(format!("{op:?} {path}: {status} {}", r.text().await.unwrap_or_default()))
            }
            Err(e) => Err(format!("{op:?} {path}: {e}")),
        };
        match outcome {
            Ok(()) => {
                self.done.fetch_add(1, Ordering::Relaxed);
                let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                self.latencies.lock().push(micros);
                self.by_op.lock().entry(format!("{op:?}")).or_default().push(micros);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().get_or_insert(e);
            }
        }
    }
}

async fn run() -> Result<(), String> {
    let probe_secs: u64 = env_or("BENCH_PROBE_SECONDS", 20);
    let soak_secs: u64 = env_or("BENCH_SECONDS", 300);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 32);
    let load: f64 = env_or("BENCH_LOAD", 0.7);
    let database = std::env::var("BENCH_DATABASE_URL").ok();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().map_err(|e| e.to_string())?;
    let server = start_server(&client, database.as_deref(), MASTER).await?;
    let pid = server.node.0.id();

    // Fixtures: 1,000 contacts (the updates and reads), 50 conversations, 100 companies.
    let companies: Vec<Value> = (0..100)
        .map(|i| json!({"external_id": format!("co{i}"), "traits": {"name": format!("Company {i}")}}))
        .collect();
    client
        .post(format!("{}/v1/companies/batch", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"companies": companies}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    let mut conversations = Vec::new();
    for i in 0..1000 {
        let r = client
            .post(format!("{}/v1/contacts", server.base))
            .bearer_auth(&server.token)
            .json(&json!({"email": format!("fixture{i}@example.com")}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let contact: Value = r.json().await.map_err(|e| e.to_string())?;
        if i % 20 == 0 {
            let r = client
                .post(format!("{}/v1/conversations", server.base))
                .bearer_auth(&server.token)
                .json(&json!({"contact_id": contact["id"]}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let c: Value = r.json().await.map_err(|e| e.to_string())?;
            conversations.push(c["id"].as_str().ok_or("no conversation id")?.to_string());
        }
    }
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        base: server.base.clone(),
        token: server.token.clone(),
        conversations,
        seq: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        done: AtomicU64::new(0),
        latencies: parking_lot::Mutex::new(Vec::new()),
        by_op: parking_lot::Mutex::new(std::collections::HashMap::new()),
        first_error: parking_lot::Mutex::new(None),
    });

    // 1. The maximum rate of the mix: closed loop, every connection busy.
    let next = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(probe_secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ctx, next) = (ctx.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let op = MIX[next.fetch_add(1, Ordering::Relaxed) % MIX.len()];
                ctx.one(op).await;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    // Queued items were answered at once and are applied later: the probe
    // lasts until they are, so its rate is one the server can keep up.
    let probed_at = Instant::now();
    let drain = wait_applied(&client, &server.base).await?;
    let probe_elapsed = Duration::from_secs(probe_secs) + drain;
    let max_rate = ctx.done.load(Ordering::Relaxed) as f64 / probe_elapsed.as_secs_f64();
    let probe_errors = ctx.errors.load(Ordering::Relaxed);
    println!(
        "probe: {max_rate:.0} requests/s at {concurrency} connections ({} requests in {probe_secs} s, queued items \
         applied {:.1} s later), {probe_errors} errors",
        ctx.done.load(Ordering::Relaxed),
        probed_at.elapsed().as_secs_f64()
    );
    ctx.latencies.lock().clear();
    println!("        slowest p99: {}", slowest_ops(std::mem::take(&mut *ctx.by_op.lock())));
    ctx.done.store(0, Ordering::Relaxed);

    // 2. Hold `load` × the maximum, open loop: a request is started on schedule
    // whatever the previous ones are doing.
    let rate = (max_rate * load).max(1.0);
    let interval = Duration::from_secs_f64(1.0 / rate);
    println!("soak: {rate:.0} requests/s ({:.0} % of the maximum) for {soak_secs} s", load * 100.0);
    let started = Instant::now();
    let end = started + Duration::from_secs(soak_secs);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut next_sample = started + Duration::from_secs(10);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0usize;
    let mut max_in_flight = 0;
    // Requests not started because MAX_IN_FLIGHT were outstanding: the server
    // fell behind the rate (a failure of the run, not a queue to grow).
    let mut late = 0u64;
    while Instant::now() < end {
        ticker.tick().await;
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            late += 1;
            continue;
        }
        let op = MIX[i % MIX.len()];
        i += 1;
        max_in_flight = max_in_flight.max(in_flight.fetch_add(1, Ordering::Relaxed) + 1);
        let (task_ctx, task_in_flight) = (ctx.clone(), in_flight.clone());
        tokio::spawn(async move {
            task_ctx.one(op).await;
            task_in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(10);
            let (rss, _) = rss_kib(pid);
            let mut window = std::mem::take(&mut *ctx.latencies.lock());
            window.sort_unstable();
            let pct = |p: f64| window.get(((window.len() as f64 * p) as usize).min(window.len().saturating_sub(1)));
            let backlog = metric(&ctx.client, &ctx.base, "convene_ingest_backlog").await;
            println!(
                "t={:>4}s rss={:>7} KiB  done={:>8}  errors={}  late={late}  p50={:.1} ms  p99={:.1} ms  in flight ≤ {max_in_flight}  backlog={backlog}",
                started.elapsed().as_secs(),
                rss,
                ctx.done.load(Ordering::Relaxed),
                ctx.errors.load(Ordering::Relaxed),
                pct(0.5).copied().unwrap_or(0) as f64 / 1000.0,
                pct(0.99).copied().unwrap_or(0) as f64 / 1000.0,
            );
            println!("        slowest p99: {}", slowest_ops(std::mem::take(&mut *ctx.by_op.lock())));
            samples.push((started.elapsed().as_secs(), rss));
        }
    }
    while in_flight.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = ctx.done.load(Ordering::Relaxed);
    let errors = ctx.errors.load(Ordering::Relaxed);
    let achieved = done as f64 / started.elapsed().as_secs_f64();
    let (_, hwm) = rss_kib(pid);
    // Flat memory: the last sample against the one a minute in (after warm-up).
    let warm = samples.iter().find(|(t, _)| *t >= 60).or(samples.first()).map_or(0, |s| s.1);
    let last = samples.last().map_or(0, |s| s.1);
    println!(
        "summary: {done} requests in {:.0} s ({achieved:.0}/s, target {rate:.0}/s), {errors} errors, {late} late; \
         rss after warm-up {warm} KiB, at the end {last} KiB (growth {:+} KiB), peak {hwm} KiB",
        started.elapsed().as_secs_f64(),
        last as i64 - warm as i64
    );
    if let Some(e) = ctx.first_error.lock().take() {
        println!("first error: {e}");
    }
    // Keeping up: at most 1 % of the schedule missed (a stall of the disk
    // shows as a burst of late requests; falling behind shows as many).
    let scheduled = done + late;
    if errors > 0 || probe_errors > 0 || late as f64 > 0.01 * scheduled as f64 {
        return Err(format!(
            "{} errors, {late} of {scheduled} scheduled requests late (at most 1 % may be)",
            errors + probe_errors
        ));
    }
    Ok(())
}

/// Waits (at most 120 s) until the ingest backlog is empty; how long it took.
async fn wait_applied(client: &reqwest::Client, base: &str) -> Result<Duration, String> {
    let started = Instant::now();
    while metric(client, base, "convene_ingest_backlog").await != 0.0 {
        if started.elapsed() > Duration::from_secs(120) {
            return Err("the probe's queued items were not applied within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// The three operations with the highest p99 in a window, with their mean.
fn slowest_ops(by_op: std::collections::HashMap<String, Vec<u32>>) -> String {
    let mut ops: Vec<(String, f64, f64)> = by_op
        .into_iter()
        .map(|(op, mut l)| {
            l.sort_unstable();
            let p99 = l[((l.len() as f64 * 0.99) as usize).min(l.len() - 1)] as f64 / 1000.0;
            let mean = l.iter().map(|&x| x as f64).sum::<f64>() / l.len() as f64 / 1000.0;
            (op, p99, mean)
        })
        .collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    ops.iter()
        .take(3)
        .map(|(op, p99, mean)| format!("{op} {p99:.1} ms (mean {mean:.1})"))
        .collect::<Vec<_>>()
        .join(", ")
}

//! `convene-bench`: a load generator for the native contacts API.
//!
//! It starts the release `convene` binary found next to its own executable
//! on a fresh temporary data directory and a free loopback port, creates a
//! workspace and a key, loads contacts through `POST /v1/contacts`, then
//! measures lookups by id, lookups by email and PATCHes with trait
//! operations, each for a fixed time at a fixed concurrency (closed loop:
//! every worker sends its next request when the previous one is answered).
//! Every latency is kept; the server's resident memory and CPU time are
//! sampled from `/proc`. It prints a Markdown table on stdout (progress on
//! stderr), stops the server it started and removes the directory.
//!
//! With `--postgres URL` (an admin URL, e.g. from `scripts/test-postgres
//! start DIR`) the whole run is done three times: SQLite, then PostgreSQL
//! with one node, then PostgreSQL with two `convene serve` processes on the
//! same database (requests spread round-robin over both), each on a fresh
//! database; a table of the ratios to SQLite follows the three tables.
//!
//! ```text
//! cargo build --release --bin convene --bin convene-bench && target/release/convene-bench
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

/// Load-test a freshly started convene server on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "convene-bench", about)]
struct Args {
    /// Contacts to load before the timed phases.
    #[arg(long, default_value_t = 1_000_000)]
    contacts: usize,
    /// Concurrent requests (workers) in every phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Length of each timed phase, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Extra lookup phases at these lower concurrencies, for latency without
    /// queueing (comma-separated; 0 for none).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    latency_concurrency: Vec<usize>,
    /// Seconds between progress lines while loading.
    #[arg(long, default_value_t = 5)]
    progress_every: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// The `convene` binary [default: next to this executable].
    #[arg(long)]
    server: Option<PathBuf>,
    /// Contacts per load request: above 1 the load goes through the queued
    /// `POST /v1/batch` (identify items) and counts until every contact is
    /// applied (readable); 1 uses `POST /v1/contacts`, one request each.
    #[arg(long, default_value_t = 100)]
    load_batch: usize,
    /// Extra arguments passed to `convene serve` (e.g. `--server-arg=--sqlite-synchronous=normal`).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// A PostgreSQL admin URL: after SQLite, run again on PostgreSQL with
    /// one node and with two nodes, each on a fresh database created there.
    #[arg(long)]
    postgres: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.concurrency == 0 || args.contacts == 0 || args.seconds == 0 || args.client_threads == 0 {
        eprintln!("convene-bench: --contacts, --concurrency, --seconds and --client-threads must be at least 1");
        return std::process::ExitCode::FAILURE;
    }
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(args.client_threads).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("convene-bench: cannot start the runtime: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(&args) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    });
    // Workers still running (after an interruption) are dropped here; the
    // server guard has already been dropped inside `run`.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convene-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// The server under test.

/// The child `convene serve` and its temporary directory; stopped and
/// removed on drop (also on error or panic).
struct Server {
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
    base: String,
    master_key: String,
}

impl Server {
    fn start(bin: &Path, extra: &[String]) -> Result<Server, String> {
        if !bin.is_file() {
            return Err(format!(
                "no server binary at {}: build it with `cargo build --release --bin convene --bin convene-bench`",
                bin.display()
            ));
        }
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("convene-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free loopback port: {e}"))?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        let master_key = format!("bench-master-key-{nanos}");
        let log =
            std::fs::File::create(dir.join("server.log")).map_err(|e| format!("cannot create the server log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--master-key")
            .arg(&master_key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("cannot start {}: {e}", bin.display()));
            }
        };
        Ok(Server { pid: child.id(), child: Some(child), dir, base: format!("http://127.0.0.1:{port}"), master_key })
    }

    /// True while the child has not exited.
    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The last lines of the server's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the child (SIGTERM by its pid, SIGKILL after 10 s) and removes
    /// the directory.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The child is not reaped before `wait` below, so its pid cannot
            // have been reused by another process.
            if matches!(child.try_wait(), Ok(None)) {
                let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).stderr(Stdio::null()).status();
                let until = Instant::now() + Duration::from_secs(10);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            eprintln!("convene-bench: could not remove {}: {e}", self.dir.display());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// /proc sampling.

#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
}

fn read_mem(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some(Mem { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
}

/// The highest RSS and VmHWM over several processes (the nodes).
fn read_mem_max(pids: &[u32]) -> Mem {
    pids.iter()
        .filter_map(|p| read_mem(*p))
        .fold(Mem::default(), |a, m| Mem { rss_kib: a.rss_kib.max(m.rss_kib), hwm_kib: a.hwm_kib.max(m.hwm_kib) })
}

/// (parent pid, user + system CPU time in clock ticks) of a process.
fn read_stat(pid: &str) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?))
}

/// User + system CPU time of a process, in clock ticks.
fn read_cpu_ticks(pid: &str) -> Option<u64> {
    read_stat(pid).map(|(_, ticks)| ticks)
}

/// CPU ticks of a PostgreSQL cluster's processes (the postmaster and its
/// children), by pid.
fn postgres_ticks(postmaster: u32) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some((ppid, ticks)) = read_stat(&pid.to_string())
            && (pid == postmaster || ppid == postmaster)
        {
            out.insert(pid, ticks);
        }
    }
    out
}

/// Ticks used since `before` (processes that started in between count whole).
fn postgres_ticks_since(postmaster: u32, before: &HashMap<u32, u64>) -> u64 {
    postgres_ticks(postmaster).iter().map(|(pid, t)| t.saturating_sub(*before.get(pid).unwrap_or(&0))).sum()
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

/// Samples the server's memory every 200 ms while a phase runs.
struct MemSampler {
    peak_rss_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl MemSampler {
    /// Samples the highest RSS of any of `pids` (the nodes).
    fn start(pids: Vec<u32>) -> MemSampler {
        let peak = Arc::new(AtomicU64::new(read_mem_max(&pids).rss_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                p.fetch_max(read_mem_max(&pids).rss_kib, Ordering::Relaxed);
            }
        });
        MemSampler { peak_rss_kib: peak, stop, task }
    }

    /// The highest RSS seen while sampling.
    async fn finish(self, pids: &[u32]) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak_rss_kib.fetch_max(read_mem_max(pids).rss_kib, Ordering::Relaxed);
        self.peak_rss_kib.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------
// Results.

/// Non-2xx answers and transport failures, by kind, with one example each.
#[derive(Debug, Default)]
struct Errors {
    by_kind: BTreeMap<String, (u64, String)>,
}

impl Errors {
    fn add(&mut self, kind: String, example: impl FnOnce() -> String) {
        let entry = self.by_kind.entry(kind).or_insert_with(|| (0, example()));
        entry.0 += 1;
    }
    fn total(&self) -> u64 {
        self.by_kind.values().map(|(n, _)| n).sum()
    }
    fn merge(&mut self, other: Errors) {
        for (kind, (n, example)) in other.by_kind {
            self.by_kind.entry(kind).or_insert((0, example)).0 += n;
        }
    }
}

/// What one worker saw.
#[derive(Default)]
struct WorkerOut {
    latencies_ns: Vec<u64>,
    errors: Errors,
    /// (contact index, contact id) of contacts created (load phase only).
    created: Vec<(u32, i64)>,
}

/// One row of the table.
struct PhaseResult {
    name: String,
    concurrency: usize,
    requests: u64,
    errors: Errors,
    elapsed: Duration,
    /// Sorted.
    latencies_ns: Vec<u64>,
    peak_rss_kib: u64,
    after: Mem,
    server_cpu: f64,
    bench_cpu: f64,
    /// CPU of the PostgreSQL cluster's processes (PostgreSQL runs only).
    db_cpu: Option<f64>,
}

impl PhaseResult {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies_ns.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies_ns.len() as f64).ceil() as usize;
        Duration::from_nanos(self.latencies_ns[rank.clamp(1, self.latencies_ns.len()) - 1])
    }
    fn max(&self) -> Duration {
        Duration::from_nanos(self.latencies_ns.last().copied().unwrap_or(0))
    }
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------
// Requests.

/// A tiny fast random generator (SplitMix64); statistical quality is ample
/// for picking contacts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const CITIES: [&str; 8] = ["Lisbon", "Berlin", "Austin", "Osaka", "Nairobi", "Lyon", "Toronto", "Perth"];
const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];

fn email_of(i: usize) -> String {
    format!("contact{i}@bench.example")
}

/// The body creating contact `i`: unique email and external id, 10 traits
/// (strings, numbers, booleans and a date).
fn contact_body(i: usize) -> String {
    format!(
        concat!(
            r#"{{"email":"{email}","external_id":"ext-{i}","traits":{{"#,
            r#""first_name":"First{f}","last_name":"Last{l}","city":"{city}","plan":"{plan}","#,
            r#""age":{age},"lifetime_value":{ltv:.2},"visits":{visits},"#,
            r#""vip":{vip},"newsletter":{news},"signup_date":"{y:04}-{m:02}-{d:02}"}}}}"#
        ),
        email = email_of(i),
        i = i,
        f = i % 1000,
        l = (i / 1000) % 1000,
        city = CITIES[i % CITIES.len()],
        plan = PLANS[i % PLANS.len()],
        age = 18 + i % 60,
        ltv = (i % 10_000) as f64 * 1.37 + 0.25,
        visits = i % 100,
        vip = i.is_multiple_of(10),
        news = i.is_multiple_of(2),
        y = 2015 + i % 10,
        m = 1 + i % 12,
        d = 1 + i % 28,
    )
}

/// The shared context of the workers.
struct Ctx {
    client: reqwest::Client,
    /// The nodes' base URLs; requests go round-robin over them.
    bases: Vec<String>,
    next_base: AtomicUsize,
    auth: HeaderValue,
    load_batch: usize,
}

impl Ctx {
    /// The node the next request goes to.
    fn base(&self) -> &str {
        &self.bases[self.next_base.fetch_add(1, Ordering::Relaxed) % self.bases.len()]
    }
}

#[derive(Deserialize)]
struct Created {
    id: i64,
}

/// Sends one request; `Ok(body)` for a 2xx answer, else the error kind and
/// an example for the report.
async fn send(req: reqwest::RequestBuilder) -> Result<impl AsRef<[u8]>, (String, String)> {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            match resp.bytes().await {
                Ok(body) if status.is_success() => Ok(body),
                Ok(body) => Err((
                    format!("HTTP {}", status.as_u16()),
                    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
                )),
                Err(e) => Err(("reading the body".to_string(), e.to_string())),
            }
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            Err((kind.to_string(), e.to_string()))
        }
    }
}

// ---------------------------------------------------------------------------
// Phases.

async fn load_worker(ctx: Arc<Ctx>, next: Arc<AtomicUsize>, done: Arc<AtomicUsize>, total: usize) -> WorkerOut {
    let mut out = WorkerOut { latencies_ns: Vec::with_capacity(total / 32 + 16), ..WorkerOut::default() };
    if ctx.load_batch > 1 {
        loop {
            let first = next.fetch_add(ctx.load_batch, Ordering::Relaxed);
            if first >= total {
                return out;
            }
            let last = (first + ctx.load_batch).min(total);
            let items: Vec<String> =
                (first..last).map(|i| format!("{{\"type\":\"identify\",{}", &contact_body(i)[1..])).collect();
            let req = ctx
                .client
                .post(format!("{}/v1/batch", ctx.base()))
                .header(AUTHORIZATION, ctx.auth.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(format!("{{\"batch\":[{}]}}", items.join(",")));
            let started = Instant::now();
            let result = send(req).await;
            out.latencies_ns.push(started.elapsed().as_nanos() as u64);
            if let Err((kind, example)) = result {
                out.errors.add(kind, || example);
            }
            done.fetch_add(last - first, Ordering::Relaxed);
        }
    }
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return out;
        }
        let req = ctx
            .client
            .post(format!("{}/v1/contacts", ctx.base()))
            .header(AUTHORIZATION, ctx.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(contact_body(i));
        let started = Instant::now();
        let result = send(req).await;
        out.latencies_ns.push(started.elapsed().as_nanos() as u64);
        match result {
            Ok(body) => match serde_json::from_slice::<Created>(body.as_ref()) {
                Ok(c) => out.created.push((i as u32, c.id)),
                Err(e) => out.errors.add("unreadable 201 body".into(), || e.to_string()),
            },
            Err((kind, example)) => out.errors.add(kind, || example),
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    GetById,
    GetByEmail,
    Patch,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::GetById => "lookup by id (`GET /v1/contacts/{id}`)",
            Op::GetByEmail => "lookup by email (`GET /v1/contacts?email=`)",
            Op::Patch => "update (`PATCH /v1/contacts/{id}`, $inc + tags add + set)",
        }
    }
}

async fn timed_worker(
    ctx: Arc<Ctx>,
    op: Op,
    contacts: Arc<Vec<(u32, i64)>>,
    seed: u64,
    deadline: Instant,
) -> WorkerOut {
    let mut out = WorkerOut { latencies_ns: Vec::with_capacity(1 << 14), ..WorkerOut::default() };
    let mut rng = Rng(seed);
    while Instant::now() < deadline {
        let (index, id) = contacts[rng.below(contacts.len())];
        let req = match op {
            Op::GetById => ctx.client.get(format!("{}/v1/contacts/{id}", ctx.base())),
            Op::GetByEmail => ctx.client.get(format!(
                "{}/v1/contacts?email={}",
                ctx.base(),
                email_of(index as usize).replace('@', "%40")
            )),
            Op::Patch => {
                let r = rng.next() as usize;
                let body = format!(
                    r#"{{"traits":{{"visits":{{"$inc":1}},"tags":{{"add":["tag{}"]}},"plan":"{}"}}}}"#,
                    r % 5,
                    PLANS[(r >> 8) % PLANS.len()]
                );
                ctx.client
                    .patch(format!("{}/v1/contacts/{id}", ctx.base()))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
            }
        };
        let req = req.header(AUTHORIZATION, ctx.auth.clone());
        let started = Instant::now();
        let result = send(req).await;
        out.latencies_ns.push(started.elapsed().as_nanos() as u64);
        match result {
            // A lookup by email of a loaded contact must find it.
            Ok(body) if matches!(op, Op::GetByEmail) && !contains(body.as_ref(), b"\"id\":") => {
                out.errors.add("200 without the contact".into(), || String::from_utf8_lossy(body.as_ref()).into_owned())
            }
            Ok(_) => {}
            Err((kind, example)) => out.errors.add(kind, || example),
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Measures a phase: runs the workers, samples memory and CPU, merges.
/// Also returns the contacts created (load phase only).
async fn measure<F, Fut>(
    name: String,
    concurrency: usize,
    probe: &Probe,
    spawn_worker: F,
) -> (PhaseResult, Vec<(u32, i64)>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = WorkerOut> + Send + 'static,
{
    let pids = &probe.pids;
    let sampler = MemSampler::start(pids.clone());
    let server_ticks = || pids.iter().map(|p| read_cpu_ticks(&p.to_string()).unwrap_or(0)).sum::<u64>();
    let (server_cpu0, bench_cpu0) = (server_ticks(), read_cpu_ticks("self").unwrap_or(0));
    let db_cpu0 = probe.postmaster.map(postgres_ticks);
    let started = Instant::now();
    let handles: Vec<_> = (0..concurrency).map(|w| tokio::spawn(spawn_worker(w))).collect();
    let mut merged = WorkerOut::default();
    for h in handles {
        match h.await {
            Ok(out) => {
                merged.latencies_ns.extend(out.latencies_ns);
                merged.errors.merge(out.errors);
                merged.created.extend(out.created);
            }
            Err(e) => merged.errors.add("worker panicked".into(), || e.to_string()),
        }
    }
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64();
    let tck = probe.tck;
    let server_cpu = server_ticks().saturating_sub(server_cpu0) as f64 / tck / secs;
    let bench_cpu = read_cpu_ticks("self").unwrap_or(0).saturating_sub(bench_cpu0) as f64 / tck / secs;
    let db_cpu = match (probe.postmaster, &db_cpu0) {
        (Some(pm), Some(before)) => Some(postgres_ticks_since(pm, before) as f64 / tck / secs),
        _ => None,
    };
    let peak_rss_kib = sampler.finish(pids).await;
    let after = read_mem_max(pids);
    let mut latencies = merged.latencies_ns;
    latencies.sort_unstable();
    let result = PhaseResult {
        name,
        concurrency,
        requests: latencies.len() as u64,
        errors: merged.errors,
        elapsed,
        latencies_ns: latencies,
        peak_rss_kib,
        after,
        server_cpu,
        bench_cpu,
        db_cpu,
    };
    (result, merged.created)
}

/// What `measure` samples: the nodes, and the PostgreSQL cluster's
/// postmaster when the run is on PostgreSQL.
struct Probe {
    pids: Vec<u32>,
    postmaster: Option<u32>,
    tck: f64,
}

// ---------------------------------------------------------------------------
// The run.

async fn wait_ready(client: &reqwest::Client, server: &mut Server) -> Result<Duration, String> {
    let started = Instant::now();
    let url = format!("{}/readyz", server.base);
    loop {
        if !server.running() {
            return Err(format!("the server exited before it was ready; its log:\n{}", server.log_tail()));
        }
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the server was not ready after 30 s; its log:\n{}", server.log_tail()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let resp = client.post(url).bearer_auth(bearer).json(&body).send().await.map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("POST {url}: {e}"))?;
    if status.as_u16() != 201 {
        return Err(format!("POST {url}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("POST {url}: {e}: {text}"))
}

/// Where the data lives in one pass of the run.
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

/// One pass: its report (summary and table) and figures for the comparison.
struct Pass {
    backend: Backend,
    report: String,
    phases: Vec<PhaseResult>,
    contacts_per_sec: f64,
}

async fn run(args: &Args) -> Result<(), String> {
    let bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find my own executable: {e}"))?
            .with_file_name("convene"),
    };
    let mut backends = vec![Backend::Sqlite];
    let mut postmaster = None;
    if let Some(admin) = &args.postgres {
        backends.push(Backend::Postgres { nodes: 1 });
        backends.push(Backend::Postgres { nodes: 2 });
        postmaster = postmaster_pid(admin).await;
        if postmaster.is_none() {
            eprintln!("convene-bench: cannot find the PostgreSQL postmaster's pid; its CPU is not measured");
        }
    }
    let mut passes = Vec::new();
    for backend in backends {
        let database = match (&args.postgres, backend) {
            (Some(admin), Backend::Postgres { .. }) => Some(
                convene_store_postgres::scratch::fresh_database(admin)
                    .await
                    .map_err(|e| format!("cannot create a database on {admin}: {e}"))?,
            ),
            _ => None,
        };
        let pass = run_pass(args, &bin, backend, database.as_deref(), postmaster).await;
        if let (Some(admin), Some(url)) = (&args.postgres, &database) {
            drop_database(admin, url).await;
        }
        passes.push(pass?);
    }
    if passes.len() == 1 {
        print!("{}", passes[0].report);
        return Ok(());
    }
    let mut out = String::new();
    for pass in &passes {
        let _ = writeln!(
            out,
            "### {}\n\n{}",
            pass.backend.label(),
            pass.report.replace("## convene-bench results\n\n", "")
        );
    }
    out.push_str(&compare(&passes));
    print!("{out}");
    Ok(())
}

/// The ratios of every pass to the first (SQLite), phase by phase.
fn compare(passes: &[Pass]) -> String {
    let base = &passes[0];
    let mut out = String::new();
    let _ = writeln!(out, "### Ratios to {} (same run)\n", base.backend.label());
    let mut header = format!("| Phase | Conc. | {} req/s |", base.backend.label());
    let mut rule = "|---|--:|--:|".to_string();
    for p in &passes[1..] {
        let _ = write!(header, " {} req/s (× {}) |", p.backend.label(), base.backend.label());
        rule.push_str("--:|");
    }
    let _ = write!(header, " {} p50 / p99 |", base.backend.label());
    rule.push_str("--:|");
    for p in &passes[1..] {
        let _ = write!(header, " {} p50 / p99 (× p99) |", p.backend.label());
        rule.push_str("--:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}", a / b) } else { "–".into() };
    let _ = write!(
        out,
        "| load, contacts/s (until all applied) | {} | {:.0} |",
        base.phases[0].concurrency, base.contacts_per_sec
    );
    for p in &passes[1..] {
        let _ = write!(out, " {:.0} ({}) |", p.contacts_per_sec, ratio(p.contacts_per_sec, base.contacts_per_sec));
    }
    out.push_str(&" |".repeat(passes.len()));
    out.push('\n');
    for (i, phase) in base.phases.iter().enumerate() {
        let _ = write!(out, "| {} | {} | {} |", phase.name, phase.concurrency, thousands(phase.rate().round() as u64));
        for p in &passes[1..] {
            match p.phases.get(i) {
                Some(q) => {
                    let _ =
                        write!(out, " {} ({}) |", thousands(q.rate().round() as u64), ratio(q.rate(), phase.rate()));
                }
                None => out.push_str(" – |"),
            }
        }
        let _ = write!(out, " {} / {} |", ms(phase.percentile(50.0)), ms(phase.percentile(99.0)));
        for p in &passes[1..] {
            match p.phases.get(i) {
                Some(q) => {
                    let _ = write!(
                        out,
                        " {} / {} ({}) |",
                        ms(q.percentile(50.0)),
                        ms(q.percentile(99.0)),
                        ratio(q.percentile(99.0).as_secs_f64(), phase.percentile(99.0).as_secs_f64())
                    );
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out
}

/// A PostgreSQL client on `url` (its connection driven by a task).
async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| format!("cannot connect: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The pid of the server's postmaster, to add up its processes' CPU.
async fn postmaster_pid(admin: &str) -> Option<u32> {
    let c = pg_connect(admin).await.ok()?;
    let row = c.query_one("SHOW data_directory", &[]).await.ok()?;
    let dir: String = row.get(0);
    let pid = std::fs::read_to_string(format!("{dir}/postmaster.pid")).ok()?;
    pid.lines().next()?.trim().parse().ok()
}

/// The database name of a URL.
fn database_name(url: &str) -> String {
    url.split('?').next().unwrap_or(url).rsplit('/').next().unwrap_or_default().to_string()
}

/// Drops a database made for a pass and checkpoints, so that the next pass
/// starts on a quiet server.
async fn drop_database(admin: &str, url: &str) {
    let name = database_name(url);
    let c = match pg_connect(admin).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("convene-bench: could not drop {name}: {e}");
            return;
        }
    };
    // Two statements: DROP DATABASE cannot run in the implicit transaction
    // of a multi-statement query.
    for sql in [format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), "CHECKPOINT".into()] {
        if let Err(e) = c.batch_execute(&sql).await {
            eprintln!("convene-bench: `{sql}` failed: {}", e.as_db_error().map(|d| d.message()).unwrap_or("?"));
        }
    }
}

/// Bytes of a PostgreSQL database.
async fn database_bytes(url: &str) -> Option<u64> {
    let c = pg_connect(url).await.ok()?;
    let row = c.query_one("SELECT pg_database_size(current_database())", &[]).await.ok()?;
    Some(row.get::<_, i64>(0).max(0) as u64)
}

/// One pass of the run on `backend`: starts the node(s), loads, measures.
async fn run_pass(
    args: &Args,
    bin: &Path,
    backend: Backend,
    database: Option<&str>,
    postmaster: Option<u32>,
) -> Result<Pass, String> {
    let label = backend.label();
    let tck = clock_ticks_per_sec();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let nodes = match backend {
        Backend::Sqlite => 1,
        Backend::Postgres { nodes } => nodes,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(args.latency_concurrency.iter().copied().max().unwrap_or(0)))
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    // One node after the other: the first applies the migrations.
    let mut servers: Vec<Server> = Vec::new();
    let mut ready_in = Duration::ZERO;
    for _ in 0..nodes {
        let mut extra = args.server_args.clone();
        if let Some(url) = database {
            extra.extend(["--database".to_string(), url.to_string()]);
        }
        let mut server = Server::start(bin, &extra)?;
        eprintln!(
            "convene-bench [{label}]: started {} (pid {}) on {} with data in {}",
            bin.display(),
            server.pid,
            server.base,
            server.dir.display()
        );
        ready_in = ready_in.max(wait_ready(&client, &mut server).await?);
        servers.push(server);
    }
    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let probe = Probe { pids: pids.clone(), postmaster: if database.is_some() { postmaster } else { None }, tck };
    let idle_start = read_mem_max(&pids);

    let (base, master_key) = (servers[0].base.clone(), servers[0].master_key.clone());
    let ws =
        post_json(&client, &format!("{base}/v1/workspaces"), &master_key, serde_json::json!({"name": "bench"})).await?;
    let ws_id = ws["id"].as_str().ok_or("no workspace id")?.to_string();
    // Every node has its own master key; the workspace key works on all.
    let key = post_json(
        &client,
        &format!("{base}/v1/workspaces/{ws_id}/keys"),
        &master_key,
        serde_json::json!({"name": "bench", "kind": "full"}),
    )
    .await?;
    let token = key["token"].as_str().ok_or("no token in the key")?.to_string();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        bases: servers.iter().map(|s| s.base.clone()).collect(),
        next_base: AtomicUsize::new(0),
        auth: HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?,
        load_batch: args.load_batch.max(1),
    });

    // Load.
    let n = args.contacts;
    eprintln!("convene-bench [{label}]: loading {} contacts with {} workers", thousands(n as u64), args.concurrency);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let progress = {
        let (done, pids) = (done.clone(), pids.clone());
        let every = Duration::from_secs(args.progress_every.max(1));
        tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (Instant::now(), 0usize);
            loop {
                tokio::time::sleep(every).await;
                let d = done.load(Ordering::Relaxed);
                let now = Instant::now();
                let recent = (d - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                let m = read_mem_max(&pids);
                eprintln!(
                    "  [load {:>5.1} s] {}/{} ({:.1}%)  {:.0}/s overall, {:.0}/s last {} s  server RSS {}",
                    started.elapsed().as_secs_f64(),
                    thousands(d as u64),
                    thousands(n as u64),
                    100.0 * d as f64 / n as f64,
                    d as f64 / started.elapsed().as_secs_f64(),
                    recent,
                    every.as_secs(),
                    mib(m.rss_kib)
                );
                last = (now, d);
            }
        })
    };
    let load_name = if ctx.load_batch > 1 {
        format!(
            "load (`POST /v1/batch`, {} identify items of 10 traits per request, until all applied)",
            ctx.load_batch
        )
    } else {
        "load (`POST /v1/contacts`, 10 traits)".to_string()
    };
    let (mut load, mut created) = {
        let (ctx, next, done) = (ctx.clone(), next.clone(), done.clone());
        measure(load_name, args.concurrency, &probe, move |_| load_worker(ctx.clone(), next.clone(), done.clone(), n))
            .await
    };
    progress.abort();
    if ctx.load_batch > 1 {
        let acknowledged = load.elapsed;
        let applied = wait_applied(&client, &ctx.bases).await?;
        load.elapsed = acknowledged + applied;
        eprintln!(
            "convene-bench [{label}]: acknowledged in {:.1} s, all applied {:.1} s later",
            acknowledged.as_secs_f64(),
            applied.as_secs_f64()
        );
        created = collect_ids(&client, &ctx).await?;
    }
    created.sort_unstable();
    eprintln!(
        "convene-bench [{label}]: loaded {} contacts in {:.1} s ({:.0}/s), {} errors",
        thousands(created.len() as u64),
        load.elapsed.as_secs_f64(),
        created.len() as f64 / load.elapsed.as_secs_f64(),
        load.errors.total()
    );
    if created.is_empty() {
        return Err(format!("no contact was created; errors: {:?}", load.errors.by_kind));
    }
    let contacts = Arc::new(created);

    // Timed phases.
    let mut phases = vec![load];
    let deadline_in = Duration::from_secs(args.seconds);
    let mut plan: Vec<(Op, usize)> =
        vec![(Op::GetById, args.concurrency), (Op::GetByEmail, args.concurrency), (Op::Patch, args.concurrency)];
    for &c in args.latency_concurrency.iter().filter(|&&c| c > 0 && c != args.concurrency) {
        plan.push((Op::GetById, c));
        plan.push((Op::GetByEmail, c));
    }
    for (op, c) in plan {
        eprintln!("convene-bench [{label}]: {} at concurrency {c} for {} s", op.name(), args.seconds);
        let (ctx, contacts) = (ctx.clone(), contacts.clone());
        let deadline = Instant::now() + deadline_in;
        let (r, _) = measure(op.name().into(), c, &probe, move |w| {
            timed_worker(ctx.clone(), op, contacts.clone(), 0x5EED_0000 + w as u64 * 7919 + c as u64, deadline)
        })
        .await;
        eprintln!(
            "  {} requests, {:.0}/s, p50 {}, p99 {}, errors {}",
            thousands(r.requests),
            r.rate(),
            ms(r.percentile(50.0)),
            ms(r.percentile(99.0)),
            r.errors.total()
        );
        phases.push(r);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_end = read_mem_max(&pids);
    let db_bytes = match database {
        Some(url) => database_bytes(url).await.unwrap_or(0),
        None => dir_size(&servers[0].dir.join("data")),
    };

    // Report.
    let mut out = String::new();
    let _ = writeln!(out, "## convene-bench results\n");
    let _ = writeln!(
        out,
        "- {} contacts (10 traits each) loaded through the API by {} concurrent workers; each timed phase runs {} s, closed loop",
        thousands(n as u64),
        args.concurrency,
        args.seconds
    );
    let _ = writeln!(
        out,
        "- {cores} logical CPUs shared by the server{}, the load generator ({} runtime threads){}; server ready in {}",
        if nodes > 1 { "s" } else { "" },
        args.client_threads,
        if database.is_some() { " and PostgreSQL" } else { "" },
        ms(ready_in)
    );
    if nodes > 1 {
        let _ = writeln!(
            out,
            "- {nodes} `convene serve` nodes on one PostgreSQL database, requests spread round-robin; \
             server RSS is the highest of the nodes, server CPU the sum"
        );
    }
    let _ = writeln!(
        out,
        "- load: {} contacts in {:.1} s = **{:.0} contacts/s**; database {} {} after the run",
        thousands(contacts.len() as u64),
        phases[0].elapsed.as_secs_f64(),
        contacts.len() as f64 / phases[0].elapsed.as_secs_f64(),
        mib(db_bytes / 1024),
        if database.is_some() { "in PostgreSQL (pg_database_size)" } else { "on disk" }
    );
    let _ = writeln!(
        out,
        "- server memory: RSS {} idle at start, {} idle at the end; peak (VmHWM) {}",
        mib(idle_start.rss_kib),
        mib(idle_end.rss_kib),
        mib(idle_end.hwm_kib)
    );
    if !args.server_args.is_empty() {
        let _ = writeln!(out, "- server flags: `{}`", args.server_args.join(" "));
    }
    let _ = writeln!(out);
    let with_db = args.postgres.is_some();
    let _ = writeln!(
        out,
        "| Phase | Conc. | Requests | Errors | Req/s | p50 | p90 | p99 | max | Server RSS peak | RSS after | VmHWM after | Server CPU | Bench CPU |{}",
        if with_db { " PostgreSQL CPU |" } else { "" }
    );
    let _ =
        writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|{}", if with_db { "--:|" } else { "" });
    for p in &phases {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} cores | {:.2} cores |",
            p.name,
            p.concurrency,
            thousands(p.requests),
            thousands(p.errors.total()),
            thousands(p.rate().round() as u64),
            ms(p.percentile(50.0)),
            ms(p.percentile(90.0)),
            ms(p.percentile(99.0)),
            ms(p.max()),
            mib(p.peak_rss_kib),
            mib(p.after.rss_kib),
            mib(p.after.hwm_kib),
            p.server_cpu,
            p.bench_cpu
        );
        if with_db {
            match p.db_cpu {
                Some(c) => {
                    let _ = write!(out, " {c:.2} cores |");
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    let failing: Vec<&PhaseResult> = phases.iter().filter(|p| p.errors.total() > 0).collect();
    if !failing.is_empty() {
        let _ = writeln!(out, "\nErrors:\n");
        for p in failing {
            for (kind, (count, example)) in &p.errors.by_kind {
                let _ = writeln!(
                    out,
                    "- {}: {} × {kind}, e.g. `{}`",
                    p.name,
                    thousands(*count),
                    example.replace('`', "'").replace('\n', " ")
                );
            }
        }
    }
    let _ = writeln!(out);
    let contacts_per_sec = contacts.len() as f64 / phases[0].elapsed.as_secs_f64();
    drop(servers);
    Ok(Pass { backend, report: out, phases, contacts_per_sec })
}

/// Waits until every node's ingest backlog is empty; returns how long it took.
async fn wait_applied(client: &reqwest::Client, bases: &[String]) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let mut backlog = 0;
        for base in bases {
            let text = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            backlog += text
                .lines()
                .find_map(|l| l.strip_prefix("convene_ingest_backlog "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("no convene_ingest_backlog in /metrics")?;
        }
        if backlog == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("{backlog} items still unapplied after 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pages through `GET /v1/contacts` to learn each loaded contact's id (the
/// index is read back from its email).
async fn collect_ids(client: &reqwest::Client, ctx: &Ctx) -> Result<Vec<(u32, i64)>, String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/contacts?limit=1000", ctx.bases[0]);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: serde_json::Value = client
            .get(&url)
            .header(AUTHORIZATION, ctx.auth.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        for c in page["data"].as_array().ok_or("no data in a contact page")? {
            let index = c["email"]
                .as_str()
                .and_then(|e| e.strip_prefix("contact"))
                .and_then(|e| e.split('@').next())
                .and_then(|i| i.parse::<u32>().ok());
            if let (Some(index), Some(id)) = (index, c["id"].as_i64()) {
                out.push((index, id));
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

//! The batch-upsert benchmark: `cargo bench -p convene --bench batch_upsert`.
//!
//! Starts the release `convene` binary (default settings: SQLite,
//! synchronous=FULL) and sends `POST /compat/conversion/api/v1/contacts/batch`
//! requests of 1,000 contacts with 6 variables each from a closed loop of
//! `BENCH_CONCURRENCY` connections (default 4) for `BENCH_SECONDS` (default
//! 10) per phase: new contacts, then updates of contacts created in the
//! first phase, then the native `POST /v1/contacts/batch` with new contacts.
//! Every request is synchronous: a 200 means the rows are committed. The
//! load generator shares the machine's two cores with the server.
//!
//! With `BENCH_POSTGRES_URL` (an admin URL, e.g. from `scripts/test-postgres
//! start DIR`) the phases run again on a fresh PostgreSQL database in the
//! same run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{env_or, rss_kib, start_server};

const MASTER: &str = "bench-master-key-0123456789";
/// Rows per request (the dialect's maximum).
const ROWS: u64 = 1000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("batch upsert bench failed: {e}");
        std::process::exit(1);
    }
}

/// One request body: contacts `start .. start + ROWS`, 6 variables each
/// (built as text: the load generator shares the server's cores).
fn body(start: u64, round: u64, native: bool) -> String {
    use std::fmt::Write;
    let title = if round.is_multiple_of(2) { "Engineer" } else { "Manager" };
    let key = if native { "traits" } else { "variables" };
    let mut out = String::with_capacity(ROWS as usize * 260);
    out.push_str(r#"{"contacts":["#);
    for i in start..start + ROWS {
        if i > start {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"email":"user{i}@example.com","{key}":{{"first_name":"First{i}","last_name":"Last{round}","phone":"+1 555 {:07}","company_name":"Company {}","title":"{title}","linkedin_url":"https://www.linkedin.com/in/user{i}"}}}}"#,
            i % 10_000_000,
            i % 5000
        );
    }
    out.push_str("]}");
    out
}

struct Phase {
    name: &'static str,
    contacts_per_sec: f64,
    requests: u64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    rss_peak_mib: f64,
}

/// What a phase sends: batch `n` carries contacts `first + n * ROWS ..`
/// (wrapping at `wrap` batches when set), in the native shape or the dialect's.
struct Load<'a> {
    name: &'static str,
    url: String,
    token: &'a str,
    first: u64,
    wrap: Option<u64>,
    round: u64,
    native: bool,
}

/// Sends batches from `concurrency` loops for `secs`.
async fn phase(client: &reqwest::Client, load: Load<'_>, concurrency: usize, secs: u64, pid: u32) -> Phase {
    let Load { name, url, token, first, wrap, round, native } = load;
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, next, errors) =
            (client.clone(), url.to_string(), token.to_string(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let n = wrap.map_or(n, |w| n % w);
                let text = body(first + n * ROWS, round, native);
                let t = Instant::now();
                let ok = match client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(text)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut peak = 0u64;
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid).1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let q =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0.0);
    Phase {
        name,
        contacts_per_sec: all.len() as f64 * ROWS as f64 / elapsed,
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        rss_peak_mib: peak.max(rss_kib(pid).1) as f64 / 1024.0,
    }
}

async fn backend(client: &reqwest::Client, database: Option<&str>) -> Result<Vec<Phase>, String> {
    let server = start_server(client, database, MASTER).await?;
    let (node, base, token) = (&server.node, server.base.clone(), server.token.clone());
    let (conc, secs) = (env_or("BENCH_CONCURRENCY", 4usize), env_or("BENCH_SECONDS", 10u64));
    let pid = node.0.id();
    let dialect = format!("{base}/compat/conversion/api/v1/contacts/batch");
    let load = |name, url: &str, first, wrap, round, native| Load {
        name,
        url: url.to_string(),
        token: &token,
        first,
        wrap,
        round,
        native,
    };
    let new =
        phase(client, load("Conversion.ai batch, new contacts", &dialect, 0, None, 0, false), conc, secs, pid).await;
    // Updates rewrite the contacts the first phase created, round-robin.
    let created = Some(new.requests.max(1));
    let name = "Conversion.ai batch, existing contacts (6 variables changed or kept)";
    let updates = phase(client, load(name, &dialect, 0, created, 1, false), conc, secs, pid).await;
    let native_url = format!("{base}/v1/contacts/batch");
    let name = "native /v1/contacts/batch, new contacts";
    let native = phase(client, load(name, &native_url, 1_000_000_000, None, 0, true), conc, secs, pid).await;
    drop(server);
    Ok(vec![new, updates, native])
}

async fn run() -> Result<(), String> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().map_err(|e| e.to_string())?;
    let mut results = vec![("SQLite", backend(&client, None).await?)];
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let url = convene_store_postgres::scratch::fresh_database(&admin).await.map_err(|e| e.to_string())?;
        results.push(("PostgreSQL", backend(&client, Some(&url)).await?));
    }
    println!(
        "\n| backend | phase | contacts/s | requests (1,000 rows) | errors | p50 | p99 | server RSS peak |\n| --- | --- | --: | --: | --: | --: | --: | --: |"
    );
    for (name, phases) in &results {
        for p in phases {
            println!(
                "| {name} | {} | {:.0} | {} | {} | {:.0} ms | {:.0} ms | {:.0} MiB |",
                p.name, p.contacts_per_sec, p.requests, p.errors, p.p50_ms, p.p99_ms, p.rss_peak_mib
            );
        }
    }
    if let [(_, sqlite), (_, pg)] = results.as_slice() {
        for (s, p) in sqlite.iter().zip(pg) {
            println!("PostgreSQL / SQLite, {}: {:.2}", s.name, p.contacts_per_sec / s.contacts_per_sec.max(1.0));
        }
    }
    Ok(())
}

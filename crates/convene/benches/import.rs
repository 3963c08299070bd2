//! The import benchmark: `cargo bench -p convene --bench import`.
//!
//! Starts the release `convene serve` (SQLite, synchronous=FULL, a fresh data
//! directory), writes a CSV of `BENCH_IMPORT_ROWS` (default 1,000,000)
//! contacts with 10 columns (email, mobile, 6 traits, a date and a `tags+`
//! list) into a temporary directory, and times the release `convene import
//! contacts FILE --url … --token …` end to end (parse, map, 4 batch requests
//! in flight, rejects). It then imports the same file again (every row an
//! update that changes nothing). The load generator (the CLI) shares the
//! machine's two cores with the server.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use common::{env_or, rss_kib, start_server};

const MASTER: &str = "bench-master-key-0123456789";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("import bench failed: {e}");
        std::process::exit(1);
    }
}

/// Writes the CSV; returns its size in bytes.
fn write_csv(path: &std::path::Path, rows: u64) -> Result<u64, String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "email,mobile,first_name,last_name,company,title,city,score,signed_up,tags+")
        .map_err(|e| e.to_string())?;
    const TITLES: [&str; 4] = ["Engineer", "Manager", "Director", "Analyst"];
    const CITIES: [&str; 5] = ["Lyon", "Berlin", "Austin", "Osaka", "Lagos"];
    for i in 0..rows {
        writeln!(
            out,
            "user{i}@example.com,+1 555 {:07},First{i},Last{},Company {},{},{},{},2024-{:02}-{:02},{};{}",
            i % 10_000_000,
            i % 1000,
            i % 5000,
            TITLES[(i % 4) as usize],
            CITIES[(i % 5) as usize],
            i % 1000,
            i % 12 + 1,
            i % 28 + 1,
            if i % 2 == 0 { "lead" } else { "customer" },
            if i % 3 == 0 { "vip" } else { "newsletter" },
        )
        .map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    std::fs::metadata(path).map(|m| m.len()).map_err(|e| e.to_string())
}

struct Run {
    name: &'static str,
    secs: f64,
    rows_per_sec: f64,
    summary: String,
    server_rss_peak_mib: f64,
}

fn import(
    name: &'static str,
    file: &std::path::Path,
    base: &str,
    token: &str,
    rows: u64,
    pid: u32,
) -> Result<Run, String> {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_convene"))
        .args(["import", "contacts"])
        .arg(file)
        .args(["--url", base, "--token", token])
        .output()
        .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let summary = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "{name}: exit {:?}: {summary} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Run {
        name,
        secs,
        rows_per_sec: rows as f64 / secs,
        summary,
        server_rss_peak_mib: rss_kib(pid).1 as f64 / 1024.0,
    })
}

async fn run() -> Result<(), String> {
    let rows: u64 = env_or("BENCH_IMPORT_ROWS", 1_000_000);
    let client = reqwest::Client::new();
    let server = start_server(&client, None, MASTER).await?;
    let files = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = files.path().join("contacts.csv");
    let t = Instant::now();
    let size = write_csv(&file, rows)?;
    println!("wrote {rows} rows ({:.0} MiB) in {:.1} s", size as f64 / 1048576.0, t.elapsed().as_secs_f64());
    let pid = server.node.0.id();
    let (base, token) = (server.base.clone(), server.token.clone());
    let first = tokio::task::spawn_blocking({
        let (file, base, token) = (file.clone(), base.clone(), token.clone());
        move || import("new contacts", &file, &base, &token, rows, pid)
    })
    .await
    .map_err(|e| e.to_string())??;
    let again =
        tokio::task::spawn_blocking(move || import("the same file again (no change)", &file, &base, &token, rows, pid))
            .await
            .map_err(|e| e.to_string())??;
    let db = std::fs::metadata(server.dir.path().join("convene.db")).map(|m| m.len()).unwrap_or(0);
    println!("\n| run | rows | time | rows/s | server RSS peak |\n| --- | --: | --: | --: | --: |");
    for r in [&first, &again] {
        println!(
            "| {} | {rows} | {:.1} s | {:.0} | {:.0} MiB |",
            r.name, r.secs, r.rows_per_sec, r.server_rss_peak_mib
        );
    }
    println!("\n{}\n{}\nconvene.db: {:.0} MiB", first.summary, again.summary, db as f64 / 1048576.0);
    Ok(())
}

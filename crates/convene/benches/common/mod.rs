//! Helpers shared by the benches: ports, child processes, memory, readiness.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// An environment setting, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// A child process killed on drop (only processes this bench started).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (VmRSS, VmHWM) of a process, KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
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

/// Waits (at most 30 s) until `base/readyz` answers 2xx.
pub async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<(), String> {
    for _ in 0..600 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{base} did not become ready"))
}

/// A release `convene serve` this bench started, with a workspace and a
/// full key made with `master`.
/// The per-key rate limit the benches give the server (`CONVENE_RATE_LIMIT_FULL`)
/// unless one is set: they measure the server, not its limiter (a full key's
/// default of 10,000/s is passed by the read phases and the soak's probe).
pub const UNLIMITED_RATE: &str = "1000000/2000000";

/// Reads one metric (a plain `name value` line) from /metrics; NaN when absent.
pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
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

pub struct Server {
    /// The process (killed on drop).
    pub node: Proc,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The full key's token.
    pub token: String,
    /// The data directory (removed on drop).
    pub dir: tempfile::TempDir,
}

/// Starts `convene serve` (SQLite in a new data directory, or `database`)
/// on a free port, then creates a workspace and a full key.
pub async fn start_server(client: &reqwest::Client, database: Option<&str>, master: &str) -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convene"));
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--master-key", master])
        .env("CONVENE_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let node = Proc(cmd.spawn().map_err(|e| e.to_string())?);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(client, &base).await?;
    let post = |url: String, body: Value| async move {
        client
            .post(url)
            .bearer_auth(master)
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json::<Value>()
            .await
            .map_err(|e| e.to_string())
    };
    let ws = post(format!("{base}/v1/workspaces"), json!({"name": "bench"})).await?;
    let ws = ws["id"].as_str().ok_or("no workspace id")?;
    let key = post(format!("{base}/v1/workspaces/{ws}/keys"), json!({"name": "bench", "kind": "full"})).await?;
    let token = key["token"].as_str().ok_or("no token")?.to_string();
    Ok(Server { node, base, token, dir })
}

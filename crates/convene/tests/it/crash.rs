//! The crash test: the real `convene` binary is SIGKILLed in the middle of
//! concurrent ingest, several times, and restarted on the same data
//! directory. Every acknowledged (202) write must be applied exactly once;
//! writes whose answer was lost may or may not be, but never twice.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

pub(crate) const KEY: &str = "crash-test-master-key-0123456789";
const ROUNDS: usize = 4;
const WRITERS: usize = 16;

/// A running `convene serve`; killed (SIGKILL) and reaped when dropped, so a
/// failing test never leaves it behind.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The whole log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

/// Starts the binary on `data` and waits (15 s at most) for `/readyz`.
pub(crate) async fn start(data: &Path, database: Option<&str>, logs: &Path, round: usize, client: &Client) -> Server {
    start_logging(data, database, logs, round, client, "warn").await
}

/// [`start`] with a log filter (`CONVENE_LOG`).
pub(crate) async fn start_logging(
    data: &Path,
    database: Option<&str>,
    logs: &Path,
    round: usize,
    client: &Client,
    level: &str,
) -> Server {
    let port = free_port();
    let log = logs.join(format!("server-{round}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_convene"));
    command.arg("serve");
    if let Some(url) = database {
        command.arg("--database").arg(url);
    }
    let child = command
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--master-key")
        .arg(KEY)
        .env_remove("CONVENE_CONFIG")
        .env_remove("CONVENE_DATABASE_URL")
        .env("CONVENE_LOG", level)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("log file"))
        .spawn()
        .expect("the convene binary starts");
    let mut server = Server { child, base: format!("http://127.0.0.1:{port}"), log };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client.get(format!("{}/readyz", server.base)).send().await
            && r.status() == 200
        {
            return server;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("convene exited early ({status}):\n{}", server.log_tail());
        }
        assert!(Instant::now() < deadline, "convene not ready within 15 s:\n{}", server.log_tail());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) async fn master_post(client: &Client, url: String, body: Value) -> Value {
    let r = client.post(url).bearer_auth(KEY).json(&body).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// What the writers saw.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) acked: Vec<String>,
    pub(crate) unanswered: usize,
    pub(crate) refused: usize,
}

/// One writer: identifies new contacts until stopped or the server is gone.
pub(crate) async fn writer(
    client: Client,
    base: String,
    token: String,
    prefix: String,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let id = format!("{prefix}-{n}");
        n += 1;
        let sent = client
            .post(format!("{base}/v1/identify"))
            .bearer_auth(&token)
            .json(&json!({"external_id": id, "traits": {"hits": {"$inc": 1}}}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 202 => out.acked.push(id),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                assert!(status == 503, "only a full backlog may refuse: {status} {text}");
                out.refused += 1;
            }
            Err(_) => {
                // Killed mid-request: the write may or may not have landed.
                out.unanswered += 1;
                break;
            }
        }
    }
    out
}

/// Every item of a paged native list (`path` without a query string).
pub(crate) async fn list_all(client: &Client, base: &str, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}{path}?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", crate::ingest_support::urlencode(c)));
        }
        let r = client.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let page: Value = r.json().await.unwrap();
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Every contact (paging through the list).
pub(crate) async fn contacts(client: &Client, base: &str, token: &str) -> Vec<Value> {
    list_all(client, base, token, "/v1/contacts").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_exactly_once() {
    // Dropping the scenario on timeout kills whichever server is running.
    tokio::time::timeout(Duration::from_secs(45), scenario()).await.expect("the crash test finishes within 45 s");
}

async fn scenario() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let client = Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    // On PostgreSQL the data directory keeps only the logs; the data is in a scratch database.
    let database = crate::support::test_database_url().await;
    let database = database.as_deref();

    let mut token = String::new();
    let mut acked: Vec<String> = Vec::new();
    let (mut unanswered, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let mut server = start(&data, database, tmp.path(), round, &client).await;
        if round == 0 {
            let ws = master_post(&client, format!("{}/v1/workspaces", server.base), json!({"name": "crash"})).await;
            let ws = ws["id"].as_str().unwrap();
            let key = master_post(
                &client,
                format!("{}/v1/workspaces/{ws}/keys", server.base),
                json!({"name": "k", "kind": "full"}),
            )
            .await;
            token = key["token"].as_str().unwrap().to_string();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let load_client = Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    load_client.clone(),
                    server.base.clone(),
                    token.clone(),
                    format!("r{round}-w{w}"),
                    stop.clone(),
                ))
            })
            .collect();
        let run_for = Duration::from_millis(rand::random_range(150..700));
        tokio::time::sleep(run_for).await;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        let before = acked.len();
        for w in writers {
            let out = w.await.expect("a writer panicked");
            acked.extend(out.acked);
            unanswered += out.unanswered;
            refused += out.refused;
        }
        eprintln!("round {round}: killed after {run_for:?}; {} acknowledged", acked.len() - before);
    }
    assert!(!acked.is_empty(), "no write was acknowledged at all");

    // Restart once more and let the backlog drain.
    let server = start(&data, database, tmp.path(), ROUNDS, &client).await;
    let wanted: HashSet<&str> = acked.iter().map(String::as_str).collect();
    assert_eq!(wanted.len(), acked.len(), "ids are unique");
    let all =
        wait_until_present(&client, &server, &token, &wanted, "acknowledged writes were lost after the restarts").await;

    let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for c in &all {
        let id = c["external_id"].as_str().unwrap_or_else(|| panic!("every contact has its external id: {c}"));
        by_id.entry(id).or_default().push(c);
    }
    for (id, cs) in &by_id {
        assert_eq!(cs.len(), 1, "{id} exists {} times", cs.len());
        let hits = cs[0]["traits"]["hits"].as_i64().unwrap_or_else(|| panic!("{id} has no hits: {}", cs[0]));
        assert!(hits <= 1, "{id} was applied {hits} times: {}", cs[0]);
    }
    for id in &acked {
        let c = by_id[id.as_str()][0];
        assert_eq!(c["traits"]["hits"], 1, "acknowledged {id} applied once: {c}");
    }
    eprintln!(
        "{} acknowledged, {} unanswered at a kill, {} refused (503), {} contacts in the end; {:?}",
        acked.len(),
        unanswered,
        refused,
        all.len(),
        started.elapsed()
    );
}

/// Pages every contact through `server` until each id in `wanted` is present
/// (20 s at most; then fails with `lost`, the count and the server's log);
/// returns the contacts.
pub(crate) async fn wait_until_present(
    client: &Client,
    server: &Server,
    token: &str,
    wanted: &HashSet<&str>,
    lost: &str,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = contacts(client, &server.base, token).await;
        let present: HashSet<&str> = all.iter().filter_map(|c| c["external_id"].as_str()).collect();
        let missing = wanted.iter().filter(|id| !present.contains(**id)).count();
        if missing == 0 {
            return all;
        }
        assert!(Instant::now() < deadline, "{missing} of {} {lost}:\n{}", wanted.len(), server.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

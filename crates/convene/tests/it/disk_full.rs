//! A full disk: the data directory sits on a small size-limited file system
//! (tmpfs); the server is written to until the disk fills. Writes then fail
//! with a clear 503 in the JSON envelope, not a 500 or a hang; nothing
//! acknowledged is lost; when space returns, writes succeed again without a
//! restart, and the database files pass `PRAGMA integrity_check`.
//!
//! Mounting needs root (or password-less sudo), as `.ci/run` has; the test
//! fails with that explanation otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

use crate::crash::{master_post, start};

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

fn privileged(args: &[&str]) -> std::process::Output {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let mut command = if root {
        Command::new(args[0])
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").arg(args[0]);
        c
    };
    command.args(&args[1..]).output().expect("run mount")
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = privileged(&["mount", "-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "the disk-full test mounts a small tmpfs and needs root or password-less sudo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir: dir.to_path_buf() }
    }

    fn resize(&self, size: &str) {
        let out = privileged(&["mount", "-o", &format!("remount,size={size}"), self.dir.to_str().unwrap()]);
        assert!(out.status.success(), "remount: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = privileged(&["umount", "-l", self.dir.to_str().unwrap()]);
    }
}

/// One write of about 8 KB: a contact with a large trait.
async fn write(client: &Client, base: &str, token: &str, n: usize) -> (u16, Value) {
    let r = client
        .post(format!("{base}/v1/contacts"))
        .bearer_auth(token)
        .json(&json!({"external_id": format!("big-{n}"), "traits": {"blob": "x".repeat(8000), "n": n}}))
        .send()
        .await
        .expect("the server answers while the disk is full");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_recovers() {
    tokio::time::timeout(Duration::from_secs(120), scenario()).await.expect("the disk-full test finishes within 120 s");
}

async fn scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(&tmp.path().join("disk"), "6m");
    let data = mount.dir.join("data");
    let client = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    // The data directory's file system is the point: always SQLite.
    let server = start(&data, None, tmp.path(), 0, &client).await;
    let ws = master_post(&client, format!("{}/v1/workspaces", server.base), json!({"name": "full"})).await;
    let ws = ws["id"].as_str().unwrap();
    let key =
        master_post(&client, format!("{}/v1/workspaces/{ws}/keys", server.base), json!({"name": "k", "kind": "full"}))
            .await;
    let token = key["token"].as_str().unwrap();

    // Fill the disk.
    let mut acked = Vec::new();
    let mut refusal = None;
    for n in 0..5_000 {
        let (status, body) = write(&client, &server.base, token, n).await;
        match status {
            200 | 201 => acked.push(n),
            _ => {
                refusal = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refusal.expect("a 6 MB disk fills before 5,000 writes of 8 KB");
    assert!(status == 503 || status == 507, "a full disk is 503/507, got {status}: {body}\n{}", server.log_tail());
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("disk is full"), "the error says why: {body}");
    assert!(acked.len() > 10, "some writes landed before the disk filled: {}", acked.len());
    // Still full: reads work, writes keep being refused the same way.
    let r = client.get(format!("{}/v1/contacts?limit=1", server.base)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200, "reads keep working on a full disk");
    let (status, _) = write(&client, &server.base, token, 100_000).await;
    assert!(status == 503 || status == 507, "still full: {status}");

    // Space returns: writes succeed again, without a restart.
    mount.resize("64m");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 200_000;
    loop {
        let (status, body) = write(&client, &server.base, token, n).await;
        if status == 200 || status == 201 {
            acked.push(n);
            break;
        }
        assert!(Instant::now() < deadline, "no recovery within 30 s of space returning: {status} {body}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for m in n + 1..n + 20 {
        let (status, body) = write(&client, &server.base, token, m).await;
        assert!(status == 200 || status == 201, "after recovery: {status} {body}");
        acked.push(m);
    }

    // Nothing acknowledged was lost.
    let all = crate::crash::contacts(&client, &server.base, token).await;
    let present: std::collections::HashSet<&str> = all.iter().filter_map(|c| c["external_id"].as_str()).collect();
    for n in &acked {
        assert!(present.contains(format!("big-{n}").as_str()), "acknowledged big-{n} was lost");
    }
    drop(server);
    for file in ["convene.db", "convene.inbox.db"] {
        convene_store_sqlite::backup::integrity_check(&data.join(file))
            .unwrap_or_else(|e| panic!("{file} after a full disk: {e}"));
    }
}

//! The `convene` binary itself: subcommands, start-up refusals, the
//! generated master key, healthcheck, migrate, and SIGTERM draining.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_convene");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("CONVENE_MASTER_KEY").output().expect("run convene")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server child, killed on drop if still running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    let child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_remove("CONVENE_MASTER_KEY")
        .env("CONVENE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn convene");
    Server(child)
}

fn wait_ready(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if run(&["healthcheck", "--url", &format!("http://127.0.0.1:{port}")]).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on {port} not ready");
}

fn stop(mut server: Server) -> (std::process::ExitStatus, String, String) {
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.0.wait().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    server.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    server.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, out, err)
}

#[test]
fn version_prints_the_version() {
    let out = run(&["version"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("convene {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_public_address_needs_a_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run(&["serve", "--data-dir", d, "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a master key"), "{out:?}");
    let out = run(&["serve", "--data-dir", d, "--listen", "0.0.0.0:0", "--master-key", "short"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 bytes"), "{out:?}");
}

#[test]
fn unsupported_databases_and_bad_config_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // Port 1 on loopback: nothing listens, the start fails with the reason.
    let out = run(&["serve", "--data-dir", d, "--database", "postgres://u:secretpw@127.0.0.1:1/db"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{out:?}");
    assert!(!stderr.contains("secretpw"), "the password is not printed: {stderr}");
    let out = run(&["serve", "--data-dir", d, "--database", "mysql://h/db"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown database URL scheme 'mysql'"), "{out:?}");
    let config = dir.path().join("convene.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nmaster_kye = \"x\"\n").unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("master_kye"), "{out:?}");
}

#[test]
fn migrate_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let first = run(&["migrate", "--data-dir", d]);
    assert!(first.status.success(), "{first:?}");
    let applied = format!("{} migration(s) applied", convene_store_sqlite::MIGRATION_COUNT);
    assert!(String::from_utf8_lossy(&first.stdout).contains(&applied), "{first:?}");
    let again = run(&["migrate", "--data-dir", d]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 migration(s) applied"), "{again:?}");
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    let out = run(&["healthcheck", "--url", &format!("http://127.0.0.1:{}", free_port()), "--timeout", "2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"), "{out:?}");
}

#[test]
fn a_generated_master_key_is_printed_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port, &[]);
    wait_ready(port);
    let (status, out, _) = stop(server);
    assert!(status.success());
    let key = std::fs::read_to_string(dir.path().join("master.key")).unwrap().trim().to_string();
    assert!(key.len() >= 16);
    assert!(out.contains(&key), "the first start prints the key: {out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("master.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read the key file");
    }
    // The second start uses it and does not print it.
    let port = free_port();
    let server = start(dir.path(), port, &[]);
    wait_ready(port);
    let body = raw_http::get_workspaces(port, &key);
    assert_eq!(body, 200, "the stored key is the master key");
    let (status, out, _) = stop(server);
    assert!(status.success());
    assert!(!out.contains(&key), "printed only once: {out}");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port, &["--master-key", "cli-test-master-key-0123"]);
    wait_ready(port);
    let (status, _, err) = stop(server);
    assert!(status.success(), "exit status {status:?}: {err}");
    assert!(err.contains("stopped cleanly"), "{err}");
    assert!(!err.contains("cli-test-master-key-0123"), "the master key is never logged");
}

/// Runs `convene users create …` with `stdin` as its input.
fn users_create(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["users", "create", "--data-dir"])
        .arg(dir)
        .args(args)
        .env_remove("CONVENE_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn convene users create");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write password");
    child.wait_with_output().expect("wait")
}

#[tokio::test]
async fn users_create_makes_the_first_admin_who_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = "cli-test-master-key-0123";
    let server = start(dir.path(), port, &["--master-key", master]);
    tokio::task::spawn_blocking(move || wait_ready(port)).await.unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let ws: serde_json::Value = client
        .post(format!("{base}/v1/workspaces"))
        .bearer_auth(master)
        .json(&serde_json::json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // While the server runs, by workspace name, password on stdin.
    let out = users_create(
        dir.path(),
        &["--workspace", "acme", "--email", "Ada@Example.com", "--admin"],
        "correct horse battery\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("created admin user ada@example.com") && stdout.contains(ws["id"].as_str().unwrap()),
        "{stdout}"
    );
    assert!(!stdout.contains("correct horse"), "the password is never printed");
    let short = users_create(dir.path(), &["--workspace", "acme", "--email", "b@example.com"], "short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"), "{short:?}");
    let missing = users_create(dir.path(), &["--workspace", "nope", "--email", "c@example.com"], "long enough pw\n");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no workspace with id or name 'nope'"), "{missing:?}");
    let again = users_create(dir.path(), &["--workspace", "acme", "--email", "ada@example.com"], "long enough pw\n");
    assert!(String::from_utf8_lossy(&again.stderr).contains("email"), "a taken email is named: {again:?}");

    // The new admin logs in to the console and reaches the settings.
    let page = client.get(format!("{base}/console/login")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = cookie.split_once('=').unwrap().1.to_string();
    let r = client
        .post(format!("{base}/console/login"))
        .header("cookie", cookie)
        .form(&[("_csrf", csrf.as_str()), ("email", "ada@example.com"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let r = client.get(format!("{base}/console/settings/keys")).header("cookie", session).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
}

#[tokio::test]
async fn backup_while_serving_then_restore_elsewhere() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let snapshot = tempfile::tempdir().unwrap();
    let master = "cli-test-master-key-0123";
    let port = free_port();
    let server = start(dir.path(), port, &["--master-key", master]);
    tokio::task::spawn_blocking(move || wait_ready(port)).await.unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let post = |path: String, token: String, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let r = client.post(path).bearer_auth(token).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let ws = post(format!("{base}/v1/workspaces"), master.into(), serde_json::json!({"name": "acme"})).await;
    let ws = ws["id"].as_str().unwrap().to_string();
    let key = post(
        format!("{base}/v1/workspaces/{ws}/keys"),
        master.into(),
        serde_json::json!({"name": "k", "kind": "full"}),
    )
    .await;
    let token = key["token"].as_str().unwrap().to_string();
    for i in 0..50 {
        post(format!("{base}/v1/contacts"), token.clone(), serde_json::json!({"email": format!("c{i}@example.com")}))
            .await;
    }

    // Queued writes acknowledged just before the snapshot are in it (inbox or database).
    let batch: Vec<serde_json::Value> =
        (0..300).map(|i| serde_json::json!({"type": "identify", "email": format!("q{i}@example.com")})).collect();
    post(format!("{base}/v1/batch"), token.clone(), serde_json::json!({"batch": batch})).await;

    // A second server on the same directory is refused; the backup runs beside the first.
    let second =
        run(&["serve", "--data-dir", dir.path().to_str().unwrap(), "--listen", "127.0.0.1:0", "--master-key", master]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another convene server is using the data directory"));
    let dest = snapshot.path().join("b1");
    let out = run(&["backup", dest.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up"));
    // (This server's master key came from a flag: there is no master.key file to copy.)
    for f in ["convene.db", "convene.inbox.db", "manifest.json"] {
        assert!(dest.join(f).exists(), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dest.join("convene.db")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = run(&["backup", dest.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!again.status.success(), "a backup directory is not overwritten");
    // Restoring under the running server is refused.
    let busy = run(&["restore", dest.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap(), "--force"]);
    assert!(String::from_utf8_lossy(&busy.stderr).contains("is running"), "{busy:?}");
    drop(server);

    // Restore into a fresh directory and serve it: the same data, the same master key.
    let out = run(&["restore", dest.to_str().unwrap(), "--data-dir", other.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let refused = run(&["restore", dest.to_str().unwrap(), "--data-dir", other.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"), "{refused:?}");
    let forced = run(&["restore", dest.to_str().unwrap(), "--data-dir", other.path().to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{forced:?}");
    let kept = std::fs::read_dir(other.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains(".replaced-"));
    assert!(kept, "the replaced files are kept aside");
    let port2 = free_port();
    let _restored = start(other.path(), port2, &["--master-key", master]);
    tokio::task::spawn_blocking(move || wait_ready(port2)).await.unwrap();
    let mut seen = 0;
    for _ in 0..100 {
        let list: serde_json::Value = client
            .get(format!("http://127.0.0.1:{port2}/v1/contacts?limit=1000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen = list["data"].as_array().unwrap().len();
        if seen == 350 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 350, "50 created + 300 queued before the backup");
    let pg =
        run(&["backup", snapshot.path().join("b2").to_str().unwrap(), "--database", "postgres://x@127.0.0.1:1/db"]);
    assert!(String::from_utf8_lossy(&pg.stderr).contains("pg_dump"), "{pg:?}");
}

/// A tiny blocking GET of /v1/workspaces with the master key (status only).
mod raw_http {
    pub fn get_workspaces(port: u16, key: &str) -> u16 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET /v1/workspaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}

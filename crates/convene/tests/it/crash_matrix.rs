//! The crash matrix: the real binary is SIGKILLed, several times, while
//! every synchronous write path is under concurrent load — native contact
//! creation and update, batch upserts, conversation messages, rep creation
//! and the Converz reps upsert — and restarted on the same data. Every
//! acknowledged write is there exactly once afterwards, nothing is applied
//! twice, an update never goes back behind its last acknowledged value, and
//! (on SQLite) both database files pass `PRAGMA integrity_check`.
//! (The queued ingest path has its own crash test: crash.rs.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::{Value, json};

use crate::crash::{Server, contacts, list_all, master_post, start};

const ROUNDS: usize = 4;
/// Writers per write path.
const WRITERS: usize = 3;

/// The write paths under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Path {
    /// `POST /v1/contacts`, one new contact per request.
    CreateContact,
    /// `PATCH /v1/contacts/{id}`, a counter the writer raises one by one.
    UpdateContact,
    /// `POST /v1/contacts/batch`, five new contacts per request.
    BatchUpsert,
    /// `POST /v1/conversations/{id}/messages`.
    Message,
    /// `POST /v1/reps`.
    CreateRep,
    /// `POST /compat/converz/api/v1/reps` (an upsert of rows).
    ConverzReps,
}

const PATHS: [Path; 6] =
    [Path::CreateContact, Path::UpdateContact, Path::BatchUpsert, Path::Message, Path::CreateRep, Path::ConverzReps];

/// What one writer saw: the ids of its acknowledged writes (for an update,
/// the values), how many went unanswered at a kill.
#[derive(Default)]
struct Seen {
    acked: Vec<String>,
    unanswered: usize,
}

/// The fixtures a writer writes into: its own contact (updates) and
/// conversation (messages).
#[derive(Clone)]
struct Fixtures {
    contact: i64,
    conversation: String,
}

/// The request for write `n` of a writer, and the ids it creates.
fn request(path: Path, prefix: &str, n: usize, fx: &Fixtures) -> (Method, String, Value, Vec<String>) {
    let id = format!("{prefix}-{n}");
    match path {
        Path::CreateContact => {
            (Method::POST, "/v1/contacts".into(), json!({"external_id": id, "traits": {"hits": {"$inc": 1}}}), vec![id])
        }
        Path::UpdateContact => {
            (Method::PATCH, format!("/v1/contacts/{}", fx.contact), json!({"traits": {"seq": n}}), vec![n.to_string()])
        }
        Path::BatchUpsert => {
            let ids: Vec<String> = (0..5).map(|i| format!("{id}.{i}")).collect();
            let rows: Vec<Value> =
                ids.iter().map(|i| json!({"external_id": i, "traits": {"hits": {"$inc": 1}}})).collect();
            (Method::POST, "/v1/contacts/batch".into(), json!({"contacts": rows}), ids)
        }
        Path::Message => (
            Method::POST,
            format!("/v1/conversations/{}/messages", fx.conversation),
            json!({"content": id, "type": "note"}),
            vec![id],
        ),
        Path::CreateRep => (Method::POST, "/v1/reps".into(), json!({"rep_id": id, "name": "R"}), vec![id]),
        Path::ConverzReps => {
            (Method::POST, "/compat/converz/api/v1/reps".into(), json!([{"rep_id": id, "name": "Z"}]), vec![id])
        }
    }
}

/// One writer: sends its path's writes one after another until stopped or
/// the server is gone.
async fn writer(
    client: Client,
    base: String,
    token: String,
    path: Path,
    prefix: String,
    fx: Fixtures,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let (method, route, body, ids) = request(path, &prefix, n, &fx);
        n += 1;
        match client.request(method, format!("{base}{route}")).bearer_auth(&token).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if path == Path::BatchUpsert {
                    let result: Value = serde_json::from_str(&text).unwrap_or_default();
                    assert_eq!(result["failed"], 0, "{path:?}: {status} {text}");
                }
                seen.acked.extend(ids);
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                panic!("{path:?}: a write under load was refused: {status} {text}");
            }
            Err(_) => {
                // Killed mid-request: the write may or may not have landed.
                seen.unanswered += 1;
                break;
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_path_survives_sigkill_exactly_once() {
    // Dropping the scenario on timeout kills whichever server is running.
    tokio::time::timeout(Duration::from_secs(90), scenario()).await.expect("the crash matrix finishes within 90 s");
}

async fn scenario() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let client = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let database = crate::support::test_database_url().await;
    let database = database.as_deref();

    let mut token = String::new();
    // Per writer (path, index): its fixtures, acknowledged ids, and unanswered count.
    let mut fixtures: HashMap<(Path, usize), Fixtures> = HashMap::new();
    let mut acked: HashMap<(Path, usize), Vec<String>> = HashMap::new();
    let mut unanswered = 0;
    for round in 0..ROUNDS {
        let mut server: Server = start(&data, database, tmp.path(), round, &client).await;
        if round == 0 {
            let ws = master_post(&client, format!("{}/v1/workspaces", server.base), json!({"name": "matrix"})).await;
            let ws = ws["id"].as_str().unwrap();
            let key = master_post(
                &client,
                format!("{}/v1/workspaces/{ws}/keys", server.base),
                json!({"name": "k", "kind": "full"}),
            )
            .await;
            token = key["token"].as_str().unwrap().to_string();
            for path in PATHS {
                for w in 0..WRITERS {
                    let email = format!("{path:?}-{w}@example.com").to_lowercase();
                    let r = client
                        .post(format!("{}/v1/contacts", server.base))
                        .bearer_auth(&token)
                        .json(&json!({"email": email}))
                        .send()
                        .await
                        .unwrap();
                    let contact: Value = r.json().await.unwrap();
                    let contact = contact["id"].as_i64().unwrap();
                    let r = client
                        .post(format!("{}/v1/conversations", server.base))
                        .bearer_auth(&token)
                        .json(&json!({"contact_id": contact}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    let conversation: Value = r.json().await.unwrap();
                    let conversation = conversation["id"].as_str().unwrap().to_string();
                    fixtures.insert((path, w), Fixtures { contact, conversation });
                }
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let load = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let mut tasks = Vec::new();
        for path in PATHS {
            for w in 0..WRITERS {
                let prefix = format!("{path:?}-r{round}-w{w}");
                let fx = fixtures[&(path, w)].clone();
                let task = tokio::spawn(writer(
                    load.clone(),
                    server.base.clone(),
                    token.clone(),
                    path,
                    prefix,
                    fx,
                    stop.clone(),
                ));
                tasks.push(((path, w), task));
            }
        }
        let run_for = Duration::from_millis(rand::random_range(300..1200));
        tokio::time::sleep(run_for).await;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        let mut this_round = 0;
        for (writer_id, task) in tasks {
            let seen = task.await.expect("a writer panicked");
            this_round += seen.acked.len();
            acked.entry(writer_id).or_default().extend(seen.acked);
            unanswered += seen.unanswered;
        }
        eprintln!("round {round}: killed after {run_for:?}; {this_round} writes acknowledged");
    }

    let server = start(&data, database, tmp.path(), ROUNDS, &client).await;
    let base = server.base.clone();
    let all_contacts = contacts(&client, &base, &token).await;
    let by_external: HashMap<&str, Vec<&Value>> = all_contacts
        .iter()
        .filter_map(|c| c["external_id"].as_str().map(|id| (id, c)))
        .fold(HashMap::new(), |mut m, (id, c)| {
            m.entry(id).or_default().push(c);
            m
        });
    for (id, cs) in &by_external {
        assert_eq!(cs.len(), 1, "{id} exists {} times", cs.len());
        assert!(cs[0]["traits"]["hits"].as_i64().unwrap_or(0) <= 1, "{id} applied twice: {}", cs[0]);
    }
    let reps: HashMap<String, usize> =
        list_all(&client, &base, &token, "/v1/reps").await.iter().fold(HashMap::new(), |mut m, r| {
            *m.entry(r["rep_id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
            m
        });
    let mut total = 0;
    for ((path, w), ids) in &acked {
        total += ids.len();
        let what = format!("{path:?} writer {w}");
        match path {
            Path::CreateContact | Path::BatchUpsert => {
                for id in ids {
                    let c = by_external.get(id.as_str()).unwrap_or_else(|| panic!("{what}: acknowledged {id} lost"));
                    assert_eq!(c[0]["traits"]["hits"], 1, "{what}: {id} applied once: {}", c[0]);
                }
            }
            Path::UpdateContact => {
                let contact = fixtures[&(*path, *w)].contact;
                let r = client.get(format!("{base}/v1/contacts/{contact}")).bearer_auth(&token).send().await.unwrap();
                let c: Value = r.json().await.unwrap();
                if let Some(last) = ids.last() {
                    let last: i64 = last.parse().unwrap();
                    let seq = c["traits"]["seq"].as_i64().unwrap_or(-1);
                    assert!(seq >= last, "{what}: the last acknowledged update was {last}, the contact has {seq}: {c}");
                }
            }
            Path::Message => {
                let conversation = &fixtures[&(*path, *w)].conversation;
                let messages =
                    list_all(&client, &base, &token, &format!("/v1/conversations/{conversation}/messages")).await;
                let mut count: HashMap<&str, usize> = HashMap::new();
                for m in &messages {
                    *count.entry(m["content"].as_str().unwrap_or_default()).or_default() += 1;
                }
                for (content, n) in &count {
                    assert!(*n <= 1, "{what}: message {content} stored {n} times");
                }
                for id in ids {
                    assert_eq!(count.get(id.as_str()), Some(&1), "{what}: acknowledged message {id} lost");
                }
            }
            Path::CreateRep | Path::ConverzReps => {
                for id in ids {
                    assert_eq!(reps.get(id), Some(&1), "{what}: acknowledged rep {id} lost or doubled");
                }
            }
        }
    }
    let duplicated: HashSet<&String> = reps.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    assert!(duplicated.is_empty(), "reps stored twice: {duplicated:?}");
    assert!(total > 0, "no write was acknowledged at all");
    drop(server);
    if database.is_none() {
        for file in ["convene.db", "convene.inbox.db"] {
            let path = data.join(file);
            convene_store_sqlite::backup::integrity_check(&path)
                .unwrap_or_else(|e| panic!("{file} fails PRAGMA integrity_check after the kills: {e}"));
        }
    }
    eprintln!(
        "{total} writes acknowledged on {} paths, {unanswered} unanswered at a kill; {:?}",
        PATHS.len(),
        started.elapsed()
    );
}

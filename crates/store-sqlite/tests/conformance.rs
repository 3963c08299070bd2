//! The storage conformance suite on SQLite, and the connection settings of
//! every pooled connection.

use std::sync::Arc;

use convene_core::Store;
use convene_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

async fn fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("convene.db"), SqliteOptions::default()).expect("open");
    // The directory must outlive the store: leak it for the test's life.
    std::mem::forget(dir);
    Arc::new(store)
}

convene_core::store_conformance_tests!(fresh());

#[tokio::test]
async fn every_pooled_connection_has_the_durable_settings() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&dir.path().join("c.db"), SqliteOptions { readers: 3, ..Default::default() }).unwrap();
    let settings = store.connection_settings().await.unwrap();
    assert_eq!(settings.len(), 4, "writer and three readers");
    for s in settings {
        assert_eq!(s.journal_mode, "wal");
        assert_eq!(s.synchronous, 2, "FULL");
        assert_eq!(s.busy_timeout, 5000);
        assert_eq!(s.foreign_keys, 1);
    }
}

#[tokio::test]
async fn normal_synchronous_is_an_operator_choice() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { synchronous: Synchronous::Normal, ..Default::default() };
    let store = SqliteStore::open(&dir.path().join("c.db"), options).unwrap();
    assert!(store.connection_settings().await.unwrap().iter().all(|s| s.synchronous == 1));
}

#[tokio::test]
async fn migrations_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    assert!(SqliteStore::migrate(&path, &SqliteOptions::default()).unwrap() >= 1);
    assert_eq!(SqliteStore::migrate(&path, &SqliteOptions::default()).unwrap(), 0);
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_all_land() {
    let store = fresh().await;
    let ws = store.create_workspace("w".into()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        let ws = ws.id.clone();
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"email": format!("u{i}@x.io"), "traits": {"n": i}});
            let changes = convene_core::contact::ContactChanges::from_json(body.as_object().unwrap().clone()).unwrap();
            store.create_contact(&ws, changes).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = store
        .list_contacts(&ws.id, Default::default(), convene_core::page::PageRequest { after: None, limit: 1000 })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 200);
}

#[tokio::test]
async fn wal_checkpoints_run_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let ws = store.create_workspace("w".into()).await.unwrap();
    let big = "x".repeat(20_000);
    // Five rounds of ~4 MB, with pauses longer than the checkpoint period.
    for round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..200 {
            let body = serde_json::json!({"external_id": format!("{round}-{i}"), "traits": {"blob": big}});
            let changes = convene_core::contact::ContactChanges::from_json(body.as_object().unwrap().clone()).unwrap();
            let (store, ws) = (store.clone(), ws.id.clone());
            tasks.push(tokio::spawn(async move { store.create_contact(&ws, changes).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    // Without background checkpoints (and the fallback at ~40 MiB) the WAL
    // would hold all ~20 MB; with them it is reused from the start.
    let wal = std::fs::metadata(dir.path().join("c.db-wal")).unwrap().len();
    assert!(wal < 12 * 1024 * 1024, "WAL is {wal} bytes");
}

/// A large report over the covering index is read in two halves by two
/// readers and merged: the numbers are those of one pass over the rows.
#[tokio::test]
async fn a_split_report_counts_every_row_once() {
    use std::collections::BTreeMap;

    use convene_core::call::CallWrite;
    use convene_core::report::{Metric, ReportQuery, Source};
    let store = fresh().await;
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let epoch = 1_767_225_600i64; // 2026-01-01
    let mut expected: BTreeMap<(String, i64), (u64, f64)> = BTreeMap::new();
    let rows: Vec<CallWrite> = (0..30_000i64)
        .map(|i| {
            let start = epoch + (i * 7_919) % (20 * 86_400);
            let (rep, duration) = (format!("rep{}", i % 7), (30 + (i * 37) % 900) as f64);
            let e = expected.entry((rep.clone(), (start - epoch) / 86_400)).or_default();
            e.0 += 1;
            e.1 += duration;
            let row = serde_json::json!({"call_id": format!("c{i}"), "rep_id": rep, "start_time": start, "duration": duration});
            CallWrite::from_row(row.as_object().unwrap().clone()).unwrap()
        })
        .collect();
    store.upsert_calls(&ws, rows).await.unwrap();
    let fields = std::collections::HashMap::new();
    let mut q = ReportQuery::new(Source::Conversations);
    q.group_by("rep_id", &fields).unwrap();
    q.group_by("day", &fields).unwrap();
    for m in ["count", "sum:duration"] {
        q.metrics.push(Metric::parse(m, q.source, &fields).unwrap());
    }
    q.validate().unwrap();
    let result = store.report(&ws, &q).await.unwrap();
    assert_eq!(result.rows, 30_000);
    let got: BTreeMap<(String, i64), (u64, f64)> = result
        .groups
        .iter()
        .map(|g| {
            let day = (g.bucket.unwrap().timestamp() - epoch) / 86_400;
            ((g.dims[0].clone().unwrap(), day), (g.values[0].unwrap() as u64, g.values[1].unwrap()))
        })
        .collect();
    assert_eq!(got, expected);
}

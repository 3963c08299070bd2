//! Reps, calls and reports on PostgreSQL (each test on a fresh database of
//! the server named by CONVENE_TEST_POSTGRES_URL): the write-behind bulk
//! paths, streaming, and the report query.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use convene_core::call::{CallFilter, CallWrite};
use convene_core::contact::ContactChanges;
use convene_core::conversation::{MessageFilter, MessageType, TimelineItem};
use convene_core::event::{EventKind, NewEvent};
use convene_core::field::FieldType;
use convene_core::identity::IdentityKind;
use convene_core::page::PageRequest;
use convene_core::rep::{RepFilter, RepWrite, WriteMode};
use convene_core::report::{Metric, ReportQuery, Source};
use convene_core::{Error, Store};
use convene_store_postgres::scratch::{fresh_database, test_admin_url};
use convene_store_postgres::{PgOptions, PgStore};
use futures::StreamExt;
use serde_json::{Map, Value, json};

async fn fresh() -> (PgStore, String) {
    let url = fresh_database(&test_admin_url()).await.expect("a scratch database");
    let store = PgStore::connect(&url, PgOptions::default()).await.expect("connect");
    let ws = store.create_workspace("w".into()).await.expect("workspace").id;
    (store, ws)
}

/// A report group's dimension values and metric values.
type Group = (Vec<Option<String>>, Vec<Option<f64>>);

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn rep(v: Value) -> RepWrite {
    RepWrite::from_row(obj(v), None).unwrap()
}

fn call(v: Value) -> CallWrite {
    CallWrite::from_row(obj(v)).unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, h, m, 0).unwrap()
}

#[tokio::test]
async fn reps_are_upserted_listed_streamed_and_deleted() {
    let (store, ws) = fresh().await;
    let counts = store
        .upsert_reps(
            &ws,
            vec![
                rep(json!({"rep_id": "a", "name": "Ann", "department": "sales", "level": 3})),
                rep(json!({"rep_id": "b", "department": "support"})),
                rep(json!({"rep_id": "c", "department": "sales", "active": 0})),
            ],
        )
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated), (3, 0));
    let counts = store
        .upsert_reps(
            &ws,
            vec![rep(json!({"rep_id": "a", "name": null, "level": 4})), rep(json!({"rep_id": "d", "email": "D@x.io"}))],
        )
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated), (1, 1));
    let a = store.get_rep(&ws, "a").await.unwrap();
    assert_eq!((a.name, a.department.as_deref(), a.attributes["level"].clone()), (None, Some("sales"), json!(4)));
    assert_eq!(store.get_rep(&ws, "d").await.unwrap().email.as_deref(), Some("d@x.io"));

    // All or nothing: a bad row (a number into the number field) writes nothing and names the row.
    let err = store
        .upsert_reps(&ws, vec![rep(json!({"rep_id": "e"})), rep(json!({"rep_id": "a", "level": "high"}))])
        .await
        .unwrap_err();
    assert_eq!(err.row(), Some(1), "{err:?}");
    assert!(matches!(store.get_rep(&ws, "e").await, Err(Error::NotFound { entity: "rep" })));

    // Lists: creation order, cursor paging, filters; count; stream.
    let page = store.list_reps(&ws, RepFilter::default(), PageRequest::parse(None, Some(3)).unwrap()).await.unwrap();
    let ids: Vec<_> = page.items.iter().map(|r| r.rep_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let cursor = page.next_cursor.unwrap();
    let page =
        store.list_reps(&ws, RepFilter::default(), PageRequest::parse(Some(&cursor), Some(3)).unwrap()).await.unwrap();
    assert_eq!(page.items.iter().map(|r| r.rep_id.as_str()).collect::<Vec<_>>(), ["d"]);
    assert!(page.next_cursor.is_none());
    let sales = RepFilter { department: Some("sales".into()), ..Default::default() };
    assert_eq!(store.count_reps(&ws, sales.clone()).await.unwrap(), 2);
    let active_sales = RepFilter { active: Some(true), ..sales.clone() };
    assert_eq!(store.count_reps(&ws, active_sales).await.unwrap(), 1);
    assert_eq!(store.count_reps(&ws, RepFilter::default()).await.unwrap(), 4);
    let streamed: Vec<String> =
        store.stream_reps(&ws, RepFilter::default(), 1, 2).map(|r| r.unwrap().rep_id).collect().await;
    assert_eq!(streamed, ["b", "c"]);

    // Single writes.
    let created = store.write_rep(&ws, rep(json!({"rep_id": "z", "name": "Zed"})), WriteMode::Create).await.unwrap();
    assert_eq!(created.name.as_deref(), Some("Zed"));
    let again = store.write_rep(&ws, rep(json!({"rep_id": "z"})), WriteMode::Create).await.unwrap_err();
    assert!(matches!(again, Error::Conflict { entity: "rep", .. }), "{again:?}");
    let missing = store.write_rep(&ws, rep(json!({"rep_id": "y"})), WriteMode::Update).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { entity: "rep" }), "{missing:?}");
    let updated = store.write_rep(&ws, rep(json!({"rep_id": "z", "active": false})), WriteMode::Update).await.unwrap();
    assert_eq!(store.get_rep(&ws, "z").await.unwrap(), updated);

    store.delete_rep(&ws, "z").await.unwrap();
    assert!(matches!(store.delete_rep(&ws, "z").await, Err(Error::NotFound { entity: "rep" })));
    let other = store.create_workspace("other".into()).await.unwrap().id;
    assert!(matches!(store.get_rep(&other, "a").await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn a_hundred_thousand_reps_are_written_set_based() {
    let (store, ws) = fresh().await;
    let rows: Vec<RepWrite> = (0..100_000)
        .map(|i| rep(json!({"rep_id": format!("r{i}"), "department": format!("d{}", i % 7), "score": i})))
        .collect();
    let started = Instant::now();
    let counts = store.upsert_reps(&ws, rows).await.unwrap();
    eprintln!("100k reps created in {:?}", started.elapsed());
    assert_eq!(counts.created, 100_000);
    let changed: Vec<RepWrite> = (0..100_000)
        .map(|i| rep(json!({"rep_id": format!("r{i}"), "department": format!("d{}", i % 7), "score": i + 1})))
        .collect();
    let started = Instant::now();
    let counts = store.upsert_reps(&ws, changed.clone()).await.unwrap();
    eprintln!("100k reps updated in {:?}", started.elapsed());
    assert_eq!(counts.updated, 100_000);
    // The same rows again change nothing: nothing is written.
    let started = Instant::now();
    let counts = store.upsert_reps(&ws, changed).await.unwrap();
    eprintln!("100k unchanged reps in {:?}", started.elapsed());
    assert_eq!((counts.updated, counts.unchanged), (0, 100_000));
    assert_eq!(store.count_reps(&ws, RepFilter::default()).await.unwrap(), 100_000);
    // Seq follows the rows' order.
    let first: Vec<String> =
        store.stream_reps(&ws, RepFilter::default(), 0, 3).map(|r| r.unwrap().rep_id).collect().await;
    assert_eq!(first, ["r0", "r1", "r2"]);
    let all = store.stream_reps(&ws, RepFilter::default(), 0, u64::MAX).fold(0usize, |n, r| async move {
        r.unwrap();
        n + 1
    });
    assert_eq!(all.await, 100_000);
}

#[tokio::test]
async fn a_stream_dropped_early_leaves_the_pool_usable() {
    let (store, ws) = fresh().await;
    let rows: Vec<RepWrite> = (0..5000).map(|i| rep(json!({"rep_id": format!("r{i}")}))).collect();
    store.upsert_reps(&ws, rows).await.unwrap();
    for _ in 0..40 {
        let mut s = store.stream_reps(&ws, RepFilter::default(), 0, u64::MAX);
        assert!(s.next().await.unwrap().is_ok());
    }
    assert_eq!(store.count_reps(&ws, RepFilter::default()).await.unwrap(), 5000);
}

#[tokio::test]
async fn calls_are_conversations_with_contacts_reps_and_activity() {
    let (store, ws) = fresh().await;
    let counts = store
        .upsert_calls(&ws, vec![
            call(json!({"call_id": "c1", "rep_id": "ann", "start_time": "2026-01-05T10:00:00Z",
                "end_time": "2026-01-05T10:05:00Z", "email": "Bob@x.io", "vendor": "aircall",
                "direction": "inbound", "sentiment": 0.5})),
            call(json!({"call_id": "c2", "start_time": "2026-01-05T09:00:00Z", "duration": 30, "phone": "+33 6 12"})),
            call(json!({"call_id": "c3", "rep_id": "ann", "start_time": "2026-01-05T11:00:00Z", "email": "bob@x.io"})),
        ])
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated), (3, 0));
    // The unknown rep was created; the contact found or created by email.
    assert!(store.get_rep(&ws, "ann").await.unwrap().active);
    let c1 = store.get_call(&ws, "c1").await.unwrap();
    let c3 = store.get_call(&ws, "c3").await.unwrap();
    assert_eq!(c1.details.duration, Some(300.0));
    assert_eq!(c1.details.attributes["sentiment"], json!(0.5));
    assert!(c1.conversation.contact_id.is_some());
    assert_eq!(c1.conversation.contact_id, c3.conversation.contact_id);
    assert_eq!(c1.conversation.channel, "call");
    assert_eq!(c1.conversation.messages_count, 1);
    let conv = store.get_conversation(&ws, &c1.conversation.id).await.unwrap();
    assert_eq!(conv, c1.conversation);
    let messages =
        store.list_messages(&ws, &conv.id, MessageFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].kind, messages[0].created_at), (MessageType::Activity, at(10, 0)));
    let contact = c1.conversation.contact_id.unwrap();
    let timeline = store.timeline(&ws, contact, PageRequest::default()).await.unwrap().items;
    assert_eq!(timeline.iter().filter(|i| matches!(i, TimelineItem::Message(_))).count(), 2);

    // An update changes the call, keeps its conversation and adds no message.
    let counts = store
        .upsert_calls(
            &ws,
            vec![
                call(json!({"call_id": "c1", "duration": 60, "status": "open", "sentiment": null})),
                call(json!({"call_id": "c4", "start_time": "2026-01-05T12:00:00Z"})),
            ],
        )
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated), (1, 1));
    let c1b = store.get_call(&ws, "c1").await.unwrap();
    assert_eq!(c1b.conversation.id, c1.conversation.id);
    assert_eq!(c1b.details.duration, Some(60.0));
    assert!(c1b.details.attributes.is_empty());
    assert_eq!(c1b.conversation.messages_count, 1);
    assert!(store.get_call(&ws, "c4").await.unwrap().conversation.contact_id.is_none());

    // All or nothing.
    let err = store
        .upsert_calls(&ws, vec![call(json!({"call_id": "c5", "start_time": 1})), call(json!({"call_id": "c6"}))])
        .await
        .unwrap_err();
    assert_eq!(err.row(), Some(1), "{err:?}");
    assert!(matches!(store.get_call(&ws, "c5").await, Err(Error::NotFound { entity: "call" })));

    // Counted and streamed by start time, [from, to), by rep.
    assert_eq!(store.count_calls(&ws, CallFilter::default()).await.unwrap(), 4);
    let order: Vec<String> =
        store.stream_calls(&ws, CallFilter::default(), 0, 10).map(|c| c.unwrap().details.call_id).collect().await;
    assert_eq!(order, ["c2", "c1", "c3", "c4"]);
    let window = CallFilter { from: Some(at(10, 0)), to: Some(at(12, 0)), rep_id: None };
    assert_eq!(store.count_calls(&ws, window.clone()).await.unwrap(), 2);
    let ann = CallFilter { rep_id: Some("ann".into()), ..window };
    let order: Vec<String> =
        store.stream_calls(&ws, ann.clone(), 1, 10).map(|c| c.unwrap().details.call_id).collect().await;
    assert_eq!(order, ["c3"]);
}

#[tokio::test]
async fn reports_group_filter_and_measure_calls_and_events() {
    let (store, ws) = fresh().await;
    store
        .upsert_reps(
            &ws,
            vec![
                rep(json!({"rep_id": "ann", "department": "sales"})),
                rep(json!({"rep_id": "bob", "department": "support"})),
            ],
        )
        .await
        .unwrap();
    store
        .upsert_calls(
            &ws,
            vec![
                call(json!({"call_id": "1", "rep_id": "ann", "start_time": "2026-01-05T10:00:00Z", "duration": 10,
                "vendor": "v1", "talk": 0.2})),
                call(json!({"call_id": "2", "rep_id": "ann", "start_time": "2026-01-05T11:00:00Z", "duration": 30,
                "vendor": "v2", "talk": 0.4})),
                call(json!({"call_id": "3", "rep_id": "bob", "start_time": "2026-01-06T10:00:00Z", "duration": 50})),
                call(json!({"call_id": "4", "rep_id": "cat", "start_time": "2026-01-07T10:00:00Z"})),
            ],
        )
        .await
        .unwrap();
    let fields: HashMap<String, FieldType> = [("talk".to_string(), FieldType::Number)].into();
    let mut q = ReportQuery::new(Source::Conversations);
    q.group_by("department", &fields).unwrap();
    q.group_by("rep_id", &fields).unwrap();
    for m in ["count", "sum:duration", "avg:talk"] {
        q.metrics.push(Metric::parse(m, Source::Conversations, &fields).unwrap());
    }
    q.to = Some(at(23, 59) + chrono::TimeDelta::days(1));
    let result = store.report(&ws, &q).await.unwrap();
    assert_eq!(result.rows, 3);
    let groups: Vec<Group> = result.groups.into_iter().map(|g| (g.dims, g.values)).collect();
    let s = |x: &str| Some(x.to_string());
    assert!(
        groups.contains(&(vec![s("sales"), s("ann")], vec![Some(2.0), Some(40.0), Some(0.30000000000000004)])),
        "{groups:?}"
    );
    assert!(groups.contains(&(vec![s("support"), s("bob")], vec![Some(1.0), Some(50.0), None])), "{groups:?}");

    // Filters: by department (through the reps) and by vendor; a day bucket.
    let mut q = ReportQuery::new(Source::Conversations);
    q.group_by("day", &fields).unwrap();
    q.metrics.push(Metric::parse("count", Source::Conversations, &fields).unwrap());
    q.filters.push((convene_core::report::Dimension::Department, vec!["sales".into(), "support".into()]));
    let result = store.report(&ws, &q).await.unwrap();
    assert_eq!(result.rows, 3);
    assert_eq!(result.groups.len(), 2);
    q.filters.push((convene_core::report::Dimension::Vendor, vec!["v2".into()]));
    assert_eq!(store.report(&ws, &q).await.unwrap().rows, 1);

    // Events: by name, a property as measure.
    let contact =
        store.create_contact(&ws, ContactChanges::from_json(obj(json!({"email": "e@x.io"}))).unwrap()).await.unwrap();
    assert!(contact.id > 0);
    for (name, amount) in [("sale", json!(10)), ("sale", json!("5")), ("visit", json!(true))] {
        let event = NewEvent {
            name: name.into(),
            kind: EventKind::Track,
            properties: obj(json!({"amount": amount})),
            description: None,
            timestamp: at(9, 0),
            received_at: at(9, 0),
            message_id: None,
        };
        store.record_event(&ws, (IdentityKind::Email, "e@x.io".into()), event).await.unwrap();
    }
    let none = HashMap::new();
    let mut q = ReportQuery::new(Source::Events);
    q.group_by("event", &none).unwrap();
    for m in ["count", "sum:amount"] {
        q.metrics.push(Metric::parse(m, Source::Events, &none).unwrap());
    }
    q.from = Some(at(0, 0));
    let result = store.report(&ws, &q).await.unwrap();
    let groups: Vec<Group> = result.groups.into_iter().map(|g| (g.dims, g.values)).collect();
    assert_eq!(
        groups,
        vec![(vec![s("sale")], vec![Some(2.0), Some(15.0)]), (vec![s("visit")], vec![Some(1.0), Some(0.0)]),]
    );
}

/// Asserts every idle pooled connection is outside any transaction (a
/// split scan's connections are returned only after their commit).
async fn pool_is_clean(store: &PgStore) {
    let idle = store.pool().status().available;
    let mut held = Vec::new();
    for _ in 0..idle {
        let c = store.pool().get().await.unwrap();
        let isolation: String =
            c.query_one("SELECT current_setting('transaction_isolation')", &[]).await.unwrap().get(0);
        assert_eq!(isolation, "read committed");
        // A savepoint is refused outside a transaction block.
        assert!(c.batch_execute("SAVEPOINT probe").await.is_err(), "a pooled connection was left in a transaction");
        held.push(c);
    }
}

/// A large table is read in two halves (ctid ranges) on two connections
/// sharing one snapshot, each half into its own aggregator, merged: the
/// result is the one a single scan gives, every value of every group.
#[tokio::test]
async fn a_split_scan_gives_the_single_scan_result() {
    let url = fresh_database(&test_admin_url()).await.expect("a scratch database");
    let store = PgStore::connect(&url, PgOptions::default()).await.expect("connect");
    let ws = store.create_workspace("w".into()).await.expect("workspace").id;
    store
        .upsert_reps(
            &ws,
            vec![
                rep(json!({"rep_id": "r1", "department": "sales"})),
                rep(json!({"rep_id": "r2", "department": "support"})),
            ],
        )
        .await
        .unwrap();
    let c = store.pool().get().await.unwrap();
    // Reps r0..r4 (r0, r3 and r4 without a department), three vendors, one
    // call in 50 without a duration, `talk` a number attribute.
    c.execute(
        "INSERT INTO conversations (workspace_id, id, status, channel, created_at, updated_at, call_id, rep_id,
                 started_at, duration, vendor, attributes, at_ms)
         SELECT $1, 'c' || i, 'resolved', 'call', now(), now(), 'c' || i, 'r' || (i % 5),
                to_timestamp(1767225600 + i * 600), CASE WHEN i % 50 = 0 THEN NULL ELSE (i * 37 % 900)::float8 END,
                'v' || (i % 3), jsonb_build_object('talk', (i % 100) / 100.0), (1767225600 + i * 600)::bigint * 1000
         FROM generate_series(1, 20000) AS i",
        &[&ws],
    )
    .await
    .unwrap();
    let pages: i64 = c
        .query_one("SELECT (pg_relation_size('conversations') / current_setting('block_size')::bigint)::bigint", &[])
        .await
        .unwrap()
        .get(0);
    assert!(pages > 100, "{pages} pages");
    drop(c);
    let fields: HashMap<String, FieldType> = [("talk".to_string(), FieldType::Number)].into();
    let mut q = ReportQuery::new(Source::Conversations);
    q.group_by("day", &fields).unwrap();
    q.group_by("department", &fields).unwrap();
    q.group_by("vendor", &fields).unwrap();
    // Percentiles merge exactly too (each half keeps its values).
    for m in ["count", "sum:duration", "min:duration", "max:duration", "avg:duration", "p90:duration", "avg:talk"] {
        q.metrics.push(Metric::parse(m, Source::Conversations, &fields).unwrap());
    }
    // SAFETY: nextest runs each test in its own process, and this test's
    // runtime is single-threaded: nothing reads the environment meanwhile.
    unsafe { std::env::set_var("CONVENE_PG_REPORT_SPLIT_PAGES", "1000000000") };
    let single = store.report(&ws, &q).await.unwrap();
    // SAFETY: as above.
    unsafe { std::env::set_var("CONVENE_PG_REPORT_SPLIT_PAGES", "1") };
    let split = store.report(&ws, &q).await.unwrap();
    assert_eq!(single.rows, 20_000);
    assert!(single.groups.len() > 100, "{} groups", single.groups.len());
    assert!(single.groups.iter().any(|g| g.dims[0].is_none()), "reps without a department form groups");
    assert_eq!(split.rows, single.rows);
    assert_eq!(split.groups.len(), single.groups.len());
    for (a, b) in split.groups.iter().zip(&single.groups) {
        assert_eq!((&a.bucket, &a.dims), (&b.bucket, &b.dims));
        assert_eq!(a.values.len(), b.values.len());
        for (x, y) in a.values.iter().zip(&b.values) {
            match (x, y) {
                // Sums may add in another order.
                (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-9 * y.abs().max(1.0), "{x} {y} in {a:?}"),
                _ => assert_eq!(x, y),
            }
        }
    }
    pool_is_clean(&store).await;

    // Cancelled at any point (a client gone), the split scan leaves no
    // pooled connection in its transaction, and the next report works.
    for delay_ms in [0, 1, 2, 5, 10, 20] {
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(delay_ms), store.report(&ws, &q)).await;
        assert!(cancelled.is_err() || cancelled.is_ok_and(|r| r.is_ok()));
        // The aborted tasks drop their connections when next scheduled.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        pool_is_clean(&store).await;
    }
    let again = store.report(&ws, &q).await.unwrap();
    assert_eq!(again, split);

    // No second connection free (a pool of two, one held): the first one
    // reads the whole table instead of waiting while it holds one.
    let narrow = PgStore::connect(&url, PgOptions { max_connections: 2, ..PgOptions::default() }).await.unwrap();
    let held = narrow.pool().get().await.unwrap();
    let alone = narrow.report(&ws, &q).await.unwrap();
    assert_eq!(alone, single);
    drop(held);
    pool_is_clean(&narrow).await;
}

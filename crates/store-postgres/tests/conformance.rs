//! The storage conformance suite on PostgreSQL (each test on a fresh
//! database of the server named by CONVENE_TEST_POSTGRES_URL), and the
//! PostgreSQL-specific guarantees: migrations once, concurrent nodes.

use std::sync::Arc;

use convene_core::Store;
use convene_store_postgres::scratch::{fresh_database, test_admin_url, with_database};
use convene_store_postgres::{PgOptions, PgStore};

async fn fresh_url() -> String {
    fresh_database(&test_admin_url()).await.expect("a scratch database")
}

async fn fresh() -> Arc<dyn Store> {
    Arc::new(PgStore::connect(&fresh_url().await, PgOptions::default()).await.expect("connect"))
}

convene_core::store_conformance_tests!(fresh());

#[tokio::test]
async fn migrations_apply_once_even_when_nodes_start_together() {
    let url = fresh_url().await;
    let options = PgOptions::default();
    let (a, b) = tokio::join!(PgStore::migrate(&url, &options), PgStore::migrate(&url, &options));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, convene_store_postgres::MIGRATION_COUNT, "each migration was applied by one node only");
    assert!(a == 0 || b == 0, "the node that took the lock applied them all");
    assert_eq!(PgStore::migrate(&url, &PgOptions::default()).await.unwrap(), 0);
}

#[test]
fn database_urls_keep_credentials_and_parameters() {
    assert_eq!(with_database("postgres://u:p@h:5/postgres", "x"), "postgres://u:p@h:5/x");
    assert_eq!(with_database("postgres://u@h/postgres?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

#[tokio::test]
async fn two_nodes_apply_one_inbox_without_losing_or_repeating_items() {
    use convene_core::contact::ContactFilter;
    use convene_core::identity::IdentityKind;
    use convene_core::ingest::{QueuedJob, identify_item};
    use convene_core::page::PageRequest;
    use serde_json::json;

    let url = fresh_url().await;
    let a = Arc::new(PgStore::connect(&url, PgOptions::default()).await.unwrap());
    let b = Arc::new(PgStore::connect(&url, PgOptions::default()).await.unwrap());
    let ws = a.create_workspace("w".into()).await.unwrap();
    // 40 jobs, each incrementing the same counter on one contact: the sum
    // proves every item applied exactly once, in whatever node.
    for i in 0..40 {
        let traits = json!({"email": "same@x.io", "n": {"$inc": 1}, "last": i}).as_object().unwrap().clone();
        let item = identify_item(vec![(IdentityKind::Email, "same@x.io".into())], traits, None).unwrap();
        let job = QueuedJob {
            id: format!("job_{i}"),
            workspace_id: ws.id.clone(),
            items: vec![item],
            received_at: convene_core::ids::now(),
        };
        if i % 2 == 0 { a.enqueue(job).await.unwrap() } else { b.enqueue(job).await.unwrap() }
    }
    let apply = |s: Arc<PgStore>| async move {
        let mut total = 0;
        for _ in 0..200 {
            total += s.apply_pending(3).await.unwrap().items;
        }
        total
    };
    let (x, y) = tokio::join!(apply(a.clone()), apply(b.clone()));
    assert_eq!(x + y, 40, "every item applied once across the two nodes");
    let page = a
        .list_contacts(
            &ws.id,
            ContactFilter { identity: Some((IdentityKind::Email, "same@x.io".into())), ..Default::default() },
            PageRequest::parse(None, Some(10)).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].state.traits["n"], json!(40));
    assert_eq!(page.items[0].state.traits["last"], json!(39), "applied in arrival order");
}

#[tokio::test]
async fn steps_in_flight_keep_per_contact_order_across_identity_kinds() {
    use convene_core::contact::ContactFilter;
    use convene_core::identity::IdentityKind;
    use convene_core::ingest::{QueuedJob, identify_item};
    use convene_core::page::PageRequest;
    use serde_json::json;

    let url = fresh_url().await;
    let store = PgStore::connect(&url, PgOptions { apply_parallelism: 4, ..PgOptions::default() }).await.unwrap();
    let ws = store.create_workspace("w".into()).await.unwrap();
    let job = |i: usize, items| QueuedJob {
        id: format!("job_{i}"),
        workspace_id: ws.id.clone(),
        items,
        received_at: convene_core::ids::now(),
    };
    // Five contacts with an external id and an email, and the fields.
    let items = (0..5)
        .map(|k| {
            let traits = json!({"email": format!("c{k}@x.io"), "n": 0, "last": -1}).as_object().unwrap().clone();
            identify_item(vec![(IdentityKind::ExternalId, format!("c{k}"))], traits, None).unwrap()
        })
        .collect();
    store.enqueue(job(1000, items)).await.unwrap();
    while store.apply_pending(1000).await.unwrap().items > 0 {}
    // Then 40 jobs on the same five contacts, naming them by email and by
    // external id in turn: consecutive jobs share no identity, so their
    // steps run at once, and must still apply in arrival order.
    for j in 0..40 {
        let items = (0..5)
            .map(|k| {
                let lookup = if j % 2 == 0 {
                    (IdentityKind::Email, format!("c{k}@x.io"))
                } else {
                    (IdentityKind::ExternalId, format!("c{k}"))
                };
                let traits = json!({"n": {"$inc": 1}, "last": j}).as_object().unwrap().clone();
                identify_item(vec![lookup], traits, None).unwrap()
            })
            .collect();
        store.enqueue(job(j, items)).await.unwrap();
    }
    let mut applied = 0;
    loop {
        let n = store.apply_pending(5).await.unwrap().items;
        if n == 0 {
            break;
        }
        applied += n;
    }
    assert_eq!(applied, 200, "every item applied once");
    for k in 0..5 {
        let page = store
            .list_contacts(
                &ws.id,
                ContactFilter { identity: Some((IdentityKind::ExternalId, format!("c{k}"))), ..Default::default() },
                PageRequest::parse(None, Some(10)).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].state.traits["n"], json!(40));
        assert_eq!(page.items[0].state.traits["last"], json!(39), "applied in arrival order");
    }
    for j in 0..40 {
        let result = store.get_job(&ws.id, &format!("job_{j}")).await.unwrap();
        assert_eq!(result.applied, 5, "job {j}: {result:?}");
    }
}

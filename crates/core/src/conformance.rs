//! The storage conformance suite: every [`Store`] implementation must pass
//! these. A backend's tests instantiate them with
//! [`store_conformance_tests!`](crate::store_conformance_tests).

use serde_json::{Value, json};

use crate::Error;
use crate::contact::{ContactChanges, ContactFilter, SubscriptionStatus};
use crate::event::{EventFilter, EventKind, NewEvent};
use crate::field::{Entity, FieldType};
use crate::identity::IdentityKind;
use crate::ingest::{IngestItem, JobStatus, QueuedJob, identify_item};
use crate::page::PageRequest;
use crate::scope::{KeyKind, Scope};
use crate::store::{NewField, Store};
use crate::token;
use crate::workspace::{NewKey, NewServiceAccount, ServiceAccountUpdate};

/// Instantiates every conformance test for a backend. `$make` is an async
/// expression yielding a fresh, empty store (`Box<dyn Store>`-like).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            workspaces_page_in_creation_order,
            keys_are_found_by_hash_and_follow_their_account,
            revoked_keys_stay_listed_and_marked,
            contacts_round_trip_with_traits_and_inferred_fields,
            identities_are_unique_per_workspace,
            workspaces_do_not_see_each_other,
            contact_lists_page_and_filter,
            explicit_fields_type_later_values,
            queued_jobs_apply_in_order_and_report,
            message_ids_apply_once,
            duplicate_identities_fail_their_row_only,
            alias_merges_profiles,
            group_links_a_company,
            purge_forgets_old_jobs_and_message_ids,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store = $make.await;
                $crate::conformance::$name(&*store).await;
            }
        )*
    };
}

fn changes(v: Value) -> ContactChanges {
    ContactChanges::from_json(v.as_object().expect("object").clone()).expect("valid changes")
}

fn new_key(kind: KeyKind, account: Option<String>) -> (String, NewKey) {
    let minted = token::mint();
    (
        minted.token,
        NewKey {
            name: "k".into(),
            kind,
            service_account_id: account,
            scopes: None,
            expires_at: None,
            hash: minted.hash,
            preview: minted.preview,
        },
    )
}

/// Workspaces list in creation order across pages.
pub async fn workspaces_page_in_creation_order(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(store.create_workspace(format!("w{i}")).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest { after: None, limit: 2 };
    loop {
        let p = store.list_workspaces(page.clone()).await.unwrap();
        seen.extend(p.items.into_iter().map(|w| w.id));
        match p.next_cursor {
            Some(c) => page = PageRequest::parse(Some(&c), Some(2)).unwrap(),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.sort_by_key(|id| seen.iter().position(|s| s == id));
    assert_eq!(seen.len(), 5);
    assert_eq!(store.get_workspace(&ids[0]).await.unwrap().name, "w0");
    assert!(matches!(store.get_workspace("ws_nope").await, Err(Error::NotFound { .. })));
}

/// A key is found by its token's hash; its scopes follow its account.
pub async fn keys_are_found_by_hash_and_follow_their_account(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let sa = store
        .create_service_account(
            &ws.id,
            NewServiceAccount {
                name: "sa".into(),
                description: String::new(),
                teams: vec![],
                scopes: vec![Scope::ContactsRead],
            },
        )
        .await
        .unwrap();
    let (token, new) = new_key(KeyKind::Full, Some(sa.id.clone()));
    let key = store.create_key(&ws.id, new).await.unwrap();
    assert_eq!(key.scopes, vec![Scope::ContactsRead]);
    let found = store.find_key(&token::TokenHash::of(&token)).await.unwrap().expect("found");
    assert_eq!(found.key.id, key.id);
    assert!(token::TokenHash::of(&token).ct_eq(&found.hash));
    store
        .update_service_account(
            &ws.id,
            &sa.id,
            ServiceAccountUpdate {
                scopes: Some(vec![Scope::ContactsRead, Scope::ContactsWrite]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let again = store.get_key(&ws.id, &key.id).await.unwrap();
    assert_eq!(again.scopes, vec![Scope::ContactsRead, Scope::ContactsWrite]);
    assert!(store.find_key(&token::TokenHash::of("cvn_other")).await.unwrap().is_none());
    let (_, bad) = new_key(KeyKind::Full, Some("sa_missing".into()));
    assert!(store.create_key(&ws.id, bad).await.is_err());
}

/// Revocation is immediate and visible in lists.
pub async fn revoked_keys_stay_listed_and_marked(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let (token, new) = new_key(KeyKind::Analytics, None);
    let key = store.create_key(&ws.id, new).await.unwrap();
    assert_eq!(key.scopes, Scope::ANALYTICS.to_vec());
    let revoked = store.revoke_key(&ws.id, &key.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let found = store.find_key(&token::TokenHash::of(&token)).await.unwrap().unwrap();
    assert!(found.key.revoked_at.is_some());
    let list = store.list_keys(&ws.id, PageRequest::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.items[0].revoked_at.is_some());
    store.touch_keys(vec![(key.id.clone(), crate::ids::now())]).await.unwrap();
    assert!(store.get_key(&ws.id, &key.id).await.unwrap().last_used_at.is_some());
}

/// Contacts keep identities, traits and status; unknown traits become fields.
pub async fn contacts_round_trip_with_traits_and_inferred_fields(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let c = store
        .create_contact(
            &ws.id,
            changes(json!({"email": "Ann@X.io", "traits": {"plan": "pro", "seats": 3, "tags": ["a"]}})),
        )
        .await
        .unwrap();
    assert_eq!(c.state.email.as_deref(), Some("ann@x.io"));
    let read = store.get_contact(&ws.id, c.id).await.unwrap();
    assert_eq!(read.state, c.state);
    let updated = store
        .update_contact(
            &ws.id,
            c.id,
            changes(json!({"subscription_status": "UNSUBSCRIBED", "traits": {"seats": {"$inc": 2}, "tags": {"add": ["b"]}, "plan": null}})),
        )
        .await
        .unwrap();
    assert_eq!(Value::Object(updated.state.traits.clone()), json!({"seats": 5, "tags": ["a", "b"]}));
    assert_eq!(updated.state.subscription_status, SubscriptionStatus::Unsubscribed);
    assert_eq!(store.get_contact(&ws.id, c.id).await.unwrap().state, updated.state);
    let fields = store.list_fields(&ws.id, Some(Entity::Contact), PageRequest::default()).await.unwrap().items;
    let seats = fields.iter().find(|f| f.name == "seats").expect("inferred field");
    assert_eq!(seats.field_type, FieldType::Number);
    assert!(seats.inferred);
    assert!(fields.iter().any(|f| f.name == "tags" && f.builtin));
    // a refused write changes nothing
    let err = store.update_contact(&ws.id, c.id, changes(json!({"traits": {"seats": "many", "new_one": 1}}))).await;
    assert!(matches!(err, Err(Error::InvalidValue { .. })));
    assert_eq!(store.get_contact(&ws.id, c.id).await.unwrap().state, updated.state);
    let fields = store.list_fields(&ws.id, None, PageRequest::default()).await.unwrap().items;
    assert!(!fields.iter().any(|f| f.name == "new_one"));
    store.delete_contact(&ws.id, c.id).await.unwrap();
    assert!(matches!(store.get_contact(&ws.id, c.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(store.delete_contact(&ws.id, c.id).await, Err(Error::NotFound { .. })));
}

/// Taking an identity another contact holds is a conflict naming the field.
pub async fn identities_are_unique_per_workspace(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let a = store
        .create_contact(&ws.id, changes(json!({"email": "a@x.io", "mobile": "+1 555 0100", "external_id": "A"})))
        .await
        .unwrap();
    for (field, body) in [
        ("email", json!({"email": "A@X.IO"})),
        ("mobile", json!({"mobile": "+15550100"})),
        ("external_id", json!({"external_id": "A"})),
    ] {
        match store.create_contact(&ws.id, changes(body.clone())).await {
            Err(Error::Conflict { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected a conflict on {field}, got {other:?}"),
        }
    }
    let b = store.create_contact(&ws.id, changes(json!({"email": "b@x.io"}))).await.unwrap();
    let err = store.update_contact(&ws.id, b.id, changes(json!({"email": "a@x.io"}))).await.unwrap_err();
    assert_eq!(err.field(), Some("email"));
    // freeing an identity lets another contact take it
    store.update_contact(&ws.id, a.id, changes(json!({"email": null}))).await.unwrap();
    store.update_contact(&ws.id, b.id, changes(json!({"email": "a@x.io"}))).await.unwrap();
    let other_ws = store.create_workspace("other".into()).await.unwrap();
    store
        .create_contact(&other_ws.id, changes(json!({"email": "a@x.io"})))
        .await
        .expect("identities are per workspace");
}

/// No read or write crosses workspaces.
pub async fn workspaces_do_not_see_each_other(store: &dyn Store) {
    let w1 = store.create_workspace("one".into()).await.unwrap();
    let w2 = store.create_workspace("two".into()).await.unwrap();
    let c = store.create_contact(&w1.id, changes(json!({"email": "a@x.io"}))).await.unwrap();
    assert!(matches!(store.get_contact(&w2.id, c.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        store.update_contact(&w2.id, c.id, changes(json!({"traits": {"x": 1}}))).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(store.delete_contact(&w2.id, c.id).await, Err(Error::NotFound { .. })));
    assert!(
        store.list_contacts(&w2.id, ContactFilter::default(), PageRequest::default()).await.unwrap().items.is_empty()
    );
    let (_, new) = new_key(KeyKind::Full, None);
    let key = store.create_key(&w1.id, new).await.unwrap();
    assert!(matches!(store.get_key(&w2.id, &key.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(store.revoke_key(&w2.id, &key.id).await, Err(Error::NotFound { .. })));
    assert!(store.get_key(&w1.id, &key.id).await.unwrap().revoked_at.is_none());
}

/// Contact lists page by id and filter by identity.
pub async fn contact_lists_page_and_filter(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(store.create_contact(&ws.id, changes(json!({"email": format!("u{i}@x.io")}))).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest { after: None, limit: 3 };
    loop {
        let p = store.list_contacts(&ws.id, ContactFilter::default(), page.clone()).await.unwrap();
        assert!(p.items.len() <= 3);
        seen.extend(p.items.iter().map(|c| c.id));
        match p.next_cursor {
            Some(c) => page = PageRequest::parse(Some(&c), Some(3)).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let filter = ContactFilter { identity: Some((IdentityKind::Email, "u4@x.io".into())) };
    let found = store.list_contacts(&ws.id, filter, PageRequest::default()).await.unwrap();
    assert_eq!(found.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[4]]);
}

/// A field created explicitly types later values, with coercion.
pub async fn explicit_fields_type_later_values(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let f = store
        .create_field(
            &ws.id,
            NewField {
                entity: Entity::Contact,
                name: "career_sales".into(),
                label: Some("Career sales".into()),
                field_type: FieldType::Integer,
            },
        )
        .await
        .unwrap();
    assert!(!f.inferred);
    let again = store
        .create_field(
            &ws.id,
            NewField { entity: Entity::Contact, name: "career_sales".into(), label: None, field_type: FieldType::Text },
        )
        .await;
    assert!(matches!(again, Err(Error::Conflict { .. })));
    let c = store.create_contact(&ws.id, changes(json!({"traits": {"career_sales": "500000"}}))).await.unwrap();
    assert_eq!(c.state.traits["career_sales"], json!(500000));
    let err = store.create_contact(&ws.id, changes(json!({"traits": {"career_sales": "lots"}}))).await.unwrap_err();
    assert_eq!(err.field(), Some("career_sales"));
}

fn job(ws: &str, items: Vec<IngestItem>) -> QueuedJob {
    QueuedJob { id: crate::ids::new_id("job"), workspace_id: ws.to_string(), items, received_at: crate::ids::now() }
}

fn ident(kind: IdentityKind, value: &str, traits: Value) -> IngestItem {
    identify_item(vec![(kind, value.to_string())], traits.as_object().unwrap().clone(), None).unwrap()
}

fn track(kind: IdentityKind, value: &str, name: &str, message_id: Option<&str>) -> IngestItem {
    let now = crate::ids::now();
    IngestItem::Track {
        lookups: vec![(kind, value.to_string())],
        event: NewEvent {
            name: name.into(),
            kind: EventKind::Track,
            properties: serde_json::Map::new(),
            description: None,
            timestamp: now,
            received_at: now,
            message_id: message_id.map(str::to_string),
        },
    }
}

async fn drain(store: &dyn Store) {
    while store.apply_pending(1000).await.unwrap().items > 0 {}
    assert_eq!(store.backlog(), 0);
}

/// Jobs are queued, then applied in order through the trait merge.
pub async fn queued_jobs_apply_in_order_and_report(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let first =
        job(&ws.id, vec![ident(IdentityKind::Email, "a@x.io", json!({"n": {"$inc": 1}, "tags": {"add": ["x"]}}))]);
    let second = job(
        &ws.id,
        vec![
            ident(IdentityKind::Email, "a@x.io", json!({"n": {"$inc": 2}, "tags": {"add": ["y"], "remove": ["x"]}})),
            track(IdentityKind::Email, "a@x.io", "made_sale", None),
        ],
    );
    let (j1, j2) = (first.id.clone(), second.id.clone());
    store.enqueue(first).await.unwrap();
    store.enqueue(second).await.unwrap();
    assert_eq!(store.backlog(), 3);
    assert_eq!(store.get_job(&ws.id, &j1).await.unwrap().status, JobStatus::Queued);
    drain(store).await;
    let done = store.get_job(&ws.id, &j2).await.unwrap();
    assert_eq!((done.status, done.total, done.applied), (JobStatus::Applied, 2, 2));
    let c = store.list_contacts(&ws.id, ContactFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(c.len(), 1);
    assert_eq!(Value::Object(c[0].state.traits.clone()), json!({"n": 3, "tags": ["y"]}));
    let events = store.list_events(&ws.id, EventFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].contact_id, c[0].id);
    assert!(matches!(store.get_job(&ws.id, "job_missing").await, Err(Error::NotFound { .. })));
    let other = store.create_workspace("o".into()).await.unwrap();
    assert!(matches!(store.get_job(&other.id, &j2).await, Err(Error::NotFound { .. })));
}

/// The same message id applies once, across jobs.
pub async fn message_ids_apply_once(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    for _ in 0..3 {
        store.enqueue(job(&ws.id, vec![track(IdentityKind::ExternalId, "u1", "e", Some("m-1"))])).await.unwrap();
    }
    let last = job(&ws.id, vec![track(IdentityKind::ExternalId, "u1", "e", Some("m-1"))]);
    let last_id = last.id.clone();
    store.enqueue(last).await.unwrap();
    drain(store).await;
    let events = store.list_events(&ws.id, EventFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(events.len(), 1);
    let j = store.get_job(&ws.id, &last_id).await.unwrap();
    assert_eq!((j.applied, j.duplicates), (0, 1));
    // another workspace may reuse the id
    let other = store.create_workspace("o".into()).await.unwrap();
    store.enqueue(job(&other.id, vec![track(IdentityKind::ExternalId, "u1", "e", Some("m-1"))])).await.unwrap();
    drain(store).await;
    assert_eq!(
        store.list_events(&other.id, EventFilter::default(), PageRequest::default()).await.unwrap().items.len(),
        1
    );
}

/// A row taking another contact's identity fails alone.
pub async fn duplicate_identities_fail_their_row_only(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    store.create_contact(&ws.id, changes(json!({"email": "taken@x.io"}))).await.unwrap();
    let j = job(
        &ws.id,
        vec![
            ident(IdentityKind::ExternalId, "e1", json!({"plan": "a"})),
            ident(IdentityKind::ExternalId, "e2", json!({"email": "taken@x.io"})),
            ident(IdentityKind::ExternalId, "e3", json!({"plan": "c"})),
        ],
    );
    let id = j.id.clone();
    store.enqueue(j).await.unwrap();
    drain(store).await;
    let done = store.get_job(&ws.id, &id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!((done.applied, done.failed), (2, 1));
    assert_eq!(done.errors[0].row, 1);
    assert_eq!(done.errors[0].code, "conflict");
    assert_eq!(done.errors[0].field.as_deref(), Some("email"));
    let all = store.list_contacts(&ws.id, ContactFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(all.len(), 3, "taken@x.io, e1 and e3; e2 was not created");
}

/// Alias merges the anonymous profile into the identified one.
pub async fn alias_merges_profiles(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    store
        .enqueue(job(
            &ws.id,
            vec![
                ident(IdentityKind::AnonymousId, "anon-1", json!({"seen": "ad", "plan": "free"})),
                track(IdentityKind::AnonymousId, "anon-1", "viewed", None),
                ident(IdentityKind::ExternalId, "user-1", json!({"plan": "pro"})),
                IngestItem::Alias {
                    previous: vec![(IdentityKind::AnonymousId, "anon-1".into())],
                    lookups: vec![(IdentityKind::ExternalId, "user-1".into())],
                    message_id: None,
                },
            ],
        ))
        .await
        .unwrap();
    drain(store).await;
    let all = store.list_contacts(&ws.id, ContactFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(all.len(), 1);
    let kept = &all[0];
    assert_eq!(kept.state.external_id.as_deref(), Some("user-1"));
    assert_eq!(kept.state.anonymous_id.as_deref(), Some("anon-1"));
    assert_eq!(Value::Object(kept.state.traits.clone()), json!({"plan": "pro", "seen": "ad"}));
    let events = store.list_events(&ws.id, EventFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(events.iter().map(|e| e.contact_id).collect::<Vec<_>>(), vec![kept.id]);
}

/// Group creates the company and links the contact.
pub async fn group_links_a_company(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let group = |traits: Value| IngestItem::Group {
        lookups: vec![(IdentityKind::ExternalId, "u".into())],
        company: "acme".into(),
        traits: traits.as_object().unwrap().clone(),
        message_id: None,
    };
    store.enqueue(job(&ws.id, vec![group(json!({"name": "Acme"})), group(json!({"size": 10}))])).await.unwrap();
    drain(store).await;
    let all = store.list_contacts(&ws.id, ContactFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(all.len(), 1);
    assert!(all[0].company_id.is_some());
}

/// Job results and message ids expire after their retention windows.
pub async fn purge_forgets_old_jobs_and_message_ids(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap();
    let first = job(&ws.id, vec![track(IdentityKind::ExternalId, "u", "e", Some("m"))]);
    let first_id = first.id.clone();
    store.enqueue(first).await.unwrap();
    drain(store).await;
    // Nothing is old enough yet.
    let long_ago = crate::ids::now() - chrono::Duration::days(30);
    store.purge_ingest(long_ago, long_ago).await.unwrap();
    assert_eq!(store.get_job(&ws.id, &first_id).await.unwrap().status, JobStatus::Applied);
    // Everything is now older than the cut-off.
    let later = crate::ids::now() + chrono::Duration::seconds(1);
    store.purge_ingest(later, later).await.unwrap();
    assert!(matches!(store.get_job(&ws.id, &first_id).await, Err(Error::NotFound { .. })));
    // The message id was forgotten: the same id applies again.
    store.enqueue(job(&ws.id, vec![track(IdentityKind::ExternalId, "u", "e", Some("m"))])).await.unwrap();
    drain(store).await;
    assert_eq!(store.list_events(&ws.id, EventFilter::default(), PageRequest::default()).await.unwrap().items.len(), 2);
}

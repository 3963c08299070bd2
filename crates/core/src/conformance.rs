//! The storage conformance suite: every [`Store`] implementation must pass
//! these. A backend's tests instantiate them with
//! [`store_conformance_tests!`](crate::store_conformance_tests).

use serde_json::{Value, json};

use crate::Error;
use crate::batch::{BatchOptions, CompanyUpsert, ContactUpsert, RowStatus};
use crate::company::{CompanyChanges, CompanyFilter};
use crate::contact::{ContactChanges, ContactFilter, SubscriptionStatus};
use crate::conversation::{
    ConversationChanges, ConversationFilter, ConversationStatus, MessageFilter, MessageType, NewConversation,
    NewMessage, Sender, TimelineItem,
};
use crate::event::{EventFilter, EventKind, NewEvent};
use crate::field::{Entity, FieldType};
use crate::identity::IdentityKind;
use crate::ingest::{IngestItem, JobStatus, QueuedJob, identify_item};
use crate::page::PageRequest;
use crate::scope::{KeyKind, Scope};
use crate::store::{NewField, Store};
use crate::token;
use crate::user::{Role, UserChanges};
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
            companies_round_trip_and_unlink_on_delete,
            contact_batches_report_each_row,
            all_or_nothing_and_dry_run_batches_write_nothing,
            company_batches_upsert_by_external_id,
            subscription_changes_are_recorded,
            events_are_recorded_on_a_known_contact,
            users_round_trip_with_unique_emails,
            conversations_open_change_and_count_messages,
            conversation_lists_filter_and_page,
            timelines_merge_events_and_messages_in_time_order,
            reps_upsert_all_or_nothing_and_list,
            calls_upsert_by_call_id_with_contacts_and_reps,
            reports_group_and_compute_the_same_numbers,
            console_logins_and_sessions,
            contact_lists_search_by_prefix_tag_and_field,
            exports_stream_every_entity_in_order_since_and_after_a_cursor,
            erasure_removes_every_trace_and_suppresses_the_identities,
            unchanged_upserts_write_nothing_and_keep_updated_at,
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
    let filter = ContactFilter { identity: Some((IdentityKind::Email, "u4@x.io".into())), ..Default::default() };
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
    QueuedJob::new(ws, items)
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
    // The backlog is a gauge: a store may refresh it from the inbox in the
    // background (PostgreSQL, every 250 ms), so a refresh racing the second
    // append may briefly show a stale count. It settles on the exact one.
    let settled = std::time::Instant::now();
    while store.backlog() != 3 && settled.elapsed() < std::time::Duration::from_secs(2) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
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

fn company(v: Value) -> CompanyChanges {
    CompanyChanges::from_json(v.as_object().expect("object").clone()).expect("valid company")
}

fn by_email(row: usize, email: &str, traits: Value) -> ContactUpsert {
    let mut c = changes(json!({ "email": email, "traits": traits }));
    c.source = Some("test".into());
    ContactUpsert { row, lookups: vec![(IdentityKind::Email, email.into())], changes: c, create: true }
}

/// Companies: create, conflict on external id, filters, update, delete
/// (contacts stay, unlinked), workspace isolation.
pub async fn companies_round_trip_and_unlink_on_delete(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let other = store.create_workspace("o".into()).await.unwrap().id;
    let acme = store
        .create_company(&ws, company(json!({"external_id": "c1", "domain": "Acme.com", "traits": {"size": 50}})))
        .await
        .unwrap();
    assert_eq!((acme.external_id.as_str(), acme.domain.as_deref()), ("c1", Some("acme.com")));
    assert_eq!(acme.traits["size"], json!(50));
    let taken = store.create_company(&ws, company(json!({"external_id": "c1"}))).await.unwrap_err();
    assert!(matches!(taken, Error::Conflict { .. }), "{taken:?}");
    store.create_company(&other, company(json!({"external_id": "c1"}))).await.unwrap();
    store.create_company(&ws, company(json!({"external_id": "c2", "domain": "beta.io"}))).await.unwrap();
    let by_domain = store
        .list_companies(
            &ws,
            CompanyFilter { domain: Some("acme.com".into()), ..Default::default() },
            PageRequest::parse(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(by_domain.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![acme.id]);
    let by_id = store
        .list_companies(
            &ws,
            CompanyFilter { external_id: Some("c2".into()), ..Default::default() },
            PageRequest::parse(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(by_id.items.len(), 1);
    let all = store.list_companies(&ws, CompanyFilter::default(), PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!(all.items.len(), 1);
    assert!(all.next_cursor.is_some());
    let updated = store
        .update_company(&ws, acme.id, company(json!({"traits": {"size": {"$inc": 5}}, "domain": null})))
        .await
        .unwrap();
    assert_eq!((updated.traits["size"].clone(), updated.domain), (json!(55), None));
    assert!(matches!(store.get_company(&other, acme.id).await, Err(Error::NotFound { .. })));
    let mut link = changes(json!({"email": "a@x.io"}));
    link.company = Some(Some(acme.id));
    let contact = store.create_contact(&ws, link).await.unwrap();
    assert_eq!(contact.company_id, Some(acme.id));
    let mut foreign = changes(json!({"email": "b@x.io"}));
    foreign.company = Some(Some(acme.id));
    assert!(store.create_contact(&other, foreign).await.is_err(), "another workspace's company cannot be linked");
    let members = store
        .list_contacts(
            &ws,
            ContactFilter { company_id: Some(acme.id), ..Default::default() },
            PageRequest::parse(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(members.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![contact.id]);
    store.delete_company(&ws, acme.id).await.unwrap();
    assert!(matches!(store.delete_company(&ws, acme.id).await, Err(Error::NotFound { .. })));
    assert_eq!(store.get_contact(&ws, contact.id).await.unwrap().company_id, None);
}

/// A batch creates and updates by identity and reports a failed row while
/// keeping the others.
pub async fn contact_batches_report_each_row(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    store.create_contact(&ws, changes(json!({"email": "old@x.io", "traits": {"score": 1}}))).await.unwrap();
    store.create_contact(&ws, changes(json!({"email": "held@x.io", "external_id": "e-1"}))).await.unwrap();
    store
        .create_field(
            &ws,
            NewField { entity: Entity::Contact, name: "age".into(), label: None, field_type: FieldType::Integer },
        )
        .await
        .unwrap();
    let mut conflicting = by_email(2, "new2@x.io", json!({}));
    conflicting.changes.identities.push((IdentityKind::ExternalId, Some("e-1".into())));
    let rows = vec![
        by_email(0, "new@x.io", json!({"plan": "pro"})),
        by_email(1, "old@x.io", json!({"score": {"$inc": 2}})),
        conflicting,
        by_email(3, "bad@x.io", json!({"age": "not a number"})),
        by_email(4, "new@x.io", json!({"seats": 3})),
    ];
    let outcome = store.upsert_contacts(&ws, rows, BatchOptions::default()).await.unwrap();
    assert!(outcome.written);
    let statuses: Vec<_> =
        outcome.rows.iter().map(|r| r.outcome.as_ref().map(|(s, _)| *s).map_err(|e| e.code())).collect();
    assert_eq!(
        statuses,
        vec![
            Ok(RowStatus::Created),
            Ok(RowStatus::Updated),
            Err(crate::ErrorCode::Conflict),
            Err(crate::ErrorCode::InvalidValue),
            Ok(RowStatus::Updated),
        ]
    );
    let old = &outcome.rows[1].outcome.as_ref().unwrap().1;
    assert_eq!(old.state.traits["score"], json!(3));
    let new = &outcome.rows[4].outcome.as_ref().unwrap().1;
    assert_eq!((new.state.traits["plan"].clone(), new.state.traits["seats"].clone()), (json!("pro"), json!(3)));
    let find =
        |email: &str| ContactFilter { identity: Some((IdentityKind::Email, email.into())), ..Default::default() };
    for (email, present) in [("new@x.io", true), ("new2@x.io", false), ("bad@x.io", false)] {
        let page = store.list_contacts(&ws, find(email), PageRequest::parse(None, None).unwrap()).await.unwrap();
        assert_eq!(page.items.len(), present as usize, "{email}");
    }
    let mut missing = by_email(0, "nobody@x.io", json!({}));
    missing.create = false;
    let outcome = store.upsert_contacts(&ws, vec![missing], BatchOptions::default()).await.unwrap();
    assert!(matches!(outcome.rows[0].outcome, Err(Error::NotFound { .. })));
}

/// A dry run, or an all-or-nothing batch with a failed row, writes nothing
/// (not even inferred fields) but reports what would have happened.
pub async fn all_or_nothing_and_dry_run_batches_write_nothing(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    store.create_contact(&ws, changes(json!({"email": "held@x.io", "external_id": "e-1"}))).await.unwrap();
    let dry = store
        .upsert_contacts(
            &ws,
            vec![by_email(0, "a@x.io", json!({"fresh_field": 1}))],
            BatchOptions { dry_run: true, all_or_nothing: false },
        )
        .await
        .unwrap();
    assert!(!dry.written);
    assert_eq!(dry.count(RowStatus::Created), 1);
    let mut conflicting = by_email(1, "b@x.io", json!({"other_field": "x"}));
    conflicting.changes.identities.push((IdentityKind::ExternalId, Some("e-1".into())));
    let atomic = store
        .upsert_contacts(
            &ws,
            vec![by_email(0, "c@x.io", json!({"third_field": true})), conflicting],
            BatchOptions { dry_run: false, all_or_nothing: true },
        )
        .await
        .unwrap();
    assert!(!atomic.written);
    assert_eq!(atomic.failed(), 1);
    let all =
        store.list_contacts(&ws, ContactFilter::default(), PageRequest::parse(None, None).unwrap()).await.unwrap();
    assert_eq!(all.items.len(), 1, "only the contact made before the batches");
    let fields =
        store.list_fields(&ws, Some(Entity::Contact), PageRequest::parse(None, Some(1000)).unwrap()).await.unwrap();
    for name in ["fresh_field", "other_field", "third_field"] {
        assert!(!fields.items.iter().any(|f| f.name == name), "{name} was not written");
    }
    // The same rows, kept, work afterwards (the registry cache was not poisoned).
    let kept = store
        .upsert_contacts(&ws, vec![by_email(0, "a@x.io", json!({"fresh_field": 1}))], BatchOptions::default())
        .await
        .unwrap();
    assert!(kept.written);
    let fields =
        store.list_fields(&ws, Some(Entity::Contact), PageRequest::parse(None, Some(1000)).unwrap()).await.unwrap();
    assert!(fields.items.iter().any(|f| f.name == "fresh_field"));
}

/// Company batches create or update by external id; a dry run writes nothing.
pub async fn company_batches_upsert_by_external_id(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    store.create_company(&ws, company(json!({"external_id": "c1", "traits": {"industry": "retail"}}))).await.unwrap();
    let row = |row: usize, id: &str, v: Value| CompanyUpsert { row, external_id: id.into(), changes: company(v) };
    let dry = store
        .upsert_companies(
            &ws,
            vec![row(0, "c9", json!({"domain": "nine.io"}))],
            BatchOptions { dry_run: true, all_or_nothing: false },
        )
        .await
        .unwrap();
    assert!(!dry.written && dry.count(RowStatus::Created) == 1);
    let outcome = store
        .upsert_companies(
            &ws,
            vec![
                row(0, "c1", json!({"domain": "one.io", "traits": {"size": "11-50"}})),
                row(1, "c2", json!({"traits": {"industry": "media"}})),
                row(2, "c2", json!({"traits": {"size": "1-10"}})),
            ],
            BatchOptions::default(),
        )
        .await
        .unwrap();
    let statuses: Vec<_> = outcome.rows.iter().map(|r| r.outcome.as_ref().map(|(s, _)| *s).ok()).collect();
    assert_eq!(statuses, vec![Some(RowStatus::Updated), Some(RowStatus::Created), Some(RowStatus::Updated)]);
    let c1 = &outcome.rows[0].outcome.as_ref().unwrap().1;
    assert_eq!((c1.domain.as_deref(), c1.traits["industry"].clone()), (Some("one.io"), json!("retail")));
    let all =
        store.list_companies(&ws, CompanyFilter::default(), PageRequest::parse(None, None).unwrap()).await.unwrap();
    let ids: Vec<_> = all.items.iter().map(|c| c.external_id.as_str()).collect();
    assert_eq!(ids, vec!["c1", "c2"], "the dry run left nothing");
    assert_eq!(all.items[1].traits, json!({"industry": "media", "size": "1-10"}).as_object().unwrap().clone());
}

/// Every change of status is recorded with its source; an unchanged or
/// unnamed status is not.
pub async fn subscription_changes_are_recorded(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let c =
        store.create_contact(&ws, changes(json!({"email": "a@x.io", "subscription_status": "PENDING"}))).await.unwrap();
    store.update_contact(&ws, c.id, changes(json!({"traits": {"x": 1}}))).await.unwrap();
    store.update_contact(&ws, c.id, changes(json!({"subscription_status": "PENDING"}))).await.unwrap();
    store.update_contact(&ws, c.id, changes(json!({"subscription_status": "SUBSCRIBED"}))).await.unwrap();
    let mut unsub = by_email(0, "a@x.io", json!({}));
    unsub.changes.subscription_status = Some(SubscriptionStatus::Unsubscribed);
    store.upsert_contacts(&ws, vec![unsub], BatchOptions::default()).await.unwrap();
    let history = store.subscription_history(&ws, c.id, PageRequest::parse(None, None).unwrap()).await.unwrap();
    let seen: Vec<_> = history.items.iter().map(|h| (h.previous, h.status, h.source.as_str())).collect();
    assert_eq!(
        seen,
        vec![
            (None, SubscriptionStatus::Pending, "api"),
            (Some(SubscriptionStatus::Pending), SubscriptionStatus::Subscribed, "api"),
            (Some(SubscriptionStatus::Subscribed), SubscriptionStatus::Unsubscribed, "test"),
        ]
    );
    let paged = store.subscription_history(&ws, c.id, PageRequest { after: None, limit: 2 }).await.unwrap();
    assert_eq!(paged.items.len(), 2);
    assert!(paged.next_cursor.is_some());
    let other = store.create_workspace("o".into()).await.unwrap().id;
    assert!(matches!(
        store.subscription_history(&other, c.id, PageRequest::parse(None, None).unwrap()).await,
        Err(Error::NotFound { .. })
    ));
    // Through the ingest path too.
    let mut item = identify_item(vec![(IdentityKind::Email, "a@x.io".into())], serde_json::Map::new(), None).unwrap();
    if let IngestItem::Identify { changes, .. } = &mut item {
        changes.subscription_status = Some(SubscriptionStatus::Pending);
    }
    store.enqueue(job(&ws, vec![item])).await.unwrap();
    drain(store).await;
    let history = store.subscription_history(&ws, c.id, PageRequest::parse(None, None).unwrap()).await.unwrap();
    assert_eq!(history.items.last().map(|h| h.status), Some(SubscriptionStatus::Pending));
}

/// An event recorded synchronously lands on the contact; an unknown
/// contact is not found and nothing is written.
pub async fn events_are_recorded_on_a_known_contact(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let c = store.create_contact(&ws, changes(json!({"email": "a@x.io"}))).await.unwrap();
    let at = crate::ids::now();
    let data = json!({"outcome": "won", "tags": ["a"]}).as_object().unwrap().clone();
    let event = crate::event::new_engagement("Demo", "Showed the product", data, at).unwrap();
    let recorded = store.record_event(&ws, (IdentityKind::Email, "a@x.io".into()), event.clone()).await.unwrap();
    assert_eq!((recorded.contact_id, recorded.event.kind), (c.id, EventKind::Engagement));
    let missing = store.record_event(&ws, (IdentityKind::Email, "b@x.io".into()), event).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }));
    let events = store
        .list_events(
            &ws,
            EventFilter { contact_id: Some(c.id), ..Default::default() },
            PageRequest::parse(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].id, recorded.id);
    assert_eq!(events.items[0].event.description.as_deref(), Some("Showed the product"));
    assert_eq!(events.items[0].event.properties["outcome"], json!("won"));
}

async fn user(store: &dyn Store, ws: &str, email: &str, active: bool) -> crate::user::User {
    let body = json!({"name": email, "email": email, "active": active});
    let new = UserChanges::from_json(body.as_object().unwrap().clone()).unwrap().into_new(crate::ids::now()).unwrap();
    store.create_user(ws, new).await.unwrap()
}

/// Users: unique email per workspace, changes, isolation, paging.
pub async fn users_round_trip_with_unique_emails(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let other = store.create_workspace("o".into()).await.unwrap().id;
    let ann = user(store, &ws, "ann@x.io", true).await;
    assert_eq!((ann.role, ann.active), (Role::Agent, true));
    let body = json!({"name": "Again", "email": "ann@x.io"});
    let dup = UserChanges::from_json(body.as_object().unwrap().clone()).unwrap().into_new(crate::ids::now()).unwrap();
    assert!(matches!(store.create_user(&ws, dup.clone()).await, Err(Error::Conflict { .. })));
    store.create_user(&other, dup).await.unwrap();
    let changed = store
        .update_user(&ws, ann.id, UserChanges { role: Some(Role::Admin), active: Some(false), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((changed.role, changed.active), (Role::Admin, false));
    assert_eq!(store.get_user(&ws, ann.id).await.unwrap(), changed);
    assert!(matches!(store.get_user(&other, ann.id).await, Err(Error::NotFound { .. })));
    user(store, &ws, "bob@x.io", true).await;
    let page = store.list_users(&ws, PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let rest = store.list_users(&ws, PageRequest::parse(page.next_cursor.as_deref(), Some(10)).unwrap()).await.unwrap();
    assert_eq!(rest.items[0].email, "bob@x.io");
}

/// A conversation opens with its first message; status and assignment
/// changes write activity messages; counts and times follow; inactive or
/// unknown users are refused as assignee and operator.
pub async fn conversations_open_change_and_count_messages(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let contact = store.create_contact(&ws, changes(json!({"email": "c@x.io"}))).await.unwrap();
    let agent = user(store, &ws, "agent@x.io", true).await;
    let gone = user(store, &ws, "gone@x.io", false).await;
    let api = Sender::Api("key_1".into());
    let mut new = NewConversation::new(contact.id);
    new.subject = Some("Refund".into());
    new.first_message = Some(NewMessage::new(MessageType::Outgoing, "Hello!", api.clone()).unwrap());
    let conv = store.create_conversation(&ws, new).await.unwrap();
    assert_eq!(
        (conv.status, conv.messages_count, conv.subject.as_deref()),
        (ConversationStatus::Open, 1, Some("Refund"))
    );
    assert!(conv.last_message_at.is_some());
    let mut bad = NewConversation::new(contact.id);
    bad.assignee_id = Some(gone.id);
    assert!(matches!(store.create_conversation(&ws, bad).await, Err(Error::InvalidValue { .. })));
    assert!(matches!(
        store.create_conversation(&ws, NewConversation::new(999_999)).await,
        Err(Error::InvalidValue { .. })
    ));
    let reply = NewMessage::new(MessageType::Incoming, "Thanks", Sender::Contact(contact.id)).unwrap();
    store.add_message(&ws, &conv.id, reply).await.unwrap();
    let by_gone = NewMessage::new(MessageType::Outgoing, "x", Sender::User(gone.id)).unwrap();
    let err = store.add_message(&ws, &conv.id, by_gone).await.unwrap_err();
    assert_eq!(err.field(), Some("operator_id"));
    let changes = ConversationChanges {
        status: Some(ConversationStatus::Resolved),
        assignee: Some(Some(agent.id)),
        labels: Some(vec!["billing".into()]),
    };
    let updated = store.update_conversation(&ws, &conv.id, changes, api.clone()).await.unwrap();
    assert_eq!(
        (updated.status, updated.assignee_id, updated.messages_count),
        (ConversationStatus::Resolved, Some(agent.id), 4)
    );
    let to_gone = ConversationChanges { assignee: Some(Some(gone.id)), ..Default::default() };
    assert!(store.update_conversation(&ws, &conv.id, to_gone, api.clone()).await.is_err());
    let all = store
        .list_messages(&ws, &conv.id, MessageFilter::default(), PageRequest::parse(None, None).unwrap())
        .await
        .unwrap();
    let kinds: Vec<_> = all.items.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![MessageType::Outgoing, MessageType::Incoming, MessageType::Activity, MessageType::Activity]);
    assert_eq!(all.items[1].sender, Sender::Contact(contact.id));
    assert_eq!(all.items[2].sender, api);
    let filter = MessageFilter::parse(Some("incoming,outgoing")).unwrap();
    let some = store.list_messages(&ws, &conv.id, filter, PageRequest::parse(None, None).unwrap()).await.unwrap();
    assert_eq!(some.items.len(), 2);
    let paged = store
        .list_messages(&ws, &conv.id, MessageFilter::default(), PageRequest { after: None, limit: 3 })
        .await
        .unwrap();
    assert_eq!(paged.items.len(), 3);
    assert!(paged.next_cursor.is_some());
    let got = store.get_conversation(&ws, &conv.id).await.unwrap();
    assert_eq!(got.labels, vec!["billing".to_string()]);
    let other = store.create_workspace("o".into()).await.unwrap().id;
    assert!(matches!(store.get_conversation(&other, &conv.id).await, Err(Error::NotFound { .. })));
    let m = NewMessage::new(MessageType::Note, "x", api.clone()).unwrap();
    assert!(matches!(store.add_message(&other, &conv.id, m).await, Err(Error::NotFound { .. })));
}

/// Lists filter by status, assignee, contact and label, and page.
pub async fn conversation_lists_filter_and_page(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let a = store.create_contact(&ws, changes(json!({"email": "a@x.io"}))).await.unwrap();
    let b = store.create_contact(&ws, changes(json!({"email": "b@x.io"}))).await.unwrap();
    let agent = user(store, &ws, "agent@x.io", true).await;
    let api = Sender::Api("k".into());
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut new = NewConversation::new(if i % 2 == 0 { a.id } else { b.id });
        new.labels = if i < 2 { vec!["vip".into()] } else { vec![] };
        new.assignee_id = (i == 3).then_some(agent.id);
        ids.push(store.create_conversation(&ws, new).await.unwrap().id);
    }
    let resolve = ConversationChanges { status: Some(ConversationStatus::Resolved), ..Default::default() };
    store.update_conversation(&ws, &ids[4], resolve, api).await.unwrap();
    let ws_ref = ws.as_str();
    let list = |filter: ConversationFilter| async move {
        let page = store.list_conversations(ws_ref, filter, PageRequest::parse(None, None).unwrap()).await.unwrap();
        page.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        list(ConversationFilter { status: Some(ConversationStatus::Resolved), ..Default::default() }).await,
        vec![ids[4].clone()]
    );
    assert_eq!(
        list(ConversationFilter { assignee_id: Some(agent.id), ..Default::default() }).await,
        vec![ids[3].clone()]
    );
    assert_eq!(
        list(ConversationFilter { contact_id: Some(b.id), ..Default::default() }).await,
        vec![ids[1].clone(), ids[3].clone(), ids[5].clone()]
    );
    assert_eq!(
        list(ConversationFilter { label: Some("vip".into()), ..Default::default() }).await,
        vec![ids[0].clone(), ids[1].clone()]
    );
    let open = ConversationFilter { status: Some(ConversationStatus::Open), ..Default::default() };
    let first = store.list_conversations(&ws, open.clone(), PageRequest { after: None, limit: 3 }).await.unwrap();
    let second = store
        .list_conversations(&ws, open, PageRequest::parse(first.next_cursor.as_deref(), Some(3)).unwrap())
        .await
        .unwrap();
    assert_eq!(first.items.len() + second.items.len(), 5);
    assert!(second.next_cursor.is_none());
}

/// A contact's timeline merges its events and messages oldest first,
/// across pages, without repeating or skipping items at equal times.
pub async fn timelines_merge_events_and_messages_in_time_order(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let c = store.create_contact(&ws, changes(json!({"email": "a@x.io"}))).await.unwrap();
    let api = Sender::Api("k".into());
    let base = crate::ids::now() - chrono::Duration::hours(1);
    let event = |minutes: i64, name: &str| NewEvent {
        name: name.into(),
        kind: EventKind::Track,
        properties: Default::default(),
        description: None,
        timestamp: base + chrono::Duration::minutes(minutes),
        received_at: base,
        message_id: None,
    };
    for (m, name) in [(0, "early"), (0, "early_too"), (120, "future")] {
        store.record_event(&ws, (IdentityKind::Email, "a@x.io".into()), event(m, name)).await.unwrap();
    }
    let mut new = NewConversation::new(c.id);
    new.first_message = Some(NewMessage::new(MessageType::Outgoing, "hi", api.clone()).unwrap());
    let conv = store.create_conversation(&ws, new).await.unwrap();
    store
        .add_message(&ws, &conv.id, NewMessage::new(MessageType::Incoming, "yo", Sender::Contact(c.id)).unwrap())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut page = PageRequest { after: None, limit: 2 };
    loop {
        let p = store.timeline(&ws, c.id, page.clone()).await.unwrap();
        seen.extend(p.items.iter().map(|i| match i {
            TimelineItem::Event(e) => e.event.name.clone(),
            TimelineItem::Message(m) => m.content.clone(),
        }));
        match p.next_cursor {
            Some(next) => page = PageRequest::parse(Some(&next), Some(2)).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, vec!["early", "early_too", "hi", "yo", "future"]);
    let other = store.create_workspace("o".into()).await.unwrap().id;
    assert!(matches!(
        store.timeline(&other, c.id, PageRequest::parse(None, None).unwrap()).await,
        Err(Error::NotFound { .. })
    ));
}

fn rep_row(v: Value) -> crate::rep::RepWrite {
    crate::rep::RepWrite::from_row(v.as_object().expect("object").clone(), None).expect("valid rep row")
}

fn call_row(v: Value) -> crate::call::CallWrite {
    crate::call::CallWrite::from_row(v.as_object().expect("object").clone()).expect("valid call row")
}

async fn all_reps(store: &dyn Store, ws: &str, filter: crate::rep::RepFilter) -> Vec<crate::rep::Rep> {
    use futures::StreamExt;
    store.stream_reps(ws, filter, 0, 1000).map(|r| r.expect("rep row")).collect().await
}

/// Reps: a bulk update creates and updates, clears with null, types its
/// attributes, and writes nothing when a row fails; lists filter, page,
/// count and stream; single writes honour their mode.
pub async fn reps_upsert_all_or_nothing_and_list(store: &dyn Store) {
    use crate::rep::{RepFilter, WriteMode};
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let other = store.create_workspace("o".into()).await.unwrap().id;
    let rows = vec![
        rep_row(json!({"rep_id": "mila", "name": "Mila", "department": "sales", "score": 3})),
        rep_row(json!({"rep_id": "liam", "department": "support", "active": 0})),
    ];
    let counts = store.upsert_reps(&ws, rows).await.unwrap();
    assert_eq!((counts.created, counts.updated), (2, 0));
    let counts = store
        .upsert_reps(
            &ws,
            vec![rep_row(json!({"rep_id": "mila", "name": null, "score": "4"})), rep_row(json!({"rep_id": "noor"}))],
        )
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated), (1, 1));
    let mila = store.get_rep(&ws, "mila").await.unwrap();
    assert_eq!(
        (mila.name.clone(), mila.attributes["score"].clone(), mila.department.as_deref()),
        (None, json!(4), Some("sales"))
    );
    // A failing row (text in a number field) rolls the whole update back.
    let err = store
        .upsert_reps(&ws, vec![rep_row(json!({"rep_id": "new1"})), rep_row(json!({"rep_id": "mila", "score": "high"}))])
        .await
        .unwrap_err();
    assert_eq!(err.row(), Some(1), "{err}");
    assert!(matches!(store.get_rep(&ws, "new1").await, Err(Error::NotFound { .. })));
    assert_eq!(store.count_reps(&ws, RepFilter::default()).await.unwrap(), 3);
    assert_eq!(store.count_reps(&other, RepFilter::default()).await.unwrap(), 0);
    let active = RepFilter { active: Some(true), ..Default::default() };
    let ids: Vec<String> = all_reps(store, &ws, active.clone()).await.into_iter().map(|r| r.rep_id).collect();
    assert_eq!(ids, ["mila", "noor"]);
    let support = RepFilter { department: Some("support".into()), ..Default::default() };
    assert_eq!(store.count_reps(&ws, support).await.unwrap(), 1);
    let page = store.list_reps(&ws, RepFilter::default(), PageRequest { after: None, limit: 2 }).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = store
        .list_reps(&ws, RepFilter::default(), PageRequest::parse(page.next_cursor.as_deref(), Some(10)).unwrap())
        .await
        .unwrap();
    assert_eq!(rest.items.iter().map(|r| r.rep_id.as_str()).collect::<Vec<_>>(), ["noor"]);
    {
        use futures::StreamExt;
        let second: Vec<_> = store.stream_reps(&ws, RepFilter::default(), 1, 1).collect().await;
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].as_ref().unwrap().rep_id, "liam");
    }
    {
        // Rendered straight from the rows, in chunks, with a separator.
        use futures::StreamExt;
        fn render(v: &crate::rep::RepView<'_>, out: &mut Vec<u8>) {
            let row = json!({"rep_id": v.rep_id, "name": v.name, "department": v.department, "active": v.active,
                "attributes": serde_json::from_str::<Value>(v.attributes_json).unwrap_or(Value::Null)});
            out.extend_from_slice(row.to_string().as_bytes());
        }
        let chunks: Vec<_> = store.stream_reps_rendered(&ws, RepFilter::default(), 0, 10, render, b",").collect().await;
        let text: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
        let rows: Value = serde_json::from_slice(&[b"[".as_slice(), &text, b"]"].concat()).unwrap();
        assert_eq!(
            rows,
            json!([
                {"rep_id": "mila", "name": null, "department": "sales", "active": true, "attributes": {"score": 4}},
                {"rep_id": "liam", "name": null, "department": "support", "active": false, "attributes": {}},
                {"rep_id": "noor", "name": null, "department": null, "active": true, "attributes": {}},
            ])
        );
        let second: Vec<_> = store.stream_reps_rendered(&ws, RepFilter::default(), 1, 1, render, b",").collect().await;
        assert_eq!(second.len(), 1);
        assert!(String::from_utf8_lossy(second[0].as_ref().unwrap()).contains("\"liam\""));
    }
    let created = store.write_rep(&ws, rep_row(json!({"rep_id": "zed"})), WriteMode::Create).await.unwrap();
    assert!(created.active);
    assert!(matches!(
        store.write_rep(&ws, rep_row(json!({"rep_id": "zed"})), WriteMode::Create).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        store.write_rep(&ws, rep_row(json!({"rep_id": "nope"})), WriteMode::Update).await,
        Err(Error::NotFound { .. })
    ));
    store.delete_rep(&ws, "zed").await.unwrap();
    assert!(matches!(store.delete_rep(&ws, "zed").await, Err(Error::NotFound { .. })));
    assert!(matches!(store.get_rep(&other, "mila").await, Err(Error::NotFound { .. })));
}

/// Calls: upserted by call id in one transaction; their contact is found or
/// created, unknown reps created; they are conversations with an activity
/// message; lists count and stream by start time.
pub async fn calls_upsert_by_call_id_with_contacts_and_reps(store: &dyn Store) {
    use crate::call::CallFilter;
    use futures::StreamExt;
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let known = store.create_contact(&ws, changes(json!({"email": "ann@x.io"}))).await.unwrap();
    let rows = vec![
        call_row(
            json!({"call_id": "b", "rep_id": "mila", "start_time": "2026-01-02T10:00:00Z", "duration": 60, "email": "ANN@x.io", "sentiment": 0.2}),
        ),
        call_row(
            json!({"call_id": "a", "start_time": "2026-01-01T10:00:00Z", "end_time": "2026-01-01T10:10:00Z", "phone": "+1 555 0100"}),
        ),
        call_row(json!({"call_id": "c", "start_time": "2026-01-03T10:00:00Z"})),
    ];
    let counts = store.upsert_calls(&ws, rows).await.unwrap();
    assert_eq!((counts.created, counts.updated), (3, 0));
    let b = store.get_call(&ws, "b").await.unwrap();
    assert_eq!(b.conversation.contact_id, Some(known.id));
    assert_eq!((b.conversation.channel.as_str(), b.conversation.status), ("call", ConversationStatus::Resolved));
    assert_eq!(b.details.attributes["sentiment"], json!(0.2));
    assert_eq!(store.get_conversation(&ws, &b.conversation.id).await.unwrap().id, b.conversation.id);
    assert!(store.get_rep(&ws, "mila").await.is_ok(), "an unknown rep is created");
    let a = store.get_call(&ws, "a").await.unwrap();
    assert_eq!(a.details.duration, Some(600.0));
    assert!(a.conversation.contact_id.is_some_and(|id| id != known.id), "a contact made from the phone");
    assert_eq!(store.get_call(&ws, "c").await.unwrap().conversation.contact_id, None);
    let timeline = store.timeline(&ws, known.id, PageRequest { after: None, limit: 10 }).await.unwrap();
    assert!(timeline.items.iter().any(|i| matches!(i, TimelineItem::Message(m) if m.content.starts_with("Call b"))));
    // Upsert: the same id changes the call; a failing row rolls back all.
    let counts = store
        .upsert_calls(&ws, vec![call_row(json!({"call_id": "a", "summary": "Renewal", "rep_id": "liam"}))])
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated), (0, 1));
    let a2 = store.get_call(&ws, "a").await.unwrap();
    assert_eq!(
        (a2.details.summary.as_deref(), a2.details.duration, a2.conversation.id.clone()),
        (Some("Renewal"), Some(600.0), a.conversation.id.clone())
    );
    // A contact given later: the call moves to its timeline.
    store.upsert_calls(&ws, vec![call_row(json!({"call_id": "c", "email": "late@x.io"}))]).await.unwrap();
    let late = store.get_call(&ws, "c").await.unwrap().conversation.contact_id.expect("a contact now");
    let timeline = store.timeline(&ws, late, PageRequest { after: None, limit: 10 }).await.unwrap();
    assert!(timeline.items.iter().any(|i| matches!(i, TimelineItem::Message(m) if m.content.starts_with("Call c"))));
    let err = store
        .upsert_calls(
            &ws,
            vec![
                call_row(json!({"call_id": "d", "start_time": "2026-01-04T00:00:00Z"})),
                call_row(json!({"call_id": "e"})),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.row(), Some(1), "{err}");
    assert!(matches!(store.get_call(&ws, "d").await, Err(Error::NotFound { .. })));
    let all = CallFilter::default();
    assert_eq!(store.count_calls(&ws, all.clone()).await.unwrap(), 3);
    let ids: Vec<String> = store.stream_calls(&ws, all, 0, 10).map(|c| c.unwrap().details.call_id).collect().await;
    assert_eq!(ids, ["a", "b", "c"], "by start time");
    let window = CallFilter {
        from: crate::ids::parse_time("2026-01-02T00:00:00Z"),
        to: crate::ids::parse_time("2026-01-03T00:00:00Z"),
        rep_id: None,
    };
    assert_eq!(store.count_calls(&ws, window).await.unwrap(), 1);
    let liam = CallFilter { rep_id: Some("liam".into()), ..Default::default() };
    assert_eq!(store.count_calls(&ws, liam).await.unwrap(), 1);
}

/// Reports: the same groups and numbers on every backend, checked against
/// values computed here; period and dimension filters; departments come
/// from the reps.
pub async fn reports_group_and_compute_the_same_numbers(store: &dyn Store) {
    use crate::report::{Metric, ReportQuery, Source};
    use std::collections::{BTreeMap, HashMap};
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    store
        .upsert_reps(
            &ws,
            vec![
                rep_row(json!({"rep_id": "r0", "department": "sales"})),
                rep_row(json!({"rep_id": "r1", "department": "support"})),
            ],
        )
        .await
        .unwrap();
    // A json field holds numbers and booleans alike.
    let score =
        NewField { entity: Entity::Conversation, name: "score".into(), label: None, field_type: FieldType::Json };
    store.create_field(&ws, score).await.unwrap();
    let mut rows = Vec::new();
    let mut want: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for i in 0..40u32 {
        let rep = format!("r{}", i % 3);
        let hour = (i * 5) % 48;
        let d = f64::from((i * 13) % 97);
        rows.push(call_row(json!({"call_id": format!("k{i}"), "rep_id": rep, "start_time": format!("2026-04-{:02}T{:02}:30:00Z", 1 + hour / 24, hour % 24), "duration": d, "talk": f64::from(i % 7) / 10.0, "won": i % 2 == 0, "score": if i % 4 == 0 { json!(true) } else { json!(i) }})));
        want.entry((rep, format!("2026-04-{:02}", 1 + hour / 24))).or_default().push(d);
    }
    store.upsert_calls(&ws, rows).await.unwrap();
    let fields: HashMap<String, FieldType> = HashMap::from([("talk".into(), FieldType::Number)]);
    let mut q = ReportQuery::new(Source::Conversations);
    q.group_by("rep_id", &fields).unwrap();
    q.group_by("day", &fields).unwrap();
    for m in ["count", "sum:duration", "min:duration", "max:duration", "p90:duration", "avg:talk"] {
        q.metrics.push(Metric::parse(m, q.source, &fields).unwrap());
    }
    let r = store.report(&ws, &q).await.unwrap();
    assert_eq!(r.rows, 40);
    assert_eq!(r.groups.len(), want.len());
    for g in &r.groups {
        let key = (g.dims[0].clone().unwrap(), crate::report::Bucket::Day.label(g.bucket.as_ref().unwrap()));
        let mut v = want[&key].clone();
        assert_eq!(g.values[0], Some(v.len() as f64), "{key:?}");
        assert_eq!(g.values[1], Some(v.iter().sum::<f64>()), "{key:?}");
        let p90 = crate::report::percentile(&mut v, 0.9);
        assert_eq!((g.values[2], g.values[3], g.values[4]), (Some(v[0]), v.last().copied(), Some(p90)), "{key:?}");
        assert!(g.values[5].is_some());
    }
    let mut by_dept = ReportQuery::new(Source::Conversations);
    by_dept.group_by("department", &fields).unwrap();
    by_dept.metrics.push(Metric::parse("count", by_dept.source, &fields).unwrap());
    by_dept.from = crate::ids::parse_time("2026-04-02T00:00:00Z");
    let r = store.report(&ws, &by_dept).await.unwrap();
    let got: Vec<(Option<String>, Option<f64>)> = r.groups.iter().map(|g| (g.dims[0].clone(), g.values[0])).collect();
    let count = |rep: &str| {
        want.iter().filter(|((r, d), _)| r == rep && d == "2026-04-02").map(|(_, v)| v.len()).sum::<usize>() as f64
    };
    assert_eq!(
        got,
        vec![
            (None, Some(count("r2"))),
            (Some("sales".into()), Some(count("r0"))),
            (Some("support".into()), Some(count("r1")))
        ]
    );
    // A narrow period (read through the time index on SQLite).
    let mut narrow = ReportQuery::new(Source::Conversations);
    narrow.metrics.push(Metric::parse("count", narrow.source, &fields).unwrap());
    narrow.from = crate::ids::parse_time("2026-04-01T00:00:00Z");
    narrow.to = crate::ids::parse_time("2026-04-01T05:00:00Z");
    let expected = (0..40u32).filter(|i| (i * 5) % 48 < 5).count() as f64;
    assert_eq!(store.report(&ws, &narrow).await.unwrap().groups[0].values[0], Some(expected));
    // JSON values read alike on every backend: booleans group as true/false
    // and are no value as a measure.
    let fields: HashMap<String, FieldType> =
        HashMap::from([("won".into(), FieldType::Boolean), ("score".into(), FieldType::Number)]);
    let mut by_won = ReportQuery::new(Source::Conversations);
    by_won.group_by("won", &fields).unwrap();
    by_won.metrics.push(Metric::parse("count", by_won.source, &fields).unwrap());
    by_won.metrics.push(Metric::parse("sum:score", by_won.source, &fields).unwrap());
    let r = store.report(&ws, &by_won).await.unwrap();
    let got: Vec<(Option<String>, Option<f64>, Option<f64>)> =
        r.groups.iter().map(|g| (g.dims[0].clone(), g.values[0], g.values[1])).collect();
    let odd: f64 = (0..40u32).filter(|i| i % 2 == 1).map(f64::from).sum();
    let even: f64 = (0..40u32).filter(|i| i % 2 == 0 && i % 4 != 0).map(f64::from).sum();
    assert_eq!(got, vec![(Some("false".into()), Some(20.0), Some(odd)), (Some("true".into()), Some(20.0), Some(even))]);
    let mut won = ReportQuery::new(Source::Conversations);
    won.metrics.push(Metric::parse("count", won.source, &fields).unwrap());
    won.filters.push((crate::report::Dimension::Field("won".into()), vec!["true".into()]));
    assert_eq!(store.report(&ws, &won).await.unwrap().groups[0].values[0], Some(20.0));
    let mut filtered = ReportQuery::new(Source::Conversations);
    filtered.metrics.push(Metric::parse("count", filtered.source, &fields).unwrap());
    filtered.filters.push((crate::report::Dimension::Department, vec!["support".into()]));
    let r = store.report(&ws, &filtered).await.unwrap();
    assert_eq!(
        r.groups[0].values[0],
        Some(want.iter().filter(|((r, _), _)| r == "r1").map(|(_, v)| v.len()).sum::<usize>() as f64)
    );
}

/// Console logins: a password hash per user, users found by email across
/// workspaces; sessions by workspace and hash, carrying the user's current
/// role; deleted on logout, purged after expiry.
pub async fn console_logins_and_sessions(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let other = store.create_workspace("o".into()).await.unwrap().id;
    let ann = user(store, &ws, "ann@x.io", true).await;
    let ann2 = user(store, &other, "ann@x.io", true).await;
    user(store, &ws, "bob@x.io", true).await;
    store.set_user_password(&ws, ann.id, "$argon2id$hash".into()).await.unwrap();
    assert!(matches!(store.set_user_password(&other, 999_999, "h".into()).await, Err(Error::NotFound { .. })));
    let mut logins = store.find_logins("ann@x.io").await.unwrap();
    logins.sort_by(|a, b| a.workspace_id.cmp(&b.workspace_id));
    assert_eq!(logins.len(), 2);
    let mine = logins.iter().find(|l| l.workspace_id == ws).unwrap();
    assert_eq!((mine.user.id, mine.password_hash.as_deref()), (ann.id, Some("$argon2id$hash")));
    let theirs = logins.iter().find(|l| l.workspace_id == other).unwrap();
    assert_eq!((theirs.user.id, theirs.password_hash.as_deref()), (ann2.id, None));
    assert!(store.find_logins("nobody@x.io").await.unwrap().is_empty());

    let now = crate::ids::now();
    let (cookie, new) = crate::session::start(&ws, ann.id, now);
    store.create_session(new.clone()).await.unwrap();
    let (cws, hash) = crate::session::parse_cookie(&cookie).unwrap();
    let found = store.get_session(cws, &hash).await.unwrap().unwrap();
    assert_eq!((found.user.id, found.user.role, found.csrf.as_str()), (ann.id, Role::Agent, new.csrf.as_str()));
    assert!(found.usable(now));
    assert!(store.get_session(&other, &hash).await.unwrap().is_none(), "another workspace's session is not found");
    store.update_user(&ws, ann.id, UserChanges { role: Some(Role::Viewer), ..Default::default() }).await.unwrap();
    assert_eq!(store.get_session(&ws, &hash).await.unwrap().unwrap().user.role, Role::Viewer, "the role is current");
    store.update_user(&ws, ann.id, UserChanges { active: Some(false), ..Default::default() }).await.unwrap();
    assert!(!store.get_session(&ws, &hash).await.unwrap().unwrap().usable(now), "inactive users are out");
    store.delete_session(&ws, &hash).await.unwrap();
    assert!(store.get_session(&ws, &hash).await.unwrap().is_none());
    store.delete_session(&ws, &hash).await.unwrap();

    let (_, old) = crate::session::start(&ws, ann.id, now - chrono::Duration::days(2));
    let (_, live) = crate::session::start(&ws, ann.id, now);
    store.create_session(old.clone()).await.unwrap();
    store.create_session(live.clone()).await.unwrap();
    assert_eq!(store.purge_sessions(now).await.unwrap(), 1);
    assert!(store.get_session(&ws, &old.token_hash).await.unwrap().is_none());
    assert!(store.get_session(&ws, &live.token_hash).await.unwrap().is_some());
}

/// The console's contact search: an identity prefix, a tag, a trait's
/// value in its text form.
pub async fn contact_lists_search_by_prefix_tag_and_field(store: &dyn Store) {
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let rows = [
        json!({"email": "ann@acme.io", "traits": {"tags": ["vip", "eu"], "plan": "pro", "seats": 5, "trial": true}}),
        json!({"email": "andy@acme.io", "traits": {"tags": ["eu"], "plan": "free", "seats": 5.5}}),
        json!({"mobile": "+15550001", "external_id": "AN-7", "traits": {"plan": "pro", "trial": false}}),
        json!({"email": "bob@b.io", "traits": {"tags": ["vip"], "plan's \"q\"": "x"}}),
    ];
    let mut ids = Vec::new();
    for row in rows {
        ids.push(store.create_contact(&ws, changes(row)).await.unwrap().id);
    }
    let ws = ws.as_str();
    let find = |filter: ContactFilter| async move {
        let page = store.list_contacts(ws, filter, PageRequest::default()).await.unwrap();
        page.items.iter().map(|c| c.id).collect::<Vec<_>>()
    };
    let search = |q: &str| ContactFilter { search: Some(q.into()), ..Default::default() };
    assert_eq!(find(search("an")).await, vec![ids[0], ids[1]]);
    assert_eq!(find(search("AN")).await, vec![ids[0], ids[1], ids[2]], "emails ignore case; AN-7 matches too");
    assert_eq!(find(search("an-")).await, Vec::<i64>::new(), "external ids keep their case");
    assert_eq!(find(search("AN-")).await, vec![ids[2]]);
    assert_eq!(find(search("+1555")).await, vec![ids[2]]);
    assert_eq!(find(search("%")).await, Vec::<i64>::new(), "wildcards are literal");
    let tag = |t: &str| ContactFilter { tag: Some(t.into()), ..Default::default() };
    assert_eq!(find(tag("vip")).await, vec![ids[0], ids[3]]);
    assert_eq!(find(tag("v")).await, Vec::<i64>::new());
    let field = |k: &str, v: &str| ContactFilter { field: Some((k.into(), v.into())), ..Default::default() };
    assert_eq!(find(field("plan", "pro")).await, vec![ids[0], ids[2]]);
    assert_eq!(find(field("seats", "5")).await, vec![ids[0]]);
    assert_eq!(find(field("seats", "5.5")).await, vec![ids[1]]);
    assert_eq!(find(field("trial", "true")).await, vec![ids[0]]);
    assert_eq!(find(field("trial", "false")).await, vec![ids[2]]);
    assert_eq!(find(field("plan's \"q\"", "x")).await, vec![ids[3]], "any trait name");
    let both =
        ContactFilter { tag: Some("eu".into()), field: Some(("plan".into(), "pro".into())), ..Default::default() };
    assert_eq!(find(both).await, vec![ids[0]]);
}

/// Exports: every entity streams as rendered cells named by its columns,
/// in cursor order, only the workspace's rows; `since` keeps rows changed
/// (events and messages: created) at or after a time; a cursor resumes
/// after its row; a text cursor naming no row is refused.
pub async fn exports_stream_every_entity_in_order_since_and_after_a_cursor(store: &dyn Store) {
    use crate::export::{Cell, ExportCursor, ExportEntity, ExportQuery};
    use futures::StreamExt;

    async fn export(
        store: &dyn Store,
        ws: &str,
        entity: ExportEntity,
        since: Option<chrono::DateTime<chrono::Utc>>,
        after: Option<ExportCursor>,
    ) -> crate::Result<Vec<Value>> {
        let columns = entity.columns();
        let render = Box::new(move |cells: &[Cell<'_>], out: &mut Vec<u8>| {
            assert_eq!(cells.len(), columns.len());
            let mut row = serde_json::Map::new();
            for (column, cell) in columns.iter().zip(cells) {
                let value = match *cell {
                    Cell::Null => Value::Null,
                    Cell::Int(i) => json!(i),
                    Cell::Bool(b) => json!(b),
                    Cell::Text(t) => json!(std::str::from_utf8(t).expect("UTF-8")),
                    Cell::Json(j) => serde_json::from_slice(j).expect("stored JSON"),
                    Cell::Time(t) => {
                        let (text, z) = crate::export::native_time(t);
                        let text = std::str::from_utf8(text).expect("UTF-8");
                        json!(if z { format!("{text}Z") } else { text.to_string() })
                    }
                };
                row.insert(column.name.to_string(), value);
            }
            out.extend_from_slice(Value::Object(row).to_string().as_bytes());
            out.push(b'\n');
        });
        let chunks: Vec<_> = store.export_rendered(ws, ExportQuery { entity, since, after }, render).collect().await;
        let mut rows = Vec::new();
        for chunk in chunks {
            let chunk = chunk?;
            assert!(chunk.ends_with(b"\n"), "chunks hold whole rows");
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                rows.push(serde_json::from_slice::<Value>(line).expect("a rendered row"));
            }
        }
        Ok(rows)
    }
    let t = |time: &chrono::DateTime<chrono::Utc>| serde_json::to_value(time).unwrap();

    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let other = store.create_workspace("o".into()).await.unwrap().id;
    store.create_contact(&other, changes(json!({"email": "other@x.io"}))).await.unwrap();
    let mut contacts = Vec::new();
    for (i, traits) in [json!({"plan": "pro", "tags": ["a"]}), json!({"note": "a \"quoted\",\nline"}), json!({})]
        .into_iter()
        .enumerate()
    {
        contacts.push(
            store.create_contact(&ws, changes(json!({"email": format!("c{i}@x.io"), "traits": traits}))).await.unwrap(),
        );
        // The workspace's contacts spread thin among another's (a store may
        // read a dense workspace differently).
        for j in 0..2 * usize::from(i < 2) {
            store.create_contact(&other, changes(json!({"email": format!("o{i}{j}@x.io")}))).await.unwrap();
        }
    }
    let co = store.create_company(&ws, company(json!({"external_id": "acme", "traits": {"size": 5}}))).await.unwrap();
    store.create_company(&ws, company(json!({"external_id": "beta"}))).await.unwrap();
    let engagement = |name: &str| {
        let data = json!({"outcome": "won"}).as_object().unwrap().clone();
        crate::event::new_engagement(name, "Described", data, crate::ids::now()).unwrap()
    };
    for name in ["Demo", "Call"] {
        store.record_event(&ws, (IdentityKind::Email, "c0@x.io".into()), engagement(name)).await.unwrap();
    }
    let api = Sender::Api("key_1".into());
    let mut convs = Vec::new();
    for subject in ["one", "two"] {
        let mut new = NewConversation::new(contacts[0].id);
        new.subject = Some(subject.into());
        new.labels = vec!["vip".into()];
        new.first_message = Some(NewMessage::new(MessageType::Outgoing, "Hello", api.clone()).unwrap());
        convs.push(store.create_conversation(&ws, new).await.unwrap());
    }
    let reply = NewMessage::new(MessageType::Incoming, "Thanks", Sender::Contact(contacts[0].id)).unwrap();
    store.add_message(&ws, &convs[0].id, reply).await.unwrap();
    store
        .upsert_reps(&ws, vec![rep_row(json!({"rep_id": "zoe", "score": 3})), rep_row(json!({"rep_id": "adam"}))])
        .await
        .unwrap();
    store.upsert_reps(&ws, vec![rep_row(json!({"rep_id": "mila", "active": false}))]).await.unwrap();

    // Every entity, as the domain objects read back one by one.
    let first = PageRequest::parse(None, Some(1000)).unwrap();
    let expected_contacts: Vec<Value> = store
        .list_contacts(&ws, ContactFilter::default(), first.clone())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| {
            json!({"id": c.id, "email": c.state.email, "mobile": c.state.mobile, "external_id": c.state.external_id,
                "anonymous_id": c.state.anonymous_id, "traits": c.state.traits,
                "subscription_status": c.state.subscription_status, "company_id": c.company_id,
                "created_at": t(&c.created_at), "updated_at": t(&c.updated_at)})
        })
        .collect();
    assert_eq!(expected_contacts.len(), 3);
    assert_eq!(export(store, &ws, ExportEntity::Contacts, None, None).await.unwrap(), expected_contacts);
    let expected_events: Vec<Value> = store
        .list_events(&ws, EventFilter::default(), first.clone())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| {
            json!({"id": e.id, "contact_id": e.contact_id, "event": e.event.name, "kind": e.event.kind,
                "properties": e.event.properties, "description": e.event.description,
                "timestamp": t(&e.event.timestamp), "received_at": t(&e.event.received_at),
                "message_id": e.event.message_id})
        })
        .collect();
    assert_eq!(expected_events.len(), 2);
    assert_eq!(export(store, &ws, ExportEntity::Events, None, None).await.unwrap(), expected_events);
    let listed = store.list_conversations(&ws, ConversationFilter::default(), first.clone()).await.unwrap().items;
    let expected_convs: Vec<Value> = listed
        .iter()
        .map(|c| {
            json!({"id": c.id, "contact_id": c.contact_id, "status": c.status, "assignee_id": c.assignee_id,
                "channel": c.channel, "subject": c.subject, "labels": c.labels, "messages_count": c.messages_count,
                "created_at": t(&c.created_at), "updated_at": t(&c.updated_at),
                "last_message_at": c.last_message_at.as_ref().map(t)})
        })
        .collect();
    assert_eq!(listed.iter().map(|c| &c.id).collect::<Vec<_>>(), [&convs[0].id, &convs[1].id]);
    assert_eq!(export(store, &ws, ExportEntity::Conversations, None, None).await.unwrap(), expected_convs);
    let mut expected_messages = Vec::new();
    for c in &listed {
        let page = store.list_messages(&ws, &c.id, MessageFilter::default(), first.clone()).await.unwrap();
        expected_messages.extend(page.items.into_iter().map(|m| {
            let (kind, id) = m.sender.parts();
            json!({"id": m.id, "conversation_id": m.conversation_id, "type": m.kind, "content": m.content,
                "sender.type": kind, "sender.id": id, "created_at": t(&m.created_at)})
        }));
    }
    expected_messages.sort_by_key(|m| m["id"].as_i64());
    assert_eq!(expected_messages.len(), 3);
    assert_eq!(export(store, &ws, ExportEntity::Messages, None, None).await.unwrap(), expected_messages);
    let expected_reps: Vec<Value> = all_reps(store, &ws, Default::default())
        .await
        .iter()
        .map(|r| {
            json!({"rep_id": r.rep_id, "name": r.name, "email": r.email, "department": r.department,
                "active": r.active, "attributes": r.attributes, "created_at": t(&r.created_at),
                "updated_at": t(&r.updated_at)})
        })
        .collect();
    let rep_ids: Vec<&str> = expected_reps.iter().map(|r| r["rep_id"].as_str().unwrap()).collect();
    assert_eq!(rep_ids, ["zoe", "adam", "mila"], "creation order");
    assert_eq!(export(store, &ws, ExportEntity::Reps, None, None).await.unwrap(), expected_reps);
    let expected_companies: Vec<Value> = store
        .list_companies(&ws, CompanyFilter::default(), first.clone())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| {
            json!({"id": c.id, "external_id": c.external_id, "domain": c.domain, "traits": c.traits,
                "created_at": t(&c.created_at), "updated_at": t(&c.updated_at)})
        })
        .collect();
    assert_eq!(expected_companies.len(), 2);
    assert_eq!(export(store, &ws, ExportEntity::Companies, None, None).await.unwrap(), expected_companies);

    // Resuming after a row gives exactly the rows after it; after the last, none.
    for entity in ExportEntity::ALL {
        let all = export(store, &ws, entity, None, None).await.unwrap();
        let key = entity.columns()[0].name;
        for (i, row) in all.iter().enumerate() {
            let cursor = match &row[key] {
                Value::Number(n) => ExportCursor::Id(n.as_i64().unwrap()),
                other => ExportCursor::Key(other.as_str().unwrap().to_string()),
            };
            let rest = export(store, &ws, entity, None, Some(cursor)).await.unwrap();
            assert_eq!(rest, all[i + 1..], "{entity:?} after row {i}");
        }
        // The other workspace's only rows are 5 contacts; nothing else shows.
        let others = export(store, &other, entity, None, None).await.unwrap();
        assert_eq!(others.len(), 5 * usize::from(entity == ExportEntity::Contacts), "{entity:?}");
        if entity.integer_key() {
            assert_eq!(
                export(store, &ws, entity, None, Some(ExportCursor::Id(i64::MAX))).await.unwrap(),
                Vec::<Value>::new()
            );
        } else {
            let err = export(store, &ws, entity, None, Some(ExportCursor::Key("nope".into()))).await.unwrap_err();
            assert_eq!(err.field(), Some("cursor"), "{err}");
        }
    }
    assert_eq!(
        export(store, &other, ExportEntity::Contacts, None, None).await.unwrap()[0]["email"],
        json!("other@x.io")
    );

    // `since`: what changed (was created) at or after the time.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = crate::ids::now();
    store.update_contact(&ws, contacts[1].id, changes(json!({"traits": {"plan": "team"}}))).await.unwrap();
    store.update_company(&ws, co.id, company(json!({"domain": "acme.com"}))).await.unwrap();
    store.record_event(&ws, (IdentityKind::Email, "c2@x.io".into()), engagement("Later")).await.unwrap();
    let later = NewMessage::new(MessageType::Outgoing, "Later", api.clone()).unwrap();
    store.add_message(&ws, &convs[1].id, later).await.unwrap();
    store.upsert_reps(&ws, vec![rep_row(json!({"rep_id": "adam", "name": "Adam"}))]).await.unwrap();
    let pick = |rows: Vec<Value>, key: &str| rows.into_iter().map(|r| r[key].clone()).collect::<Vec<_>>();
    let since_rows = |entity| export(store, &ws, entity, Some(since), None);
    assert_eq!(pick(since_rows(ExportEntity::Contacts).await.unwrap(), "id"), [json!(contacts[1].id)]);
    assert_eq!(pick(since_rows(ExportEntity::Companies).await.unwrap(), "id"), [json!(co.id)]);
    assert_eq!(pick(since_rows(ExportEntity::Events).await.unwrap(), "event"), [json!("Later")]);
    assert_eq!(pick(since_rows(ExportEntity::Messages).await.unwrap(), "content"), [json!("Later")]);
    assert_eq!(pick(since_rows(ExportEntity::Conversations).await.unwrap(), "id"), [json!(convs[1].id)]);
    assert_eq!(pick(since_rows(ExportEntity::Reps).await.unwrap(), "rep_id"), [json!("adam")]);
    // `since` and a cursor together.
    let cursor = Some(ExportCursor::Id(contacts[1].id));
    assert_eq!(export(store, &ws, ExportEntity::Contacts, Some(since), cursor).await.unwrap(), Vec::<Value>::new());
}

/// Erasure: the contact, its events and history go; its conversations stay
/// for reports, unlinked, their content erased; message ids and job errors
/// that carried an identity go; the audit record keeps hashes only; the
/// identities are refused until the suppression is lifted.
pub async fn erasure_removes_every_trace_and_suppresses_the_identities(store: &dyn Store) {
    use crate::erase::{ERASED, EraseTarget, identity_hash};
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let other = store.create_workspace("o".into()).await.unwrap().id;
    let ann = store
        .create_contact(&ws, changes(json!({"email": "ann@x.io", "external_id": "ANN-1", "traits": {"plan": "pro"}})))
        .await
        .unwrap();
    let bob = store.create_contact(&ws, changes(json!({"email": "bob@x.io"}))).await.unwrap();
    store.update_contact(&ws, ann.id, changes(json!({"subscription_status": "UNSUBSCRIBED"}))).await.unwrap();
    let at = crate::ids::now();
    let event = crate::event::new_engagement("Demo", "for ann@x.io", serde_json::Map::new(), at).unwrap();
    store.record_event(&ws, (IdentityKind::Email, "ann@x.io".into()), event.clone()).await.unwrap();
    store.record_event(&ws, (IdentityKind::Email, "bob@x.io".into()), event).await.unwrap();
    let mut conv = NewConversation::new(ann.id);
    conv.subject = Some("Ann's refund".into());
    conv.first_message =
        Some(NewMessage::new(MessageType::Incoming, "I am Ann, ann@x.io", Sender::Contact(ann.id)).unwrap());
    let conv = store.create_conversation(&ws, conv).await.unwrap();
    // A message id that carries the email, and a job whose row error names it.
    let mut with_id = ident(IdentityKind::ExternalId, "ANN-1", json!({"seen": 1}));
    if let IngestItem::Identify { message_id, .. } = &mut with_id {
        *message_id = Some("signup-ann@x.io".into());
    }
    store.enqueue(job(&ws, vec![with_id.clone()])).await.unwrap();
    drain(store).await;

    assert!(matches!(
        store.erase_contact(&other, EraseTarget::Id(ann.id), "test".into()).await,
        Err(Error::NotFound { .. })
    ));
    let erasure = store
        .erase_contact(&ws, EraseTarget::Identity(IdentityKind::Email, "ann@x.io".into()), "key:k1".into())
        .await
        .unwrap();
    assert_eq!((erasure.contact_id, erasure.events, erasure.messages, erasure.conversations), (ann.id, 1, 1, 1));
    assert_eq!(erasure.dedupe, 1);
    let mut kinds: Vec<&str> = erasure.identities.iter().map(|(k, _)| k.field()).collect();
    kinds.sort();
    assert_eq!(kinds, ["email", "external_id"]);
    assert!(erasure.identities.contains(&(IdentityKind::Email, identity_hash(&ws, IdentityKind::Email, "ann@x.io"))));
    assert!(matches!(store.get_contact(&ws, ann.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        store.erase_contact(&ws, EraseTarget::Id(ann.id), "again".into()).await,
        Err(Error::NotFound { .. })
    ));
    let events = store.list_events(&ws, EventFilter::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(events.iter().map(|e| e.contact_id).collect::<Vec<_>>(), vec![bob.id], "only bob's event is left");
    let kept = store.get_conversation(&ws, &conv.id).await.unwrap();
    assert_eq!((kept.contact_id, kept.subject.as_deref()), (None, None));
    let msgs = store.list_messages(&ws, &conv.id, MessageFilter::default(), PageRequest::default()).await.unwrap();
    assert!(msgs.items.iter().all(|m| m.content == ERASED), "{:?}", msgs.items);
    assert!(store.get_contact(&ws, bob.id).await.is_ok(), "others are untouched");

    // The identities are refused on every write path, naming the field only.
    let refused = store.create_contact(&ws, changes(json!({"email": "ann@x.io"}))).await.unwrap_err();
    assert_eq!(refused.field(), Some("email"));
    assert!(!refused.to_string().contains("ann@x.io"));
    let refused = store.update_contact(&ws, bob.id, changes(json!({"external_id": "ANN-1"}))).await.unwrap_err();
    assert_eq!(refused.field(), Some("external_id"));
    let queued = job(&ws, vec![with_id]);
    let queued_id = queued.id.clone();
    store.enqueue(queued).await.unwrap();
    drain(store).await;
    let failed = store.get_job(&ws, &queued_id).await.unwrap();
    assert_eq!(
        (failed.status, failed.failed),
        (JobStatus::Failed, 1),
        "the old message id no longer dedupes; the row is refused"
    );
    let outcome = store
        .upsert_contacts(&ws, vec![by_email(0, "ann@x.io", json!({"plan": "x"}))], BatchOptions::default())
        .await
        .unwrap();
    assert_eq!(outcome.rows[0].outcome.as_ref().unwrap_err().field(), Some("email"), "the batch row is refused");
    // Other workspaces are not affected; lifting the suppression lets it back.
    store.create_contact(&other, changes(json!({"email": "ann@x.io"}))).await.unwrap();
    assert!(store.lift_suppression(&ws, IdentityKind::Email, "ann@x.io").await.unwrap());
    assert!(!store.lift_suppression(&ws, IdentityKind::Email, "ann@x.io").await.unwrap());
    store.create_contact(&ws, changes(json!({"email": "ann@x.io"}))).await.unwrap();
    let audit = store.list_erasures(&ws, PageRequest::default()).await.unwrap().items;
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].id.as_str(), audit[0].actor.as_str(), audit[0].events), (erasure.id.as_str(), "key:k1", 1));
    assert_eq!(audit[0].identities.len(), 2);
    assert!(store.list_erasures(&other, PageRequest::default()).await.unwrap().items.is_empty());
}

/// A write that leaves a contact, company or rep as it was — through a
/// batch, a queued identify, a native update, a reps update or per-row rep
/// upserts — writes nothing: the row, `updated_at` included, stays as it
/// was, no subscription change is recorded, and the row reports
/// `Unchanged`. A write that changes a value still moves `updated_at`.
pub async fn unchanged_upserts_write_nothing_and_keep_updated_at(store: &dyn Store) {
    use crate::rep::{RepUpsert, WriteMode};
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(5));
    let ws = store.create_workspace("w".into()).await.unwrap().id;
    let co = store.create_company(&ws, company(json!({"external_id": "acme"}))).await.unwrap();

    // Contacts.
    let mut row = by_email(0, "a@x.io", json!({"plan": "pro", "seats": 3, "tags": {"add": ["vip"]}}));
    row.changes.subscription_status = Some(SubscriptionStatus::Pending);
    row.changes.identities.push((IdentityKind::Mobile, Some("+15550001111".into())));
    let first = store.upsert_contacts(&ws, vec![row.clone()], BatchOptions::default()).await.unwrap();
    let id = first.rows[0].outcome.as_ref().unwrap().1.id;
    let linked = store.update_contact(&ws, id, changes(json!({"company_id": co.id}))).await.unwrap();
    let stored = store.get_contact(&ws, id).await.unwrap();
    assert_eq!(stored, linked);
    pause().await;
    let again = store.upsert_contacts(&ws, vec![row.clone()], BatchOptions::default()).await.unwrap();
    let (status, answered) = again.rows[0].outcome.as_ref().unwrap();
    assert_eq!(*status, RowStatus::Unchanged);
    assert_eq!(answered, &stored, "the batch answers the row as stored");
    assert_eq!(store.get_contact(&ws, id).await.unwrap(), stored, "an unchanged batch row is not written");
    store
        .enqueue(job(
            &ws,
            vec![IngestItem::Identify { lookups: row.lookups.clone(), changes: row.changes.clone(), message_id: None }],
        ))
        .await
        .unwrap();
    drain(store).await;
    assert_eq!(store.get_contact(&ws, id).await.unwrap(), stored, "an unchanged identify is not written");
    let same = json!({"email": "a@x.io", "mobile": "+15550001111", "subscription_status": "PENDING",
        "company_id": co.id, "traits": {"plan": "pro", "tags": ["vip"]}});
    assert_eq!(store.update_contact(&ws, id, changes(same)).await.unwrap(), stored);
    assert_eq!(store.get_contact(&ws, id).await.unwrap(), stored, "an unchanged update is not written");
    let history = store.subscription_history(&ws, id, PageRequest::parse(None, None).unwrap()).await.unwrap();
    assert_eq!(history.items.len(), 1, "only the creation recorded a status: {:?}", history.items);
    let mut changed = row.clone();
    changed.changes.traits = crate::merge::TraitOp::parse_map(json!({"seats": 4}).as_object().unwrap()).unwrap();
    let outcome = store.upsert_contacts(&ws, vec![changed], BatchOptions::default()).await.unwrap();
    assert_eq!(outcome.rows[0].outcome.as_ref().map(|(s, _)| *s).ok(), Some(RowStatus::Updated));
    let after = store.get_contact(&ws, id).await.unwrap();
    assert!(after.updated_at > stored.updated_at, "a change moves updated_at");
    assert_eq!((after.company_id, after.created_at), (Some(co.id), stored.created_at));

    // Companies.
    let write = |v: Value| CompanyUpsert { row: 0, external_id: "acme".into(), changes: company(v) };
    let body = json!({"domain": "Acme.com", "traits": {"size": "11-50"}});
    store.upsert_companies(&ws, vec![write(body.clone())], BatchOptions::default()).await.unwrap();
    let stored = store.get_company(&ws, co.id).await.unwrap();
    pause().await;
    let again = store.upsert_companies(&ws, vec![write(body.clone())], BatchOptions::default()).await.unwrap();
    let (status, answered) = again.rows[0].outcome.as_ref().unwrap();
    assert_eq!((*status, answered), (RowStatus::Unchanged, &stored));
    assert_eq!(store.update_company(&ws, co.id, company(body)).await.unwrap(), stored);
    assert_eq!(store.get_company(&ws, co.id).await.unwrap(), stored, "an unchanged company is not written");
    let moved = store.update_company(&ws, co.id, company(json!({"domain": "acme.io"}))).await.unwrap();
    assert!(moved.updated_at > stored.updated_at);

    // Reps.
    let rep = json!({"rep_id": "mila", "name": "Mila", "email": "mila@x.io", "active": 0, "level": 3});
    let counts = store.upsert_reps(&ws, vec![rep_row(rep.clone())]).await.unwrap();
    assert_eq!(counts.created, 1);
    let stored = store.get_rep(&ws, "mila").await.unwrap();
    pause().await;
    let counts = store.upsert_reps(&ws, vec![rep_row(rep.clone())]).await.unwrap();
    assert_eq!((counts.created, counts.updated, counts.unchanged), (0, 0, 1));
    let rows = vec![
        RepUpsert { row: 0, write: rep_row(rep.clone()) },
        RepUpsert { row: 1, write: rep_row(json!({"rep_id": "noor", "level": "high"})) },
        RepUpsert { row: 2, write: rep_row(json!({"rep_id": "liam"})) },
    ];
    let results = store.upsert_rep_rows(&ws, rows).await.unwrap();
    let statuses: Vec<_> =
        results.iter().map(|r| (r.row, r.outcome.as_ref().map(|(s, _)| *s).map_err(|e| e.code()))).collect();
    assert_eq!(
        statuses,
        vec![(0, Ok(RowStatus::Unchanged)), (1, Err(crate::ErrorCode::InvalidValue)), (2, Ok(RowStatus::Created))],
        "a failed row fails alone"
    );
    assert!(matches!(store.get_rep(&ws, "noor").await, Err(Error::NotFound { .. })));
    store.get_rep(&ws, "liam").await.unwrap();
    assert_eq!(store.write_rep(&ws, rep_row(rep), WriteMode::Update).await.unwrap(), stored);
    assert_eq!(store.get_rep(&ws, "mila").await.unwrap(), stored, "an unchanged rep is not written");
    let moved = store.write_rep(&ws, rep_row(json!({"rep_id": "mila", "active": 1})), WriteMode::Update).await.unwrap();
    assert!(moved.updated_at > stored.updated_at);
}

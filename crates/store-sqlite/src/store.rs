//! `impl Store for SqliteStore`: reads on the reader pool, writes through
//! the writer thread.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use convene_core::batch::{BatchOptions, BatchOutcome, CompanyUpsert, ContactUpsert, RowResult};
use convene_core::company::{Company, CompanyChanges, CompanyFilter};
use convene_core::contact::{Contact, ContactChanges, ContactFilter, SubscriptionChange};
use convene_core::conversation::{
    Conversation, ConversationChanges, ConversationFilter, Message, MessageFilter, NewConversation, NewMessage, Sender,
    TimelineItem,
};
use convene_core::field::{Entity, Field};
use convene_core::identity::IdentityKind;
use convene_core::page::{Page, PageRequest};
use convene_core::session::{NewSession, Session, UserLogin};
use convene_core::store::NewField;
use convene_core::token::TokenHash;
use convene_core::user::{User, UserChanges};
use convene_core::workspace::{
    ApiKey, KeyRecord, NewKey, NewServiceAccount, ServiceAccount, ServiceAccountUpdate, Workspace,
};
use convene_core::{Result, Store};

use std::sync::atomic::Ordering;

use convene_core::erase::{EraseTarget, Erasure};
use convene_core::event::{Event, EventFilter, NewEvent};
use convene_core::ingest::{ApplyReport, Job, QueuedJob};

use crate::conn::storage;
use convene_core::call::{Call, CallFilter, CallWrite};
use convene_core::export::{ExportQuery, ExportRenderer};
use convene_core::rep::{Rep, RepFilter, RepRenderer, RepUpsert, RepWrite, UpsertCounts, WriteMode};
use convene_core::report::{ReportQuery, ReportResult};
use convene_core::store::RowStream;

use crate::{
    SqliteStore, apply, batch, calls, companies, contacts, conversations, erase, events, export, keys, reports, reps,
    sessions, workspaces,
};

fn owned(s: &str) -> String {
    s.to_string()
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.readers.run(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(storage)).await
    }

    async fn create_workspace(&self, name: String) -> Result<Workspace> {
        self.writer.run(move |ctx| workspaces::create_workspace(&ctx.conn, name)).await
    }
    async fn list_workspaces(&self, page: PageRequest) -> Result<Page<Workspace>> {
        self.readers.run(move |c| workspaces::list_workspaces(c, &page)).await
    }
    async fn get_workspace(&self, id: &str) -> Result<Workspace> {
        let id = owned(id);
        self.readers.run(move |c| workspaces::get_workspace(c, &id)).await
    }

    async fn create_service_account(&self, ws: &str, new: NewServiceAccount) -> Result<ServiceAccount> {
        let ws = owned(ws);
        self.writer.run(move |ctx| workspaces::create_service_account(&ctx.conn, &ws, new)).await
    }
    async fn list_service_accounts(&self, ws: &str, page: PageRequest) -> Result<Page<ServiceAccount>> {
        let ws = owned(ws);
        self.readers.run(move |c| workspaces::list_service_accounts(c, &ws, &page)).await
    }
    async fn get_service_account(&self, ws: &str, id: &str) -> Result<ServiceAccount> {
        let (ws, id) = (owned(ws), owned(id));
        self.readers.run(move |c| workspaces::get_service_account(c, &ws, &id)).await
    }
    async fn update_service_account(&self, ws: &str, id: &str, update: ServiceAccountUpdate) -> Result<ServiceAccount> {
        let (ws, id) = (owned(ws), owned(id));
        self.writer.run(move |ctx| workspaces::update_service_account(&ctx.conn, &ws, &id, update)).await
    }

    async fn create_key(&self, ws: &str, new: NewKey) -> Result<ApiKey> {
        let ws = owned(ws);
        self.writer.run(move |ctx| keys::create_key(&ctx.conn, &ws, new)).await
    }
    async fn list_keys(&self, ws: &str, page: PageRequest) -> Result<Page<ApiKey>> {
        let ws = owned(ws);
        self.readers.run(move |c| keys::list_keys(c, &ws, &page)).await
    }
    async fn get_key(&self, ws: &str, id: &str) -> Result<ApiKey> {
        let (ws, id) = (owned(ws), owned(id));
        self.readers.run(move |c| keys::get_key(c, &ws, &id)).await
    }
    async fn revoke_key(&self, ws: &str, id: &str) -> Result<ApiKey> {
        let (ws, id) = (owned(ws), owned(id));
        self.writer.run(move |ctx| keys::revoke_key(&ctx.conn, &ws, &id)).await
    }
    async fn find_key(&self, hash: &TokenHash) -> Result<Option<KeyRecord>> {
        let hash = hash.clone();
        self.readers.run(move |c| keys::find_key(c, &hash)).await
    }
    async fn touch_keys(&self, used: Vec<(String, DateTime<Utc>)>) -> Result<()> {
        self.writer.run(move |ctx| keys::touch_keys(&ctx.conn, &used)).await
    }

    async fn list_fields(&self, ws: &str, entity: Option<Entity>, page: PageRequest) -> Result<Page<Field>> {
        let ws = owned(ws);
        self.readers.run(move |c| workspaces::list_fields(c, &ws, entity, &page)).await
    }
    async fn create_field(&self, ws: &str, new: NewField) -> Result<Field> {
        let ws = owned(ws);
        self.writer
            .run(move |ctx| {
                let field = workspaces::create_field(&ctx.conn, &ws, new)?;
                ctx.registry(&ws, field.entity)?.insert(field.name.clone(), field.field_type);
                Ok(field)
            })
            .await
    }

    async fn create_contact(&self, ws: &str, changes: ContactChanges) -> Result<Contact> {
        let ws = owned(ws);
        self.writer.run(move |ctx| contacts::create(ctx, &ws, &changes)).await
    }
    async fn get_contact(&self, ws: &str, id: i64) -> Result<Contact> {
        let ws = owned(ws);
        self.readers.run(move |c| contacts::get(c, &ws, id)).await
    }
    async fn update_contact(&self, ws: &str, id: i64, changes: ContactChanges) -> Result<Contact> {
        let ws = owned(ws);
        self.writer.run(move |ctx| contacts::update(ctx, &ws, id, &changes)).await
    }
    async fn delete_contact(&self, ws: &str, id: i64) -> Result<()> {
        let ws = owned(ws);
        self.writer.run(move |ctx| contacts::delete(&ctx.conn, &ws, id)).await
    }
    async fn list_contacts(&self, ws: &str, filter: ContactFilter, page: PageRequest) -> Result<Page<Contact>> {
        let ws = owned(ws);
        self.readers.run(move |c| contacts::list(c, &ws, &filter, &page)).await
    }

    async fn upsert_contacts(
        &self,
        ws: &str,
        rows: Vec<ContactUpsert>,
        options: BatchOptions,
    ) -> Result<BatchOutcome<Contact>> {
        let ws = owned(ws);
        self.writer.run(move |ctx| batch::upsert_contacts(ctx, &ws, &rows, options)).await
    }
    async fn subscription_history(
        &self,
        ws: &str,
        contact_id: i64,
        page: PageRequest,
    ) -> Result<Page<SubscriptionChange>> {
        let ws = owned(ws);
        self.readers.run(move |c| contacts::subscription_history(c, &ws, contact_id, &page)).await
    }
    async fn erase_contact(&self, ws: &str, target: EraseTarget, actor: String) -> Result<Erasure> {
        self.erase_locked(ws, target, actor).await
    }
    async fn lift_suppression(&self, ws: &str, kind: IdentityKind, value: &str) -> Result<bool> {
        let (ws, value) = (owned(ws), value.to_string());
        self.writer.run(move |ctx| erase::lift(&ctx.conn, &ws, kind, &value)).await
    }
    async fn list_erasures(&self, ws: &str, page: PageRequest) -> Result<Page<Erasure>> {
        let ws = owned(ws);
        self.readers.run(move |c| erase::list(c, &ws, &page)).await
    }
    async fn record_event(&self, ws: &str, contact: (IdentityKind, String), event: NewEvent) -> Result<Event> {
        let ws = owned(ws);
        self.writer.run(move |ctx| batch::record_event(ctx, &ws, &contact, event)).await
    }

    async fn create_company(&self, ws: &str, changes: CompanyChanges) -> Result<Company> {
        let ws = owned(ws);
        self.writer.run(move |ctx| companies::create(ctx, &ws, &changes)).await
    }
    async fn get_company(&self, ws: &str, id: i64) -> Result<Company> {
        let ws = owned(ws);
        self.readers.run(move |c| companies::get(c, &ws, id)).await
    }
    async fn update_company(&self, ws: &str, id: i64, changes: CompanyChanges) -> Result<Company> {
        let ws = owned(ws);
        self.writer.run(move |ctx| companies::update(ctx, &ws, id, &changes)).await
    }
    async fn delete_company(&self, ws: &str, id: i64) -> Result<()> {
        let ws = owned(ws);
        self.writer.run(move |ctx| companies::delete(&ctx.conn, &ws, id)).await
    }
    async fn list_companies(&self, ws: &str, filter: CompanyFilter, page: PageRequest) -> Result<Page<Company>> {
        let ws = owned(ws);
        self.readers.run(move |c| companies::list(c, &ws, &filter, &page)).await
    }
    async fn upsert_companies(
        &self,
        ws: &str,
        rows: Vec<CompanyUpsert>,
        options: BatchOptions,
    ) -> Result<BatchOutcome<Company>> {
        let ws = owned(ws);
        self.writer.run(move |ctx| batch::upsert_companies(ctx, &ws, &rows, options)).await
    }

    async fn create_user(&self, ws: &str, user: User) -> Result<User> {
        let ws = owned(ws);
        self.writer.run(move |ctx| conversations::create_user(&ctx.conn, &ws, user)).await
    }
    async fn get_user(&self, ws: &str, id: i64) -> Result<User> {
        let ws = owned(ws);
        self.readers.run(move |c| conversations::get_user(c, &ws, id)).await
    }
    async fn update_user(&self, ws: &str, id: i64, changes: UserChanges) -> Result<User> {
        let ws = owned(ws);
        self.writer.run(move |ctx| conversations::update_user(&ctx.conn, &ws, id, &changes)).await
    }
    async fn list_users(&self, ws: &str, page: PageRequest) -> Result<Page<User>> {
        let ws = owned(ws);
        self.readers.run(move |c| conversations::list_users(c, &ws, &page)).await
    }
    async fn set_user_password(&self, ws: &str, id: i64, hash: String) -> Result<()> {
        let ws = owned(ws);
        self.writer.run(move |ctx| sessions::set_password(&ctx.conn, &ws, id, &hash)).await
    }
    async fn find_logins(&self, email: &str) -> Result<Vec<UserLogin>> {
        let email = email.to_string();
        self.readers.run(move |c| sessions::find_logins(c, &email)).await
    }

    async fn create_session(&self, session: NewSession) -> Result<()> {
        self.writer.run(move |ctx| sessions::create(&ctx.conn, &session)).await
    }
    async fn get_session(&self, ws: &str, hash: &TokenHash) -> Result<Option<Session>> {
        let (ws, hash) = (owned(ws), hash.clone());
        self.readers.run(move |c| sessions::get(c, &ws, &hash)).await
    }
    async fn delete_session(&self, ws: &str, hash: &TokenHash) -> Result<()> {
        let (ws, hash) = (owned(ws), hash.clone());
        self.writer.run(move |ctx| sessions::delete(&ctx.conn, &ws, &hash)).await
    }
    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        self.writer.run(move |ctx| sessions::purge(&ctx.conn, &before)).await
    }

    async fn create_conversation(&self, ws: &str, new: NewConversation) -> Result<Conversation> {
        let ws = owned(ws);
        self.writer.run(move |ctx| conversations::create_conversation(&ctx.conn, &ws, new)).await
    }
    async fn get_conversation(&self, ws: &str, id: &str) -> Result<Conversation> {
        let (ws, id) = (owned(ws), owned(id));
        self.readers.run(move |c| conversations::get_conversation(c, &ws, &id)).await
    }
    async fn update_conversation(
        &self,
        ws: &str,
        id: &str,
        changes: ConversationChanges,
        actor: Sender,
    ) -> Result<Conversation> {
        let (ws, id) = (owned(ws), owned(id));
        self.writer.run(move |ctx| conversations::update_conversation(&ctx.conn, &ws, &id, &changes, &actor)).await
    }
    async fn list_conversations(
        &self,
        ws: &str,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> Result<Page<Conversation>> {
        let ws = owned(ws);
        self.readers.run(move |c| conversations::list_conversations(c, &ws, &filter, &page, 0)).await
    }
    async fn conversations_at(
        &self,
        ws: &str,
        filter: ConversationFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Conversation>, bool)> {
        let ws = owned(ws);
        let page = PageRequest { after: None, limit };
        let page = self.readers.run(move |c| conversations::list_conversations(c, &ws, &filter, &page, offset)).await?;
        Ok((page.items, page.next_cursor.is_some()))
    }
    async fn add_message(&self, ws: &str, conversation_id: &str, message: NewMessage) -> Result<Message> {
        let (ws, id) = (owned(ws), owned(conversation_id));
        self.writer.run(move |ctx| conversations::add_message(&ctx.conn, &ws, &id, message)).await
    }
    async fn list_messages(
        &self,
        ws: &str,
        conversation_id: &str,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<Message>> {
        let (ws, id) = (owned(ws), owned(conversation_id));
        self.readers.run(move |c| conversations::list_messages(c, &ws, &id, &filter, &page, 0)).await
    }
    async fn messages_at(
        &self,
        ws: &str,
        conversation_id: &str,
        filter: MessageFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)> {
        let (ws, id) = (owned(ws), owned(conversation_id));
        let page = PageRequest { after: None, limit };
        let page = self.readers.run(move |c| conversations::list_messages(c, &ws, &id, &filter, &page, offset)).await?;
        Ok((page.items, page.next_cursor.is_some()))
    }
    async fn timeline(&self, ws: &str, contact_id: i64, page: PageRequest) -> Result<Page<TimelineItem>> {
        let ws = owned(ws);
        self.readers.run(move |c| conversations::timeline(c, &ws, contact_id, &page)).await
    }

    async fn upsert_reps(&self, ws: &str, rows: Vec<RepWrite>) -> Result<UpsertCounts> {
        let ws = owned(ws);
        self.writer.run(move |ctx| reps::upsert(ctx, &ws, &rows)).await
    }
    async fn upsert_rep_rows(&self, ws: &str, rows: Vec<RepUpsert>) -> Result<Vec<RowResult<Rep>>> {
        let ws = owned(ws);
        self.writer.run(move |ctx| reps::upsert_rows(ctx, &ws, &rows)).await
    }
    async fn write_rep(&self, ws: &str, write: RepWrite, mode: WriteMode) -> Result<Rep> {
        let ws = owned(ws);
        self.writer.run(move |ctx| reps::write(ctx, &ws, &write, mode)).await
    }
    async fn get_rep(&self, ws: &str, rep_id: &str) -> Result<Rep> {
        let (ws, rep_id) = (owned(ws), owned(rep_id));
        self.readers.run(move |c| reps::get(c, &ws, &rep_id)).await
    }
    async fn delete_rep(&self, ws: &str, rep_id: &str) -> Result<()> {
        let (ws, rep_id) = (owned(ws), owned(rep_id));
        self.writer.run(move |ctx| reps::delete(&ctx.conn, &ws, &rep_id)).await
    }
    async fn list_reps(&self, ws: &str, filter: RepFilter, page: PageRequest) -> Result<Page<Rep>> {
        let ws = owned(ws);
        self.readers.run(move |c| reps::list(c, &ws, &filter, &page)).await
    }
    async fn count_reps(&self, ws: &str, filter: RepFilter) -> Result<u64> {
        let ws = owned(ws);
        self.readers.run(move |c| reps::count(c, &ws, &filter)).await
    }
    fn stream_reps(&self, ws: &str, filter: RepFilter, offset: u64, limit: u64) -> RowStream<Rep> {
        let ws = owned(ws);
        self.readers.stream(move |c, send| reps::stream(c, &ws, &filter, offset, limit, send))
    }

    fn stream_reps_rendered(
        &self,
        ws: &str,
        filter: RepFilter,
        offset: u64,
        limit: u64,
        render: RepRenderer,
        sep: &'static [u8],
    ) -> RowStream<Vec<u8>> {
        let ws = owned(ws);
        self.readers.stream_chunked(1, move |c, send| {
            reps::stream_rendered(c, &ws, &filter, (offset, limit), (render, sep), send)
        })
    }

    async fn upsert_calls(&self, ws: &str, rows: Vec<CallWrite>) -> Result<UpsertCounts> {
        let ws = owned(ws);
        self.writer.run(move |ctx| calls::upsert(ctx, &ws, &rows)).await
    }
    async fn get_call(&self, ws: &str, call_id: &str) -> Result<Call> {
        let (ws, call_id) = (owned(ws), owned(call_id));
        self.readers.run(move |c| calls::get(c, &ws, &call_id)).await
    }
    async fn count_calls(&self, ws: &str, filter: CallFilter) -> Result<u64> {
        let ws = owned(ws);
        self.readers.run(move |c| calls::count(c, &ws, &filter)).await
    }
    fn stream_calls(&self, ws: &str, filter: CallFilter, offset: u64, limit: u64) -> RowStream<Call> {
        let ws = owned(ws);
        self.readers.stream(move |c, send| calls::stream(c, &ws, &filter, offset, limit, send))
    }

    fn export_rendered(&self, ws: &str, query: ExportQuery, render: ExportRenderer) -> RowStream<Vec<u8>> {
        let ws = owned(ws);
        self.readers.stream_chunked(1, move |c, send| export::export_rendered(c, &ws, &query, render, send))
    }

    async fn report(&self, ws: &str, query: &ReportQuery) -> Result<ReportResult> {
        let (w, q) = (owned(ws), query.clone());
        let Some(mid) = self.readers.run(move |c| reports::split_point(c, &w, &q)).await? else {
            let (ws, query) = (owned(ws), query.clone());
            return self.readers.run(move |c| reports::run(c, &ws, &query)).await;
        };
        // Two halves of the period on two readers at once, merged.
        let cut = chrono::DateTime::from_timestamp_millis(mid);
        let (mut early, mut late) = (query.clone(), query.clone());
        early.to = cut;
        late.from = cut;
        let (w1, w2) = (owned(ws), owned(ws));
        let (mut first, second) = tokio::try_join!(
            self.readers.run(move |c| reports::partial(c, &w1, &early)),
            self.readers.run(move |c| reports::partial(c, &w2, &late)),
        )?;
        first.merge(second)?;
        Ok(first.finish())
    }

    async fn enqueue(&self, job: QueuedJob) -> Result<()> {
        // Counted before the append: once committed, the applier may apply
        // the job (and subtract its items) before this task resumes; counting
        // after would then leave the items in the backlog for good.
        let items = job.items.len() as u64;
        self.backlog.fetch_add(items, Ordering::SeqCst);
        if let Err(e) = self.inbox.append(job).await {
            let _ = self.backlog.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| Some(b.saturating_sub(items)));
            return Err(e);
        }
        Ok(())
    }

    fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::SeqCst)
    }

    async fn apply_pending(&self, max_items: usize) -> Result<ApplyReport> {
        let _one_applier = self.applying.lock().await;
        self.apply_locked(max_items).await
    }

    async fn get_job(&self, ws: &str, id: &str) -> Result<Job> {
        let (ws, id) = (owned(ws), owned(id));
        let (ws2, id2) = (ws.clone(), id.clone());
        if let Some(job) = self.readers.run(move |c| events::get_job(c, &ws2, &id2)).await? {
            return Ok(job);
        }
        let after = self.applied_seq.load(Ordering::SeqCst);
        let (inbox, ws3, id3) = (self.inbox.clone(), ws.clone(), id.clone());
        let queued = tokio::task::spawn_blocking(move || inbox.find_queued(&ws3, &id3, after))
            .await
            .map_err(|e| convene_core::Error::Internal(e.to_string()))??;
        if let Some((total, received)) = queued {
            return Ok(Job::queued(
                id,
                total,
                convene_core::ids::parse_time(&received).unwrap_or_else(convene_core::ids::now),
            ));
        }
        // It may have been applied between the two reads.
        self.readers.run(move |c| events::get_job(c, &ws, &id)).await?.ok_or_else(events::no_job)
    }

    async fn list_events(&self, ws: &str, filter: EventFilter, page: PageRequest) -> Result<Page<Event>> {
        let ws = owned(ws);
        self.readers.run(move |c| events::list(c, &ws, &filter, &page)).await
    }

    async fn purge_ingest(&self, jobs_before: DateTime<Utc>, dedupe_before: DateTime<Utc>) -> Result<()> {
        let (j, d) = (convene_core::ids::fmt_time(&jobs_before), convene_core::ids::fmt_time(&dedupe_before));
        self.writer.run(move |ctx| events::purge(&ctx.conn, &j, &d)).await
    }
}

impl SqliteStore {
    /// Applies queued items; the caller holds `applying`.
    async fn apply_locked(&self, max_items: usize) -> Result<ApplyReport> {
        let after = self.applied_seq.load(Ordering::SeqCst);
        let inbox = self.inbox.clone();
        let entries = tokio::task::spawn_blocking(move || inbox.read_after(after, max_items))
            .await
            .map_err(|e| convene_core::Error::Internal(e.to_string()))??;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(ApplyReport::default());
        };
        let report = self.writer.run(move |ctx| apply::apply_entries(ctx, &entries)).await?;
        let processed = report.items;
        self.applied_seq.store(last, Ordering::SeqCst);
        let _ =
            self.backlog.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| Some(b.saturating_sub(processed as u64)));
        self.inbox.delete_through(last).await?;
        Ok(report)
    }

    /// Erases with the applier held: the inbox is applied first (so none of
    /// the contact's data waits there; applied entries are deleted with
    /// `secure_delete`), then the erasure commits, then both WALs are
    /// checkpointed and truncated (no earlier page version survives).
    async fn erase_locked(&self, ws: &str, target: EraseTarget, actor: String) -> Result<Erasure> {
        let _one_applier = self.applying.lock().await;
        while self.apply_locked(5000).await?.items > 0 {}
        let ws = owned(ws);
        let erasure = self.writer.run(move |ctx| erase::erase(&ctx.conn, &ws, &target, &actor)).await?;
        let path = self.path.clone();
        // The erasure is committed: a WAL that stays busy is reported, not
        // turned into an error (its frames go at a later checkpoint).
        let truncated = tokio::task::spawn_blocking(move || {
            Ok::<_, convene_core::Error>(
                crate::checkpoint::truncate(&path)? & crate::checkpoint::truncate(&crate::backup::inbox_path(&path))?,
            )
        })
        .await
        .map_err(|e| convene_core::Error::Internal(e.to_string()))??;
        if !truncated {
            tracing::warn!(erasure = %erasure.id, "the WAL stayed busy for 30 s after an erasure: old page versions stay in it until it is rewritten");
        }
        Ok(erasure)
    }
}

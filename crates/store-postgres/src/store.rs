//! `impl Store for PgStore`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use convene_core::batch::{BatchOptions, BatchOutcome, CompanyUpsert, ContactUpsert, RowResult};
use convene_core::call::{Call, CallFilter, CallWrite};
use convene_core::company::{Company, CompanyChanges, CompanyFilter};
use convene_core::contact::{Contact, ContactChanges, ContactFilter, SubscriptionChange};
use convene_core::conversation::{
    Conversation, ConversationChanges, ConversationFilter, Message, MessageFilter, NewConversation, NewMessage, Sender,
    TimelineItem,
};
use convene_core::erase::{EraseTarget, Erasure};
use convene_core::event::{Event, EventFilter, NewEvent};
use convene_core::export::{ExportQuery, ExportRenderer};
use convene_core::field::{Entity, Field};
use convene_core::identity::IdentityKind;
use convene_core::ingest::{ApplyReport, Job, QueuedJob};
use convene_core::page::{Page, PageRequest};
use convene_core::rep::{Rep, RepFilter, RepRenderer, RepUpsert, RepWrite, UpsertCounts, WriteMode};
use convene_core::report::{ReportQuery, ReportResult};
use convene_core::session::{NewSession, Session, UserLogin};
use convene_core::store::NewField;
use convene_core::store::RowStream;
use convene_core::token::TokenHash;
use convene_core::user::{User, UserChanges};
use convene_core::workspace::{
    ApiKey, KeyRecord, NewKey, NewServiceAccount, ServiceAccount, ServiceAccountUpdate, Workspace,
};
use convene_core::{Result, Store};

use crate::db::conn;
use crate::error::{db, is_retryable};
use crate::inbox::LANES;
use crate::{
    PgStore, batch, calls, companies, contacts, conversations, erase, events, export, keys, report, reps, sessions,
    workspaces,
};

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        let c = conn(&self.pool).await?;
        c.simple_query("SELECT 1").await.map_err(db)?;
        Ok(())
    }

    async fn create_workspace(&self, name: String) -> Result<Workspace> {
        workspaces::create_workspace(&self.pool, name).await
    }
    async fn list_workspaces(&self, page: PageRequest) -> Result<Page<Workspace>> {
        workspaces::list_workspaces(&self.pool, &page).await
    }
    async fn get_workspace(&self, id: &str) -> Result<Workspace> {
        workspaces::get_workspace(&self.pool, id).await
    }

    async fn create_service_account(&self, ws: &str, new: NewServiceAccount) -> Result<ServiceAccount> {
        workspaces::create_service_account(&self.pool, ws, new).await
    }
    async fn list_service_accounts(&self, ws: &str, page: PageRequest) -> Result<Page<ServiceAccount>> {
        workspaces::list_service_accounts(&self.pool, ws, &page).await
    }
    async fn get_service_account(&self, ws: &str, id: &str) -> Result<ServiceAccount> {
        let c = conn(&self.pool).await?;
        workspaces::get_service_account(&c, ws, id, false).await
    }
    async fn update_service_account(&self, ws: &str, id: &str, update: ServiceAccountUpdate) -> Result<ServiceAccount> {
        workspaces::update_service_account(&self.pool, ws, id, update).await
    }

    async fn create_key(&self, ws: &str, new: NewKey) -> Result<ApiKey> {
        keys::create_key(&self.pool, ws, new).await
    }
    async fn list_keys(&self, ws: &str, page: PageRequest) -> Result<Page<ApiKey>> {
        keys::list_keys(&self.pool, ws, &page).await
    }
    async fn get_key(&self, ws: &str, id: &str) -> Result<ApiKey> {
        keys::get_key(&self.pool, ws, id).await
    }
    async fn revoke_key(&self, ws: &str, id: &str) -> Result<ApiKey> {
        keys::revoke_key(&self.pool, ws, id).await
    }
    async fn find_key(&self, hash: &TokenHash) -> Result<Option<KeyRecord>> {
        keys::find_key(&self.pool, hash).await
    }
    async fn touch_keys(&self, used: Vec<(String, DateTime<Utc>)>) -> Result<()> {
        keys::touch_keys(&self.pool, &used).await
    }

    async fn list_fields(&self, ws: &str, entity: Option<Entity>, page: PageRequest) -> Result<Page<Field>> {
        workspaces::list_fields(&self.pool, ws, entity, &page).await
    }
    async fn create_field(&self, ws: &str, new: NewField) -> Result<Field> {
        workspaces::create_field(&self.pool, ws, new).await
    }

    async fn create_contact(&self, ws: &str, changes: ContactChanges) -> Result<Contact> {
        self.retrying(|| contacts::create(&self.pool, ws, &changes)).await
    }
    async fn get_contact(&self, ws: &str, id: i64) -> Result<Contact> {
        contacts::get(&self.pool, ws, id).await
    }
    async fn update_contact(&self, ws: &str, id: i64, changes: ContactChanges) -> Result<Contact> {
        self.retrying(|| contacts::update(&self.pool, ws, id, &changes)).await
    }
    async fn delete_contact(&self, ws: &str, id: i64) -> Result<()> {
        contacts::delete(&self.pool, ws, id).await
    }
    async fn list_contacts(&self, ws: &str, filter: ContactFilter, page: PageRequest) -> Result<Page<Contact>> {
        contacts::list(&self.pool, ws, &filter, &page).await
    }

    async fn upsert_contacts(
        &self,
        ws: &str,
        rows: Vec<ContactUpsert>,
        options: BatchOptions,
    ) -> Result<BatchOutcome<Contact>> {
        self.retrying(|| batch::upsert_contacts(&self.pool, ws, rows.clone(), options)).await
    }
    async fn subscription_history(
        &self,
        ws: &str,
        contact_id: i64,
        page: PageRequest,
    ) -> Result<Page<SubscriptionChange>> {
        contacts::subscription_history(&self.pool, ws, contact_id, &page).await
    }
    async fn erase_contact(&self, ws: &str, target: EraseTarget, actor: String) -> Result<Erasure> {
        self.retrying(|| erase::erase(&self.pool, ws, &target, &actor)).await
    }
    async fn lift_suppression(&self, ws: &str, kind: IdentityKind, value: &str) -> Result<bool> {
        erase::lift(&self.pool, ws, kind, value).await
    }
    async fn list_erasures(&self, ws: &str, page: PageRequest) -> Result<Page<Erasure>> {
        erase::list(&self.pool, ws, &page).await
    }
    async fn record_event(&self, ws: &str, contact: (IdentityKind, String), event: NewEvent) -> Result<Event> {
        self.retrying(|| batch::record_event(&self.pool, ws, &contact, event.clone())).await
    }

    async fn create_company(&self, ws: &str, changes: CompanyChanges) -> Result<Company> {
        self.retrying(|| companies::create(&self.pool, ws, &changes)).await
    }
    async fn get_company(&self, ws: &str, id: i64) -> Result<Company> {
        companies::get_one(&self.pool, ws, id).await
    }
    async fn update_company(&self, ws: &str, id: i64, changes: CompanyChanges) -> Result<Company> {
        self.retrying(|| companies::update(&self.pool, ws, id, &changes)).await
    }
    async fn delete_company(&self, ws: &str, id: i64) -> Result<()> {
        self.retrying(|| companies::delete(&self.pool, ws, id)).await
    }
    async fn list_companies(&self, ws: &str, filter: CompanyFilter, page: PageRequest) -> Result<Page<Company>> {
        companies::list(&self.pool, ws, &filter, &page).await
    }
    async fn upsert_companies(
        &self,
        ws: &str,
        rows: Vec<CompanyUpsert>,
        options: BatchOptions,
    ) -> Result<BatchOutcome<Company>> {
        self.retrying(|| companies::upsert(&self.pool, ws, &rows, options)).await
    }

    async fn create_user(&self, ws: &str, user: User) -> Result<User> {
        conversations::create_user(&self.pool, ws, user).await
    }
    async fn get_user(&self, ws: &str, id: i64) -> Result<User> {
        conversations::get_user(&self.pool, ws, id).await
    }
    async fn update_user(&self, ws: &str, id: i64, changes: UserChanges) -> Result<User> {
        self.retrying(|| conversations::update_user(&self.pool, ws, id, &changes)).await
    }
    async fn list_users(&self, ws: &str, page: PageRequest) -> Result<Page<User>> {
        conversations::list_users(&self.pool, ws, &page).await
    }
    async fn set_user_password(&self, ws: &str, id: i64, hash: String) -> Result<()> {
        sessions::set_password(&self.pool, ws, id, &hash).await
    }
    async fn find_logins(&self, email: &str) -> Result<Vec<UserLogin>> {
        sessions::find_logins(&self.pool, email).await
    }

    async fn create_session(&self, session: NewSession) -> Result<()> {
        sessions::create(&self.pool, &session).await
    }
    async fn get_session(&self, ws: &str, hash: &TokenHash) -> Result<Option<Session>> {
        sessions::get_one(&self.pool, ws, hash).await
    }
    async fn delete_session(&self, ws: &str, hash: &TokenHash) -> Result<()> {
        sessions::delete(&self.pool, ws, hash).await
    }
    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        sessions::purge(&self.pool, &before).await
    }

    async fn create_conversation(&self, ws: &str, new: NewConversation) -> Result<Conversation> {
        self.retrying(|| conversations::create_conversation(&self.pool, ws, &new)).await
    }
    async fn get_conversation(&self, ws: &str, id: &str) -> Result<Conversation> {
        conversations::get_conversation(&self.pool, ws, id).await
    }
    async fn update_conversation(
        &self,
        ws: &str,
        id: &str,
        changes: ConversationChanges,
        actor: Sender,
    ) -> Result<Conversation> {
        self.retrying(|| conversations::update_conversation(&self.pool, ws, id, &changes, &actor)).await
    }
    async fn list_conversations(
        &self,
        ws: &str,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> Result<Page<Conversation>> {
        conversations::list_conversations(&self.pool, ws, &filter, &page, 0).await
    }
    async fn conversations_at(
        &self,
        ws: &str,
        filter: ConversationFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Conversation>, bool)> {
        let page = PageRequest { after: None, limit };
        let page = conversations::list_conversations(&self.pool, ws, &filter, &page, offset).await?;
        Ok((page.items, page.next_cursor.is_some()))
    }
    async fn add_message(&self, ws: &str, conversation_id: &str, message: NewMessage) -> Result<Message> {
        self.retrying(|| conversations::add_message(&self.pool, ws, conversation_id, &message)).await
    }
    async fn list_messages(
        &self,
        ws: &str,
        conversation_id: &str,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<Message>> {
        conversations::list_messages(&self.pool, ws, conversation_id, &filter, &page, 0).await
    }
    async fn messages_at(
        &self,
        ws: &str,
        conversation_id: &str,
        filter: MessageFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)> {
        let page = PageRequest { after: None, limit };
        let page = conversations::list_messages(&self.pool, ws, conversation_id, &filter, &page, offset).await?;
        Ok((page.items, page.next_cursor.is_some()))
    }
    async fn timeline(&self, ws: &str, contact_id: i64, page: PageRequest) -> Result<Page<TimelineItem>> {
        conversations::timeline(&self.pool, ws, contact_id, &page).await
    }

    async fn upsert_reps(&self, ws: &str, rows: Vec<RepWrite>) -> Result<UpsertCounts> {
        let rows = Arc::new(rows);
        self.retrying(|| reps::upsert(&self.pool, ws, rows.clone())).await
    }
    async fn upsert_rep_rows(&self, ws: &str, rows: Vec<RepUpsert>) -> Result<Vec<RowResult<Rep>>> {
        let rows = Arc::new(rows);
        self.retrying(|| reps::upsert_rows(&self.pool, ws, rows.clone())).await
    }
    async fn write_rep(&self, ws: &str, write: RepWrite, mode: WriteMode) -> Result<Rep> {
        let write = Arc::new(write);
        self.retrying(|| reps::write(&self.pool, ws, write.clone(), mode)).await
    }
    async fn get_rep(&self, ws: &str, rep_id: &str) -> Result<Rep> {
        reps::get_one(&self.pool, ws, rep_id).await
    }
    async fn delete_rep(&self, ws: &str, rep_id: &str) -> Result<()> {
        reps::delete(&self.pool, ws, rep_id).await
    }
    async fn list_reps(&self, ws: &str, filter: RepFilter, page: PageRequest) -> Result<Page<Rep>> {
        reps::list(&self.pool, ws, &filter, &page).await
    }
    async fn count_reps(&self, ws: &str, filter: RepFilter) -> Result<u64> {
        reps::count(&self.pool, ws, &filter).await
    }
    fn stream_reps(&self, ws: &str, filter: RepFilter, offset: u64, limit: u64) -> RowStream<Rep> {
        reps::stream(&self.pool, ws, &filter, offset, limit)
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
        reps::stream_rendered(&self.pool, ws, &filter, (offset, limit), render, sep)
    }

    async fn upsert_calls(&self, ws: &str, rows: Vec<CallWrite>) -> Result<UpsertCounts> {
        let rows = Arc::new(rows);
        self.retrying(|| calls::upsert(&self.pool, ws, rows.clone())).await
    }
    async fn get_call(&self, ws: &str, call_id: &str) -> Result<Call> {
        calls::get_one(&self.pool, ws, call_id).await
    }
    async fn count_calls(&self, ws: &str, filter: CallFilter) -> Result<u64> {
        calls::count(&self.pool, ws, &filter).await
    }
    fn stream_calls(&self, ws: &str, filter: CallFilter, offset: u64, limit: u64) -> RowStream<Call> {
        calls::stream(&self.pool, ws, &filter, offset, limit)
    }
    fn export_rendered(&self, ws: &str, query: ExportQuery, render: ExportRenderer) -> RowStream<Vec<u8>> {
        export::export_rendered(&self.pool, ws, query, render)
    }

    async fn report(&self, ws: &str, query: &ReportQuery) -> Result<ReportResult> {
        report::run(&self.pool, ws, query).await
    }

    async fn enqueue(&self, job: QueuedJob) -> Result<()> {
        // Counted before the append: the applier (here or on another node)
        // may apply the job before this task resumes.
        let items = job.items.len() as u64;
        self.backlog.fetch_add(items, Ordering::SeqCst);
        if let Err(e) = self.inbox.append(&job).await {
            let _ = self.backlog.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| Some(b.saturating_sub(items)));
            return Err(e);
        }
        Ok(())
    }

    fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::SeqCst)
    }

    async fn apply_pending(&self, max_items: usize) -> Result<ApplyReport> {
        let start = self.next_lane.fetch_add(1, Ordering::Relaxed).rem_euclid(LANES as i32);
        // `max_items` is shared by the steps in flight: smaller steps keep
        // memory bounded and make two steps in flight less likely to name
        // the same contact (which makes the later one wait).
        let parallelism = self.options.apply_parallelism.max(1);
        let step_items = max_items.div_ceil(parallelism).max(1);
        let mut pipeline = self.pipeline.lock().await;
        let mut tries = 0;
        let report = loop {
            match pipeline.next(&self.pool, start, step_items, parallelism).await {
                Ok(report) => break report.unwrap_or_default(),
                Err(e) => {
                    pipeline.reset().await;
                    if is_retryable(&e) && tries < self.options.retries {
                        tries += 1;
                        tracing::debug!(error = %e, tries, "retrying the apply steps");
                        tokio::time::sleep(std::time::Duration::from_millis(5 * (1 << tries.min(6)))).await;
                        continue;
                    }
                    return Err(e);
                }
            }
        };
        if report.items == 0 {
            // Idle: take the exact figure (other nodes' work included).
            self.backlog.store(crate::count_backlog(&self.pool).await?, Ordering::SeqCst);
            return Ok(report);
        }
        let done = report.items as u64;
        let _ = self.backlog.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| Some(b.saturating_sub(done)));
        Ok(report)
    }

    async fn get_job(&self, ws: &str, id: &str) -> Result<Job> {
        if let Some(job) = events::get_job(&self.pool, ws, id).await? {
            return Ok(job);
        }
        if let Some((total, received_at)) = events::find_queued(&self.pool, ws, id).await? {
            return Ok(Job::queued(id.to_string(), total, received_at));
        }
        // It may have been applied between the two reads.
        events::get_job(&self.pool, ws, id).await?.ok_or_else(events::no_job)
    }

    async fn list_events(&self, ws: &str, filter: EventFilter, page: PageRequest) -> Result<Page<Event>> {
        events::list(&self.pool, ws, &filter, &page).await
    }

    async fn purge_ingest(&self, jobs_before: DateTime<Utc>, dedupe_before: DateTime<Utc>) -> Result<()> {
        events::purge(&self.pool, jobs_before, dedupe_before).await
    }
}

impl PgStore {
    /// Runs a transaction again (up to the configured retries, with a short
    /// growing pause) when the database reports a serialization failure, a
    /// deadlock or a lost connection.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(e) if is_retryable(&e) && tries < self.options.retries => {
                    tries += 1;
                    tracing::debug!(error = %e, tries, "retrying a transaction");
                    tokio::time::sleep(std::time::Duration::from_millis(5 * (1 << tries.min(6)))).await;
                }
                other => return other,
            }
        }
    }
}

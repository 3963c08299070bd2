//! The Store trait: the only door to storage.
//!
//! A store persists what core decides. Methods that change a contact load
//! it, call [`crate::contact::ContactChanges::apply`] (the one merge
//! function) and write the result in one transaction; identity uniqueness is
//! enforced by the store's unique indexes and reported as
//! [`Error::Conflict`](crate::Error::Conflict) naming the field. Every
//! implementation runs the same conformance suite (`conformance` feature).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::batch::{BatchOptions, BatchOutcome, CompanyUpsert, ContactUpsert, RowResult};
use crate::call::{Call, CallFilter, CallWrite};
use crate::company::{Company, CompanyChanges, CompanyFilter};
use crate::contact::{Contact, ContactChanges, ContactFilter, SubscriptionChange};
use crate::conversation::{
    Conversation, ConversationChanges, ConversationFilter, Message, MessageFilter, NewConversation, NewMessage, Sender,
    TimelineItem,
};
use crate::erase::{EraseTarget, Erasure};
use crate::error::Result;
use crate::event::{Event, EventFilter, NewEvent};
use crate::export::{ExportQuery, ExportRenderer};
use crate::field::{Entity, Field, FieldType};
use crate::identity::IdentityKind;
use crate::ingest::{ApplyReport, Job, QueuedJob};
use crate::page::{Page, PageRequest};
use crate::rep::{Rep, RepFilter, RepRenderer, RepUpsert, RepWrite, UpsertCounts, WriteMode};
use crate::report::{ReportQuery, ReportResult};
use crate::session::{NewSession, Session, UserLogin};
use crate::token::TokenHash;
use crate::user::{User, UserChanges};
use crate::workspace::{ApiKey, KeyRecord, NewKey, NewServiceAccount, ServiceAccount, ServiceAccountUpdate, Workspace};

/// Rows read from the database while the stream is consumed (bounded
/// buffering: memory stays flat whatever the number of rows).
pub type RowStream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T>> + Send>>;

/// Bytes gathered before a rendered chunk is sent.
pub const RENDER_CHUNK_BYTES: usize = 64 * 1024;

/// A field to create explicitly (`POST /v1/fields`).
#[derive(Debug, Clone)]
pub struct NewField {
    /// Entity.
    pub entity: Entity,
    /// Underlying name.
    pub name: String,
    /// Label (defaults to the name).
    pub label: Option<String>,
    /// Type.
    pub field_type: FieldType,
}

/// Durable storage of everything convene keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Ok when the database answers.
    async fn ping(&self) -> Result<()>;

    /// Creates a workspace (with its built-in fields).
    async fn create_workspace(&self, name: String) -> Result<Workspace>;
    /// Lists workspaces by creation.
    async fn list_workspaces(&self, page: PageRequest) -> Result<Page<Workspace>>;
    /// One workspace.
    async fn get_workspace(&self, id: &str) -> Result<Workspace>;

    /// Creates a service account.
    async fn create_service_account(&self, ws: &str, new: NewServiceAccount) -> Result<ServiceAccount>;
    /// Lists a workspace's service accounts.
    async fn list_service_accounts(&self, ws: &str, page: PageRequest) -> Result<Page<ServiceAccount>>;
    /// One service account.
    async fn get_service_account(&self, ws: &str, id: &str) -> Result<ServiceAccount>;
    /// Changes a service account (its keys' scopes follow).
    async fn update_service_account(&self, ws: &str, id: &str, update: ServiceAccountUpdate) -> Result<ServiceAccount>;

    /// Stores a new key; its service account must be in the same workspace.
    async fn create_key(&self, ws: &str, new: NewKey) -> Result<ApiKey>;
    /// Lists a workspace's keys (revoked ones included, marked).
    async fn list_keys(&self, ws: &str, page: PageRequest) -> Result<Page<ApiKey>>;
    /// One key.
    async fn get_key(&self, ws: &str, id: &str) -> Result<ApiKey>;
    /// Revokes a key at once; revoking twice is harmless.
    async fn revoke_key(&self, ws: &str, id: &str) -> Result<ApiKey>;
    /// The key whose token has this hash, with scopes resolved.
    async fn find_key(&self, hash: &TokenHash) -> Result<Option<KeyRecord>>;
    /// Records when keys were last used (batched by the caller).
    async fn touch_keys(&self, used: Vec<(String, DateTime<Utc>)>) -> Result<()>;

    /// Lists fields, optionally of one entity, by entity and name.
    async fn list_fields(&self, ws: &str, entity: Option<Entity>, page: PageRequest) -> Result<Page<Field>>;
    /// Creates a field; an existing name is a conflict.
    async fn create_field(&self, ws: &str, new: NewField) -> Result<Field>;

    /// Creates a contact; an identity held by another contact is a conflict.
    async fn create_contact(&self, ws: &str, changes: ContactChanges) -> Result<Contact>;
    /// One contact.
    async fn get_contact(&self, ws: &str, id: i64) -> Result<Contact>;
    /// Applies a write to a contact atomically.
    async fn update_contact(&self, ws: &str, id: i64, changes: ContactChanges) -> Result<Contact>;
    /// Deletes a contact.
    async fn delete_contact(&self, ws: &str, id: i64) -> Result<()>;
    /// Lists contacts by id.
    async fn list_contacts(&self, ws: &str, filter: ContactFilter, page: PageRequest) -> Result<Page<Contact>>;
    /// Upserts up to [`crate::batch::MAX_BATCH_ROWS`] contacts in one
    /// transaction with core's [`crate::batch::upsert_contacts`]; reports
    /// each row. A dry run, or an all-or-nothing batch with a failed row,
    /// writes nothing.
    async fn upsert_contacts(
        &self,
        ws: &str,
        rows: Vec<ContactUpsert>,
        options: BatchOptions,
    ) -> Result<BatchOutcome<Contact>>;
    /// A contact's subscription changes, oldest first.
    async fn subscription_history(
        &self,
        ws: &str,
        contact_id: i64,
        page: PageRequest,
    ) -> Result<Page<SubscriptionChange>>;
    /// Records an event (an engagement, say) on the contact holding an
    /// identity, synchronously; no such contact is `NotFound`.
    async fn record_event(&self, ws: &str, contact: (IdentityKind, String), event: NewEvent) -> Result<Event>;
    /// Erases a contact and every trace of its identities in one
    /// transaction (core's [`crate::erase`]): the contact and its traits,
    /// its events and subscription history, its messages' content and its
    /// conversations' subjects and call details (the conversations stay,
    /// unlinked, for reports), job errors and message ids that carry an
    /// identity; records the audit entry and suppresses the identities.
    async fn erase_contact(&self, ws: &str, target: EraseTarget, actor: String) -> Result<Erasure>;
    /// Lifts the suppression of an erased identity; false when there was none.
    async fn lift_suppression(&self, ws: &str, kind: IdentityKind, value: &str) -> Result<bool>;
    /// The workspace's erasures (audit records), by id.
    async fn list_erasures(&self, ws: &str, page: PageRequest) -> Result<Page<Erasure>>;

    /// Creates a company; a taken external id is a conflict.
    async fn create_company(&self, ws: &str, changes: CompanyChanges) -> Result<Company>;
    /// One company.
    async fn get_company(&self, ws: &str, id: i64) -> Result<Company>;
    /// Applies a write to a company atomically.
    async fn update_company(&self, ws: &str, id: i64, changes: CompanyChanges) -> Result<Company>;
    /// Deletes a company; its contacts stay, unlinked.
    async fn delete_company(&self, ws: &str, id: i64) -> Result<()>;
    /// Lists companies by id.
    async fn list_companies(&self, ws: &str, filter: CompanyFilter, page: PageRequest) -> Result<Page<Company>>;
    /// Upserts up to [`crate::batch::MAX_BATCH_ROWS`] companies by external
    /// id in one transaction, as [`Store::upsert_contacts`].
    async fn upsert_companies(
        &self,
        ws: &str,
        rows: Vec<CompanyUpsert>,
        options: BatchOptions,
    ) -> Result<BatchOutcome<Company>>;

    /// Creates a user; a taken email is a conflict.
    async fn create_user(&self, ws: &str, user: User) -> Result<User>;
    /// One user.
    async fn get_user(&self, ws: &str, id: i64) -> Result<User>;
    /// Changes a user.
    async fn update_user(&self, ws: &str, id: i64, changes: UserChanges) -> Result<User>;
    /// Lists users by id.
    async fn list_users(&self, ws: &str, page: PageRequest) -> Result<Page<User>>;
    /// Sets a user's console password (its argon2id hash).
    async fn set_user_password(&self, ws: &str, id: i64, hash: String) -> Result<()>;
    /// The users with this normalised email in every workspace, with their
    /// password hashes (a console login).
    async fn find_logins(&self, email: &str) -> Result<Vec<UserLogin>>;

    /// Stores a console session.
    async fn create_session(&self, session: NewSession) -> Result<()>;
    /// A session by workspace and secret hash, with its user as of now;
    /// expired ones too (the caller checks [`Session::usable`]).
    async fn get_session(&self, ws: &str, hash: &TokenHash) -> Result<Option<Session>>;
    /// Ends a session (logout); ending a missing one is harmless.
    async fn delete_session(&self, ws: &str, hash: &TokenHash) -> Result<()>;
    /// Forgets the sessions that expired before `before`; returns how many.
    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64>;

    /// Opens a conversation (its contact must exist, its assignee be an
    /// active user), with its first message if any.
    async fn create_conversation(&self, ws: &str, new: NewConversation) -> Result<Conversation>;
    /// One conversation.
    async fn get_conversation(&self, ws: &str, id: &str) -> Result<Conversation>;
    /// Changes status, assignee or labels, writing the activity messages
    /// core's [`ConversationChanges::apply`] returns, sent by `actor`.
    async fn update_conversation(
        &self,
        ws: &str,
        id: &str,
        changes: ConversationChanges,
        actor: Sender,
    ) -> Result<Conversation>;
    /// Lists conversations in creation order.
    async fn list_conversations(
        &self,
        ws: &str,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> Result<Page<Conversation>>;
    /// Conversations `offset..offset + limit` in creation order (for APIs
    /// that page by number), and whether more follow.
    async fn conversations_at(
        &self,
        ws: &str,
        filter: ConversationFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Conversation>, bool)>;
    /// Adds a message (an operator must be an active user).
    async fn add_message(&self, ws: &str, conversation_id: &str, message: NewMessage) -> Result<Message>;
    /// A conversation's messages, oldest first.
    async fn list_messages(
        &self,
        ws: &str,
        conversation_id: &str,
        filter: MessageFilter,
        page: PageRequest,
    ) -> Result<Page<Message>>;
    /// Messages `offset..offset + limit` of a conversation, oldest first, and
    /// whether more follow.
    async fn messages_at(
        &self,
        ws: &str,
        conversation_id: &str,
        filter: MessageFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)>;
    /// A contact's events and messages in time order.
    async fn timeline(&self, ws: &str, contact_id: i64, page: PageRequest) -> Result<Page<TimelineItem>>;

    /// Updates reps in one transaction with core's
    /// [`crate::rep::upsert_reps`], creating unknown ones; all or nothing.
    async fn upsert_reps(&self, ws: &str, rows: Vec<RepWrite>) -> Result<UpsertCounts>;
    /// Upserts rep rows by `rep_id` in one transaction with core's
    /// [`crate::rep::upsert_rep_rows`], each row with its own result (a
    /// failed row fails alone; the others are committed). For imports.
    async fn upsert_rep_rows(&self, ws: &str, rows: Vec<RepUpsert>) -> Result<Vec<RowResult<Rep>>>;
    /// Creates, updates or upserts one rep (core's [`crate::rep::upsert_rep`]).
    async fn write_rep(&self, ws: &str, write: RepWrite, mode: WriteMode) -> Result<Rep>;
    /// One rep.
    async fn get_rep(&self, ws: &str, rep_id: &str) -> Result<Rep>;
    /// Deletes a rep; its calls keep the rep id.
    async fn delete_rep(&self, ws: &str, rep_id: &str) -> Result<()>;
    /// Lists reps in creation order (cursor paging).
    async fn list_reps(&self, ws: &str, filter: RepFilter, page: PageRequest) -> Result<Page<Rep>>;
    /// How many reps match.
    async fn count_reps(&self, ws: &str, filter: RepFilter) -> Result<u64>;
    /// Reps `offset..offset + limit` in creation order, streamed.
    fn stream_reps(&self, ws: &str, filter: RepFilter, offset: u64, limit: u64) -> RowStream<Rep>;
    /// The same reps written by `render` as they are read, `sep` between two
    /// of them, in chunks of about 64 KiB (each holding whole reps): for
    /// pages of up to a million rows, without a [`Rep`] built per row.
    fn stream_reps_rendered(
        &self,
        ws: &str,
        filter: RepFilter,
        offset: u64,
        limit: u64,
        render: RepRenderer,
        sep: &'static [u8],
    ) -> RowStream<Vec<u8>>;

    /// Updates calls in one transaction with core's
    /// [`crate::call::upsert_calls`]; all or nothing.
    async fn upsert_calls(&self, ws: &str, rows: Vec<CallWrite>) -> Result<UpsertCounts>;
    /// One call.
    async fn get_call(&self, ws: &str, call_id: &str) -> Result<Call>;
    /// How many calls match.
    async fn count_calls(&self, ws: &str, filter: CallFilter) -> Result<u64>;
    /// Calls `offset..offset + limit` by start time (then creation), streamed.
    fn stream_calls(&self, ws: &str, filter: CallFilter, offset: u64, limit: u64) -> RowStream<Call>;

    /// Every row of `query.entity` after `query.after` (and changed at or
    /// after `query.since`) in cursor order — by id; reps and conversations
    /// in creation order — each written by `render` from its cells (the
    /// entity's [`crate::export::Column`]s, in order) as it is read, in
    /// chunks of about [`RENDER_CHUNK_BYTES`] holding whole rows. A text
    /// cursor naming no row is [`crate::export::ExportCursor::unknown`], the
    /// stream's first item.
    fn export_rendered(&self, ws: &str, query: ExportQuery, render: ExportRenderer) -> RowStream<Vec<u8>>;

    /// Runs a report: selects the rows of the query's period and filters and
    /// feeds them to core's [`crate::report::Aggregator`].
    async fn report(&self, ws: &str, query: &ReportQuery) -> Result<ReportResult>;

    /// Appends a validated job to the durable inbox; returns once it is on disk.
    async fn enqueue(&self, job: QueuedJob) -> Result<()>;
    /// Items accepted but not yet applied (for back-pressure).
    fn backlog(&self) -> u64;
    /// Applies queued items in arrival order, about `max_items` at most;
    /// reports how many were processed (0 when the inbox is empty).
    async fn apply_pending(&self, max_items: usize) -> Result<ApplyReport>;
    /// A job: queued while in the inbox, then its result.
    async fn get_job(&self, ws: &str, id: &str) -> Result<Job>;
    /// Lists events by id (arrival order).
    async fn list_events(&self, ws: &str, filter: EventFilter, page: PageRequest) -> Result<Page<Event>>;
    /// Forgets job results finished before `jobs_before` and message ids
    /// seen before `dedupe_before`.
    async fn purge_ingest(&self, jobs_before: DateTime<Utc>, dedupe_before: DateTime<Utc>) -> Result<()>;
}

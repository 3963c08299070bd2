//! The applier on PostgreSQL.
//!
//! **Lanes.** A workspace hashes to one of 64 lanes of the inbox. A node
//! takes a lane with a session-level advisory lock (`pg_try_advisory_lock`)
//! on a connection it keeps while it works the lane, so no two nodes apply
//! one lane; a node that dies loses its connection and with it the lock.
//!
//! **Steps.** A step applies the lane's oldest entries not yet taken (about
//! `max_items` items: the entries' sizes are read first, then only the
//! bodies used) in one transaction of its own, with core's [`apply_item`] —
//! the one implementation — against [`Applier`], an [`IngestTx`] that
//! answers from memory and writes behind:
//!
//! - before the items, one query per workspace loads and locks
//!   (`FOR UPDATE`, one index probe per identity) every contact any item
//!   names, and one finds the message ids already applied;
//! - writes are buffered: several updates of one contact become one row
//!   write; contacts, events, message ids and fields are then written by one
//!   set-based statement each;
//! - alias and group items (which may fail after a write) run in a
//!   savepoint with the buffer flushed around them.
//!
//! Job results are written and the applied entries deleted in the same
//! transaction (which fails unless it deletes every one of them), so a crash
//! at any point leaves either all of a step or none, and no entry is applied
//! twice.
//!
//! **Steps in flight.** The holder of a lane runs up to `apply_parallelism`
//! steps of it at once ([`Pipeline`]), in seq order, keeping per-contact
//! order:
//!
//! - a step starts only when no step in flight names one of its identities
//!   or message ids, and runs alone when it merges (alias), writes companies
//!   (group) or would create a contact field: those touch rows the key sets
//!   do not describe;
//! - a step locks its contacts only after the step before it has locked
//!   its own, so a contact named by two steps through different identities
//!   is applied by the earlier one first (the later waits on its row lock);
//! - a step commits only after the step before it committed; when that one
//!   failed, it rolls back too, and the node starts again from the oldest
//!   entry left.
//!
//! A step therefore waits only on earlier steps, never on a later one: no
//! step can deadlock with another of its lane.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;

use chrono::{DateTime, Utc};
use convene_core::batch::upsert_company;
use convene_core::company::CompanyChanges;
use convene_core::contact::{ContactState, SubscriptionChange};
use convene_core::event::NewEvent;
use convene_core::field::{Entity, FieldRegistry, FieldType};
use convene_core::identity::IdentityKind;
use convene_core::ids::now;
use convene_core::ingest::{ApplyReport, IngestItem, IngestTx, JobStatus, QueuedJob, RowError, RowOutcome, apply_item};
use convene_core::merge::TraitOp;
use convene_core::{Error, Result};
use deadpool_postgres::{Object, Pool};
use serde_json::{Map, Value};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::companies::PgCompanyTx;
use crate::contacts::{self, COLUMNS, RowWrite, contact_from_row, identity_column};
use crate::db::{Tx, conn, execute, query, query_one, query_opt};
use crate::events;
use crate::inbox::LANES;
use crate::rows::{get, insert_inferred_fields, load_registry};

/// Contact ids reserved from the sequence at a time (after the first
/// reservation of a step, which is sized by the prefetch).
const ID_CHUNK: usize = 256;
/// Advisory-lock class of the lanes (`pg_try_advisory_lock(LANE_LOCK, lane)`):
/// "conv" in ASCII.
const LANE_LOCK: i32 = 0x636f_6e76;
/// Inbox entries looked at per step.
const READ_LIMIT: i64 = 1000;
/// Steps a node applies from one lane before letting the lane go (so the
/// other lanes of a busy node get their turn).
const STEPS_PER_HOLD: usize = 256;

/// A lane held by this node: a session-level advisory lock on a connection
/// of its own, so no other node applies the lane. Dropped without
/// [`LaneHold::release`], the connection is closed (not returned to the
/// pool with the lock), which releases the lock.
struct LaneHold {
    conn: Option<Object>,
    lane: i32,
    steps: usize,
    /// Items per entry in the last read (sizes the next read).
    items_per_entry: usize,
}

impl LaneHold {
    fn c(&self) -> Result<&Object> {
        self.conn.as_ref().ok_or_else(|| Error::Internal("the lane's connection is gone".into()))
    }

    async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            let unlocked = query_one(&conn, "SELECT pg_advisory_unlock($1, $2) AS ok", &[&LANE_LOCK, &self.lane]).await;
            if unlocked.is_err() {
                drop(Object::take(conn));
            }
        }
    }
}

impl Drop for LaneHold {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

/// What items of a step name, to tell whether two steps may run at once.
#[derive(Default)]
struct Keys {
    identities: HashSet<(String, IdentityKind, String)>,
    messages: HashSet<(String, String)>,
}

impl Keys {
    fn overlaps(&self, other: &Keys) -> bool {
        self.identities.iter().any(|k| other.identities.contains(k))
            || self.messages.iter().any(|k| other.messages.contains(k))
    }
}

/// A step read from the inbox, not yet started.
struct Prepared {
    entries: Vec<(i64, QueuedJob)>,
    keys: Keys,
    /// Runs alone: it merges profiles, writes companies or creates fields,
    /// which the key sets do not cover.
    exclusive: bool,
}

/// A step running.
struct InFlight {
    seqs: Vec<i64>,
    keys: Keys,
    exclusive: bool,
    handle: JoinHandle<Result<ApplyReport>>,
}

/// The signals of the newest step, which the next step waits on.
struct Chain {
    /// Its contacts are locked (sent, or dropped, after its prefetch).
    locked: oneshot::Receiver<()>,
    /// It committed (true) or not.
    done: oneshot::Receiver<bool>,
}

/// This node's applier: the lane it holds and the steps of that lane in
/// flight (see the module doc).
#[derive(Default)]
pub(crate) struct Pipeline {
    hold: Option<LaneHold>,
    in_flight: VecDeque<InFlight>,
    chain: Option<Chain>,
    pending: Option<Prepared>,
}

impl Pipeline {
    /// The report of the next step to finish (starting steps as needed),
    /// or `None` when no lane has work this node can take.
    pub(crate) async fn next(
        &mut self,
        pool: &Pool,
        start: i32,
        max_items: usize,
        parallelism: usize,
    ) -> Result<Option<ApplyReport>> {
        for _ in 0..=LANES {
            if self.hold.is_none() {
                match claim(pool, start).await? {
                    Some(hold) => self.hold = Some(hold),
                    None => return Ok(None),
                }
            }
            self.fill(pool, max_items, parallelism).await?;
            if let Some(front) = self.in_flight.front_mut() {
                let result = (&mut front.handle).await;
                self.in_flight.pop_front();
                let report = result.map_err(|e| Error::Internal(format!("an apply step panicked: {e}")))??;
                if let Some(hold) = self.hold.as_mut() {
                    hold.steps += 1;
                }
                return Ok(Some(report));
            }
            // Nothing running and nothing left to start: let the lane go.
            self.pending = None;
            self.chain = None;
            if let Some(hold) = self.hold.take() {
                hold.release().await;
            }
        }
        Ok(None)
    }

    /// After an error: waits for the steps in flight (a failed step makes
    /// every later one roll back) and lets the lane go.
    pub(crate) async fn reset(&mut self) {
        while let Some(step) = self.in_flight.pop_front() {
            let _ = step.handle.await;
        }
        self.pending = None;
        self.chain = None;
        if let Some(hold) = self.hold.take() {
            hold.release().await;
        }
    }

    /// Starts steps until `parallelism` run, the lane has nothing more, or
    /// the next step must wait for those running.
    async fn fill(&mut self, pool: &Pool, max_items: usize, parallelism: usize) -> Result<()> {
        while self.in_flight.len() < parallelism.max(1) {
            let Some(hold) = self.hold.as_mut() else { return Ok(()) };
            if hold.steps + self.in_flight.len() >= STEPS_PER_HOLD {
                return Ok(());
            }
            let prepared = match self.pending.take() {
                Some(p) => p,
                None => {
                    let taken: Vec<i64> = self.in_flight.iter().flat_map(|s| s.seqs.iter().copied()).collect();
                    match read_step(hold, &taken, max_items).await? {
                        Some(p) => p,
                        None => return Ok(()),
                    }
                }
            };
            let conflict = (prepared.exclusive && !self.in_flight.is_empty())
                || self.in_flight.iter().any(|s| s.exclusive || s.keys.overlaps(&prepared.keys));
            if conflict {
                self.pending = Some(prepared);
                return Ok(());
            }
            let lane = hold.lane;
            let (locked_tx, locked_rx) = oneshot::channel();
            let (done_tx, done_rx) = oneshot::channel();
            let previous = self.chain.replace(Chain { locked: locked_rx, done: done_rx });
            let Prepared { entries, keys, exclusive } = prepared;
            let seqs = entries.iter().map(|(seq, _)| *seq).collect();
            let handle = tokio::spawn(run_step(pool.clone(), lane, entries, previous, locked_tx, done_tx));
            self.in_flight.push_back(InFlight { seqs, keys, exclusive, handle });
        }
        Ok(())
    }
}

/// Takes the first lane with queued work (rotating from `start`) that no
/// other node holds.
async fn claim(pool: &Pool, start: i32) -> Result<Option<LaneHold>> {
    let conn = conn(pool).await?;
    let lanes = query(
        &conn,
        "SELECT l.lane FROM ingest_lanes l
         WHERE EXISTS (SELECT 1 FROM ingest_inbox i WHERE i.lane = l.lane)
         ORDER BY (l.lane - $1 + $2) % $2",
        &[&start, &(LANES as i32)],
    )
    .await?;
    for row in &lanes {
        let lane: i32 = get(row, "lane")?;
        let got = query_one(&conn, "SELECT pg_try_advisory_lock($1, $2) AS got", &[&LANE_LOCK, &lane]).await?;
        if get::<bool>(&got, "got")? {
            return Ok(Some(LaneHold { conn: Some(conn), lane, steps: 0, items_per_entry: 1 }));
        }
    }
    Ok(None)
}

/// Reads the lane's oldest entries not already taken, up to about
/// `max_items` items: first their sizes (as many as the last read's items
/// per entry suggest, so 100-item requests do not cost 1000 sizes), then
/// the bodies of those used.
async fn read_step(hold: &mut LaneHold, taken: &[i64], max_items: usize) -> Result<Option<Prepared>> {
    let wanted = (max_items / hold.items_per_entry.max(1) + 8).min(READ_LIMIT as usize) as i64;
    let c = hold.c()?;
    let sizes = query(
        c,
        "SELECT seq, item_count FROM ingest_inbox WHERE lane = $1 AND seq <> ALL($2) ORDER BY seq LIMIT $3",
        &[&hold.lane, &taken, &wanted],
    )
    .await?;
    let mut seqs: Vec<i64> = Vec::new();
    let mut items = 0usize;
    for row in &sizes {
        seqs.push(get(row, "seq")?);
        items += get::<i32>(row, "item_count")?.max(0) as usize;
        if items >= max_items {
            break;
        }
    }
    if seqs.is_empty() {
        return Ok(None);
    }
    hold.items_per_entry = (items / seqs.len()).max(1);
    let c = hold.c()?;
    let rows =
        query(c, "SELECT seq, body FROM ingest_inbox WHERE lane = $1 AND seq = ANY($2)", &[&hold.lane, &seqs]).await?;
    if rows.len() != seqs.len() {
        return Err(Error::Unavailable { message: "inbox entries vanished while read".into(), retry_after_secs: 1 });
    }
    let mut bodies: Vec<(i64, Vec<u8>)> = Vec::with_capacity(rows.len());
    for row in &rows {
        bodies.push((get(row, "seq")?, get(row, "body")?));
    }
    let (entries, keys, mut exclusive, names) = tokio::task::spawn_blocking(move || decode(bodies))
        .await
        .map_err(|e| Error::Internal(format!("decoding inbox entries panicked: {e}")))??;
    // A step that would create a contact field runs alone: two steps
    // inserting one field would wait on each other.
    for (ws, names) in &names {
        if exclusive {
            break;
        }
        let registry = load_registry(c, ws, Entity::Contact).await?;
        exclusive = names.iter().any(|n| registry.get(n).is_none());
    }
    Ok(Some(Prepared { entries, keys, exclusive }))
}

type Decoded = (Vec<(i64, QueuedJob)>, Keys, bool, HashMap<String, HashSet<String>>);

/// Parses inbox bodies (in seq order) and collects what their items name:
/// identities and message ids, whether one merges or groups, and the trait
/// names written per workspace.
fn decode(mut bodies: Vec<(i64, Vec<u8>)>) -> Result<Decoded> {
    bodies.sort_by_key(|(seq, _)| *seq);
    let mut entries = Vec::with_capacity(bodies.len());
    let mut keys = Keys::default();
    let mut exclusive = false;
    let mut names: HashMap<String, HashSet<String>> = HashMap::new();
    for (seq, body) in bodies {
        let job: QueuedJob = serde_json::from_slice(&body)
            .map_err(|e| Error::Internal(format!("inbox entry {seq} is unreadable: {e}")))?;
        let ws = job.workspace_id.as_str();
        for item in &job.items {
            if let Some(id) = item.message_id() {
                keys.messages.insert((ws.to_string(), id.to_string()));
            }
            let mut add = |kind: IdentityKind, value: &str| {
                keys.identities.insert((ws.to_string(), kind, value.to_string()));
            };
            match item {
                IngestItem::Identify { lookups, changes, .. } => {
                    lookups.iter().for_each(|(k, v)| add(*k, v));
                    for (k, v) in &changes.identities {
                        if let Some(v) = v {
                            add(*k, v);
                        }
                    }
                    let set = names.entry(ws.to_string()).or_default();
                    for (name, _) in &changes.traits {
                        if !set.contains(name) {
                            set.insert(name.clone());
                        }
                    }
                }
                IngestItem::Track { lookups, .. } => lookups.iter().for_each(|(k, v)| add(*k, v)),
                IngestItem::Alias { .. } | IngestItem::Group { .. } => exclusive = true,
                IngestItem::Rejected { .. } => {}
            }
        }
        entries.push((seq, job));
    }
    Ok((entries, keys, exclusive, names))
}

/// One step: its own transaction. Its contacts are locked after those of
/// the step before it (`previous`), and it commits only after that step
/// committed; when that step failed, it rolls back.
async fn run_step(
    pool: Pool,
    lane: i32,
    entries: Vec<(i64, QueuedJob)>,
    previous: Option<Chain>,
    locked: oneshot::Sender<()>,
    done: oneshot::Sender<bool>,
) -> Result<ApplyReport> {
    let (prev_locked, prev_done) = match previous {
        Some(Chain { locked, done }) => (Some(locked), Some(done)),
        None => (None, None),
    };
    let tx = match Tx::begin(&pool).await {
        Ok(tx) => tx,
        Err(e) => {
            let _ = done.send(false);
            return Err(e);
        }
    };
    if let Some(l) = prev_locked {
        let _ = l.await;
    }
    let rt = Handle::current();
    // core's apply_item is synchronous: run the step on a blocking thread,
    // which drives the queries with `block_on`.
    let joined = tokio::task::spawn_blocking(move || {
        let mut applier = Applier::new(tx, rt);
        let result = applier.prefetch(&entries);
        drop(locked);
        let result = result.and_then(|_| applier.run(lane, &entries));
        (applier.tx, result)
    })
    .await;
    let (tx, result) = match joined {
        Ok(r) => r,
        Err(e) => {
            let _ = done.send(false);
            return Err(Error::Internal(format!("the applier panicked: {e}")));
        }
    };
    let previous_ok = match prev_done {
        None => true,
        Some(d) => d.await.unwrap_or(false),
    };
    match result {
        Ok(report) if previous_ok => {
            let committed = tx.commit().await;
            let _ = done.send(committed.is_ok());
            committed.map(|_| report)
        }
        Ok(_) => {
            tx.rollback().await;
            let _ = done.send(false);
            Err(Error::Unavailable { message: "an earlier apply step failed".into(), retry_after_secs: 1 })
        }
        Err(e) => {
            tx.rollback().await;
            let _ = done.send(false);
            Err(e)
        }
    }
}

/// A contact loaded or created in this step.
struct Cached {
    state: ContactState,
    /// Not yet in the table (its id is reserved).
    new: bool,
    /// Changed since the last flush.
    dirty: bool,
}

type Key = (String, i64);

/// core's view of the step's transaction (see the module doc).
pub(crate) struct Applier {
    pub(crate) tx: Tx,
    pub(crate) rt: Handle,
    /// Who holds an identity (`None`: nobody), for every identity asked.
    holders: HashMap<(String, IdentityKind, String), Option<i64>>,
    contacts: HashMap<Key, Cached>,
    /// Message ids asked: true when already applied.
    messages: HashMap<(String, String), bool>,
    new_messages: Vec<(String, String)>,
    registries: HashMap<(String, Entity), FieldRegistry>,
    new_fields: Vec<(String, Entity, String, FieldType)>,
    events: Vec<(String, i64, NewEvent)>,
    /// Latest event time per contact since the last flush.
    seen: HashMap<Key, DateTime<Utc>>,
    reserved: Vec<i64>,
    subscriptions: Vec<(String, i64, SubscriptionChange)>,
    /// How many ids the first reservation takes: the step's items less the
    /// contacts the prefetch found (at least [`ID_CHUNK`]).
    id_hint: usize,
    /// Reps asked for or written (`None`: no such rep), by workspace, then rep id.
    pub(crate) reps: HashMap<String, crate::pending::Known<convene_core::rep::Rep>>,
    /// Calls asked for or written (`None`: no such call), by workspace, then call id.
    pub(crate) calls: HashMap<String, crate::pending::Known<convene_core::call::Call>>,
    /// Reps and calls created so far (orders their inserts).
    pub(crate) order: usize,
    /// Per workspace: whether it has any suppression (erased identities),
    /// asked once per step; when it has, each new identity is checked.
    suppressions: HashMap<String, bool>,
}

/// Runs a query future from the applier's blocking thread.
pub(crate) fn block<F: Future>(rt: &Handle, f: F) -> F::Output {
    rt.block_on(f)
}

fn is_step_error(e: &Error) -> bool {
    matches!(e, Error::Storage(_) | Error::Internal(_) | Error::Unavailable { .. })
}

impl Applier {
    /// Refuses (this row only) a contact write that would bring back an
    /// erased identity; flushing checks again, set-based, for a suppression
    /// committed meanwhile.
    fn check_suppressed(&mut self, ws: &str, state: &ContactState) -> Result<()> {
        let any = match self.suppressions.get(ws) {
            Some(any) => *any,
            None => {
                let any = block(&self.rt, crate::erase::any(self.tx.c(), ws))?;
                self.suppressions.insert(ws.to_string(), any);
                any
            }
        };
        if any {
            block(&self.rt, crate::erase::check_states(self.tx.c(), ws, &[state]))?;
        }
        Ok(())
    }

    pub(crate) fn new(tx: Tx, rt: Handle) -> Self {
        Applier {
            tx,
            rt,
            holders: HashMap::new(),
            contacts: HashMap::new(),
            messages: HashMap::new(),
            new_messages: Vec::new(),
            registries: HashMap::new(),
            new_fields: Vec::new(),
            events: Vec::new(),
            seen: HashMap::new(),
            reserved: Vec::new(),
            subscriptions: Vec::new(),
            id_hint: 0,
            reps: HashMap::new(),
            calls: HashMap::new(),
            order: 0,
            suppressions: HashMap::new(),
        }
    }

    /// The transaction, when the applier is done with it.
    pub(crate) fn into_tx(self) -> Tx {
        self.tx
    }

    fn run(&mut self, lane: i32, entries: &[(i64, QueuedJob)]) -> Result<ApplyReport> {
        let mut report = ApplyReport::default();
        let mut results = Vec::with_capacity(entries.len());
        for (_, job) in entries {
            let ws = job.workspace_id.as_str();
            let (mut applied, mut duplicates) = (0usize, 0usize);
            let mut errors: Vec<RowError> = Vec::new();
            for (row, item) in job.items.iter().enumerate() {
                let outcome =
                    if item.needs_savepoint() { self.apply_in_savepoint(ws, item) } else { self.apply_plain(ws, item) };
                match outcome {
                    Ok(RowOutcome::Applied) => applied += 1,
                    Ok(RowOutcome::Duplicate) => duplicates += 1,
                    Err(e) if is_step_error(&e) => return Err(e),
                    Err(e) => errors.push(RowError::of(row, &e)),
                }
            }
            results.push((job, applied, duplicates, errors));
            report.items += job.items.len();
            report.received_at.push(job.received_at);
        }
        self.flush().map_err(race)?;
        let finished = now();
        let (mut wss, mut ids, mut statuses, mut totals, mut applieds, mut dups, mut faileds, mut errs, mut received) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for (job, applied, duplicates, errors) in &results {
            wss.push(job.workspace_id.as_str());
            ids.push(job.id.as_str());
            statuses.push(if errors.is_empty() { JobStatus::Applied } else { JobStatus::Failed }.as_str());
            totals.push(job.items.len() as i32);
            applieds.push(*applied as i32);
            dups.push(*duplicates as i32);
            faileds.push(errors.len() as i32);
            errs.push(serde_json::to_string(errors).unwrap_or_else(|_| "[]".into()));
            received.push(job.received_at);
        }
        block(
            &self.rt,
            execute(
                self.tx.c(),
                "INSERT INTO jobs (workspace_id, id, status, total, applied, duplicates, failed, errors, received_at, finished_at)
                 SELECT w, i, s, t, a, d, f, e::jsonb, r, $10
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[], $8::text[], $9::timestamptz[])
                      AS v(w, i, s, t, a, d, f, e, r)
                 ON CONFLICT DO NOTHING",
                &[&wss, &ids, &statuses, &totals, &applieds, &dups, &faileds, &errs, &received, &finished],
            ),
        )?;
        let seqs: Vec<i64> = entries.iter().map(|(seq, _)| *seq).collect();
        let deleted = block(
            &self.rt,
            execute(self.tx.c(), "DELETE FROM ingest_inbox WHERE lane = $1 AND seq = ANY($2)", &[&lane, &seqs]),
        )?;
        if deleted != seqs.len() as u64 {
            // Another applier took some of these entries: this step must
            // not apply them a second time.
            return Err(Error::Unavailable {
                message: "inbox entries were applied by another step".into(),
                retry_after_secs: 1,
            });
        }
        Ok(report)
    }

    /// Identify and track: checked before any write, so a row error leaves
    /// nothing buffered; the registry may have been touched, so it is
    /// reloaded.
    fn apply_plain(&mut self, ws: &str, item: &IngestItem) -> Result<RowOutcome> {
        let result = apply_item(self, ws, item);
        if result.is_err() {
            self.registries.retain(|(w, _), _| w != ws);
        }
        result
    }

    /// Alias and group: the buffer is flushed, the item runs in a savepoint
    /// and its writes are flushed inside it; the caches are dropped after
    /// (a merge or a rollback changes what they describe).
    fn apply_in_savepoint(&mut self, ws: &str, item: &IngestItem) -> Result<RowOutcome> {
        self.flush().map_err(race)?;
        self.control("SAVEPOINT item")?;
        let result = apply_item(self, ws, item).and_then(|outcome| self.flush().map(|_| outcome));
        match &result {
            Ok(_) => self.control("RELEASE SAVEPOINT item")?,
            Err(e) if is_step_error(e) => {}
            Err(_) => {
                self.control("ROLLBACK TO SAVEPOINT item")?;
                self.control("RELEASE SAVEPOINT item")?;
            }
        }
        self.discard_buffers();
        self.holders.clear();
        self.contacts.clear();
        self.messages.clear();
        self.registries.clear();
        self.reps.clear();
        self.calls.clear();
        result
    }

    fn control(&mut self, sql: &'static str) -> Result<()> {
        block(&self.rt, self.tx.c().batch_execute(sql)).map_err(crate::error::db)
    }

    fn discard_buffers(&mut self) {
        self.new_messages.clear();
        self.new_fields.clear();
        self.events.clear();
        self.seen.clear();
        self.subscriptions.clear();
    }

    /// Loads and locks every contact the entries name, and the message ids
    /// already applied, with one query each per workspace.
    pub(crate) fn prefetch(&mut self, entries: &[(i64, QueuedJob)]) -> Result<()> {
        #[derive(Default)]
        struct Wanted {
            messages: BTreeSet<String>,
            identities: HashMap<IdentityKind, BTreeSet<String>>,
        }
        let mut wanted: HashMap<&str, Wanted> = HashMap::new();
        for (_, job) in entries {
            let w = wanted.entry(job.workspace_id.as_str()).or_default();
            for item in &job.items {
                if let Some(id) = item.message_id() {
                    w.messages.insert(id.to_string());
                }
                let mut add = |kind: IdentityKind, value: &str| {
                    w.identities.entry(kind).or_default().insert(value.to_string());
                };
                match item {
                    IngestItem::Identify { lookups, changes, .. } => {
                        lookups.iter().for_each(|(k, v)| add(*k, v));
                        changes.identities_set().for_each(|(k, v)| add(k, v));
                    }
                    IngestItem::Track { lookups, .. } | IngestItem::Group { lookups, .. } => {
                        lookups.iter().for_each(|(k, v)| add(*k, v))
                    }
                    IngestItem::Alias { previous, lookups, .. } => {
                        previous.iter().chain(lookups).for_each(|(k, v)| add(*k, v))
                    }
                    IngestItem::Rejected { .. } => {}
                }
            }
        }
        let mut found = 0usize;
        for (ws, w) in wanted {
            let messages: Vec<&String> = w.messages.iter().collect();
            if !messages.is_empty() {
                let seen = block(
                    &self.rt,
                    query(
                        self.tx.c(),
                        "SELECT message_id FROM ingest_dedupe WHERE workspace_id = $1 AND message_id = ANY($2)",
                        &[&ws, &messages],
                    ),
                )?;
                for m in &messages {
                    self.messages.insert((ws.to_string(), m.to_string()), false);
                }
                for row in &seen {
                    self.messages.insert((ws.to_string(), get(row, "message_id")?), true);
                }
            }
            let values = |kind: IdentityKind| -> Vec<&String> {
                w.identities.get(&kind).map(|s| s.iter().collect()).unwrap_or_default()
            };
            let (emails, mobiles, externals, anonymous) = (
                values(IdentityKind::Email),
                values(IdentityKind::Mobile),
                values(IdentityKind::ExternalId),
                values(IdentityKind::AnonymousId),
            );
            for kind in IdentityKind::ALL {
                for v in values(kind) {
                    self.holders.insert((ws.to_string(), kind, v.clone()), None);
                }
            }
            // One index probe and lock per value, whatever the table size
            // and the plan (custom or generic): each arm is a nested loop
            // over its array into its partial unique index. A contact named
            // by two kinds comes back twice (locked once).
            let arm = |n: usize, column: &str| {
                format!(
                    "SELECT {COLUMNS} FROM unnest(${n}::text[]) AS v(x) CROSS JOIN LATERAL (
                         SELECT {COLUMNS} FROM contacts c
                         WHERE c.workspace_id = $1 AND c.{column} IS NOT NULL AND c.{column} = v.x FOR UPDATE) c"
                )
            };
            let sql =
                [arm(2, "email"), arm(3, "mobile"), arm(4, "external_id"), arm(5, "anonymous_id")].join(" UNION ALL ");
            let rows = block(&self.rt, query(self.tx.c(), &sql, &[&ws, &emails, &mobiles, &externals, &anonymous]))?;
            found += rows.len();
            for row in &rows {
                let contact = contact_from_row(row)?;
                self.remember(ws, contact.id, contact.state);
            }
        }
        // At most this many contacts are new: items less the contacts found.
        let items: usize = entries.iter().map(|(_, job)| job.items.len()).sum();
        self.id_hint = items.saturating_sub(found);
        Ok(())
    }

    /// Caches a contact read from the table and who holds its identities.
    fn remember(&mut self, ws: &str, id: i64, state: ContactState) {
        for kind in IdentityKind::ALL {
            if let Some(v) = state.identity(kind) {
                self.holders.insert((ws.to_string(), kind, v.to_string()), Some(id));
            }
        }
        self.contacts.insert((ws.to_string(), id), Cached { state, new: false, dirty: false });
    }

    /// Writes everything buffered, one set-based statement per table and
    /// workspace: updated contacts, then new ones, then last-seen times,
    /// events, message ids and fields.
    pub(crate) fn flush(&mut self) -> Result<()> {
        let mut wss: BTreeSet<String> = BTreeSet::new();
        wss.extend(self.contacts.iter().filter(|(_, c)| c.dirty).map(|((w, _), _)| w.clone()));
        wss.extend(self.events.iter().map(|(w, _, _)| w.clone()));
        wss.extend(self.seen.keys().map(|(w, _)| w.clone()));
        wss.extend(self.new_messages.iter().map(|(w, _)| w.clone()));
        wss.extend(self.new_fields.iter().map(|(w, _, _, _)| w.clone()));
        wss.extend(self.subscriptions.iter().map(|(w, _, _)| w.clone()));
        wss.extend(self.reps.iter().filter(|(_, m)| crate::pending::any_dirty(m)).map(|(w, _)| w.clone()));
        wss.extend(self.calls.iter().filter(|(_, m)| crate::pending::any_dirty(m)).map(|(w, _)| w.clone()));
        if wss.is_empty() {
            return Ok(());
        }
        let at = now();
        for ws in &wss {
            for entity in Entity::ALL {
                let fields: Vec<(String, FieldType)> = self
                    .new_fields
                    .iter()
                    .filter(|(w, e, _, _)| w == ws && *e == entity)
                    .map(|(_, _, n, t)| (n.clone(), *t))
                    .collect();
                block(&self.rt, insert_inferred_fields(self.tx.c(), ws, entity, &fields))?;
            }
            let mut updates = Vec::new();
            let mut inserts = Vec::new();
            let mut ordered: Vec<(&Key, &Cached)> =
                self.contacts.iter().filter(|((w, _), c)| w == ws && c.dirty).collect();
            ordered.sort_by_key(|((_, id), _)| *id);
            for (key, cached) in ordered {
                let row = RowWrite { id: key.1, state: &cached.state, last_seen: self.seen.remove(key) };
                if cached.new { inserts.push(row) } else { updates.push(row) }
            }
            block(&self.rt, contacts::update_rows(self.tx.c(), ws, &updates, at))?;
            block(&self.rt, contacts::insert_rows(self.tx.c(), ws, &inserts, at))?;
            let seen: HashMap<i64, DateTime<Utc>> =
                self.seen.iter().filter(|((w, _), _)| w == ws).map(|((_, id), t)| (*id, *t)).collect();
            block(&self.rt, contacts::touch_seen(self.tx.c(), ws, &seen))?;
            let evs: Vec<(i64, &NewEvent)> =
                self.events.iter().filter(|(w, _, _)| w == ws).map(|(_, c, e)| (*c, e)).collect();
            block(&self.rt, events::insert(self.tx.c(), ws, &evs))?;
            let changes: Vec<(i64, &SubscriptionChange)> =
                self.subscriptions.iter().filter(|(w, _, _)| w == ws).map(|(_, c, s)| (*c, s)).collect();
            block(&self.rt, contacts::insert_subscription_changes(self.tx.c(), ws, &changes))?;
            // After the contacts: a new call may name a new contact.
            self.flush_reps(ws)?;
            self.flush_calls(ws)?;
            let msgs: Vec<&str> = self.new_messages.iter().filter(|(w, _)| w == ws).map(|(_, m)| m.as_str()).collect();
            if !msgs.is_empty() {
                block(
                    &self.rt,
                    execute(
                        self.tx.c(),
                        "INSERT INTO ingest_dedupe (workspace_id, message_id, seen_at)
                         SELECT $1, m, $3 FROM unnest($2::text[]) AS m ON CONFLICT DO NOTHING",
                        &[&ws, &msgs, &at],
                    ),
                )?;
            }
        }
        for cached in self.contacts.values_mut() {
            cached.dirty = false;
            cached.new = false;
        }
        self.discard_buffers();
        Ok(())
    }

    fn cached_state(&self, ws: &str, id: i64) -> Option<&ContactState> {
        self.contacts.get(&(ws.to_string(), id)).map(|c| &c.state)
    }
}

/// Runs `f` with an [`Applier`] on a new transaction, on a blocking thread
/// (core's write functions are synchronous); commits when it succeeds,
/// rolls back otherwise.
pub(crate) async fn with_applier<T, F>(pool: &Pool, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Applier) -> Result<T> + Send + 'static,
{
    let tx = Tx::begin(pool).await?;
    let rt = Handle::current();
    let (tx, result) = tokio::task::spawn_blocking(move || {
        let mut applier = Applier::new(tx, rt);
        let result = f(&mut applier);
        (applier.into_tx(), result)
    })
    .await
    .map_err(|e| Error::Internal(format!("a write panicked: {e}")))?;
    tx.finish(result).await
}

/// A flush that fails on a unique index means another writer (a native
/// request, another node) took an identity after the prefetch: the step is
/// run again and then sees it.
pub(crate) fn race(e: Error) -> Error {
    match e {
        Error::Conflict { .. } => Error::Unavailable {
            message: "a concurrent write took an identity; the step is retried".into(),
            retry_after_secs: 1,
        },
        other => other,
    }
}

impl IngestTx for Applier {
    fn message_seen(&mut self, ws: &str, message_id: &str) -> Result<bool> {
        let key = (ws.to_string(), message_id.to_string());
        if let Some(seen) = self.messages.get(&key) {
            return Ok(*seen);
        }
        let row = block(
            &self.rt,
            query_one(
                self.tx.c(),
                "SELECT EXISTS (SELECT 1 FROM ingest_dedupe WHERE workspace_id = $1 AND message_id = $2) AS seen",
                &[&ws, &message_id],
            ),
        )?;
        let seen: bool = get(&row, "seen")?;
        self.messages.insert(key, seen);
        Ok(seen)
    }

    fn record_message(&mut self, ws: &str, message_id: &str) -> Result<()> {
        self.messages.insert((ws.to_string(), message_id.to_string()), true);
        self.new_messages.push((ws.to_string(), message_id.to_string()));
        Ok(())
    }

    fn find_contact(&mut self, ws: &str, kind: IdentityKind, value: &str) -> Result<Option<i64>> {
        let key = (ws.to_string(), kind, value.to_string());
        if let Some(holder) = self.holders.get(&key) {
            return Ok(*holder);
        }
        let column = identity_column(kind);
        let sql = format!(
            "SELECT {COLUMNS} FROM contacts WHERE workspace_id = $1 AND {column} IS NOT NULL AND {column} = $2 FOR UPDATE"
        );
        let row = block(&self.rt, query_opt(self.tx.c(), &sql, &[&ws, &value]))?;
        let holder = match row {
            None => None,
            Some(row) => {
                let contact = contact_from_row(&row)?;
                match self.cached_state(ws, contact.id) {
                    // The cached state is newer than the table (not flushed yet).
                    Some(state) => (state.identity(kind) == Some(value)).then_some(contact.id),
                    None => {
                        let id = contact.id;
                        self.remember(ws, id, contact.state);
                        Some(id)
                    }
                }
            }
        };
        self.holders.insert(key, holder);
        Ok(holder)
    }

    fn load_contact(&mut self, ws: &str, id: i64) -> Result<ContactState> {
        if let Some(state) = self.cached_state(ws, id) {
            return Ok(state.clone());
        }
        let sql = format!("SELECT {COLUMNS} FROM contacts WHERE workspace_id = $1 AND id = $2 FOR UPDATE");
        let row =
            block(&self.rt, query_opt(self.tx.c(), &sql, &[&ws, &id]))?.ok_or(Error::NotFound { entity: "contact" })?;
        let contact = contact_from_row(&row)?;
        self.remember(ws, id, contact.state.clone());
        Ok(contact.state)
    }

    fn field_registry(&mut self, ws: &str, entity: Entity) -> Result<&mut FieldRegistry> {
        let key = (ws.to_string(), entity);
        if !self.registries.contains_key(&key) {
            let mut registry = block(&self.rt, load_registry(self.tx.c(), ws, entity))?;
            for (_, _, name, ty) in self.new_fields.iter().filter(|(w, e, _, _)| w == ws && *e == entity) {
                registry.insert(name.clone(), *ty);
            }
            self.registries.insert(key.clone(), registry);
        }
        self.registries.get_mut(&key).ok_or_else(|| Error::Internal("registry vanished".into()))
    }

    fn record_fields(&mut self, ws: &str, entity: Entity, fields: &[(String, FieldType)]) -> Result<()> {
        for (name, ty) in fields {
            if !self.new_fields.iter().any(|(w, e, n, _)| w == ws && *e == entity && n == name) {
                self.new_fields.push((ws.to_string(), entity, name.clone(), *ty));
            }
        }
        Ok(())
    }

    fn insert_contact(&mut self, ws: &str, state: &ContactState) -> Result<i64> {
        self.check_suppressed(ws, state)?;
        if self.reserved.is_empty() {
            let n = std::mem::take(&mut self.id_hint).max(ID_CHUNK);
            let mut ids = block(&self.rt, contacts::reserve_ids(self.tx.c(), n))?;
            ids.reverse();
            self.reserved = ids;
        }
        let id = self.reserved.pop().ok_or_else(|| Error::Internal("no contact id reserved".into()))?;
        self.remember(ws, id, state.clone());
        if let Some(cached) = self.contacts.get_mut(&(ws.to_string(), id)) {
            cached.new = true;
            cached.dirty = true;
        }
        Ok(id)
    }

    fn update_contact(&mut self, ws: &str, id: i64, state: &ContactState, identities_changed: bool) -> Result<()> {
        if identities_changed {
            self.check_suppressed(ws, state)?;
        }
        let key = (ws.to_string(), id);
        let cached =
            self.contacts.entry(key).or_insert(Cached { state: ContactState::default(), new: false, dirty: false });
        for kind in IdentityKind::ALL {
            let (old, new) = (cached.state.identity(kind), state.identity(kind));
            if old != new {
                if let Some(old) = old {
                    self.holders.insert((ws.to_string(), kind, old.to_string()), None);
                }
                if let Some(new) = new {
                    self.holders.insert((ws.to_string(), kind, new.to_string()), Some(id));
                }
            }
        }
        cached.state = state.clone();
        cached.dirty = true;
        Ok(())
    }

    fn insert_event(&mut self, ws: &str, contact_id: i64, event: &NewEvent) -> Result<()> {
        self.events.push((ws.to_string(), contact_id, event.clone()));
        let seen = self.seen.entry((ws.to_string(), contact_id)).or_insert(event.timestamp);
        if event.timestamp > *seen {
            *seen = event.timestamp;
        }
        Ok(())
    }

    fn merge_contacts(&mut self, ws: &str, from: i64, into: i64) -> Result<()> {
        self.flush()?;
        let c = self.tx.c();
        block(&self.rt, async {
            execute(
                c,
                "UPDATE events SET contact_id = $3 WHERE workspace_id = $1 AND contact_id = $2",
                &[&ws, &from, &into],
            )
            .await?;
            execute(c, "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2", &[&ws, &from]).await?;
            execute(
                c,
                "INSERT INTO contact_merges (workspace_id, from_id, into_id, merged_at) VALUES ($1, $2, $3, $4)",
                &[&ws, &from, &into, &now()],
            )
            .await
        })?;
        if let Some(gone) = self.contacts.remove(&(ws.to_string(), from)) {
            for kind in IdentityKind::ALL {
                if let Some(v) = gone.state.identity(kind) {
                    self.holders.insert((ws.to_string(), kind, v.to_string()), None);
                }
            }
        }
        Ok(())
    }

    fn upsert_company(&mut self, ws: &str, external_id: &str, traits: &Map<String, Value>) -> Result<i64> {
        self.flush()?;
        let changes = CompanyChanges { traits: TraitOp::parse_map(traits)?, ..Default::default() };
        let mut companies = block(&self.rt, PgCompanyTx::load(self.tx.c(), ws, &[external_id]))?;
        let (_, company) = upsert_company(&mut companies, ws, external_id, &changes, now())?;
        block(&self.rt, companies.flush(self.tx.c(), ws))?;
        Ok(company.id)
    }

    fn record_subscription(&mut self, ws: &str, contact_id: i64, change: &SubscriptionChange) -> Result<()> {
        self.subscriptions.push((ws.to_string(), contact_id, change.clone()));
        Ok(())
    }

    fn set_contact_company(&mut self, ws: &str, contact_id: i64, company_id: i64) -> Result<()> {
        self.flush()?;
        block(
            &self.rt,
            execute(
                self.tx.c(),
                "UPDATE contacts SET company_id = $3, updated_at = $4 WHERE workspace_id = $1 AND id = $2",
                &[&ws, &contact_id, &company_id, &now()],
            ),
        )?;
        Ok(())
    }
}

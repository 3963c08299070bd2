//! Calls: conversations that came from a phone or video system, keyed by a
//! `call_id` unique per workspace, with a rep, start and end times, a
//! duration in seconds, a vendor, a campaign, a direction, a summary and
//! typed analytics attributes (the fields registry of entity
//! `conversation`: sentiment, talk ratio, outcome, …).
//!
//! Every call is a conversation (channel `call`), so it shows in the
//! conversations API and the contact's timeline like any other; its call
//! details live beside it. The contact is optional: a call system does not
//! always know who called.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::batch::RowStatus;
use crate::contact::ContactChanges;
use crate::conversation::{Conversation, ConversationStatus};
use crate::error::Error;
use crate::field::{Entity, FieldRegistry, validate_field_name};
use crate::identity::{IdentityKind, normalise_email, normalise_mobile};
use crate::ingest::{Lookups, upsert_contact};
use crate::merge::{MergeOutcome, TraitOp, apply_traits};
use crate::rep::{Rep, RepTx, UpsertCounts, rep_id_of};

/// Most rows one calls update takes (as for reps).
pub const MAX_CALL_ROWS: usize = crate::rep::MAX_REP_ROWS;
/// Longest `call_id`.
pub const MAX_CALL_ID_LEN: usize = 255;
/// Longest vendor, campaign or direction.
pub const MAX_CALL_LABEL_LEN: usize = 200;
/// Longest summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = crate::conversation::MAX_CONTENT_CHARS;
/// The channel of a call's conversation.
pub const CALL_CHANNEL: &str = "call";
/// Keys with a meaning of their own; every other key is an attribute.
pub const BUILTIN_KEYS: [&str; 14] = [
    "call_id",
    "rep_id",
    "start_time",
    "end_time",
    "duration",
    "summary",
    "vendor",
    "campaign",
    "direction",
    "status",
    "email",
    "phone",
    "conversation_id",
    "contact_id",
];

/// A call's details, beside its conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct CallDetails {
    /// The integrator's id, unique per workspace.
    pub call_id: String,
    /// The rep who took or made the call.
    pub rep_id: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Length in seconds.
    pub duration: Option<f64>,
    /// `inbound`, `outbound`, … as sent.
    pub direction: Option<String>,
    /// The system it came from.
    pub vendor: Option<String>,
    /// The campaign it belongs to.
    pub campaign: Option<String>,
    /// A summary (often machine-written).
    pub summary: Option<String>,
    /// Typed analytics attributes.
    pub attributes: Map<String, Value>,
}

/// A call: its conversation and its details.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The conversation (channel `call`).
    pub conversation: Conversation,
    /// The call's own data.
    pub details: CallDetails,
}

/// A validated write to one call, found by `call_id`. `None` leaves a value,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallWrite {
    /// Which call.
    pub call_id: String,
    /// The rep (created when unknown, as a reps update would).
    pub rep_id: Option<Option<String>>,
    /// Start (required to create a call).
    pub started_at: Option<DateTime<Utc>>,
    /// End.
    pub ended_at: Option<Option<DateTime<Utc>>>,
    /// Length in seconds.
    pub duration: Option<Option<f64>>,
    /// Direction.
    pub direction: Option<Option<String>>,
    /// Vendor.
    pub vendor: Option<Option<String>>,
    /// Campaign.
    pub campaign: Option<Option<String>>,
    /// Summary.
    pub summary: Option<Option<String>>,
    /// Conversation status (calls are `resolved` unless told otherwise).
    pub status: Option<ConversationStatus>,
    /// The contact, found or created by email, else by phone (mobile).
    pub contact: Vec<(IdentityKind, String)>,
    /// Attribute values (`Null` clears).
    pub attributes: Vec<(String, Value)>,
}

impl CallWrite {
    /// Reads one row (`call_id`, `rep_id`, `start_time`, `end_time`,
    /// `duration`, `summary`, `vendor`, `campaign`, `direction`, `status`,
    /// `email`, `phone`, and attributes). Times are RFC 3339 or Unix seconds.
    pub fn from_row(row: Map<String, Value>) -> Result<Self, Error> {
        let mut w = CallWrite::default();
        let mut call_id = None;
        for (key, value) in row {
            match key.as_str() {
                "call_id" => call_id = Some(call_id_of(&value)?),
                "rep_id" => w.rep_id = Some(if value.is_null() { None } else { Some(rep_id_of(&value)?) }),
                // A start is never cleared: null (as the row-wise form's
                // missing-key rule writes) leaves it as it is; a new call
                // still needs one (`require_start`).
                "start_time" => w.started_at = time_of(&value, "start_time")?,
                "end_time" => w.ended_at = Some(time_of(&value, "end_time")?),
                "duration" => w.duration = Some(duration_of(&value)?),
                "summary" => w.summary = Some(text_of(&value, "summary", MAX_SUMMARY_CHARS)?),
                "vendor" => w.vendor = Some(text_of(&value, "vendor", MAX_CALL_LABEL_LEN)?),
                "campaign" => w.campaign = Some(text_of(&value, "campaign", MAX_CALL_LABEL_LEN)?),
                "direction" => w.direction = Some(text_of(&value, "direction", MAX_CALL_LABEL_LEN)?),
                "status" => {
                    w.status =
                        match &value {
                            Value::Null => None,
                            v => Some(v.as_str().and_then(ConversationStatus::parse).ok_or_else(|| {
                                Error::validation("status", "status must be open, pending or resolved")
                            })?),
                        }
                }
                "email" => {
                    if let Some(s) = text_of(&value, "email", 254)? {
                        w.contact.push((IdentityKind::Email, normalise_email(&s)?));
                    }
                }
                "phone" => {
                    if let Some(s) = text_of(&value, "phone", 64)? {
                        let phone = normalise_mobile(&s).map_err(|_| {
                            Error::validation("phone", format!("'{s}' is not a phone number (digits, an optional +)"))
                        })?;
                        w.contact.push((IdentityKind::Mobile, phone));
                    }
                }
                "conversation_id" | "contact_id" | "created_at" | "updated_at" => {}
                _ => {
                    validate_field_name(&key)?;
                    w.attributes.push((key, value));
                }
            }
        }
        w.call_id = call_id.ok_or_else(|| Error::validation("call_id", "call_id is required"))?;
        Ok(w)
    }

    /// The start a new call needs.
    pub fn require_start(&self) -> Result<DateTime<Utc>, Error> {
        self.started_at.ok_or_else(|| Error::validation("start_time", "start_time is required for a new call"))
    }

    /// Applies the write, all or nothing: values, then attributes typed by
    /// `registry` (entity `conversation`); then fills what follows from the
    /// rest (duration from start and end, or end from start and duration)
    /// and checks that the end is not before the start.
    pub fn apply(&self, call: &mut CallDetails, registry: &mut FieldRegistry) -> Result<MergeOutcome, Error> {
        let ops: Vec<(String, TraitOp)> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), if v.is_null() { TraitOp::Unset } else { TraitOp::Set(v.clone()) }))
            .collect();
        let mut next = call.clone();
        let outcome = apply_traits(&mut next.attributes, &ops, registry)?;
        if let Some(v) = &self.rep_id {
            next.rep_id = v.clone();
        }
        if let Some(v) = self.started_at {
            next.started_at = v;
        }
        if let Some(v) = self.ended_at {
            next.ended_at = v;
        }
        if let Some(v) = self.duration {
            next.duration = v;
        }
        for (slot, value) in [
            (&mut next.direction, &self.direction),
            (&mut next.vendor, &self.vendor),
            (&mut next.campaign, &self.campaign),
            (&mut next.summary, &self.summary),
        ] {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        next.settle_times(self.started_at.is_some(), self.ended_at, self.duration);
        if let Some(end) = next.ended_at
            && end < next.started_at
        {
            return Err(Error::validation("end_time", "end_time is before start_time"));
        }
        *call = next;
        Ok(outcome)
    }
}

impl CallDetails {
    /// Keeps start, end and duration consistent after a write (`end` and
    /// `duration` as the write sent them: absent, null, or a value). Values
    /// sent together are kept as sent; a duration sent alone moves the end;
    /// an end sent alone gives the duration; a null end clears the duration
    /// derived from it; a null duration, or a start that moved, gives the
    /// duration again from the end (or, without an end, the end from the
    /// duration).
    fn settle_times(&mut self, start_sent: bool, end: Option<Option<DateTime<Utc>>>, duration: Option<Option<f64>>) {
        let start = self.started_at;
        let since_start = |end: DateTime<Utc>| (end - start).num_milliseconds() as f64 / 1000.0;
        let after_start = |secs: f64| TimeDelta::try_milliseconds((secs * 1000.0) as i64).map(|d| start + d);
        match (matches!(end, Some(Some(_))), matches!(duration, Some(Some(_)))) {
            (true, true) => {}
            (false, true) => self.ended_at = self.duration.and_then(after_start),
            (true, false) => self.duration = self.ended_at.map(since_start),
            (false, false) if end.is_some() => self.duration = None,
            (false, false) if start_sent || duration.is_some() => match self.ended_at {
                Some(end) => self.duration = Some(since_start(end)),
                None => self.ended_at = self.duration.and_then(after_start),
            },
            (false, false) => {}
        }
    }

    /// The text of the activity message that records the call in its
    /// conversation (and so in the contact's timeline).
    pub fn activity_text(&self) -> String {
        let mut text = format!("Call {}", self.call_id);
        if let Some(d) = &self.direction {
            text.push_str(&format!(" ({d})"));
        }
        if let Some(rep) = &self.rep_id {
            text.push_str(&format!(" with rep {rep}"));
        }
        if let Some(secs) = self.duration {
            text.push_str(&format!(", {secs} s"));
        }
        text
    }

    /// An empty call starting at `started_at`.
    pub fn new(call_id: String, started_at: DateTime<Utc>) -> Self {
        CallDetails {
            call_id,
            rep_id: None,
            started_at,
            ended_at: None,
            duration: None,
            direction: None,
            vendor: None,
            campaign: None,
            summary: None,
            attributes: Map::new(),
        }
    }
}

/// Reads a `call_id`: a non-empty string (a number is taken as its text).
pub fn call_id_of(value: &Value) -> Result<String, Error> {
    let s = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(Error::validation("call_id", "call_id must be a string")),
    };
    if s.is_empty() || s.chars().count() > MAX_CALL_ID_LEN || s.chars().any(char::is_control) {
        return Err(Error::validation("call_id", format!("call_id must have 1 to {MAX_CALL_ID_LEN} characters")));
    }
    Ok(s)
}

/// Reads a time: RFC 3339 text, a date (midnight UTC), or Unix seconds.
pub fn time_of(value: &Value, field: &str) -> Result<Option<DateTime<Utc>>, Error> {
    let bad = || Error::validation(field, format!("{field} must be an RFC 3339 time or Unix seconds"));
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(bad)?;
            DateTime::from_timestamp_millis((secs * 1000.0).round() as i64).map(Some).ok_or_else(bad)
        }
        Value::String(s) => {
            let s = s.trim();
            if let Some(t) = crate::ids::parse_time(s) {
                return Ok(Some(DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)));
            }
            if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
            }
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
                return Ok(Some(t.and_utc()));
            }
            // Unix seconds sent as text (CSV exports and form posts do).
            match s.parse::<f64>() {
                Ok(secs) if secs.is_finite() => time_of(&Value::from(secs), field),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

fn duration_of(value: &Value) -> Result<Option<f64>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(d) if d >= 0.0 && d.is_finite() && d < 1e9 => Ok(Some(d)),
            _ => Err(Error::validation("duration", "duration must be a number of seconds, 0 or more")),
        },
        Value::String(s) => duration_of(&s.trim().parse::<f64>().map(Value::from).unwrap_or(Value::Bool(false))),
        _ => Err(Error::validation("duration", "duration must be a number of seconds, 0 or more")),
    }
}

fn text_of(value: &Value, field: &str, max: usize) -> Result<Option<String>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= max => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Value::String(_) => Err(Error::validation(field, format!("{field} must have at most {max} characters"))),
        _ => Err(Error::validation(field, format!("{field} must be a string or null"))),
    }
}

/// Filters of the call list (by start time, half-open `[from, to)`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFilter {
    /// Calls starting at or after.
    pub from: Option<DateTime<Utc>>,
    /// Calls starting before.
    pub to: Option<DateTime<Utc>>,
    /// Only this rep's.
    pub rep_id: Option<String>,
}

/// What the call writes need from a store's transaction (reps, contacts and
/// the field registries come from [`RepTx`]).
pub trait CallTx: RepTx {
    /// The call with this id.
    fn find_call(&mut self, ws: &str, call_id: &str) -> Result<Option<Call>, Error>;
    /// Inserts a new call: its conversation (id chosen by the caller) and
    /// details, and one `activity` message dated at the call's start with
    /// [`CallDetails::activity_text`] (sent by the API), so the call shows in
    /// its contact's timeline; `messages_count` counts it.
    fn insert_call(&mut self, ws: &str, call: &Call) -> Result<(), Error>;
    /// Writes a call's new state (conversation and details).
    fn update_call(&mut self, ws: &str, call: &Call) -> Result<(), Error>;
}

/// Creates or changes one call in the caller's transaction: its contact is
/// found or created by email, else phone; an unknown rep is created (as a
/// reps update would).
pub fn upsert_call(tx: &mut dyn CallTx, ws: &str, write: &CallWrite, at: DateTime<Utc>) -> Result<RowStatus, Error> {
    let existing = tx.find_call(ws, &write.call_id)?;
    let created = existing.is_none();
    let mut call = match existing {
        Some(c) => c,
        None => {
            let started = write.require_start()?;
            let conversation = Conversation {
                id: uuid::Uuid::new_v4().to_string(),
                contact_id: None,
                status: ConversationStatus::Resolved,
                assignee_id: None,
                channel: CALL_CHANNEL.into(),
                subject: None,
                labels: Vec::new(),
                messages_count: 0,
                created_at: at,
                updated_at: at,
                last_message_at: None,
            };
            Call { conversation, details: CallDetails::new(write.call_id.clone(), started) }
        }
    };
    let outcome = write.apply(&mut call.details, tx.field_registry(ws, Entity::Conversation)?)?;
    if let Some(status) = write.status {
        call.conversation.status = status;
    }
    if !write.contact.is_empty() {
        let mut changes = ContactChanges::default();
        for (kind, value) in &write.contact {
            changes.set_identity(*kind, &Value::String(value.clone()))?;
        }
        let lookups: Lookups = write.contact.clone();
        call.conversation.contact_id = Some(upsert_contact(tx, ws, &lookups, &changes, true)?.id);
    }
    if let Some(rep_id) = &call.details.rep_id
        && tx.find_rep(ws, rep_id)?.is_none()
    {
        tx.insert_rep(ws, &Rep::new(rep_id.clone(), at))?;
    }
    call.conversation.updated_at = at;
    if created {
        tx.insert_call(ws, &call)?;
    } else {
        tx.update_call(ws, &call)?;
    }
    tx.record_fields(ws, Entity::Conversation, &outcome.new_fields)?;
    Ok(if created { RowStatus::Created } else { RowStatus::Updated })
}

/// Creates or changes every row, all or nothing: the first failing row's
/// error (carrying its index) is returned and the caller rolls back.
pub fn upsert_calls(
    tx: &mut dyn CallTx,
    ws: &str,
    rows: &[CallWrite],
    at: DateTime<Utc>,
) -> Result<UpsertCounts, Error> {
    check_rows(rows)?;
    let mut counts = UpsertCounts::default();
    for (i, row) in rows.iter().enumerate() {
        counts.add(upsert_call(tx, ws, row, at).map_err(|e| e.at_row(i))?);
    }
    Ok(counts)
}

/// Checks a calls update before any write: at most [`MAX_CALL_ROWS`] rows
/// and each `call_id` once.
pub fn check_rows(rows: &[CallWrite]) -> Result<(), Error> {
    crate::batch::check_bulk(rows.iter().map(|r| r.call_id.as_str()), "call_id", MAX_CALL_ROWS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn durations_and_ends_follow_from_each_other() {
        let w = CallWrite::from_row(row(json!({"call_id": "c1", "start_time": "2026-01-01T10:00:00Z",
            "end_time": "2026-01-01T10:05:30Z", "sentiment": 0.4, "email": "A@b.io"})))
        .unwrap();
        let mut c = CallDetails::new(w.call_id.clone(), w.require_start().unwrap());
        w.apply(&mut c, &mut FieldRegistry::default()).unwrap();
        assert_eq!(c.duration, Some(330.0));
        assert_eq!(w.contact, vec![(IdentityKind::Email, "a@b.io".to_string())]);
        let w2 =
            CallWrite::from_row(row(json!({"call_id": "c2", "start_time": 1_767_261_600, "duration": 60}))).unwrap();
        let mut c2 = CallDetails::new(w2.call_id.clone(), w2.require_start().unwrap());
        w2.apply(&mut c2, &mut FieldRegistry::default()).unwrap();
        assert_eq!(c2.ended_at.map(|t| (t - c2.started_at).num_seconds()), Some(60));
    }

    /// An update keeps start, end and duration consistent: a moved start
    /// or end gives the duration again, a cleared end clears the duration
    /// derived from it, a duration sent alone moves the end.
    #[test]
    fn updates_keep_start_end_and_duration_consistent() {
        let update = |c: &mut CallDetails, v: Value| {
            let w = CallWrite::from_row(row(v)).unwrap();
            w.apply(c, &mut FieldRegistry::default()).unwrap();
        };
        let secs = |c: &CallDetails| c.ended_at.map(|t| (t - c.started_at).num_seconds());
        let first = CallWrite::from_row(row(json!({"call_id": "d1", "start_time": "2024-07-01T10:00:00Z",
            "end_time": "2024-07-01T10:05:00Z"})))
        .unwrap();
        let mut c = CallDetails::new("d1".into(), first.require_start().unwrap());
        first.apply(&mut c, &mut FieldRegistry::default()).unwrap();
        assert_eq!(c.duration, Some(300.0));
        update(&mut c, json!({"call_id": "d1", "start_time": "2024-07-01T09:00:00Z"}));
        assert_eq!((c.duration, secs(&c)), (Some(3900.0), Some(3900)), "the end stays, the duration follows");
        update(&mut c, json!({"call_id": "d1", "end_time": "2024-07-01T09:10:00Z"}));
        assert_eq!(c.duration, Some(600.0));
        update(&mut c, json!({"call_id": "d1", "duration": 120}));
        assert_eq!(secs(&c), Some(120), "a duration sent alone moves the end");
        update(&mut c, json!({"call_id": "d1", "summary": "no times"}));
        assert_eq!((c.duration, secs(&c)), (Some(120.0), Some(120)));
        update(&mut c, json!({"call_id": "d1", "end_time": null}));
        assert_eq!((c.ended_at, c.duration), (None, None), "null clears the end and its duration");
        update(&mut c, json!({"call_id": "d1", "duration": 30}));
        assert_eq!(secs(&c), Some(30));
    }

    #[test]
    fn unix_seconds_may_come_as_text() {
        let at = |v: Value| time_of(&v, "start_time");
        assert_eq!(at(json!("1714600000")).unwrap(), at(json!(1_714_600_000)).unwrap());
        assert_eq!(at(json!(" 1714600000.5 ")).unwrap().map(|t| t.timestamp_millis()), Some(1_714_600_000_500));
        assert!(at(json!("NaN")).is_err());
        assert!(at(json!("1e400")).is_err());
        assert!(at(json!("tomorrow")).is_err());
    }

    #[test]
    fn bad_rows_name_their_field() {
        for (r, field) in [
            (json!({"start_time": "2026-01-01"}), "call_id"),
            (json!({"call_id": "c", "start_time": "yesterday"}), "start_time"),
            (json!({"call_id": "c", "duration": -1}), "duration"),
            (json!({"call_id": "c", "status": "closed"}), "status"),
            (json!({"call_id": "c", "phone": "call me"}), "phone"),
        ] {
            assert_eq!(CallWrite::from_row(row(r.clone())).unwrap_err().field(), Some(field), "{r}");
        }
        let w = CallWrite::from_row(row(json!({"call_id": "c", "start_time": "2026-01-01T10:00:00Z",
            "end_time": "2026-01-01T09:00:00Z"})))
        .unwrap();
        let mut c = CallDetails::new("c".into(), w.require_start().unwrap());
        assert_eq!(w.apply(&mut c, &mut FieldRegistry::default()).unwrap_err().field(), Some("end_time"));
        assert!(CallWrite::from_row(row(json!({"call_id": "c"}))).unwrap().require_start().is_err());
    }
}

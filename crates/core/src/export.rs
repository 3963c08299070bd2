//! Streamed exports: which entities can be exported, their columns (the
//! fields of the native API's object for that entity, in its order), the
//! resume cursor, and a row as borrowed cells handed to a renderer.
//!
//! A store reads an entity's rows in cursor order and gives each row to an
//! [`ExportRenderer`] as [`Cell`]s, one per [`Column`], without building a
//! domain object; the renderer (the HTTP layer's NDJSON or CSV writer)
//! appends the row's bytes to the chunk being filled
//! ([`crate::Store::export_rendered`]).

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::field::Entity;
use crate::scope::Scope;

/// An entity that can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportEntity {
    /// Contacts, by id.
    Contacts,
    /// Events, by id (arrival order).
    Events,
    /// Conversations, in creation order.
    Conversations,
    /// Messages of every conversation, by id.
    Messages,
    /// Reps, in creation order.
    Reps,
    /// Companies, by id.
    Companies,
}

/// How a column's value is stored and rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// An integer.
    Int,
    /// `true` / `false`.
    Bool,
    /// Text.
    Text,
    /// A JSON value's text (an object or a list), as stored.
    Json,
    /// A time ([`Cell::Time`]).
    Time,
}

/// One column of an export: a field of the native object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The field's name; `a.b` is member `b` of the nested object `a`.
    pub name: &'static str,
    /// Its kind.
    pub kind: ColumnKind,
    /// Left out of a JSON row when null (the native object skips it).
    pub omit_null: bool,
    /// A JSON object whose members are fields of this registry (CSV
    /// writes one column per field).
    pub fields: Option<Entity>,
}

const fn col(name: &'static str, kind: ColumnKind) -> Column {
    Column { name, kind, omit_null: false, fields: None }
}

const fn fields_of(name: &'static str, entity: Entity) -> Column {
    Column { name, kind: ColumnKind::Json, omit_null: false, fields: Some(entity) }
}

use ColumnKind::{Bool, Int, Json, Text, Time};

const CONTACT_COLUMNS: [Column; 10] = [
    col("id", Int),
    col("email", Text),
    col("mobile", Text),
    col("external_id", Text),
    col("anonymous_id", Text),
    fields_of("traits", Entity::Contact),
    col("subscription_status", Text),
    col("company_id", Int),
    col("created_at", Time),
    col("updated_at", Time),
];

const EVENT_COLUMNS: [Column; 9] = [
    col("id", Int),
    col("contact_id", Int),
    col("event", Text),
    col("kind", Text),
    col("properties", Json),
    Column { name: "description", kind: Text, omit_null: true, fields: None },
    col("timestamp", Time),
    col("received_at", Time),
    col("message_id", Text),
];

const CONVERSATION_COLUMNS: [Column; 11] = [
    col("id", Text),
    col("contact_id", Int),
    col("status", Text),
    col("assignee_id", Int),
    col("channel", Text),
    col("subject", Text),
    col("labels", Json),
    col("messages_count", Int),
    col("created_at", Time),
    col("updated_at", Time),
    col("last_message_at", Time),
];

const MESSAGE_COLUMNS: [Column; 7] = [
    col("id", Int),
    col("conversation_id", Text),
    col("type", Text),
    col("content", Text),
    col("sender.type", Text),
    col("sender.id", Text),
    col("created_at", Time),
];

const REP_COLUMNS: [Column; 8] = [
    col("rep_id", Text),
    col("name", Text),
    col("email", Text),
    col("department", Text),
    col("active", Bool),
    fields_of("attributes", Entity::Rep),
    col("created_at", Time),
    col("updated_at", Time),
];

const COMPANY_COLUMNS: [Column; 6] = [
    col("id", Int),
    col("external_id", Text),
    col("domain", Text),
    fields_of("traits", Entity::Company),
    col("created_at", Time),
    col("updated_at", Time),
];

/// The most columns an entity has.
pub const MAX_COLUMNS: usize = 11;

impl ExportEntity {
    /// Every entity.
    pub const ALL: [ExportEntity; 6] = [
        ExportEntity::Contacts,
        ExportEntity::Events,
        ExportEntity::Conversations,
        ExportEntity::Messages,
        ExportEntity::Reps,
        ExportEntity::Companies,
    ];

    /// The path segment: `contacts`, `events`, …
    pub fn as_str(self) -> &'static str {
        match self {
            ExportEntity::Contacts => "contacts",
            ExportEntity::Events => "events",
            ExportEntity::Conversations => "conversations",
            ExportEntity::Messages => "messages",
            ExportEntity::Reps => "reps",
            ExportEntity::Companies => "companies",
        }
    }

    /// The scope a key needs to export it.
    pub fn scope(self) -> Scope {
        match self {
            ExportEntity::Contacts => Scope::ContactsRead,
            ExportEntity::Events => Scope::EventsRead,
            ExportEntity::Conversations | ExportEntity::Messages => Scope::ConversationsRead,
            ExportEntity::Reps => Scope::RepsRead,
            ExportEntity::Companies => Scope::CompaniesRead,
        }
    }

    /// The columns, in the native object's order. The first one is the
    /// row's key: the cursor names a row by it.
    pub fn columns(self) -> &'static [Column] {
        match self {
            ExportEntity::Contacts => &CONTACT_COLUMNS,
            ExportEntity::Events => &EVENT_COLUMNS,
            ExportEntity::Conversations => &CONVERSATION_COLUMNS,
            ExportEntity::Messages => &MESSAGE_COLUMNS,
            ExportEntity::Reps => &REP_COLUMNS,
            ExportEntity::Companies => &COMPANY_COLUMNS,
        }
    }

    /// The time `since` compares with: the last change, or the creation of
    /// rows that do not change (events: their arrival).
    pub fn since_column(self) -> &'static str {
        match self {
            ExportEntity::Events => "received_at",
            ExportEntity::Messages => "created_at",
            _ => "updated_at",
        }
    }

    /// Whether the key column is an integer (else text: a conversation's
    /// UUID, a rep's `rep_id`).
    pub fn integer_key(self) -> bool {
        self.columns()[0].kind == ColumnKind::Int
    }
}

impl FromStr for ExportEntity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        ExportEntity::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| {
            Error::validation(
                "entity",
                format!("unknown entity '{s}': use contacts, events, conversations, messages, reps or companies"),
            )
        })
    }
}

/// Where an export resumes: after the row with this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportCursor {
    /// The id of a contact, event, message or company.
    Id(i64),
    /// A conversation's id or a rep's `rep_id`.
    Key(String),
}

impl ExportCursor {
    /// Reads `cursor` for `entity`: the key (first column) of the last row
    /// already received.
    pub fn parse(entity: ExportEntity, raw: &str) -> Result<Self, Error> {
        if entity.integer_key() {
            raw.trim().parse().map(ExportCursor::Id).map_err(|_| {
                Error::validation("cursor", format!("cursor must be the id of a {} row (an integer)", entity.as_str()))
            })
        } else if raw.is_empty() {
            Err(Error::validation("cursor", "cursor is empty"))
        } else {
            Ok(ExportCursor::Key(raw.to_string()))
        }
    }

    /// The 400 of a text cursor that names no row (deleted since, or never
    /// exported): its position is unknown.
    pub fn unknown(entity: ExportEntity) -> Error {
        Error::validation(
            "cursor",
            format!(
                "no {} has the {} given as cursor (deleted since?): the export cannot resume after it",
                match entity {
                    ExportEntity::Reps => "rep",
                    _ => "conversation",
                },
                entity.columns()[0].name
            ),
        )
    }
}

/// What to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportQuery {
    /// The entity.
    pub entity: ExportEntity,
    /// Only rows changed (created, for events and messages) at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only rows after this one.
    pub after: Option<ExportCursor>,
}

/// One value of a row, borrowed from the database's row. Text is handed
/// over as the stored UTF-8 bytes, not validated again (every text was a
/// Rust string when written; re-checking it cost 4% of an export).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// UTF-8 text.
    Text(&'a [u8]),
    /// A JSON value's UTF-8 text (valid JSON, as stored).
    Json(&'a [u8]),
    /// An RFC 3339 UTC time: the stored form `YYYY-MM-DDTHH:MM:SS.mmmZ`, or
    /// already as the native API writes it (see [`native_time`]).
    Time(&'a [u8]),
}

/// Writes one row (the entity's cells, in column order) into the chunk.
pub type ExportRenderer = Box<dyn FnMut(&[Cell<'_>], &mut Vec<u8>) + Send>;

/// A stored time as the native API writes it (chrono's RFC 3339 with only
/// the sub-second digits there are): `….000Z` loses its `.000`. Returns
/// the text without its suffix and whether a `Z` must follow.
pub fn native_time(stored: &[u8]) -> (&[u8], bool) {
    match stored.strip_suffix(b".000Z") {
        Some(seconds) if stored.len() == 24 => (seconds, true),
        _ => (stored, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_parse_and_name_their_columns() {
        for e in ExportEntity::ALL {
            assert_eq!(e.as_str().parse::<ExportEntity>().unwrap(), e);
            assert!(e.columns().len() <= MAX_COLUMNS);
        }
        let err = "people".parse::<ExportEntity>().unwrap_err();
        assert_eq!(err.field(), Some("entity"));
        assert_eq!(ExportCursor::parse(ExportEntity::Contacts, "42").unwrap(), ExportCursor::Id(42));
        assert_eq!(ExportCursor::parse(ExportEntity::Contacts, "x").unwrap_err().field(), Some("cursor"));
        assert_eq!(ExportCursor::parse(ExportEntity::Reps, "x").unwrap(), ExportCursor::Key("x".into()));
    }

    #[test]
    fn stored_times_read_as_the_native_api_writes_them() {
        let t: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-01-02T03:04:05Z\"");
        assert_eq!(native_time(crate::ids::fmt_time(&t).as_bytes()), (b"2026-01-02T03:04:05".as_slice(), true));
        let t: DateTime<Utc> = "2026-01-02T03:04:05.120Z".parse().unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-01-02T03:04:05.120Z\"");
        assert_eq!(native_time(crate::ids::fmt_time(&t).as_bytes()), (b"2026-01-02T03:04:05.120Z".as_slice(), false));
    }
}

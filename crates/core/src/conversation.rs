//! Conversations and their messages: a contact's thread with the team.
//!
//! A conversation has a status (`open` | `pending` | `resolved`), an
//! assignee (an active user), a channel, a subject and labels. Messages are
//! `incoming` (from the contact), `outgoing` (to it), `note` (private) or
//! `activity` (written by convene when the status or the assignee changes).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::event::Event;
use crate::user::User;

/// Longest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 150_000;
/// Most labels on a conversation.
pub const MAX_LABELS: usize = 50;
/// Longest label.
pub const MAX_LABEL_CHARS: usize = 100;
/// Longest subject.
pub const MAX_SUBJECT_CHARS: usize = 1000;
/// Longest channel name.
pub const MAX_CHANNEL_CHARS: usize = 64;

macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vm])* $variant),* }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// Storage and wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
            /// Parses a name.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

names!(
    /// Where a conversation stands.
    ConversationStatus {
        /// Waiting for the team.
        Open => "open",
        /// Waiting for something else.
        Pending => "pending",
        /// Done.
        Resolved => "resolved",
    }
);

names!(
    /// What a message is.
    MessageType {
        /// From the contact.
        Incoming => "incoming",
        /// To the contact.
        Outgoing => "outgoing",
        /// Private to the team.
        Note => "note",
        /// Written by convene: a status or assignment change.
        Activity => "activity",
    }
);

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// The conversation's contact.
    Contact(i64),
    /// A user (an operator).
    User(i64),
    /// An API key (by id), when no operator is named.
    Api(String),
}

impl Sender {
    /// `(type, id)` as stored and shown.
    pub fn parts(&self) -> (&'static str, String) {
        match self {
            Sender::Contact(id) => ("contact", id.to_string()),
            Sender::User(id) => ("user", id.to_string()),
            Sender::Api(key) => ("api", key.clone()),
        }
    }

    /// Reads stored parts.
    pub fn from_parts(kind: &str, id: &str) -> Sender {
        match kind {
            "contact" => id.parse().map(Sender::Contact).unwrap_or(Sender::Api(id.to_string())),
            "user" => id.parse().map(Sender::User).unwrap_or(Sender::Api(id.to_string())),
            _ => Sender::Api(id.to_string()),
        }
    }

    /// The user id, when a user sent it.
    pub fn user(&self) -> Option<i64> {
        match self {
            Sender::User(id) => Some(*id),
            _ => None,
        }
    }
}

/// A conversation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// UUID.
    pub id: String,
    /// The contact (a call may have none).
    pub contact_id: Option<i64>,
    /// Status.
    pub status: ConversationStatus,
    /// The user it is assigned to.
    pub assignee_id: Option<i64>,
    /// Channel (`api`, `email`, `chat`, …).
    pub channel: String,
    /// Subject.
    pub subject: Option<String>,
    /// Labels, sorted, distinct.
    pub labels: Vec<String>,
    /// Messages, activities included.
    pub messages_count: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Time of the last message.
    pub last_message_at: Option<DateTime<Utc>>,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Integer id (increasing).
    pub id: i64,
    /// Its conversation.
    pub conversation_id: String,
    /// Type.
    pub kind: MessageType,
    /// Text.
    pub content: String,
    /// Sender.
    pub sender: Sender,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A validated message to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Type.
    pub kind: MessageType,
    /// Text (1 to 150,000 characters).
    pub content: String,
    /// Sender.
    pub sender: Sender,
}

impl NewMessage {
    /// Checks the content; `activity` is convene's to write.
    pub fn new(kind: MessageType, content: &str, sender: Sender) -> Result<Self, Error> {
        if kind == MessageType::Activity {
            return Err(Error::validation("type", "type must be incoming, outgoing or note"));
        }
        let n = content.chars().count();
        if content.trim().is_empty() || n > MAX_CONTENT_CHARS {
            return Err(Error::validation("content", format!("content must have 1 to {MAX_CONTENT_CHARS} characters")));
        }
        Ok(NewMessage { kind, content: content.to_string(), sender })
    }

    fn activity(content: String, sender: Sender) -> Self {
        NewMessage { kind: MessageType::Activity, content, sender }
    }
}

/// A validated conversation to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    /// Its UUID (chosen here).
    pub id: String,
    /// The contact.
    pub contact_id: i64,
    /// Channel.
    pub channel: String,
    /// Subject.
    pub subject: Option<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// Assignee (must be an active user).
    pub assignee_id: Option<i64>,
    /// The first message, if any.
    pub first_message: Option<NewMessage>,
}

impl NewConversation {
    /// A conversation for `contact_id` with defaults (channel `api`).
    pub fn new(contact_id: i64) -> Self {
        NewConversation {
            id: uuid::Uuid::new_v4().to_string(),
            contact_id,
            channel: "api".into(),
            subject: None,
            labels: Vec::new(),
            assignee_id: None,
            first_message: None,
        }
    }

    /// Reads the native body: `contact_id` (required), `channel`, `subject`,
    /// `labels`, `assignee_id`, `message: {"content", "type"?}` (sent by
    /// `sender`; type defaults to `outgoing`).
    pub fn from_json(mut body: Map<String, Value>, sender: Sender) -> Result<Self, Error> {
        let contact_id = match body.remove("contact_id") {
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
            _ => return Err(Error::validation("contact_id", "contact_id (a contact's id) is required")),
        };
        let mut c = NewConversation::new(contact_id);
        for (key, value) in body {
            match key.as_str() {
                "channel" => c.channel = channel(&value)?,
                "subject" => c.subject = subject(&value)?,
                "labels" => c.labels = labels(&value)?,
                "assignee_id" => c.assignee_id = optional_id(&value, "assignee_id")?,
                "message" => {
                    let Value::Object(m) = value else {
                        return Err(Error::validation("message", "message must be {\"content\", \"type\"?}"));
                    };
                    c.first_message = Some(message_of(&m, sender.clone(), MessageType::Outgoing)?);
                }
                other => {
                    return Err(Error::validation(
                        other,
                        format!(
                            "unknown field '{other}'; a conversation has contact_id, channel, subject, labels, assignee_id and message"
                        ),
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// Reads `{"content", "type"?}`; `type` defaults to `default`.
pub fn message_of(m: &Map<String, Value>, sender: Sender, default: MessageType) -> Result<NewMessage, Error> {
    let kind = match m.get("type") {
        None | Some(Value::Null) => default,
        Some(Value::String(s)) => {
            MessageType::parse(s).ok_or_else(|| Error::validation("type", "type must be incoming, outgoing or note"))?
        }
        Some(_) => return Err(Error::validation("type", "type must be incoming, outgoing or note")),
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(Error::validation("content", "content (text) is required")),
    };
    NewMessage::new(kind, content, sender)
}

fn channel(v: &Value) -> Result<String, Error> {
    match v {
        Value::String(s) if !s.trim().is_empty() && s.trim().chars().count() <= MAX_CHANNEL_CHARS => {
            Ok(s.trim().to_lowercase())
        }
        _ => {
            Err(Error::validation("channel", format!("channel must be a name of 1 to {MAX_CHANNEL_CHARS} characters")))
        }
    }
}

/// Reads a subject: text of at most 1,000 characters (trimmed), or `null`.
pub fn subject(v: &Value) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= MAX_SUBJECT_CHARS => Ok(Some(s.trim().to_string())),
        _ => {
            Err(Error::validation("subject", format!("subject must be text of at most {MAX_SUBJECT_CHARS} characters")))
        }
    }
}

/// Reads a label list: trimmed, distinct, sorted.
pub fn labels(v: &Value) -> Result<Vec<String>, Error> {
    let bad = || {
        Error::validation(
            "labels",
            format!("labels must be a list of at most {MAX_LABELS} names of 1 to {MAX_LABEL_CHARS} characters"),
        )
    };
    let Value::Array(items) = v else { return Err(bad()) };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) if !s.trim().is_empty() && s.trim().chars().count() <= MAX_LABEL_CHARS => {
                out.push(s.trim().to_string())
            }
            _ => return Err(bad()),
        }
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_LABELS {
        return Err(bad());
    }
    Ok(out)
}

fn optional_id(v: &Value, field: &str) -> Result<Option<i64>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) if n.as_i64().is_some() => Ok(n.as_i64()),
        _ => Err(Error::validation(field, format!("{field} must be a user's id or null"))),
    }
}

/// A validated change of a conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationChanges {
    /// New status.
    pub status: Option<ConversationStatus>,
    /// New assignee (`Some(None)` unassigns).
    pub assignee: Option<Option<i64>>,
    /// New labels.
    pub labels: Option<Vec<String>>,
}

impl ConversationChanges {
    /// Reads `{"status"?, "assignee_id"?, "labels"?}`.
    pub fn from_json(body: Map<String, Value>) -> Result<Self, Error> {
        let mut c = ConversationChanges::default();
        for (key, value) in body {
            match key.as_str() {
                "status" => {
                    c.status = Some(
                        value
                            .as_str()
                            .and_then(ConversationStatus::parse)
                            .ok_or_else(|| Error::validation("status", "status must be open, pending or resolved"))?,
                    )
                }
                "assignee_id" => c.assignee = Some(optional_id(&value, "assignee_id")?),
                "labels" => c.labels = Some(labels(&value)?),
                other => {
                    return Err(Error::validation(
                        other,
                        format!("unknown field '{other}'; a conversation changes status, assignee_id and labels"),
                    ));
                }
            }
        }
        Ok(c)
    }

    /// Applies the change; returns the activity messages it writes (status
    /// and assignment changes), sent by `actor`. `assignee` is the new
    /// assignee's user record when one is named (checked active by the caller).
    pub fn apply(
        &self,
        conversation: &mut Conversation,
        assignee: Option<&User>,
        actor: &Sender,
        at: DateTime<Utc>,
    ) -> Vec<NewMessage> {
        let mut activities = Vec::new();
        if let Some(status) = self.status
            && status != conversation.status
        {
            let text = match (conversation.status, status) {
                (ConversationStatus::Resolved, _) => format!("Conversation reopened ({})", status.as_str()),
                (_, ConversationStatus::Resolved) => "Conversation resolved".to_string(),
                (from, to) => format!("Status changed from {} to {}", from.as_str(), to.as_str()),
            };
            conversation.status = status;
            activities.push(NewMessage::activity(text, actor.clone()));
        }
        if let Some(new) = self.assignee
            && new != conversation.assignee_id
        {
            let text = match (new, assignee) {
                (Some(id), Some(user)) => format!("Assigned to {} (user {id})", user.name),
                (Some(id), None) => format!("Assigned to user {id}"),
                (None, _) => "Unassigned".to_string(),
            };
            conversation.assignee_id = new;
            activities.push(NewMessage::activity(text, actor.clone()));
        }
        if let Some(labels) = &self.labels {
            conversation.labels = labels.clone();
        }
        conversation.updated_at = at;
        activities
    }
}

/// A conversation's id as a client sends it back: UUIDs compare without
/// case (RFC 4122) and convene writes them in lowercase, so an id in
/// capitals (as some UUID types print) finds its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationId(pub String);

impl<'de> Deserialize<'de> for ConversationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| ConversationId(s.trim().to_ascii_lowercase()))
    }
}

/// Who sends a message posted through an API: the conversation's contact
/// for `incoming`, else the named operator (a user), else the API key.
pub fn sender_for(kind: MessageType, operator_id: Option<i64>, contact_id: i64, key_id: &str) -> Result<Sender, Error> {
    match (kind, operator_id) {
        (MessageType::Incoming, Some(_)) => {
            Err(Error::validation("operator_id", "an incoming message comes from the contact, not an operator"))
        }
        (MessageType::Incoming, None) => Ok(Sender::Contact(contact_id)),
        (_, Some(user)) => Ok(Sender::User(user)),
        (_, None) => Ok(Sender::Api(key_id.to_string())),
    }
}

/// Checks that a named user may be assigned or act as operator: it exists
/// in the workspace and is active (422 naming `field` otherwise).
pub fn require_active_user(user: Option<&User>, id: i64, field: &str) -> Result<(), Error> {
    match user {
        Some(u) if u.active => Ok(()),
        Some(_) => Err(Error::invalid_value(field, format!("user {id} is not active"))),
        None => Err(Error::invalid_value(field, format!("user {id} is not a user of this workspace"))),
    }
}

/// Filters of the conversation list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this status.
    pub status: Option<ConversationStatus>,
    /// Only assigned to this user.
    pub assignee_id: Option<i64>,
    /// Only this contact's.
    pub contact_id: Option<i64>,
    /// Only those with this label.
    pub label: Option<String>,
}

/// Filters of a conversation's messages.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only these types (all when empty).
    pub types: Vec<MessageType>,
}

impl MessageFilter {
    /// Reads `incoming,outgoing`.
    pub fn parse(types: Option<&str>) -> Result<Self, Error> {
        let mut out = Vec::new();
        for t in types.unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty()) {
            out.push(MessageType::parse(t).ok_or_else(|| {
                Error::validation("type", format!("unknown message type '{t}'; use incoming, outgoing, note, activity"))
            })?);
        }
        out.sort_by_key(|t| t.as_str());
        out.dedup();
        Ok(MessageFilter { types: out })
    }
}

/// One entry of a contact's timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum TimelineItem {
    /// An event (tracked, page, screen, engagement).
    Event(Event),
    /// A message of one of its conversations.
    Message(Message),
}

impl TimelineItem {
    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            TimelineItem::Event(e) => e.event.timestamp,
            TimelineItem::Message(m) => m.created_at,
        }
    }

    /// The timeline's order: time, then events (0) before messages (1), then id.
    pub fn key(&self) -> (DateTime<Utc>, i32, i64) {
        match self {
            TimelineItem::Event(e) => (self.at(), 0, e.id),
            TimelineItem::Message(m) => (self.at(), 1, m.id),
        }
    }

    /// The page cursor of this item (its key as text).
    pub fn cursor(&self) -> String {
        let (at, kind, id) = self.key();
        format!("{}|{kind}|{id}", crate::ids::fmt_time(&at))
    }

    /// Where the next page starts after `cursor` (none: the beginning): the
    /// time, and for items at exactly that time the event id and the message
    /// id to read after. A store reads events with `(timestamp > at) OR
    /// (timestamp = at AND id > event_after)`, messages likewise, and merges
    /// them by [`TimelineItem::key`].
    pub fn resume(cursor: Option<&str>) -> Result<(DateTime<Utc>, i64, i64), Error> {
        let Some(cursor) = cursor else { return Ok((DateTime::<Utc>::MIN_UTC, -1, -1)) };
        let (at, kind, id) = Self::parse_cursor(cursor)?;
        Ok(match kind {
            0 => (at, id, -1),
            _ => (at, i64::MAX, id),
        })
    }

    /// Reads a cursor written by [`TimelineItem::cursor`].
    pub fn parse_cursor(s: &str) -> Result<(DateTime<Utc>, i32, i64), Error> {
        let bad = || Error::validation("cursor", "invalid cursor");
        let mut parts = s.splitn(3, '|');
        let at = parts.next().and_then(crate::ids::parse_time).ok_or_else(bad)?;
        let kind = parts.next().and_then(|k| k.parse().ok()).ok_or_else(bad)?;
        let id = parts.next().and_then(|k| k.parse().ok()).ok_or_else(bad)?;
        Ok((at, kind, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv() -> Conversation {
        let at = crate::ids::now();
        Conversation {
            id: "c".into(),
            contact_id: Some(1),
            status: ConversationStatus::Open,
            assignee_id: None,
            channel: "api".into(),
            subject: None,
            labels: vec![],
            messages_count: 0,
            created_at: at,
            updated_at: at,
            last_message_at: None,
        }
    }

    #[test]
    fn status_and_assignment_changes_write_activities() {
        let mut c = conv();
        let actor = Sender::Api("key_1".into());
        let changes = ConversationChanges::from_json(
            json!({"status": "resolved", "assignee_id": 4, "labels": ["b", " a", "b"]}).as_object().unwrap().clone(),
        )
        .unwrap();
        let acts = changes.apply(&mut c, None, &actor, crate::ids::now());
        assert_eq!(acts.len(), 2);
        assert_eq!(acts[0].content, "Conversation resolved");
        assert_eq!(
            (c.status, c.assignee_id, c.labels.clone()),
            (ConversationStatus::Resolved, Some(4), vec!["a".into(), "b".into()])
        );
        let reopen = ConversationChanges { status: Some(ConversationStatus::Open), ..Default::default() };
        assert_eq!(reopen.apply(&mut c, None, &actor, crate::ids::now())[0].content, "Conversation reopened (open)");
        let same =
            ConversationChanges { status: Some(ConversationStatus::Open), assignee: Some(Some(4)), labels: None };
        assert!(same.apply(&mut c, None, &actor, crate::ids::now()).is_empty(), "no change, no activity");
    }

    #[test]
    fn messages_and_filters_are_checked() {
        let s = Sender::Api("k".into());
        assert!(NewMessage::new(MessageType::Outgoing, "hi", s.clone()).is_ok());
        assert_eq!(NewMessage::new(MessageType::Note, " ", s.clone()).unwrap_err().field(), Some("content"));
        assert_eq!(NewMessage::new(MessageType::Activity, "x", s.clone()).unwrap_err().field(), Some("type"));
        let long = "x".repeat(MAX_CONTENT_CHARS + 1);
        assert!(NewMessage::new(MessageType::Incoming, &long, s).is_err());
        assert_eq!(
            MessageFilter::parse(Some("outgoing, incoming,outgoing")).unwrap().types,
            vec![MessageType::Incoming, MessageType::Outgoing]
        );
        assert!(MessageFilter::parse(Some("email")).is_err());
        let too_many: Vec<String> = (0..51).map(|i| format!("l{i}")).collect();
        assert!(labels(&json!(too_many)).is_err());
    }
}

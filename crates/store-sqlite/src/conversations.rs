//! Users, conversations, messages and a contact's timeline.

use convene_core::conversation::{
    Conversation, ConversationChanges, ConversationFilter, ConversationStatus, Message, MessageFilter, MessageType,
    NewConversation, NewMessage, Sender, TimelineItem, require_active_user,
};
use convene_core::ids::now;
use convene_core::page::{Page, PageRequest};
use convene_core::user::{Role, User, UserChanges};
use convene_core::{Error, Result};
use rusqlite::{Connection, Row, params};

use crate::conn::storage;
use crate::rows::{one, opt_time, t, time};

const USER_COLUMNS: &str = "id, name, email, role, active, created_at, updated_at";

pub(crate) fn user_from_row(row: &Row) -> rusqlite::Result<User> {
    let role: String = row.get(3)?;
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        role: Role::parse(&role).unwrap_or_default(),
        active: row.get(4)?,
        created_at: time(row, 5)?,
        updated_at: time(row, 6)?,
    })
}

fn user_write_error(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, Some(message)) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
        && message.contains("users.email")
    {
        return Error::Conflict { entity: "user", field: "email".into(), row: None };
    }
    storage(e)
}

pub(crate) fn find_user(conn: &Connection, ws: &str, id: i64) -> Result<Option<User>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = ?1 AND id = ?2"))
        .map_err(storage)?;
    one(stmt.query_row(params![ws, id], user_from_row))
}

pub(crate) fn get_user(conn: &Connection, ws: &str, id: i64) -> Result<User> {
    find_user(conn, ws, id)?.ok_or(Error::NotFound { entity: "user" })
}

pub(crate) fn create_user(conn: &Connection, ws: &str, mut user: User) -> Result<User> {
    conn.prepare_cached(
        "INSERT INTO users (workspace_id, name, email, role, active, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            ws,
            user.name,
            user.email,
            user.role.as_str(),
            user.active,
            t(&user.created_at),
            t(&user.updated_at)
        ])
    })
    .map_err(user_write_error)?;
    user.id = conn.last_insert_rowid();
    Ok(user)
}

pub(crate) fn update_user(conn: &Connection, ws: &str, id: i64, changes: &UserChanges) -> Result<User> {
    let mut user = get_user(conn, ws, id)?;
    changes.apply(&mut user, now());
    conn.prepare_cached(
        "UPDATE users SET name = ?3, email = ?4, role = ?5, active = ?6, updated_at = ?7
         WHERE workspace_id = ?1 AND id = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![ws, id, user.name, user.email, user.role.as_str(), user.active, t(&user.updated_at)])
    })
    .map_err(user_write_error)?;
    Ok(user)
}

pub(crate) fn list_users(conn: &Connection, ws: &str, page: &PageRequest) -> Result<Page<User>> {
    let after = page.after_i64()?.unwrap_or(0);
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
        ))
        .map_err(storage)?;
    let items = stmt
        .query_map(params![ws, after, page.limit as i64 + 1], user_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |u| u.id.to_string()))
}

pub(crate) const CONV_COLUMNS: &str = "seq, id, contact_id, status, assignee_id, channel, subject, labels, messages_count, \
                            created_at, updated_at, last_message_at";

pub(crate) fn conversation_from_row(row: &Row) -> rusqlite::Result<(i64, Conversation)> {
    let status: String = row.get(3)?;
    let labels: String = row.get(7)?;
    Ok((
        row.get(0)?,
        Conversation {
            id: row.get(1)?,
            contact_id: row.get(2)?,
            status: ConversationStatus::parse(&status).unwrap_or(ConversationStatus::Open),
            assignee_id: row.get(4)?,
            channel: row.get(5)?,
            subject: row.get(6)?,
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            messages_count: row.get(8)?,
            created_at: time(row, 9)?,
            updated_at: time(row, 10)?,
            last_message_at: opt_time(row, 11)?,
        },
    ))
}

/// The conversation with its internal sequence number.
fn load(conn: &Connection, ws: &str, id: &str) -> Result<(i64, Conversation)> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {CONV_COLUMNS} FROM conversations WHERE workspace_id = ?1 AND id = ?2"))
        .map_err(storage)?;
    one(stmt.query_row(params![ws, id], conversation_from_row))?.ok_or(Error::NotFound { entity: "conversation" })
}

pub(crate) fn get_conversation(conn: &Connection, ws: &str, id: &str) -> Result<Conversation> {
    load(conn, ws, id).map(|(_, c)| c)
}

fn check_assignee(conn: &Connection, ws: &str, assignee: Option<i64>) -> Result<Option<User>> {
    match assignee {
        None => Ok(None),
        Some(id) => {
            let user = find_user(conn, ws, id)?;
            require_active_user(user.as_ref(), id, "assignee_id")?;
            Ok(user)
        }
    }
}

fn check_sender(conn: &Connection, ws: &str, sender: &Sender) -> Result<()> {
    if let Some(id) = sender.user() {
        require_active_user(find_user(conn, ws, id)?.as_ref(), id, "operator_id")?;
    }
    Ok(())
}

fn write_labels(conn: &Connection, ws: &str, seq: i64, labels: &[String]) -> Result<()> {
    conn.prepare_cached("DELETE FROM conversation_labels WHERE seq = ?1")
        .and_then(|mut s| s.execute([seq]))
        .map_err(storage)?;
    let mut stmt = conn
        .prepare_cached("INSERT INTO conversation_labels (workspace_id, label, seq) VALUES (?1, ?2, ?3)")
        .map_err(storage)?;
    for label in labels {
        stmt.execute(params![ws, label, seq]).map_err(storage)?;
    }
    Ok(())
}

fn write_conversation(conn: &Connection, ws: &str, seq: i64, c: &Conversation) -> Result<()> {
    conn.prepare_cached(
        "UPDATE conversations SET status = ?3, assignee_id = ?4, labels = ?5, messages_count = ?6, updated_at = ?7,
         last_message_at = ?8 WHERE workspace_id = ?1 AND seq = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            ws,
            seq,
            c.status.as_str(),
            c.assignee_id,
            serde_json::to_string(&c.labels).unwrap_or_else(|_| "[]".into()),
            c.messages_count,
            t(&c.updated_at),
            c.last_message_at.as_ref().map(t)
        ])
    })
    .map_err(storage)?;
    Ok(())
}

/// Inserts a message and counts it on the conversation (in memory; the
/// caller writes the conversation).
pub(crate) fn insert_message(
    conn: &Connection,
    ws: &str,
    seq: i64,
    c: &mut Conversation,
    m: NewMessage,
) -> Result<Message> {
    let at = now();
    let (sender_type, sender_id) = m.sender.parts();
    conn.prepare_cached(
        "INSERT INTO messages (workspace_id, conversation, contact_id, type, content, sender_type, sender_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![ws, seq, c.contact_id, m.kind.as_str(), m.content, sender_type, sender_id, t(&at)])
    })
    .map_err(storage)?;
    c.messages_count += 1;
    c.last_message_at = Some(at);
    c.updated_at = at;
    Ok(Message {
        id: conn.last_insert_rowid(),
        conversation_id: c.id.clone(),
        kind: m.kind,
        content: m.content,
        sender: m.sender,
        created_at: at,
    })
}

pub(crate) fn create_conversation(conn: &Connection, ws: &str, new: NewConversation) -> Result<Conversation> {
    crate::contacts::get(conn, ws, new.contact_id).map_err(|e| match e {
        Error::NotFound { .. } => {
            Error::invalid_value("contact_id", format!("contact {} does not exist", new.contact_id))
        }
        other => other,
    })?;
    check_assignee(conn, ws, new.assignee_id)?;
    if let Some(m) = &new.first_message {
        check_sender(conn, ws, &m.sender)?;
    }
    let at = now();
    let mut c = Conversation {
        id: new.id,
        contact_id: Some(new.contact_id),
        status: ConversationStatus::Open,
        assignee_id: new.assignee_id,
        channel: new.channel,
        subject: new.subject,
        labels: new.labels,
        messages_count: 0,
        created_at: at,
        updated_at: at,
        last_message_at: None,
    };
    conn.prepare_cached(
        "INSERT INTO conversations (workspace_id, id, contact_id, status, assignee_id, channel, subject, labels,
         messages_count, created_at, updated_at, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            ws,
            c.id,
            c.contact_id,
            c.status.as_str(),
            c.assignee_id,
            c.channel,
            c.subject,
            serde_json::to_string(&c.labels).unwrap_or_else(|_| "[]".into()),
            t(&at),
            at.timestamp_millis()
        ])
    })
    .map_err(storage)?;
    let seq = conn.last_insert_rowid();
    write_labels(conn, ws, seq, &c.labels)?;
    if let Some(m) = new.first_message {
        insert_message(conn, ws, seq, &mut c, m)?;
        write_conversation(conn, ws, seq, &c)?;
    }
    Ok(c)
}

pub(crate) fn update_conversation(
    conn: &Connection,
    ws: &str,
    id: &str,
    changes: &ConversationChanges,
    actor: &Sender,
) -> Result<Conversation> {
    let (seq, mut c) = load(conn, ws, id)?;
    let assignee = check_assignee(conn, ws, changes.assignee.flatten())?;
    check_sender(conn, ws, actor)?;
    let activities = changes.apply(&mut c, assignee.as_ref(), actor, now());
    for a in activities {
        insert_message(conn, ws, seq, &mut c, a)?;
    }
    if changes.labels.is_some() {
        write_labels(conn, ws, seq, &c.labels)?;
    }
    write_conversation(conn, ws, seq, &c)?;
    Ok(c)
}

pub(crate) fn add_message(conn: &Connection, ws: &str, id: &str, m: NewMessage) -> Result<Message> {
    let (seq, mut c) = load(conn, ws, id)?;
    check_sender(conn, ws, &m.sender)?;
    let message = insert_message(conn, ws, seq, &mut c, m)?;
    // Only the counters and times change: naming no indexed column in SET
    // keeps SQLite from rewriting the status and assignee indexes.
    conn.prepare_cached(
        "UPDATE conversations SET messages_count = ?3, updated_at = ?4, last_message_at = ?4
         WHERE workspace_id = ?1 AND seq = ?2",
    )
    .and_then(|mut s| s.execute(params![ws, seq, c.messages_count, t(&message.created_at)]))
    .map_err(storage)?;
    Ok(message)
}

pub(crate) fn list_conversations(
    conn: &Connection,
    ws: &str,
    filter: &ConversationFilter,
    page: &PageRequest,
    offset: usize,
) -> Result<Page<Conversation>> {
    let after = page.after_i64()?.unwrap_or(0);
    let mut sql = format!("SELECT {CONV_COLUMNS} FROM conversations c WHERE c.workspace_id = ?1 AND c.seq > ?2");
    let mut args: Vec<rusqlite::types::Value> = vec![ws.to_string().into(), after.into()];
    if let Some(s) = filter.status {
        args.push(s.as_str().to_string().into());
        sql.push_str(&format!(" AND c.status = ?{}", args.len()));
    }
    if let Some(a) = filter.assignee_id {
        args.push(a.into());
        sql.push_str(&format!(" AND c.assignee_id = ?{}", args.len()));
    }
    if let Some(contact) = filter.contact_id {
        args.push(contact.into());
        sql.push_str(&format!(" AND c.contact_id = ?{}", args.len()));
    }
    if let Some(label) = &filter.label {
        args.push(label.clone().into());
        sql.push_str(&format!(
            " AND c.seq IN (SELECT seq FROM conversation_labels WHERE workspace_id = ?1 AND label = ?{})",
            args.len()
        ));
    }
    args.push((page.limit as i64 + 1).into());
    sql.push_str(&format!(" ORDER BY c.seq LIMIT ?{}", args.len()));
    args.push((offset as i64).into());
    sql.push_str(&format!(" OFFSET ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), conversation_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(rows, page.limit, |(seq, _)| seq.to_string()).map(|(_, c)| c))
}

fn message_from_row(row: &Row, conversation_id: &str) -> rusqlite::Result<Message> {
    let kind: String = row.get(1)?;
    let (st, sid): (String, String) = (row.get(3)?, row.get(4)?);
    Ok(Message {
        id: row.get(0)?,
        conversation_id: conversation_id.to_string(),
        kind: MessageType::parse(&kind).unwrap_or(MessageType::Note),
        content: row.get(2)?,
        sender: Sender::from_parts(&st, &sid),
        created_at: time(row, 5)?,
    })
}

pub(crate) fn list_messages(
    conn: &Connection,
    ws: &str,
    id: &str,
    filter: &MessageFilter,
    page: &PageRequest,
    offset: usize,
) -> Result<Page<Message>> {
    let (seq, c) = load(conn, ws, id)?;
    let after = page.after_i64()?.unwrap_or(0);
    let mut sql = "SELECT id, type, content, sender_type, sender_id, created_at FROM messages
                   WHERE conversation = ?1 AND id > ?2"
        .to_string();
    let mut args: Vec<rusqlite::types::Value> = vec![seq.into(), after.into()];
    if !filter.types.is_empty() {
        let marks: Vec<String> = filter
            .types
            .iter()
            .map(|t| {
                args.push(t.as_str().to_string().into());
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND type IN ({})", marks.join(", ")));
    }
    args.push((page.limit as i64 + 1).into());
    sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
    args.push((offset as i64).into());
    sql.push_str(&format!(" OFFSET ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let items = stmt
        .query_map(rusqlite::params_from_iter(args), |r| message_from_row(r, &c.id))
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |m| m.id.to_string()))
}

/// Events and messages of a contact, oldest first, paged by (time, kind, id).
pub(crate) fn timeline(conn: &Connection, ws: &str, contact_id: i64, page: &PageRequest) -> Result<Page<TimelineItem>> {
    crate::contacts::get(conn, ws, contact_id)?;
    let (at, event_after, message_after) = TimelineItem::resume(page.after.as_deref())?;
    let (at, limit) = (t(&at), page.limit as i64 + 1);
    let mut items: Vec<TimelineItem> = crate::events::timeline(conn, ws, contact_id, &at, event_after, limit)?
        .into_iter()
        .map(TimelineItem::Event)
        .collect();
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.id, m.type, m.content, m.sender_type, m.sender_id, m.created_at, c.id FROM messages m
             JOIN conversations c ON c.seq = m.conversation
             WHERE m.workspace_id = ?1 AND m.contact_id = ?2 AND (m.created_at > ?3 OR (m.created_at = ?3 AND m.id > ?4))
             ORDER BY m.created_at, m.id LIMIT ?5",
        )
        .map_err(storage)?;
    let messages = stmt
        .query_map(params![ws, contact_id, at, message_after, limit], |r| {
            let conv: String = r.get(6)?;
            message_from_row(r, &conv)
        })
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    items.extend(messages.into_iter().map(TimelineItem::Message));
    items.sort_by_key(TimelineItem::key);
    Ok(Page::from_overfetch(items, page.limit, TimelineItem::cursor))
}

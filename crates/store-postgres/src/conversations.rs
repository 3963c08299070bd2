//! Users, conversations, messages and a contact's timeline.

use chrono::{DateTime, Utc};
use convene_core::conversation::{
    Conversation, ConversationChanges, ConversationFilter, ConversationStatus, Message, MessageFilter, MessageType,
    NewConversation, NewMessage, Sender, TimelineItem, require_active_user,
};
use convene_core::ids::now;
use convene_core::page::{Page, PageRequest};
use convene_core::user::{Role, User, UserChanges};
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::db::{Tx, conn, execute, query, query_one, query_opt};
use crate::rows::get;

const USER_COLUMNS: &str = "id, name, email, role, active, created_at, updated_at";

pub(crate) fn user_from_row(row: &Row) -> Result<User> {
    let role: String = get(row, "role")?;
    Ok(User {
        id: get(row, "id")?,
        name: get(row, "name")?,
        email: get(row, "email")?,
        role: Role::parse(&role).unwrap_or_default(),
        active: get(row, "active")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

async fn find_user(c: &ClientWrapper, ws: &str, id: i64) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id = $2");
    query_opt(c, &sql, &[&ws, &id]).await?.as_ref().map(user_from_row).transpose()
}

pub(crate) async fn get_user(pool: &Pool, ws: &str, id: i64) -> Result<User> {
    let c = conn(pool).await?;
    find_user(&c, ws, id).await?.ok_or(Error::NotFound { entity: "user" })
}

pub(crate) async fn create_user(pool: &Pool, ws: &str, mut user: User) -> Result<User> {
    let c = conn(pool).await?;
    let row = query_one(
        &c,
        "INSERT INTO users (workspace_id, name, email, role, active, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &[&ws, &user.name, &user.email, &user.role.as_str(), &user.active, &user.created_at, &user.updated_at],
    )
    .await?;
    user.id = get(&row, "id")?;
    Ok(user)
}

pub(crate) async fn update_user(pool: &Pool, ws: &str, id: i64, changes: &UserChanges) -> Result<User> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id = $2 FOR UPDATE");
        let mut user = query_opt(tx.c(), &sql, &[&ws, &id])
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(Error::NotFound { entity: "user" })?;
        changes.apply(&mut user, now());
        execute(
            tx.c(),
            "UPDATE users SET name = $3, email = $4, role = $5, active = $6, updated_at = $7
             WHERE workspace_id = $1 AND id = $2",
            &[&ws, &id, &user.name, &user.email, &user.role.as_str(), &user.active, &user.updated_at],
        )
        .await?;
        Ok(user)
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn list_users(pool: &Pool, ws: &str, page: &PageRequest) -> Result<Page<User>> {
    let after = page.after_i64()?.unwrap_or(0);
    let c = conn(pool).await?;
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3");
    let rows = query(&c, &sql, &[&ws, &after, &(page.limit as i64 + 1)]).await?;
    let items = rows.iter().map(user_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |u| u.id.to_string()))
}

pub(crate) const CONV_COLUMNS: &str = "seq, id, contact_id, status, assignee_id, channel, subject, labels, messages_count, \
                            created_at, updated_at, last_message_at";

pub(crate) fn conversation_from_row(row: &Row) -> Result<(i64, Conversation)> {
    let status: String = get(row, "status")?;
    Ok((
        get(row, "seq")?,
        Conversation {
            id: get(row, "id")?,
            contact_id: get(row, "contact_id")?,
            status: ConversationStatus::parse(&status).unwrap_or(ConversationStatus::Open),
            assignee_id: get(row, "assignee_id")?,
            channel: get(row, "channel")?,
            subject: get(row, "subject")?,
            labels: get(row, "labels")?,
            messages_count: get(row, "messages_count")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
            last_message_at: get(row, "last_message_at")?,
        },
    ))
}

async fn load(c: &ClientWrapper, ws: &str, id: &str, lock: bool) -> Result<(i64, Conversation)> {
    let sql = format!(
        "SELECT {CONV_COLUMNS} FROM conversations WHERE workspace_id = $1 AND id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    query_opt(c, &sql, &[&ws, &id])
        .await?
        .as_ref()
        .map(conversation_from_row)
        .transpose()?
        .ok_or(Error::NotFound { entity: "conversation" })
}

pub(crate) async fn get_conversation(pool: &Pool, ws: &str, id: &str) -> Result<Conversation> {
    let c = conn(pool).await?;
    load(&c, ws, id, false).await.map(|(_, conv)| conv)
}

async fn check_assignee(c: &ClientWrapper, ws: &str, assignee: Option<i64>) -> Result<Option<User>> {
    match assignee {
        None => Ok(None),
        Some(id) => {
            let user = find_user(c, ws, id).await?;
            require_active_user(user.as_ref(), id, "assignee_id")?;
            Ok(user)
        }
    }
}

async fn check_sender(c: &ClientWrapper, ws: &str, sender: &Sender) -> Result<()> {
    if let Some(id) = sender.user() {
        require_active_user(find_user(c, ws, id).await?.as_ref(), id, "operator_id")?;
    }
    Ok(())
}

async fn write_conversation(c: &ClientWrapper, ws: &str, seq: i64, conv: &Conversation) -> Result<()> {
    execute(
        c,
        "UPDATE conversations SET status = $3, assignee_id = $4, labels = $5, messages_count = $6, updated_at = $7,
         last_message_at = $8 WHERE workspace_id = $1 AND seq = $2",
        &[
            &ws,
            &seq,
            &conv.status.as_str(),
            &conv.assignee_id,
            &conv.labels,
            &conv.messages_count,
            &conv.updated_at,
            &conv.last_message_at,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_message(
    c: &ClientWrapper,
    ws: &str,
    seq: i64,
    conv: &mut Conversation,
    m: NewMessage,
) -> Result<Message> {
    let at = now();
    let (sender_type, sender_id) = m.sender.parts();
    let row = query_one(
        c,
        "INSERT INTO messages (workspace_id, conversation_seq, contact_id, type, content, sender_type, sender_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        &[&ws, &seq, &conv.contact_id, &m.kind.as_str(), &m.content, &sender_type, &sender_id, &at],
    )
    .await?;
    conv.messages_count += 1;
    conv.last_message_at = Some(at);
    conv.updated_at = at;
    Ok(Message {
        id: get(&row, "id")?,
        conversation_id: conv.id.clone(),
        kind: m.kind,
        content: m.content,
        sender: m.sender,
        created_at: at,
    })
}

pub(crate) async fn create_conversation(pool: &Pool, ws: &str, new: &NewConversation) -> Result<Conversation> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let contact =
            query_opt(tx.c(), "SELECT 1 FROM contacts WHERE workspace_id = $1 AND id = $2", &[&ws, &new.contact_id])
                .await?;
        if contact.is_none() {
            return Err(Error::invalid_value("contact_id", format!("contact {} does not exist", new.contact_id)));
        }
        check_assignee(tx.c(), ws, new.assignee_id).await?;
        if let Some(m) = &new.first_message {
            check_sender(tx.c(), ws, &m.sender).await?;
        }
        let at = now();
        let mut conv = Conversation {
            id: new.id.clone(),
            contact_id: Some(new.contact_id),
            status: ConversationStatus::Open,
            assignee_id: new.assignee_id,
            channel: new.channel.clone(),
            subject: new.subject.clone(),
            labels: new.labels.clone(),
            messages_count: 0,
            created_at: at,
            updated_at: at,
            last_message_at: None,
        };
        let row = query_one(
            tx.c(),
            "INSERT INTO conversations (workspace_id, id, contact_id, status, assignee_id, channel, subject, labels,
             messages_count, created_at, updated_at, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9, $10) RETURNING seq",
            &[
                &ws,
                &conv.id,
                &conv.contact_id,
                &conv.status.as_str(),
                &conv.assignee_id,
                &conv.channel,
                &conv.subject,
                &conv.labels,
                &at,
                &at.timestamp_millis(),
            ],
        )
        .await?;
        let seq: i64 = get(&row, "seq")?;
        if let Some(m) = &new.first_message {
            insert_message(tx.c(), ws, seq, &mut conv, m.clone()).await?;
            write_conversation(tx.c(), ws, seq, &conv).await?;
        }
        Ok(conv)
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn update_conversation(
    pool: &Pool,
    ws: &str,
    id: &str,
    changes: &ConversationChanges,
    actor: &Sender,
) -> Result<Conversation> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let (seq, mut conv) = load(tx.c(), ws, id, true).await?;
        let assignee = check_assignee(tx.c(), ws, changes.assignee.flatten()).await?;
        check_sender(tx.c(), ws, actor).await?;
        let activities = changes.apply(&mut conv, assignee.as_ref(), actor, now());
        for a in activities {
            insert_message(tx.c(), ws, seq, &mut conv, a).await?;
        }
        write_conversation(tx.c(), ws, seq, &conv).await?;
        Ok(conv)
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn add_message(pool: &Pool, ws: &str, id: &str, m: &NewMessage) -> Result<Message> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let (seq, mut conv) = load(tx.c(), ws, id, true).await?;
        check_sender(tx.c(), ws, &m.sender).await?;
        let message = insert_message(tx.c(), ws, seq, &mut conv, m.clone()).await?;
        // Only the counters and times change (no indexed column: a HOT update).
        execute(
            tx.c(),
            "UPDATE conversations SET messages_count = $3, updated_at = $4, last_message_at = $4
             WHERE workspace_id = $1 AND seq = $2",
            &[&ws, &seq, &conv.messages_count, &message.created_at],
        )
        .await?;
        Ok(message)
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn list_conversations(
    pool: &Pool,
    ws: &str,
    filter: &ConversationFilter,
    page: &PageRequest,
    offset: usize,
) -> Result<Page<Conversation>> {
    let offset = offset as i64;
    let after = page.after_i64()?.unwrap_or(0);
    let limit = page.limit as i64 + 1;
    let status = filter.status.map(|s| s.as_str());
    let c = conn(pool).await?;
    let mut sql = format!("SELECT {CONV_COLUMNS} FROM conversations WHERE workspace_id = $1 AND seq > $2");
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ws, &after];
    if let Some(s) = &status {
        params.push(s);
        sql.push_str(&format!(" AND status = ${}", params.len()));
    }
    if let Some(a) = &filter.assignee_id {
        params.push(a);
        sql.push_str(&format!(" AND assignee_id = ${}", params.len()));
    }
    if let Some(contact) = &filter.contact_id {
        params.push(contact);
        sql.push_str(&format!(" AND contact_id = ${}", params.len()));
    }
    let label = filter.label.as_ref().map(|l| vec![l.clone()]);
    if let Some(l) = &label {
        params.push(l);
        sql.push_str(&format!(" AND labels @> ${}", params.len()));
    }
    params.push(&limit);
    sql.push_str(&format!(" ORDER BY seq LIMIT ${}", params.len()));
    params.push(&offset);
    sql.push_str(&format!(" OFFSET ${}", params.len()));
    let rows = query(&c, &sql, &params).await?;
    let items = rows.iter().map(conversation_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |(seq, _)| seq.to_string()).map(|(_, conv)| conv))
}

fn message_from_row(row: &Row, conversation_id: String) -> Result<Message> {
    let kind: String = get(row, "type")?;
    let (st, sid): (String, String) = (get(row, "sender_type")?, get(row, "sender_id")?);
    Ok(Message {
        id: get(row, "id")?,
        conversation_id,
        kind: MessageType::parse(&kind).unwrap_or(MessageType::Note),
        content: get(row, "content")?,
        sender: Sender::from_parts(&st, &sid),
        created_at: get(row, "created_at")?,
    })
}

pub(crate) async fn list_messages(
    pool: &Pool,
    ws: &str,
    id: &str,
    filter: &MessageFilter,
    page: &PageRequest,
    offset: usize,
) -> Result<Page<Message>> {
    let c = conn(pool).await?;
    let (seq, conv) = load(&c, ws, id, false).await?;
    let after = page.after_i64()?.unwrap_or(0);
    let types: Vec<&str> = filter.types.iter().map(|t| t.as_str()).collect();
    let all = types.is_empty();
    let rows = query(
        &c,
        "SELECT id, type, content, sender_type, sender_id, created_at FROM messages
         WHERE workspace_id = $1 AND conversation_seq = $2 AND id > $3 AND ($4 OR type = ANY($5))
         ORDER BY id LIMIT $6 OFFSET $7",
        &[&ws, &seq, &after, &all, &types, &(page.limit as i64 + 1), &(offset as i64)],
    )
    .await?;
    let items = rows.iter().map(|r| message_from_row(r, conv.id.clone())).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |m| m.id.to_string()))
}

pub(crate) async fn timeline(pool: &Pool, ws: &str, contact_id: i64, page: &PageRequest) -> Result<Page<TimelineItem>> {
    let c = conn(pool).await?;
    if query_opt(&c, "SELECT 1 FROM contacts WHERE workspace_id = $1 AND id = $2", &[&ws, &contact_id]).await?.is_none()
    {
        return Err(Error::NotFound { entity: "contact" });
    }
    let (at, event_after, message_after) = TimelineItem::resume(page.after.as_deref())?;
    // timestamptz cannot hold chrono's minimum; the epoch of time is far enough.
    let at: DateTime<Utc> = at.max(DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or(at));
    let limit = page.limit as i64 + 1;
    let mut items = crate::events::timeline(&c, ws, contact_id, at, event_after, limit)
        .await?
        .into_iter()
        .map(TimelineItem::Event)
        .collect::<Vec<_>>();
    let rows = query(
        &c,
        "SELECT m.id, m.type, m.content, m.sender_type, m.sender_id, m.created_at, c.id AS conversation
         FROM messages m JOIN conversations c ON c.workspace_id = m.workspace_id AND c.seq = m.conversation_seq
         WHERE m.workspace_id = $1 AND m.contact_id = $2 AND (m.created_at > $3 OR (m.created_at = $3 AND m.id > $4))
         ORDER BY m.created_at, m.id LIMIT $5",
        &[&ws, &contact_id, &at, &message_after, &limit],
    )
    .await?;
    for row in &rows {
        items.push(TimelineItem::Message(message_from_row(row, get(row, "conversation")?)?));
    }
    items.sort_by_key(TimelineItem::key);
    Ok(Page::from_overfetch(items, page.limit, TimelineItem::cursor))
}

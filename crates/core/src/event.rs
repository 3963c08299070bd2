//! Events: what a contact did (track, page, screen) or an engagement,
//! with at most 15 properties (ConveYour's rule, applied to every API).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// Most properties an event may carry.
pub const MAX_EVENT_PROPERTIES: usize = 15;
/// Longest event name.
pub const MAX_EVENT_NAME_LEN: usize = 200;
/// Largest serialized properties object, in bytes.
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// An action (`track`).
    Track,
    /// A web page view.
    Page,
    /// A mobile screen view.
    Screen,
    /// A recorded engagement with a description.
    Engagement,
}

impl EventKind {
    /// Storage and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Track => "track",
            EventKind::Page => "page",
            EventKind::Screen => "screen",
            EventKind::Engagement => "engagement",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [EventKind::Track, EventKind::Page, EventKind::Screen, EventKind::Engagement]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A validated event to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event name, e.g. `made_sale`.
    pub name: String,
    /// Kind.
    pub kind: EventKind,
    /// At most 15 properties.
    pub properties: Map<String, Value>,
    /// Engagement description.
    pub description: Option<String>,
    /// When it happened (as sent, or skew-corrected).
    pub timestamp: DateTime<Utc>,
    /// When convene received it.
    pub received_at: DateTime<Utc>,
    /// The sender's id for deduplication.
    pub message_id: Option<String>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Integer id (increasing in arrival order).
    pub id: i64,
    /// The contact.
    pub contact_id: i64,
    /// What was recorded.
    pub event: NewEvent,
}

/// Filters of the event list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this name.
    pub name: Option<String>,
    /// Only this contact.
    pub contact_id: Option<i64>,
    /// Timestamp at or after.
    pub from: Option<DateTime<Utc>>,
    /// Timestamp before.
    pub to: Option<DateTime<Utc>>,
}

/// Checks an event name: 1 to 200 characters, no control characters.
pub fn validate_name(name: &str) -> Result<String, Error> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_EVENT_NAME_LEN {
        return Err(Error::validation("event", format!("event name must have 1 to {MAX_EVENT_NAME_LEN} characters")));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(Error::validation("event", "event name must not contain control characters"));
    }
    Ok(trimmed.to_string())
}

/// Checks an event's properties: at most 15 pairs and 32 KiB. The message
/// names the event.
pub fn validate_properties(event: &str, properties: &Map<String, Value>) -> Result<(), Error> {
    if properties.len() > MAX_EVENT_PROPERTIES {
        return Err(Error::validation(
            "properties",
            format!(
                "event '{event}' has {} properties; events are limited to {MAX_EVENT_PROPERTIES} key/value pairs",
                properties.len()
            ),
        ));
    }
    let size = serde_json::to_vec(properties).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_PROPERTIES_BYTES {
        return Err(Error::validation(
            "properties",
            format!("the properties of event '{event}' are larger than {MAX_PROPERTIES_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Longest engagement description.
pub const MAX_ENGAGEMENT_DESCRIPTION_LEN: usize = 10_000;

/// Builds an engagement: a name (as event names), a description of 1 to
/// 10,000 characters, and free JSON data (any keys, at most 32 KiB).
pub fn new_engagement(
    name: &str,
    description: &str,
    data: Map<String, Value>,
    at: DateTime<Utc>,
) -> Result<NewEvent, Error> {
    let name = validate_name(name).map_err(|_| {
        Error::validation(
            "name",
            format!("name must have 1 to {MAX_EVENT_NAME_LEN} characters and no control characters"),
        )
    })?;
    let description = description.trim();
    if description.is_empty() || description.chars().count() > MAX_ENGAGEMENT_DESCRIPTION_LEN {
        return Err(Error::validation(
            "description",
            format!("description must have 1 to {MAX_ENGAGEMENT_DESCRIPTION_LEN} characters"),
        ));
    }
    let size = serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_PROPERTIES_BYTES {
        return Err(Error::validation("data", format!("data is larger than {MAX_PROPERTIES_BYTES} bytes")));
    }
    Ok(NewEvent {
        name,
        kind: EventKind::Engagement,
        properties: data,
        description: Some(description.to_string()),
        timestamp: at,
        received_at: at,
        message_id: None,
    })
}

/// The event time: as sent; when the client also sends `sent_at` and the
/// `original` timestamp, its clock skew is corrected as Segment does
/// (`timestamp = received_at − (sent_at − original)`).
pub fn event_time(
    received_at: DateTime<Utc>,
    timestamp: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    original: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    match (sent_at, original) {
        (Some(sent), Some(original)) => received_at - (sent - original),
        _ => timestamp.or(original).unwrap_or(received_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fifteen_properties_pass_sixteen_do_not() {
        let mut props = Map::new();
        for i in 0..15 {
            props.insert(format!("p{i}"), Value::from(i));
        }
        assert!(validate_properties("e", &props).is_ok());
        props.insert("p15".into(), Value::from(15));
        let err = validate_properties("made_sale", &props).unwrap_err();
        assert!(err.to_string().contains("made_sale"));
    }

    #[test]
    fn engagements_need_a_name_and_a_description_and_take_any_data_keys() {
        let at = Utc::now();
        let mut data = Map::new();
        for i in 0..40 {
            data.insert(format!("k{i}"), Value::from(i));
        }
        let e = new_engagement(" Demo call ", "Walked through pricing", data, at).unwrap();
        assert_eq!((e.name.as_str(), e.kind, e.properties.len()), ("Demo call", EventKind::Engagement, 40));
        assert_eq!(new_engagement("", "x", Map::new(), at).unwrap_err().field(), Some("name"));
        assert_eq!(new_engagement("n", "  ", Map::new(), at).unwrap_err().field(), Some("description"));
        let mut big = Map::new();
        big.insert("blob".into(), Value::String("x".repeat(MAX_PROPERTIES_BYTES)));
        assert_eq!(new_engagement("n", "d", big, at).unwrap_err().field(), Some("data"));
    }

    #[test]
    fn skew_is_corrected_like_segment() {
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        // the client clock is 100 s fast: it says sent at 1100 for an event at 1050
        assert_eq!(event_time(t(1000), None, Some(t(1100)), Some(t(1050))), t(950));
        assert_eq!(event_time(t(1000), Some(t(900)), None, None), t(900));
        assert_eq!(event_time(t(1000), None, None, None), t(1000));
    }
}

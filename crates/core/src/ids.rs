//! Identifiers and clock helpers.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;

/// A new random identifier with a readable prefix, e.g. `ws_3f9a…` (96 bits).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// Now, truncated to milliseconds (what every store keeps).
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// RFC 3339 with milliseconds and `Z`, the one text form of a time in storage
/// and on the wire (it sorts as text in time order).
pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a time written by [`fmt_time`] (or any RFC 3339 time).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

//! Identifiers and clock helpers.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;

/// A new random identifier with a readable prefix, e.g. `ws_3f9a…` (96 bits).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// A new identifier that sorts by creation time, the same shape as
/// [`new_id`]: 48 bits of Unix milliseconds, then 48 random bits. For rows
/// written at a high rate and keyed by their id (ingest jobs): each insert
/// lands at the end of the index instead of on a random page, so a commit
/// writes a few pages instead of one per row. Not for secrets.
pub fn new_sortable_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    let millis = Utc::now().timestamp_millis().max(0) as u64;
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    rand::rng().fill_bytes(&mut bytes[6..]);
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

/// Parses a time written by [`fmt_time`] (or any RFC 3339 time). The form
/// [`fmt_time`] writes is read by a fast path (stores read it for every row).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    parse_canonical(s).or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, exactly.
fn parse_canonical(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let time = date.and_hms_milli_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?)?;
    Some(time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_ids_sort_by_creation_time_and_differ() {
        let first = new_sortable_id("job");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_sortable_id("job");
        let third = new_sortable_id("job");
        assert!(first < second, "{first} !< {second}");
        assert_ne!(second, third);
        assert_eq!(first.len(), new_id("job").len());
        assert!(first.starts_with("job_") && first[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_canonical_form_reads_back_exactly() {
        for s in ["2026-11-28T22:03:59.123Z", "1999-12-31T23:59:59.999Z", "2024-02-29T00:00:00.000Z"] {
            let t = parse_time(s).unwrap();
            assert_eq!(fmt_time(&t), s);
            assert_eq!(Some(t), DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)));
        }
        assert_eq!(parse_time("2026-11-28T23:03:59+01:00"), parse_time("2026-11-28T22:03:59.000Z"));
        for bad in ["2026-02-30T00:00:00.000Z", "2026-11-28T24:00:00.000Z", "2026-11-28X22:03:59.123Z", ""] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}

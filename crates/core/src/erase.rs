//! Erasure: removing a contact and every trace of its identities, an audit
//! record that names them only by hash, and the suppression that refuses the
//! same identities afterwards until an admin lifts it.
//!
//! The rule lives here; stores run it in one transaction (SQLite with
//! `secure_delete` on, then a truncating WAL checkpoint) and call
//! [`check_not_suppressed`] at their only contact writes, so no write path
//! (native API, ingestion, batches, dialects, calls) can bring an erased
//! identity back unnoticed.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::contact::ContactState;
use crate::error::{Error, Result};
use crate::identity::IdentityKind;

/// What to erase.
#[derive(Debug, Clone, PartialEq)]
pub enum EraseTarget {
    /// A contact by id.
    Id(i64),
    /// The contact holding an identity (normalised).
    Identity(IdentityKind, String),
}

/// The audit record of an erasure: who, when, which identities (hashed),
/// and how much was removed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Erasure {
    /// `era_…`
    pub id: String,
    /// The erased contact's id (no longer in use).
    pub contact_id: i64,
    /// `(kind, identity_hash)` of each identity the contact held.
    pub identities: Vec<(IdentityKind, String)>,
    /// Who asked: `key:<id>`, `user:<id>`, `cli`.
    pub actor: String,
    /// When.
    pub erased_at: DateTime<Utc>,
    /// Events deleted.
    pub events: u64,
    /// Messages whose content was erased.
    pub messages: u64,
    /// Conversations unlinked from the contact (subjects and call details erased).
    pub conversations: u64,
    /// Job results whose row errors named an identity, rewritten.
    pub jobs: u64,
    /// Deduplication records (message ids) that carried an identity, deleted.
    pub dedupe: u64,
}

/// The text that replaces erased content (messages, subjects, job errors).
pub const ERASED: &str = "[erased]";

/// The SHA-256 of an identity within a workspace, hex: what the audit
/// record and the suppression list keep instead of the value.
pub fn identity_hash(ws: &str, kind: IdentityKind, value: &str) -> String {
    let mut h = Sha256::new();
    for part in [ws, "\0", kind.field(), "\0", value] {
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The identities a contact holds, as `(kind, value)`.
pub fn identities(state: &ContactState) -> Vec<(IdentityKind, String)> {
    IdentityKind::ALL.iter().filter_map(|k| state.identity(*k).map(|v| (*k, v.to_string()))).collect()
}

/// Refuses a contact write that would give `state` an identity that was
/// erased (`suppressed` answers for a hash). The error names the field, never
/// the value.
pub fn check_not_suppressed(
    ws: &str,
    state: &ContactState,
    mut suppressed: impl FnMut(&str) -> Result<bool>,
) -> Result<()> {
    for (kind, value) in identities(state) {
        if suppressed(&identity_hash(ws, kind, &value))? {
            return Err(Error::validation(
                kind.field(),
                format!(
                    "this {} belongs to an erased contact; an admin must lift its suppression \
                     (DELETE /v1/suppressions) before it can be used again",
                    kind.field()
                ),
            ));
        }
    }
    Ok(())
}

/// `text` with every identity value replaced by [`ERASED`]; `None` when
/// none occurs in it (job errors, message ids).
pub fn redact(text: &str, values: &[String]) -> Option<String> {
    let mut out = None::<String>;
    for v in values.iter().filter(|v| !v.is_empty()) {
        let current = out.as_deref().unwrap_or(text);
        if current.contains(v.as_str()) {
            out = Some(current.replace(v.as_str(), ERASED));
        }
    }
    out
}

/// Checks an erase request's target.
pub fn target_from(id: Option<i64>, identities: &[(IdentityKind, Option<&str>)]) -> Result<EraseTarget> {
    let given: Vec<(IdentityKind, &str)> = identities.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
    match (id, given.as_slice()) {
        (Some(id), []) => Ok(EraseTarget::Id(id)),
        (None, [(kind, value)]) => Ok(EraseTarget::Identity(*kind, kind.normalise(value)?)),
        _ => Err(Error::bad_request("name the contact to erase by exactly one of: id, email, mobile, external_id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_per_workspace_and_kind_and_hide_the_value() {
        let a = identity_hash("ws_1", IdentityKind::Email, "ann@x.io");
        assert_eq!(a.len(), 64);
        assert!(!a.contains("ann"));
        assert_ne!(a, identity_hash("ws_2", IdentityKind::Email, "ann@x.io"));
        assert_ne!(a, identity_hash("ws_1", IdentityKind::ExternalId, "ann@x.io"));
        assert_eq!(a, identity_hash("ws_1", IdentityKind::Email, "ann@x.io"));
    }

    #[test]
    fn suppressed_identities_are_refused_by_field_without_the_value() {
        let mut state = ContactState { email: Some("ann@x.io".into()), ..Default::default() };
        state.external_id = Some("A-1".into());
        let banned = identity_hash("ws", IdentityKind::ExternalId, "A-1");
        let err = check_not_suppressed("ws", &state, |h| Ok(h == banned)).unwrap_err();
        assert_eq!(err.field(), Some("external_id"));
        assert!(!err.to_string().contains("A-1"));
        assert!(check_not_suppressed("other", &state, |h| Ok(h == banned)).is_ok());
    }

    #[test]
    fn redaction_replaces_every_value() {
        let values = vec!["ann@x.io".to_string(), "A-1".to_string()];
        assert_eq!(redact("row 2: ann@x.io held by A-1", &values).as_deref(), Some("row 2: [erased] held by [erased]"));
        assert_eq!(redact("nothing here", &values), None);
        assert_eq!(
            target_from(None, &[(IdentityKind::Email, Some("Ann@X.io"))]).unwrap(),
            EraseTarget::Identity(IdentityKind::Email, "ann@x.io".into())
        );
        assert!(target_from(Some(1), &[(IdentityKind::Email, Some("a@x.io"))]).is_err());
        assert!(target_from(None, &[]).is_err());
    }
}

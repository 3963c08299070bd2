//! Scopes (what a key may do) and key kinds.
//!
//! Every route declares the [`Scope`] it needs; an API key carries a set of
//! scopes derived from its [`KeyKind`] and its service account.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A permission a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    /// Read contacts and fields.
    #[serde(rename = "contacts:read")]
    ContactsRead,
    /// Create, change and delete contacts and fields.
    #[serde(rename = "contacts:write")]
    ContactsWrite,
    /// Record events.
    #[serde(rename = "events:write")]
    EventsWrite,
    /// Read events.
    #[serde(rename = "events:read")]
    EventsRead,
    /// Read companies.
    #[serde(rename = "companies:read")]
    CompaniesRead,
    /// Write companies.
    #[serde(rename = "companies:write")]
    CompaniesWrite,
    /// Read reps.
    #[serde(rename = "reps:read")]
    RepsRead,
    /// Write reps.
    #[serde(rename = "reps:write")]
    RepsWrite,
    /// Read conversations and messages.
    #[serde(rename = "conversations:read")]
    ConversationsRead,
    /// Write conversations and messages.
    #[serde(rename = "conversations:write")]
    ConversationsWrite,
    /// Read reports.
    #[serde(rename = "reports:read")]
    ReportsRead,
    /// Manage the workspace's service accounts and keys.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 12] = [
        Scope::ContactsRead,
        Scope::ContactsWrite,
        Scope::EventsWrite,
        Scope::EventsRead,
        Scope::CompaniesRead,
        Scope::CompaniesWrite,
        Scope::RepsRead,
        Scope::RepsWrite,
        Scope::ConversationsRead,
        Scope::ConversationsWrite,
        Scope::ReportsRead,
        Scope::Admin,
    ];

    /// The scopes an analytics key holds: write contacts and events, nothing else.
    pub const ANALYTICS: [Scope; 2] = [Scope::ContactsWrite, Scope::EventsWrite];

    /// The wire name, e.g. `contacts:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ContactsRead => "contacts:read",
            Scope::ContactsWrite => "contacts:write",
            Scope::EventsWrite => "events:write",
            Scope::EventsRead => "events:read",
            Scope::CompaniesRead => "companies:read",
            Scope::CompaniesWrite => "companies:write",
            Scope::RepsRead => "reps:read",
            Scope::RepsWrite => "reps:write",
            Scope::ConversationsRead => "conversations:read",
            Scope::ConversationsWrite => "conversations:write",
            Scope::ReportsRead => "reports:read",
            Scope::Admin => "admin",
        }
    }

    /// Parses a list of scope names; `companies:*` style wildcards expand to
    /// read and write. Unknown names are a validation error naming `field`.
    pub fn parse_list(names: &[String], field: &str) -> Result<Vec<Scope>, Error> {
        let mut out = Vec::new();
        for name in names {
            if let Some(prefix) = name.strip_suffix(":*") {
                let matched: Vec<Scope> = Scope::ALL
                    .into_iter()
                    .filter(|s| s.as_str().split(':').next() == Some(prefix) && s.as_str().contains(':'))
                    .collect();
                if matched.is_empty() {
                    return Err(Error::validation(field, format!("unknown scope '{name}'")));
                }
                out.extend(matched);
            } else {
                out.push(name.parse().map_err(|_| {
                    Error::validation(field, format!("unknown scope '{name}'; known scopes: {}", Scope::names()))
                })?);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn names() -> String {
        Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or(())
    }
}

/// The two kinds of API key, as in ConveYour's "Analytics API" and "Full API".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// May only write contacts and events (identify/track integrations).
    Analytics,
    /// Holds the scopes of its service account (all scopes without one).
    Full,
}

impl KeyKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Analytics => "analytics",
            KeyKind::Full => "full",
        }
    }
}

impl FromStr for KeyKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "analytics" => Ok(KeyKind::Analytics),
            "full" => Ok(KeyKind::Full),
            _ => Err(()),
        }
    }
}

/// The scopes a key holds, computed from its kind, its own scope list (if it
/// was created with one) and its service account's scopes (if it has one).
///
/// Analytics keys hold [`Scope::ANALYTICS`] only (further narrowed by an
/// explicit list). Full keys hold their own list if given, else the account's,
/// else every scope; a key never holds more than its account.
pub fn effective_scopes(kind: KeyKind, own: Option<&[Scope]>, account: Option<&[Scope]>) -> Vec<Scope> {
    let base: Vec<Scope> = match kind {
        KeyKind::Analytics => Scope::ANALYTICS.to_vec(),
        KeyKind::Full => Scope::ALL.to_vec(),
    };
    let mut scopes: Vec<Scope> = base
        .into_iter()
        .filter(|s| own.is_none_or(|own| own.contains(s)))
        .filter(|s| account.is_none_or(|acc| acc.contains(s)))
        .collect();
    scopes.sort();
    scopes
}

/// A key may not grant what it does not hold: every scope in `granted`
/// must be in `granter` (the scopes of the admin key making the grant).
/// The master key grants anything and does not call this.
pub fn check_grant(granter: &[Scope], granted: &[Scope]) -> Result<(), Error> {
    match granted.iter().find(|s| !granter.contains(s)) {
        Some(missing) => Err(Error::Forbidden { scope: *missing }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_expands_to_read_and_write() {
        let s = Scope::parse_list(&["companies:*".into()], "scopes").unwrap();
        assert_eq!(s, vec![Scope::CompaniesRead, Scope::CompaniesWrite]);
        assert!(Scope::parse_list(&["nope".into()], "scopes").is_err());
    }

    #[test]
    fn grants_are_bounded_by_the_granter() {
        assert!(check_grant(&[Scope::Admin, Scope::ContactsRead], &[Scope::ContactsRead]).is_ok());
        assert!(matches!(
            check_grant(&[Scope::Admin], &[Scope::ContactsRead]),
            Err(Error::Forbidden { scope: Scope::ContactsRead })
        ));
    }

    #[test]
    fn analytics_keys_never_read() {
        let s = effective_scopes(KeyKind::Analytics, None, Some(&Scope::ALL));
        assert_eq!(s, vec![Scope::ContactsWrite, Scope::EventsWrite]);
    }

    #[test]
    fn full_keys_follow_their_account() {
        let acc = [Scope::ContactsRead];
        assert_eq!(effective_scopes(KeyKind::Full, None, Some(&acc)), vec![Scope::ContactsRead]);
        assert_eq!(effective_scopes(KeyKind::Full, None, None).len(), Scope::ALL.len());
        let own = [Scope::ContactsRead, Scope::Admin];
        assert_eq!(effective_scopes(KeyKind::Full, Some(&own), Some(&acc)), vec![Scope::ContactsRead]);
    }
}

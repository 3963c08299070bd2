//! Workspaces (tenants), service accounts (API identities) and API keys.

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::limits::{MAX_DESCRIPTION_LEN, MAX_NAME_LEN, MAX_TEAMS};
use crate::scope::{KeyKind, Scope, effective_scopes};
use crate::token::TokenHash;

/// A tenant: every row of every other table belongs to one.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// `ws_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An API identity with permissions, like ConveYour's service accounts.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccount {
    /// `sa_…`
    pub id: String,
    /// Owning workspace.
    pub workspace_id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Teams it belongs to.
    pub teams: Vec<String>,
    /// What its full keys may do.
    pub scopes: Vec<Scope>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A validated new service account.
#[derive(Debug, Clone)]
pub struct NewServiceAccount {
    /// Display name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Teams.
    pub teams: Vec<String>,
    /// Scopes.
    pub scopes: Vec<Scope>,
}

/// A validated change to a service account; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccountUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New teams.
    pub teams: Option<Vec<String>>,
    /// New scopes ("Edit Permissions").
    pub scopes: Option<Vec<Scope>>,
}

impl ServiceAccount {
    /// Applies an update: each given part replaces the current one; the
    /// update time is set to `at`.
    pub fn apply(&mut self, update: ServiceAccountUpdate, at: DateTime<Utc>) {
        if let Some(name) = update.name {
            self.name = name;
        }
        if let Some(description) = update.description {
            self.description = description;
        }
        if let Some(teams) = update.teams {
            self.teams = teams;
        }
        if let Some(scopes) = update.scopes {
            self.scopes = scopes;
        }
        self.updated_at = at;
    }
}

/// An API key as stored and listed: never its token.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// `key_…`
    pub id: String,
    /// Owning workspace.
    pub workspace_id: String,
    /// Display name.
    pub name: String,
    /// Analytics or full.
    pub kind: KeyKind,
    /// Its service account, if any.
    pub service_account_id: Option<String>,
    /// Scopes it was created with, if narrowed.
    pub own_scopes: Option<Vec<Scope>>,
    /// The scopes it holds now (kind ∩ own ∩ account).
    pub scopes: Vec<Scope>,
    /// `cvn_…` plus the last four characters.
    pub preview: String,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (updated at most every few seconds).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A validated key to create; the token hash and preview come from
/// [`crate::token::mint`].
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Display name.
    pub name: String,
    /// Analytics or full.
    pub kind: KeyKind,
    /// Its service account.
    pub service_account_id: Option<String>,
    /// Narrowed scopes.
    pub scopes: Option<Vec<Scope>>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Preview of the token.
    pub preview: String,
}

/// What authentication needs to know about a key, found by its token hash.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// The key.
    pub key: ApiKey,
    /// The stored hash, compared again in constant time.
    pub hash: Vec<u8>,
}

impl ApiKey {
    /// Recomputes [`ApiKey::scopes`] from the kind, own scopes and the
    /// account's scopes.
    pub fn resolve_scopes(&mut self, account_scopes: Option<&[Scope]>) {
        self.scopes = effective_scopes(self.kind, self.own_scopes.as_deref(), account_scopes);
    }
}

/// Checks a display name: 1 to 200 characters after trimming.
pub fn validate_name(field: &str, name: &str) -> Result<String, Error> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_NAME_LEN {
        return Err(Error::validation(field, format!("{field} must have 1 to {MAX_NAME_LEN} characters")));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(Error::validation(field, format!("{field} must not contain control characters")));
    }
    Ok(trimmed.to_string())
}

/// Checks a description (up to 2000 characters).
pub fn validate_description(description: &str) -> Result<String, Error> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(Error::validation(
            "description",
            format!("description has at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    Ok(description.trim().to_string())
}

/// Checks a team list (at most 100 names of 1 to 200 characters).
pub fn validate_teams(teams: &[String]) -> Result<Vec<String>, Error> {
    if teams.len() > MAX_TEAMS {
        return Err(Error::validation("teams", format!("at most {MAX_TEAMS} teams")));
    }
    let mut out: Vec<String> = teams.iter().map(|t| validate_name("teams", t)).collect::<Result<_, _>>()?;
    out.dedup();
    Ok(out)
}

impl ApiKey {
    /// Ok when the key may be used at `now`: not revoked, not expired.
    pub fn check_usable(&self, now: DateTime<Utc>) -> Result<(), Error> {
        if self.revoked_at.is_some() {
            return Err(Error::Unauthenticated { reason: "this API key has been revoked" });
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::Unauthenticated { reason: "this API key has expired" });
        }
        Ok(())
    }

    /// `active`, `expired` or `revoked`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

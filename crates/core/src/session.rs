//! Console sessions: what a login cookie stands for.
//!
//! The cookie's value is `<workspace id>.<43 characters of OS randomness>`;
//! the store keeps only the SHA-256 of the random part, keyed by workspace
//! (so a session lookup goes to one shard on Citus). A session carries its
//! own CSRF token, which every console form sends back. The user's role and
//! active flag are read with the session on every request, so a change of
//! role or a deactivation applies at once.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::TryRngCore;

use crate::token::TokenHash;
use crate::user::User;

/// How long a session lasts after login.
pub const SESSION_HOURS: i64 = 12;

/// A session to store.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The user's workspace.
    pub workspace_id: String,
    /// The user.
    pub user_id: i64,
    /// SHA-256 of the cookie's random part.
    pub token_hash: TokenHash,
    /// The CSRF token forms carry.
    pub csrf: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A stored session with its user as of now.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's workspace.
    pub workspace_id: String,
    /// The user (role and active flag current).
    pub user: User,
    /// The CSRF token forms carry.
    pub csrf: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Usable: not expired, user active.
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now && self.user.active
    }
}

/// A user found by email for a login, with the password hash if one is set.
#[derive(Debug, Clone)]
pub struct UserLogin {
    /// The user's workspace.
    pub workspace_id: String,
    /// The user.
    pub user: User,
    /// The argon2id hash; `None` until a password is set.
    pub password_hash: Option<String>,
}

/// 32 random bytes, base64url without padding.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).expect("the OS random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts a session for `user_id`: the cookie value (shown to the browser
/// only) and the record to store.
pub fn start(workspace_id: &str, user_id: i64, now: DateTime<Utc>) -> (String, NewSession) {
    let secret = random_token();
    let cookie = format!("{workspace_id}.{secret}");
    let session = NewSession {
        workspace_id: workspace_id.to_string(),
        user_id,
        token_hash: TokenHash::of(&secret),
        csrf: random_token(),
        created_at: now,
        expires_at: now + Duration::hours(SESSION_HOURS),
    };
    (cookie, session)
}

/// Splits a cookie value into its workspace and the hash of its secret;
/// `None` when it has not the shape [`start`] gives.
pub fn parse_cookie(value: &str) -> Option<(&str, TokenHash)> {
    let (ws, secret) = value.split_once('.')?;
    let well_formed = !ws.is_empty()
        && ws.len() <= 64
        && secret.len() == 43
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| (ws, TokenHash::of(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_names_its_workspace_and_hashes_its_secret() {
        let now = crate::ids::now();
        let (cookie, session) = start("ws_1", 7, now);
        let (ws, hash) = parse_cookie(&cookie).unwrap();
        assert_eq!(ws, "ws_1");
        assert_eq!(hash, session.token_hash);
        assert!(!cookie.contains(&hex::encode(session.token_hash.0)));
        assert_eq!(session.expires_at - now, Duration::hours(SESSION_HOURS));
        assert_ne!(session.csrf, start("ws_1", 7, now).1.csrf);
        for bad in ["", "ws_1", ".abc", "ws_1.short", &format!("ws_1.{}!", &cookie[5..47])] {
            assert!(parse_cookie(bad).is_none(), "{bad}");
        }
    }
}

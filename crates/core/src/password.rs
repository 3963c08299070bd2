//! Console passwords: argon2id hashes in PHC string form, and the rules a
//! password must meet. A password is never stored, logged or printed: only
//! its hash leaves this module.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::Error;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (hashing cost stays bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password that meets the rules; its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Checks the rules: 8 characters at least, 1,024 bytes at most, not
    /// blank.
    pub fn new(text: &str) -> Result<Self, Error> {
        if text.trim().chars().count() < MIN_PASSWORD_CHARS {
            return Err(Error::validation(
                "password",
                format!("password must have at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if text.len() > MAX_PASSWORD_BYTES {
            return Err(Error::validation("password", format!("password must be at most {MAX_PASSWORD_BYTES} bytes")));
        }
        Ok(Password(text.to_string()))
    }

    /// The argon2id hash (PHC string, random salt, the crate's recommended
    /// cost: 19 MiB, 2 passes). Costs tens of milliseconds: call it off the
    /// async threads.
    pub fn hash(&self) -> Result<String, Error> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    }
}

/// True when `candidate` is the password `hash` was made from. A malformed
/// hash never matches.
pub fn verify(hash: &str, candidate: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one verification against a fixed hash, so that a login
/// for an unknown email takes as long as one with a wrong password.
pub fn verify_nothing(candidate: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| Password("not a real password".into()).hash().unwrap_or_default());
    let _ = verify(hash, candidate);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = Password::new("correct horse").unwrap().hash().unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify(&hash, "correct horse"));
        assert!(!verify(&hash, "correct horsE"));
        assert!(!verify("not a hash", "correct horse"));
        assert_ne!(hash, Password::new("correct horse").unwrap().hash().unwrap(), "salted");
    }

    #[test]
    fn rules_name_the_field_and_hide_the_text() {
        assert_eq!(Password::new("short").unwrap_err().field(), Some("password"));
        assert_eq!(Password::new("        x").unwrap_err().field(), Some("password"));
        assert!(Password::new(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert_eq!(format!("{:?}", Password::new("secret password").unwrap()), "Password(***)");
    }
}

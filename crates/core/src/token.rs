//! API token format: `cvn_` + 32 base62 characters of OS randomness (190
//! bits) + 6 base62 characters of CRC-32 checksum.
//!
//! The checksum lets the server refuse a mistyped or made-up token before any
//! database lookup, and lets secret scanners recognise convene tokens. Only a
//! SHA-256 of the token is stored; [`TokenHash`] compares in constant time.

use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every token starts with this.
pub const PREFIX: &str = "cvn_";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly minted token; its text is shown to the user once.
pub struct NewToken {
    /// The whole token, to show once.
    pub token: String,
    /// Its hash, to store.
    pub hash: TokenHash,
    /// Its preview, to show forever after.
    pub preview: String,
}

/// SHA-256 of a token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", &hex::encode(self.0)[..8])
    }
}

impl TokenHash {
    /// Hashes a token's text.
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        other.len() == 32 && bool::from(self.0.ct_eq(other))
    }
}

/// Mints a token from the OS random number generator.
pub fn mint() -> NewToken {
    let mut body = String::with_capacity(BODY_LEN);
    let mut buf = [0u8; 64];
    while body.len() < BODY_LEN {
        rand::rngs::OsRng.try_fill_bytes(&mut buf).expect("the OS random number generator failed");
        // Rejection sampling keeps the alphabet uniform.
        for byte in buf.iter().filter(|b| **b < 248) {
            if body.len() < BODY_LEN {
                body.push(ALPHABET[(byte % 62) as usize] as char);
            }
        }
    }
    let token = format!("{PREFIX}{body}{}", checksum(&body));
    NewToken { hash: TokenHash::of(&token), preview: preview(&token), token }
}

/// A token's preview: the prefix and its last four characters.
pub fn preview(token: &str) -> String {
    let tail: String = token.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{PREFIX}…{tail}")
}

/// True when `token` has the convene shape and a correct checksum. Checked
/// before any database lookup.
pub fn well_formed(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(PREFIX) else {
        return false;
    };
    if rest.len() != BODY_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (body, check) = rest.split_at(BODY_LEN);
    checksum(body).as_bytes().ct_eq(check.as_bytes()).into()
}

fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_well_formed_and_distinct() {
        let a = mint();
        let b = mint();
        assert!(well_formed(&a.token));
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), PREFIX.len() + BODY_LEN + CHECK_LEN);
        assert!(a.preview.ends_with(&a.token[a.token.len() - 4..]));
        assert!(a.hash.ct_eq(&TokenHash::of(&a.token).0));
    }

    #[test]
    fn a_changed_character_breaks_the_checksum() {
        let t = mint().token;
        let mut chars: Vec<char> = t.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let altered: String = chars.into_iter().collect();
        assert!(!well_formed(&altered));
        assert!(!well_formed("cvn_short"));
        assert!(!well_formed(""));
        assert!(!well_formed(&t.replace("cvn_", "xyz_")));
    }
}

//! Contact identities (email, mobile, external id): validated and normalised
//! at the edge so that uniqueness is checked on one canonical form.

use crate::error::Error;
use crate::limits::MAX_IDENTITY_LEN;

/// Which identity a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// Lower-cased email address.
    Email,
    /// Digits with an optional leading `+`.
    Mobile,
    /// The integrating system's own id, kept as sent.
    ExternalId,
    /// An anonymous visitor id (Segment `anonymousId`), kept as sent.
    AnonymousId,
}

impl IdentityKind {
    /// The field name on the wire and in errors.
    pub fn field(self) -> &'static str {
        match self {
            IdentityKind::Email => "email",
            IdentityKind::Mobile => "mobile",
            IdentityKind::ExternalId => "external_id",
            IdentityKind::AnonymousId => "anonymous_id",
        }
    }

    /// Every identity kind.
    pub const ALL: [IdentityKind; 4] =
        [IdentityKind::Email, IdentityKind::Mobile, IdentityKind::ExternalId, IdentityKind::AnonymousId];

    /// Validates and normalises a raw value of this kind.
    pub fn normalise(self, raw: &str) -> Result<String, Error> {
        match self {
            IdentityKind::Email => normalise_email(raw),
            IdentityKind::Mobile => normalise_mobile(raw),
            IdentityKind::ExternalId => normalise_external_id(raw).map_err(|e| rename_field(e, "external_id")),
            IdentityKind::AnonymousId => normalise_external_id(raw).map_err(|e| rename_field(e, "anonymous_id")),
        }
    }
}

fn rename_field(e: Error, field: &str) -> Error {
    match e {
        Error::Validation { message, row, .. } => {
            Error::Validation { message: message.replace("external_id", field), field: Some(field.to_string()), row }
        }
        other => other,
    }
}

/// Lower-cases and checks an email address (one `@`, a dot in the domain, no
/// spaces).
pub fn normalise_email(raw: &str) -> Result<String, Error> {
    let email = raw.trim().to_lowercase();
    let bad = |why: &str| Error::validation("email", format!("'{raw}' is not a valid email address: {why}"));
    if email.is_empty() || email.len() > MAX_IDENTITY_LEN {
        return Err(bad("it must have 3 to 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad("it has no '@'"));
    };
    if local.is_empty() || domain.contains('@') {
        return Err(bad("it needs one '@' with text before it"));
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(bad("the domain needs a dot between names"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains white space"));
    }
    Ok(email)
}

/// Keeps digits and a leading `+`; spaces, dashes, dots and parentheses are
/// dropped; anything else is refused. 5 to 20 digits.
pub fn normalise_mobile(raw: &str) -> Result<String, Error> {
    let trimmed = raw.trim();
    let mut out = String::with_capacity(trimmed.len());
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '+' if i == 0 => out.push('+'),
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => {
                return Err(Error::validation(
                    "mobile",
                    format!(
                        "'{raw}' is not a phone number: only digits, a leading '+', spaces, dashes, dots and parentheses are allowed"
                    ),
                ));
            }
        }
    }
    let digits = out.trim_start_matches('+').len();
    if !(5..=20).contains(&digits) {
        return Err(Error::validation("mobile", format!("'{raw}' is not a phone number: it needs 5 to 20 digits")));
    }
    Ok(out)
}

/// An external id is kept as sent (trimmed); 1 to 254 characters, no control
/// characters.
pub fn normalise_external_id(raw: &str) -> Result<String, Error> {
    let id = raw.trim();
    if id.is_empty() || id.len() > MAX_IDENTITY_LEN {
        return Err(Error::validation("external_id", "external_id must have 1 to 254 characters"));
    }
    if id.chars().any(|c| c.is_control()) {
        return Err(Error::validation("external_id", "external_id must not contain control characters"));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(normalise_email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@x.com", "a@b", "a b@c.com", "a@@b.com", "a@b..com"] {
            assert!(normalise_email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mobiles_keep_digits_and_a_leading_plus() {
        assert_eq!(normalise_mobile("+1 (555) 123-4567").unwrap(), "+15551234567");
        assert_eq!(normalise_mobile("555.123.4567").unwrap(), "5551234567");
        assert!(normalise_mobile("555-CALL-NOW").is_err());
        assert!(normalise_mobile("12").is_err());
        assert!(normalise_mobile("1+2345678").is_err());
    }
}

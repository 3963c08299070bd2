//! Companies: an external id unique per workspace, a base domain and typed
//! traits (the fields registry of entity `company`); contacts link to one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::field::FieldRegistry;
use crate::identity::normalise_external_id;
use crate::merge::{MergeOutcome, TraitOp, TraitOps, apply_traits};

/// Longest base domain (the DNS limit).
pub const MAX_DOMAIN_LEN: usize = 253;

/// A company as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    /// Integer id, unique across the installation.
    pub id: i64,
    /// The integrator's id, unique per workspace.
    pub external_id: String,
    /// Base domain, lower-cased (`acme.com`).
    pub domain: Option<String>,
    /// Typed custom fields.
    pub traits: Map<String, Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A validated write to a company, built at the edge and applied by
/// [`CompanyChanges::apply`] inside the store's transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompanyChanges {
    /// New external id (required to create).
    pub external_id: Option<String>,
    /// `None` leaves the domain, `Some(None)` unsets it.
    pub domain: Option<Option<String>>,
    /// Trait operations in the order sent.
    pub traits: TraitOps,
}

/// Keys of the company JSON that the server owns: accepted and ignored.
pub const READ_ONLY_KEYS: [&str; 4] = ["id", "workspace_id", "created_at", "updated_at"];

impl CompanyChanges {
    /// Reads the native API's company body: `external_id`, `domain`,
    /// `traits`. Unknown keys are refused.
    pub fn from_json(body: Map<String, Value>) -> Result<Self, Error> {
        let mut changes = CompanyChanges::default();
        for (key, value) in body {
            match key.as_str() {
                "external_id" => changes.external_id = Some(external_id_of(&value)?),
                "domain" => changes.domain = Some(domain_of(&value, "domain")?),
                "traits" => match value {
                    Value::Object(map) => changes.traits = TraitOp::parse_map(&map)?,
                    Value::Null => {}
                    _ => return Err(Error::validation("traits", "traits must be an object")),
                },
                k if READ_ONLY_KEYS.contains(&k) => {}
                other => {
                    return Err(Error::validation(
                        other,
                        format!("unknown field '{other}'; a company has external_id, domain and traits"),
                    ));
                }
            }
        }
        Ok(changes)
    }

    /// Applies the write to `company`, all or nothing. The outcome's
    /// `changed` is false when external id, domain and traits are all as
    /// they were (then the store writes nothing and keeps `updated_at`).
    pub fn apply(&self, company: &mut Company, registry: &mut FieldRegistry) -> Result<MergeOutcome, Error> {
        let mut outcome = apply_traits(&mut company.traits, &self.traits, registry)?;
        if let Some(id) = &self.external_id
            && *id != company.external_id
        {
            company.external_id = id.clone();
            outcome.changed = true;
        }
        if let Some(domain) = &self.domain
            && *domain != company.domain
        {
            company.domain = domain.clone();
            outcome.changed = true;
        }
        Ok(outcome)
    }

    /// The external id a creation needs.
    pub fn require_external_id(&self) -> Result<&str, Error> {
        self.external_id.as_deref().ok_or_else(|| Error::validation("external_id", "external_id is required"))
    }
}

/// Reads an external id from JSON (a string or a number).
pub fn external_id_of(value: &Value) -> Result<String, Error> {
    match value {
        Value::String(s) => normalise_external_id(s),
        Value::Number(n) => normalise_external_id(&n.to_string()),
        _ => Err(Error::validation("external_id", "external_id must be a string")),
    }
}

/// Reads an optional domain from JSON, naming `field` in errors.
pub fn domain_of(value: &Value, field: &str) -> Result<Option<String>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => normalise_domain(s, field).map(Some),
        _ => Err(Error::validation(field, format!("{field} must be a string such as \"acme.com\""))),
    }
}

/// Normalises a base domain: trimmed, lower-cased, without scheme, path,
/// port or trailing dot; each label letters, digits and inner hyphens.
pub fn normalise_domain(raw: &str, field: &str) -> Result<String, Error> {
    let mut s = raw.trim().to_lowercase();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            s = rest.to_string();
        }
    }
    let host = s.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(host, |h| h.0);
    let host = host.strip_suffix('.').unwrap_or(host);
    let bad = || Error::validation(field, format!("{field} must be a domain name such as \"acme.com\", got \"{raw}\""));
    if host.is_empty() || host.len() > MAX_DOMAIN_LEN {
        return Err(bad());
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(host.to_string())
}

/// Filters of the company list.
#[derive(Debug, Clone, Default)]
pub struct CompanyFilter {
    /// Only the company with this external id.
    pub external_id: Option<String>,
    /// Only companies with this base domain.
    pub domain: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(normalise_domain(" HTTPS://Acme.COM/about ", "domain").unwrap(), "acme.com");
        assert_eq!(normalise_domain("acme.com:8080", "domain").unwrap(), "acme.com");
        assert_eq!(normalise_domain("münchen.de.", "domain").unwrap(), "münchen.de");
        for bad in ["", "a..b", "-a.com", "a_b.com", "acme com"] {
            assert_eq!(normalise_domain(bad, "baseDomain").unwrap_err().field(), Some("baseDomain"), "{bad}");
        }
    }

    #[test]
    fn body_is_read_and_unknown_keys_refused() {
        let body = json!({"external_id": 42, "domain": "Acme.com", "traits": {"size": "11-50"}, "id": 9});
        let c = CompanyChanges::from_json(body.as_object().unwrap().clone()).unwrap();
        assert_eq!(c.external_id.as_deref(), Some("42"));
        assert_eq!(c.domain, Some(Some("acme.com".into())));
        assert_eq!(c.traits.len(), 1);
        let err = CompanyChanges::from_json(json!({"name": "x"}).as_object().unwrap().clone()).unwrap_err();
        assert_eq!(err.field(), Some("name"));
        assert_eq!(CompanyChanges::default().require_external_id().unwrap_err().field(), Some("external_id"));
    }
}

//! Contacts: identities, typed traits, subscription status, and the
//! validated description of a write ([`ContactChanges`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::field::FieldRegistry;
use crate::identity::IdentityKind;
use crate::merge::{MergeOutcome, TraitOp, TraitOps, apply_traits};

/// A contact's subscription status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum SubscriptionStatus {
    /// May be messaged (the default for a new contact).
    #[default]
    Subscribed,
    /// Opted out.
    Unsubscribed,
    /// Awaiting confirmation.
    Pending,
}

impl SubscriptionStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Subscribed => "SUBSCRIBED",
            SubscriptionStatus::Unsubscribed => "UNSUBSCRIBED",
            SubscriptionStatus::Pending => "PENDING",
        }
    }

    /// Parses a name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "SUBSCRIBED" => Some(SubscriptionStatus::Subscribed),
            "UNSUBSCRIBED" => Some(SubscriptionStatus::Unsubscribed),
            "PENDING" => Some(SubscriptionStatus::Pending),
            _ => None,
        }
    }
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Integer id, unique across the installation.
    pub id: i64,
    /// The identities and traits.
    pub state: ContactState,
    /// The company it belongs to.
    pub company_id: Option<i64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The mutable part of a contact: what a write changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactState {
    /// Lower-cased email.
    pub email: Option<String>,
    /// Normalised phone number.
    pub mobile: Option<String>,
    /// The integrator's id.
    pub external_id: Option<String>,
    /// An anonymous visitor id (Segment `anonymousId`).
    pub anonymous_id: Option<String>,
    /// Typed custom fields, `tags` among them.
    pub traits: Map<String, Value>,
    /// Subscription status.
    pub subscription_status: SubscriptionStatus,
}

impl ContactState {
    /// The value of one identity.
    pub fn identity(&self, kind: IdentityKind) -> Option<&str> {
        match kind {
            IdentityKind::Email => self.email.as_deref(),
            IdentityKind::Mobile => self.mobile.as_deref(),
            IdentityKind::ExternalId => self.external_id.as_deref(),
            IdentityKind::AnonymousId => self.anonymous_id.as_deref(),
        }
    }

    /// The slot of one identity.
    pub fn identity_mut(&mut self, kind: IdentityKind) -> &mut Option<String> {
        match kind {
            IdentityKind::Email => &mut self.email,
            IdentityKind::Mobile => &mut self.mobile,
            IdentityKind::ExternalId => &mut self.external_id,
            IdentityKind::AnonymousId => &mut self.anonymous_id,
        }
    }
}

/// A validated write to a contact: identities to set or unset, trait
/// operations, a subscription status. Built at the edge, applied by
/// [`ContactChanges::apply`] inside the store's transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactChanges {
    /// Per identity: `None` leaves it, `Some(None)` unsets it, `Some(Some(v))` sets it.
    pub identities: Vec<(IdentityKind, Option<String>)>,
    /// Trait operations in the order sent.
    pub traits: TraitOps,
    /// New subscription status.
    pub subscription_status: Option<SubscriptionStatus>,
    /// The company to link (`Some(None)` unlinks); the store checks it exists.
    #[serde(default)]
    pub company: Option<Option<i64>>,
    /// What made the change (`api`, `ingest`, `conversion`, …), recorded with
    /// subscription changes; `api` when unset.
    #[serde(default)]
    pub source: Option<String>,
}

/// One recorded change of a contact's subscription status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionChange {
    /// The status set.
    pub status: SubscriptionStatus,
    /// The status before (`None` for a new contact).
    pub previous: Option<SubscriptionStatus>,
    /// What made the change.
    pub source: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// Keys of the contact JSON that the server owns: accepted and ignored on
/// input so a client may send back what it read.
pub const READ_ONLY_KEYS: [&str; 5] = ["id", "workspace_id", "created_at", "updated_at", "last_seen_at"];

impl ContactChanges {
    /// Reads the native API's contact body: `email`, `mobile`,
    /// `external_id`, `traits`, `subscription_status`. Identity keys found in
    /// `traits` are taken as identities. Unknown keys are refused.
    pub fn from_json(body: Map<String, Value>) -> Result<Self, Error> {
        let mut changes = ContactChanges::default();
        let mut traits = Map::new();
        for (key, value) in body {
            if let Some(kind) = IdentityKind::ALL.into_iter().find(|k| k.field() == key) {
                changes.set_identity(kind, &value)?;
                continue;
            }
            match key.as_str() {
                "traits" => match value {
                    Value::Object(map) => traits = map,
                    Value::Null => {}
                    _ => return Err(Error::validation("traits", "traits must be an object")),
                },
                "subscription_status" => {
                    changes.subscription_status = Some(parse_subscription(&value)?);
                }
                "company_id" => {
                    changes.company = Some(match value {
                        Value::Null => None,
                        Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
                        _ => return Err(Error::validation("company_id", "company_id must be a company's id or null")),
                    });
                }
                k if READ_ONLY_KEYS.contains(&k) => {}
                other => {
                    return Err(Error::validation(
                        other,
                        format!(
                            "unknown field '{other}'; a contact has email, mobile, external_id, traits, subscription_status and company_id"
                        ),
                    ));
                }
            }
        }
        changes.add_traits(traits)?;
        Ok(changes)
    }

    /// Adds trait operations from a traits object, taking `email`, `mobile`
    /// and `external_id` keys as identities (a conflicting duplicate is refused).
    pub fn add_traits(&mut self, mut traits: Map<String, Value>) -> Result<(), Error> {
        for kind in IdentityKind::ALL {
            if let Some(value) = traits.remove(kind.field()) {
                let before = self.identities.iter().find(|(k, _)| *k == kind).cloned();
                self.set_identity(kind, &value)?;
                if let Some((_, earlier)) = before {
                    let now = self.identities.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.clone());
                    if now != Some(earlier) {
                        return Err(Error::validation(
                            kind.field(),
                            format!("two different values given for {}", kind.field()),
                        ));
                    }
                }
            }
        }
        self.traits.extend(TraitOp::parse_owned_map(traits)?);
        Ok(())
    }

    /// Sets (or, with `null`, unsets) one identity from a JSON value.
    pub fn set_identity(&mut self, kind: IdentityKind, value: &Value) -> Result<(), Error> {
        let normalised = match value {
            Value::Null => None,
            Value::String(s) => Some(kind.normalise(s)?),
            Value::Number(n) if kind != IdentityKind::Email => Some(kind.normalise(&n.to_string())?),
            _ => return Err(Error::validation(kind.field(), format!("{} must be a string", kind.field()))),
        };
        self.identities.retain(|(k, _)| *k != kind);
        self.identities.push((kind, normalised));
        Ok(())
    }

    /// The identity values this write sets (for uniqueness checks).
    pub fn identities_set(&self) -> impl Iterator<Item = (IdentityKind, &str)> {
        self.identities.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
    }

    /// Applies the write to `state`, all or nothing. Uniqueness of the
    /// identities is the store's to enforce (it sees the other contacts).
    /// The outcome's `changed` is false when traits, identities and
    /// subscription status are all as they were.
    pub fn apply(&self, state: &mut ContactState, registry: &mut FieldRegistry) -> Result<MergeOutcome, Error> {
        let mut outcome = apply_traits(&mut state.traits, &self.traits, registry)?;
        for (kind, value) in &self.identities {
            let slot = state.identity_mut(*kind);
            if *slot != *value {
                *slot = value.clone();
                outcome.changed = true;
            }
        }
        if let Some(status) = self.subscription_status
            && status != state.subscription_status
        {
            state.subscription_status = status;
            outcome.changed = true;
        }
        Ok(outcome)
    }

    /// Applies the write to a stored contact: its state (as
    /// [`ContactChanges::apply`]) and its company link (the store checks
    /// that the company exists). When anything changed, `updated_at`
    /// becomes `at`; when nothing did (`changed` is false), the contact is
    /// as stored and the store writes nothing.
    pub fn apply_to(
        &self,
        contact: &mut Contact,
        registry: &mut FieldRegistry,
        at: DateTime<Utc>,
    ) -> Result<MergeOutcome, Error> {
        let mut outcome = self.apply(&mut contact.state, registry)?;
        if let Some(company) = self.company
            && company != contact.company_id
        {
            contact.company_id = company;
            outcome.changed = true;
        }
        if outcome.changed {
            contact.updated_at = at;
        }
        Ok(outcome)
    }
}

impl ContactChanges {
    /// The subscription change this write makes to a contact whose status
    /// was `before` (`None`: the contact is new) and is now `after`: only a
    /// write that names a status records one, and only when it differs.
    pub fn subscription_change(
        &self,
        before: Option<SubscriptionStatus>,
        after: SubscriptionStatus,
        at: DateTime<Utc>,
    ) -> Option<SubscriptionChange> {
        self.subscription_status?;
        (before != Some(after)).then(|| SubscriptionChange {
            status: after,
            previous: before,
            source: self.source.clone().unwrap_or_else(|| "api".to_string()),
            changed_at: at,
        })
    }
}

/// Reads a subscription status from JSON, naming `subscription_status`.
pub fn parse_subscription(value: &Value) -> Result<SubscriptionStatus, Error> {
    value.as_str().and_then(SubscriptionStatus::parse).ok_or_else(|| {
        Error::validation("subscription_status", "subscription_status must be SUBSCRIBED, UNSUBSCRIBED or PENDING")
    })
}

/// Filters of the contact list.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Only the contact with this identity (normalised).
    pub identity: Option<(IdentityKind, String)>,
    /// Only the contacts linked to this company.
    pub company_id: Option<i64>,
    /// Only the contacts one of whose identities starts with this text (the
    /// email compared lower-cased, mobile and external id as they are;
    /// served by the identity indexes).
    pub search: Option<String>,
    /// Only the contacts whose `tags` list holds this tag.
    pub tag: Option<String>,
    /// Only the contacts whose trait `.0` has the text form `.1` (a string
    /// as is, a number or boolean as JSON writes it).
    pub field: Option<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn identities_in_traits_are_lifted_and_normalised() {
        let c = ContactChanges::from_json(body(json!({"traits": {"email": "A@B.CO", "plan": "x"}}))).unwrap();
        assert_eq!(c.identities, vec![(IdentityKind::Email, Some("a@b.co".into()))]);
        assert_eq!(c.traits.len(), 1);
        let clash = ContactChanges::from_json(body(json!({"email": "a@b.co", "traits": {"email": "c@d.co"}})));
        assert_eq!(clash.unwrap_err().field(), Some("email"));
    }

    #[test]
    fn unknown_keys_are_refused_and_read_only_keys_ignored() {
        let err = ContactChanges::from_json(body(json!({"emial": "a@b.co"}))).unwrap_err();
        assert_eq!(err.field(), Some("emial"));
        let ok = ContactChanges::from_json(body(json!({"id": 5, "created_at": "x", "email": null}))).unwrap();
        assert_eq!(ok.identities, vec![(IdentityKind::Email, None)]);
    }

    #[test]
    fn only_a_named_and_different_status_is_a_change() {
        let at = crate::ids::now();
        let none = ContactChanges::default();
        assert_eq!(none.subscription_change(None, SubscriptionStatus::Subscribed, at), None);
        let set = ContactChanges { subscription_status: Some(SubscriptionStatus::Pending), ..Default::default() };
        assert_eq!(set.subscription_change(Some(SubscriptionStatus::Pending), SubscriptionStatus::Pending, at), None);
        let change = set.subscription_change(Some(SubscriptionStatus::Subscribed), SubscriptionStatus::Pending, at);
        assert_eq!(change.map(|c| (c.previous, c.source)), Some((Some(SubscriptionStatus::Subscribed), "api".into())));
        let new = set.subscription_change(None, SubscriptionStatus::Pending, at).unwrap();
        assert_eq!((new.status, new.previous), (SubscriptionStatus::Pending, None));
    }

    #[test]
    fn company_id_is_read() {
        let c = ContactChanges::from_json(body(json!({"company_id": 7}))).unwrap();
        assert_eq!(c.company, Some(Some(7)));
        let c = ContactChanges::from_json(body(json!({"company_id": null}))).unwrap();
        assert_eq!(c.company, Some(None));
        assert!(ContactChanges::from_json(body(json!({"company_id": "x"}))).is_err());
    }

    #[test]
    fn a_write_that_changes_nothing_keeps_updated_at() {
        let at = crate::ids::now();
        let later = at + chrono::Duration::seconds(10);
        let mut reg = FieldRegistry::builtin_contact();
        let write = ContactChanges::from_json(body(json!({
            "email": "A@b.co", "subscription_status": "PENDING", "company_id": 7, "traits": {"plan": "pro"}
        })))
        .unwrap();
        let mut contact =
            Contact { id: 1, state: ContactState::default(), company_id: None, created_at: at, updated_at: at };
        assert!(write.apply_to(&mut contact, &mut reg, at).unwrap().changed);
        let stored = contact.clone();
        assert!(!write.apply_to(&mut contact, &mut reg, later).unwrap().changed);
        assert_eq!(contact, stored, "the whole contact, updated_at included, is as it was");
        for other in [
            json!({"company_id": null}),
            json!({"email": "c@d.co"}),
            json!({"subscription_status": "SUBSCRIBED"}),
            json!({"traits": {"plan": null}}),
        ] {
            let mut copy = stored.clone();
            let changes = ContactChanges::from_json(body(other.clone())).unwrap();
            assert!(changes.apply_to(&mut copy, &mut reg, later).unwrap().changed, "{other}");
            assert_eq!(copy.updated_at, later, "{other}");
        }
    }

    #[test]
    fn apply_sets_identities_traits_and_status() {
        let c = ContactChanges::from_json(body(json!({
            "mobile": "+1 555 000 1111", "subscription_status": "pending", "traits": {"tags": {"add": ["x"]}}
        })))
        .unwrap();
        let mut state = ContactState::default();
        c.apply(&mut state, &mut FieldRegistry::builtin_contact()).unwrap();
        assert_eq!(state.mobile.as_deref(), Some("+15550001111"));
        assert_eq!(state.subscription_status, SubscriptionStatus::Pending);
        assert_eq!(state.traits["tags"], json!(["x"]));
    }
}

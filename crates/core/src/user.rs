//! Users: the workspace's people (console users, message operators) with a
//! role. Passwords come with the console; here a user is an identity that
//! conversations are assigned to and messages are sent by.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::identity::normalise_email;
use crate::workspace::validate_name;

/// What a user may do (enforced by the console).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Contacts and conversations.
    #[default]
    Agent,
    /// Read only.
    Viewer,
}

impl Role {
    /// Storage and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a stored or sent name.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::Agent, Role::Viewer].into_iter().find(|r| r.as_str() == s)
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Integer id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Lower-cased email, unique in the workspace.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Inactive users cannot be assigned or send messages.
    pub active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A validated write to a user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    /// New name.
    pub name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Active or not.
    pub active: Option<bool>,
    /// A new console password (hashed by the caller before storing; never
    /// kept on the user).
    pub password: Option<crate::password::Password>,
}

impl UserChanges {
    /// Reads `{"name", "email", "role", "active", "password"}`; unknown keys
    /// are refused.
    pub fn from_json(body: Map<String, Value>) -> Result<Self, Error> {
        let mut c = UserChanges::default();
        for (key, value) in body {
            match (key.as_str(), value) {
                ("name", Value::String(s)) => c.name = Some(validate_name("name", &s)?),
                ("email", Value::String(s)) => c.email = Some(normalise_email(&s)?),
                ("role", Value::String(s)) => {
                    c.role = Some(
                        Role::parse(&s)
                            .ok_or_else(|| Error::validation("role", "role must be admin, agent or viewer"))?,
                    )
                }
                ("active", Value::Bool(b)) => c.active = Some(b),
                ("password", Value::String(s)) => c.password = Some(crate::password::Password::new(&s)?),
                ("id" | "workspace_id" | "created_at" | "updated_at", _) => {}
                ("name" | "email" | "role" | "password", _) => {
                    return Err(Error::validation(key.as_str(), format!("{key} must be a string")));
                }
                ("active", _) => return Err(Error::validation("active", "active must be true or false")),
                (other, _) => {
                    return Err(Error::validation(
                        other,
                        format!("unknown field '{other}'; a user has name, email, role, active and password"),
                    ));
                }
            }
        }
        Ok(c)
    }

    /// A new user from this write: name and email are required.
    pub fn into_new(self, at: DateTime<Utc>) -> Result<User, Error> {
        Ok(User {
            id: 0,
            name: self.name.ok_or_else(|| Error::validation("name", "name is required"))?,
            email: self.email.ok_or_else(|| Error::validation("email", "email is required"))?,
            role: self.role.unwrap_or_default(),
            active: self.active.unwrap_or(true),
            created_at: at,
            updated_at: at,
        })
    }

    /// Applies the write to `user`.
    pub fn apply(&self, user: &mut User, at: DateTime<Utc>) {
        if let Some(n) = &self.name {
            user.name = n.clone();
        }
        if let Some(e) = &self.email {
            user.email = e.clone();
        }
        if let Some(r) = self.role {
            user.role = r;
        }
        if let Some(a) = self.active {
            user.active = a;
        }
        user.updated_at = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_are_read_and_checked() {
        let body = json!({"name": " Ann ", "email": "Ann@X.io", "role": "admin"});
        let user =
            UserChanges::from_json(body.as_object().unwrap().clone()).unwrap().into_new(crate::ids::now()).unwrap();
        assert_eq!(
            (user.name.as_str(), user.email.as_str(), user.role, user.active),
            ("Ann", "ann@x.io", Role::Admin, true)
        );
        for (body, field) in [
            (json!({"name": "A", "email": "x"}), "email"),
            (json!({"name": "A", "email": "a@x.io", "role": "owner"}), "role"),
            (json!({"name": "A", "email": "a@x.io", "active": "yes"}), "active"),
            (json!({"name": "A", "email": "a@x.io", "password": "x"}), "password"),
        ] {
            let err = UserChanges::from_json(body.as_object().unwrap().clone()).unwrap_err();
            assert_eq!(err.field(), Some(field));
        }
        let missing = UserChanges::from_json(json!({"name": "A"}).as_object().unwrap().clone()).unwrap();
        assert_eq!(missing.into_new(crate::ids::now()).unwrap_err().field(), Some("email"));
    }
}

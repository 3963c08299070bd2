//! Who is calling, and the one authorization check every route makes.

use crate::error::Error;
use crate::scope::Scope;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// The operator, holding the master key: manages workspaces.
    Master,
    /// An API key of one workspace.
    Key(KeyPrincipal),
}

/// An authenticated API key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPrincipal {
    /// The key's id.
    pub key_id: String,
    /// Its workspace: the only one it can see.
    pub workspace_id: String,
    /// The scopes it holds.
    pub scopes: Vec<Scope>,
    /// Its kind (its rate limit follows it).
    pub kind: crate::scope::KeyKind,
}

impl Principal {
    /// The key's workspace when it holds `scope`; 403 otherwise. The master
    /// key is not a workspace key: routes on a workspace's data need that
    /// workspace's key (the master key reaches them as `/v1/workspaces/{ws}/…`).
    pub fn require(&self, scope: Scope) -> Result<&KeyPrincipal, Error> {
        match self {
            Principal::Key(key) if key.scopes.contains(&scope) => Ok(key),
            Principal::Key(_) | Principal::Master => Err(Error::Forbidden { scope }),
        }
    }

    /// Ok for the master key; 403 for any API key.
    pub fn require_master(&self) -> Result<(), Error> {
        match self {
            Principal::Master => Ok(()),
            Principal::Key(_) => Err(Error::MasterKeyRequired),
        }
    }
}

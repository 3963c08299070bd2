//! convene's domain: everything that is true of contacts, fields, trait
//! operations, workspaces and API keys whatever the wire format or the
//! database.
//!
//! Nothing here knows HTTP or SQL. The HTTP layer (native API and vendor
//! dialects) parses requests into the validated types of this crate and calls
//! a [`Store`]; a store persists what core decided. Business rules live here
//! once: trait merging ([`merge`]), field inference and coercion ([`field`]),
//! identity normalisation ([`identity`]), token format ([`token`]) and the
//! error table ([`error`]).
//!
//! ```
//! use convene_core::merge::{apply_traits, TraitOp};
//! use convene_core::field::FieldRegistry;
//! use serde_json::json;
//!
//! let mut traits = serde_json::Map::new();
//! let ops = TraitOp::parse_map(json!({"plan": "pro", "logins": {"$inc": 2}}).as_object().unwrap()).unwrap();
//! let outcome = apply_traits(&mut traits, &ops, &mut FieldRegistry::default()).unwrap();
//! assert_eq!(traits["logins"], json!(2));
//! assert_eq!(outcome.new_fields.len(), 2);
//! ```

pub mod auth;
pub mod batch;
pub mod call;
pub mod company;
pub mod contact;
pub mod conversation;
pub mod csv_cell;
pub mod erase;
pub mod error;
pub mod event;
pub mod export;
pub mod field;
pub mod identity;
pub mod ids;
pub mod import;
pub mod ingest;
pub mod limits;
pub mod merge;
pub mod page;
pub mod password;
pub mod ratelimit;
pub mod rep;
pub mod report;
pub mod scope;
pub mod session;
pub mod store;
pub mod token;
pub mod user;
pub mod workspace;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, ErrorCode, Result};
pub use store::Store;

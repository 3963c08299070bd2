//! HTTP plumbing shared by the native API and (later) the dialects:
//! the error envelope, the JSON and query extractors, authentication with
//! scopes in the handler's type, metrics.

pub mod auth;
pub mod error;
pub mod json;
pub mod metrics;
pub mod path;
pub mod query;
pub mod ratelimit;
pub mod stack;

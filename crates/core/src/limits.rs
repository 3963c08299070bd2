//! Documented limits, enforced with a clear error (docs/limits.md lists them).

/// Largest request body on the native API, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest body of a batch upsert (up to 1,000 rows), in bytes.
pub const MAX_BATCH_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Deepest JSON nesting accepted in a request body.
pub const MAX_JSON_DEPTH: usize = 32;
/// Longest name of a workspace, service account, key or field label.
pub const MAX_NAME_LEN: usize = 200;
/// Longest description of a service account.
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// Longest field (trait) name.
pub const MAX_FIELD_NAME_LEN: usize = 128;
/// Most traits one write may carry.
pub const MAX_TRAITS_PER_WRITE: usize = 500;
/// Most fields a contact may hold.
pub const MAX_TRAITS_PER_CONTACT: usize = 1000;
/// Largest serialized value of one trait, in bytes.
pub const MAX_TRAIT_VALUE_BYTES: usize = 64 * 1024;
/// Most elements in a list trait.
pub const MAX_LIST_LEN: usize = 1000;
/// Longest email, mobile or external id.
pub const MAX_IDENTITY_LEN: usize = 254;
/// Default page size of list endpoints.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page size of list endpoints.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Most teams on a service account.
pub const MAX_TEAMS: usize = 100;

//! Database errors mapped once to core's error table.

use convene_core::Error;
use convene_core::identity::IdentityKind;
use tokio_postgres::error::SqlState;

/// Maps a database error: unique violations become conflicts naming the
/// field, transient conditions (serialization failure, deadlock, lost
/// connection, server shutting down) become `Unavailable` (retried by the
/// callers that can, 503 otherwise), anything else is a storage error.
pub(crate) fn db(e: tokio_postgres::Error) -> Error {
    if let Some(d) = e.as_db_error() {
        let code = d.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            return conflict(d.constraint().unwrap_or_default());
        }
        if is_transient(code) {
            return Error::Unavailable {
                message: "the database asked to retry the transaction; retry shortly".into(),
                retry_after_secs: 1,
            };
        }
        return Error::Storage(format!("{}: {}", code.code(), d.message()));
    }
    if e.is_closed() {
        return Error::Unavailable {
            message: "the database connection was lost; retry shortly".into(),
            retry_after_secs: 2,
        };
    }
    Error::Storage(e.to_string())
}

/// SQLSTATEs after which the whole transaction may simply be run again.
fn is_transient(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || code.code().starts_with("08")
}

/// The conflict of a unique index, by its name.
fn conflict(constraint: &str) -> Error {
    for kind in IdentityKind::ALL {
        if constraint == format!("contacts_{}", kind.field()) {
            return Error::Conflict { entity: "contact", field: kind.field().to_string(), row: None };
        }
    }
    match constraint {
        "fields_pkey" => Error::Conflict { entity: "field", field: "name".into(), row: None },
        "companies_external_id" => Error::Conflict { entity: "company", field: "external_id".into(), row: None },
        "users_email" => Error::Conflict { entity: "user", field: "email".into(), row: None },
        "reps_rep_id" => Error::Conflict { entity: "rep", field: "rep_id".into(), row: None },
        "conversations_call_id" => Error::Conflict { entity: "call", field: "call_id".into(), row: None },
        other => Error::Storage(format!("unexpected unique violation on {other}")),
    }
}

/// True when an error is worth running the transaction again for.
pub(crate) fn is_retryable(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. })
}

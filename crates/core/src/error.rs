//! The one error type of convene and its table of stable codes.
//!
//! Every failure a request can meet is an [`Error`]; [`Error::code`] maps it
//! to an [`ErrorCode`], which carries the HTTP status and the stable name.
//! Each HTTP dialect renders the same error in its own envelope, so this table
//! is the only place where "what went wrong" becomes "which status".

use crate::scope::Scope;

/// Result with convene's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure convene reports to a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a documented rule (400).
    #[error("{message}")]
    Validation {
        /// What is wrong, in words a user can act on.
        message: String,
        /// The field concerned, when one is.
        field: Option<String>,
        /// The row (0-based item index) concerned in a batch.
        row: Option<usize>,
    },
    /// A value does not fit its field's type and cannot be coerced (422).
    #[error("{message}")]
    InvalidValue {
        /// The field whose value is refused.
        field: String,
        /// Why the value is refused.
        message: String,
        /// The row concerned in a batch.
        row: Option<usize>,
    },
    /// The object does not exist in the caller's workspace (404).
    #[error("{entity} not found")]
    NotFound {
        /// What was looked for: "contact", "key", …
        entity: &'static str,
    },
    /// A unique value is already held by another object (409).
    #[error("{field} is already held by another {entity}")]
    Conflict {
        /// The kind of object holding the value.
        entity: &'static str,
        /// The unique field.
        field: String,
        /// The row concerned in a batch.
        row: Option<usize>,
    },
    /// A batch row names an object that does not exist (404).
    #[error("{message}")]
    RowNotFound {
        /// What is missing, and where.
        message: String,
        /// The field that names it.
        field: String,
        /// The row.
        row: usize,
    },
    /// The same unique value appears twice in one request (409).
    #[error("{message}")]
    Duplicate {
        /// The unique field.
        field: String,
        /// Which value, and where else it appears.
        message: String,
        /// The row concerned in a batch.
        row: Option<usize>,
    },
    /// No credential, or one that is malformed, unknown, expired or revoked (401).
    #[error("{reason}")]
    Unauthenticated {
        /// Why the credential is refused.
        reason: &'static str,
    },
    /// The credential is valid but lacks the scope the route needs (403).
    #[error("this API key lacks the '{scope}' scope")]
    Forbidden {
        /// The scope the route needs.
        scope: Scope,
    },
    /// The operation needs the master key (403).
    #[error("this operation needs the master key")]
    MasterKeyRequired,
    /// The request body is larger than the route accepts (413).
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Too many rows in one request (413), with the limit named.
    #[error("at most {limit} rows per request; this one has {rows}")]
    TooManyRows {
        /// The limit.
        limit: usize,
        /// Rows sent.
        rows: usize,
    },
    /// The body's media type is not one the route reads (415).
    #[error("{message}")]
    UnsupportedMediaType {
        /// What was expected.
        message: String,
    },
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No such route (404).
    #[error("no route for {path}")]
    RouteNotFound {
        /// The path asked for.
        path: String,
    },
    /// Too many requests for this key (429).
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// The server cannot take the request now (503): back-pressure, shutdown,
    /// storage full.
    #[error("{message}")]
    Unavailable {
        /// Why.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// A storage failure that is not the caller's fault (500). The message is
    /// logged, never sent.
    #[error("storage error: {0}")]
    Storage(String),
    /// Any other internal failure (500). Logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Stable error codes: one row per kind of failure, with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400 `validation_error`
    Validation,
    /// 422 `invalid_value`
    InvalidValue,
    /// 404 `not_found`
    NotFound,
    /// 409 `conflict`
    Conflict,
    /// 401 `unauthenticated`
    Unauthenticated,
    /// 403 `forbidden`
    Forbidden,
    /// 413 `payload_too_large`
    PayloadTooLarge,
    /// 415 `unsupported_media_type`
    UnsupportedMediaType,
    /// 405 `method_not_allowed`
    MethodNotAllowed,
    /// 429 `rate_limited`
    RateLimited,
    /// 503 `unavailable`
    Unavailable,
    /// 500 `internal_error`
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::Validation,
        ErrorCode::InvalidValue,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The HTTP status of this code.
    pub fn status(self) -> u16 {
        self.row().0
    }

    /// The stable machine-readable name.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    fn row(self) -> (u16, &'static str) {
        match self {
            ErrorCode::Validation => (400, "validation_error"),
            ErrorCode::InvalidValue => (422, "invalid_value"),
            ErrorCode::NotFound => (404, "not_found"),
            ErrorCode::Conflict => (409, "conflict"),
            ErrorCode::Unauthenticated => (401, "unauthenticated"),
            ErrorCode::Forbidden => (403, "forbidden"),
            ErrorCode::PayloadTooLarge => (413, "payload_too_large"),
            ErrorCode::UnsupportedMediaType => (415, "unsupported_media_type"),
            ErrorCode::MethodNotAllowed => (405, "method_not_allowed"),
            ErrorCode::RateLimited => (429, "rate_limited"),
            ErrorCode::Unavailable => (503, "unavailable"),
            ErrorCode::Internal => (500, "internal_error"),
        }
    }
}

impl Error {
    /// A 400 naming a field.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation { message: message.into(), field: Some(field.into()), row: None }
    }

    /// A 400 about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::Validation { message: message.into(), field: None, row: None }
    }

    /// A 422 naming a field.
    pub fn invalid_value(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidValue { field: field.into(), message: message.into(), row: None }
    }

    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Validation { .. } => ErrorCode::Validation,
            Error::InvalidValue { .. } => ErrorCode::InvalidValue,
            Error::NotFound { .. } | Error::RouteNotFound { .. } | Error::RowNotFound { .. } => ErrorCode::NotFound,
            Error::Conflict { .. } | Error::Duplicate { .. } => ErrorCode::Conflict,
            Error::Unauthenticated { .. } => ErrorCode::Unauthenticated,
            Error::Forbidden { .. } | Error::MasterKeyRequired => ErrorCode::Forbidden,
            Error::PayloadTooLarge { .. } | Error::TooManyRows { .. } => ErrorCode::PayloadTooLarge,
            Error::UnsupportedMediaType { .. } => ErrorCode::UnsupportedMediaType,
            Error::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Unavailable { .. } => ErrorCode::Unavailable,
            Error::Storage(_) | Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The field this error names, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Validation { field, .. } => field.as_deref(),
            Error::InvalidValue { field, .. }
            | Error::Conflict { field, .. }
            | Error::Duplicate { field, .. }
            | Error::RowNotFound { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The batch row this error names, if any.
    pub fn row(&self) -> Option<usize> {
        match self {
            Error::Validation { row, .. }
            | Error::InvalidValue { row, .. }
            | Error::Conflict { row, .. }
            | Error::Duplicate { row, .. } => *row,
            Error::RowNotFound { row, .. } => Some(*row),
            _ => None,
        }
    }

    /// The same error, attributed to batch row `index`.
    pub fn at_row(mut self, index: usize) -> Self {
        match &mut self {
            Error::Validation { row, .. }
            | Error::InvalidValue { row, .. }
            | Error::Conflict { row, .. }
            | Error::Duplicate { row, .. } => *row = Some(index),
            _ => {}
        }
        self
    }

    /// The message safe to send to a caller: internal details are replaced
    /// by a generic sentence (they are logged instead).
    pub fn public_message(&self) -> String {
        match self {
            Error::Storage(_) | Error::Internal(_) => "internal error; the server log has the details".to_string(),
            other => other.to_string(),
        }
    }

    /// Seconds a client should wait before retrying, for 429 and 503.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_secs } | Error::Unavailable { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name_and_an_error_status() {
        let mut names = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(names.insert(code.name()), "duplicate name {}", code.name());
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn internal_details_are_not_public() {
        let e = Error::Storage("disk I/O error at page 7".into());
        assert!(!e.public_message().contains("page 7"));
        assert_eq!(e.code().status(), 500);
    }
}

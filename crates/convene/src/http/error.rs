//! The native API's error envelope: `{"error": {"code", "message", "field"?, "row"?}}`.
//!
//! Every handler returns `Result<_, ApiError>`; the status and code come from
//! core's one table ([`convene_core::ErrorCode`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use convene_core::Error;
use serde::Serialize;

/// A core error on its way to becoming a native JSON response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The body of every native error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The documented type of an error `code`: every name of core's
/// [`ErrorCode`](convene_core::ErrorCode) table, built from that table (the
/// native envelope and the dialects that keep convene's codes, Segment and
/// Converz, send them).
#[derive(Debug, Serialize)]
pub struct ConveneCode;

impl utoipa::PartialSchema for ConveneCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let statuses: Vec<String> =
            convene_core::ErrorCode::ALL.iter().map(|c| format!("`{}` ({})", c.name(), c.status())).collect();
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(convene_core::ErrorCode::ALL.map(convene_core::ErrorCode::name)))
            .description(Some(format!("convene's error code, with its HTTP status: {}.", statuses.join(", "))))
            .into()
    }
}

impl utoipa::ToSchema for ConveneCode {}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `validation_error`, `conflict`.
    #[schema(value_type = ConveneCode, example = "validation_error")]
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
    /// The field concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The row (0-based item index) concerned, in a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
}

/// The error behind an error response, kept in its extensions so that a
/// dialect's layer can render it in the vendor's envelope (errors are mapped
/// once per dialect, not per handler).
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    /// The stable code.
    pub code: convene_core::ErrorCode,
    /// The public message.
    pub message: String,
    /// The field named.
    pub field: Option<String>,
    /// The row named.
    pub row: Option<usize>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let code = e.code();
        if code == convene_core::ErrorCode::Internal {
            tracing::error!(error = %e, "request failed");
        }
        let info = ErrorInfo { code, message: e.public_message(), field: e.field().map(str::to_string), row: e.row() };
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: code.name(),
                message: info.message.clone(),
                field: info.field.clone(),
                row: info.row,
            },
        };
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = e.retry_after_secs()
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if matches!(e, Error::Unauthenticated { .. }) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"convene\""));
        }
        response.extensions_mut().insert(info);
        response
    }
}

/// Handler result on the native API.
pub type ApiResult<T> = Result<T, ApiError>;

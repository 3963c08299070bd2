//! Vendor dialects, each mounted under `/compat/<vendor>`: thin translations
//! from the vendor's request shapes to core items and back, with the vendor's
//! error envelope applied once by a layer over the dialect's router.

pub mod conversion;
pub mod converz;
pub mod conveyour;
pub mod convot;
pub mod segment;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::http::error::ErrorInfo;
use crate::state::AppState;

/// Every dialect's router, nested under `/compat`.
pub fn router() -> Router<AppState> {
    Router::new()
        .nest("/compat/conversion", conversion::router())
        .nest("/compat/conveyour", conveyour::router())
        .nest("/compat/converz", converz::router())
        .nest("/compat/convot", convot::router())
        .nest("/compat/segment", segment::router())
}

/// Rewrites error responses (those carrying [`ErrorInfo`]) with `render`
/// (which returns the JSON text, so a dialect controls key order), keeping
/// status and headers.
pub async fn rewrite_errors(req: Request, next: Next, render: fn(&ErrorInfo) -> String) -> Response {
    let response = next.run(req).await;
    match response.extensions().get::<ErrorInfo>().cloned() {
        Some(info) => replace_body(response, None, render(&info)),
        None => response,
    }
}

/// Rewrites error responses with `render`, which also chooses the status
/// (for vendors whose table differs from convene's); headers such as
/// `Retry-After` are kept.
pub async fn rewrite_errors_and_status(req: Request, next: Next, render: fn(&ErrorInfo) -> (u16, String)) -> Response {
    let response = next.run(req).await;
    match response.extensions().get::<ErrorInfo>().cloned() {
        Some(info) => {
            let (status, text) = render(&info);
            replace_body(response, Some(status), text)
        }
        None => response,
    }
}

fn replace_body(response: Response, status: Option<u16>, text: String) -> Response {
    let (mut parts, _) = response.into_parts();
    if let Some(status) = status.and_then(|s| axum::http::StatusCode::from_u16(s).ok()) {
        parts.status = status;
    }
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

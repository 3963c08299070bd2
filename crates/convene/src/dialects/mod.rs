//! Vendor dialects, each mounted under `/compat/<vendor>`: thin translations
//! from the vendor's request shapes to core items and back, with the vendor's
//! error envelope applied once by a layer over the dialect's router.

pub mod conversion;
pub mod converz;
pub mod conveyour;
pub mod convot;
pub mod doc;
pub mod segment;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;

use crate::http::error::ErrorInfo;
use crate::state::AppState;

/// Every dialect's router, nested under `/compat/<vendor>`, with the
/// dialects' OpenAPI document (full paths, one tag and its security schemes
/// per dialect).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .nest("/compat/conversion", conversion::router())
        .nest("/compat/conveyour", conveyour::router())
        .nest("/compat/converz", converz::router())
        .nest("/compat/convot", convot::router())
        .nest("/compat/segment", segment::router())
}

/// Applies `wrap` (fallbacks and layers) to a dialect's axum router,
/// keeping the routes' OpenAPI document.
pub fn layered(
    routes: OpenApiRouter<AppState>,
    wrap: impl FnOnce(Router<AppState>) -> Router<AppState>,
) -> OpenApiRouter<AppState> {
    let (router, doc) = routes.split_for_parts();
    let mut layered = OpenApiRouter::from(wrap(router));
    *layered.get_openapi_mut() = doc;
    layered
}

/// How a dialect renders an error: its body only (status from convene's
/// table), or its own status and body.
#[derive(Clone, Copy)]
pub enum Envelope {
    /// The body; the status stays convene's.
    Body(fn(&ErrorInfo) -> String),
    /// The vendor's status and body.
    StatusAndBody(fn(&ErrorInfo) -> (u16, String)),
}

/// A dialect's routes with the JSON 404/405 fallbacks and its error
/// envelope over every answer, keeping the routes' OpenAPI document.
pub fn enveloped(routes: OpenApiRouter<AppState>, envelope: Envelope) -> OpenApiRouter<AppState> {
    layered(routes, |router| {
        let router = router
            .fallback(crate::api::ops::not_found)
            .method_not_allowed_fallback(crate::api::ops::method_not_allowed);
        match envelope {
            Envelope::Body(render) => {
                router.layer(axum::middleware::from_fn(move |req, next| rewrite_errors(req, next, render)))
            }
            Envelope::StatusAndBody(render) => {
                router.layer(axum::middleware::from_fn(move |req, next| rewrite_errors_and_status(req, next, render)))
            }
        }
    })
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

/// How a dialect renders an error.
#[derive(Clone, Copy)]
pub enum Render {
    /// The body, with convene's status.
    Body(fn(&ErrorInfo) -> String),
    /// The vendor's status and body.
    StatusAndBody(fn(&ErrorInfo) -> (u16, String)),
}

/// The renderer of the dialect a path belongs to, for the errors made on
/// its paths outside its router (the request timeout's 503, a caught
/// panic's 500), which the dialect's own layer does not see.
pub fn late_error_renderer(path: &str) -> Option<Render> {
    let dialect = path.strip_prefix("/compat/")?;
    let name = dialect.split('/').next().unwrap_or(dialect);
    Some(match name {
        "conversion" => Render::StatusAndBody(conversion::render_error),
        "conveyour" => Render::Body(conveyour::render_error),
        "converz" => Render::Body(converz::render_error),
        "convot" => Render::StatusAndBody(convot::render_error),
        "segment" => Render::Body(segment::render_error),
        _ => return None,
    })
}

/// Renders an error response in the dialect's envelope; responses that are
/// not errors, or whose error a dialect's layer already rendered (they no
/// longer carry [`ErrorInfo`]), pass unchanged.
pub fn render_late_error(render: Render, response: Response) -> Response {
    let Some(info) = response.extensions().get::<ErrorInfo>().cloned() else { return response };
    match render {
        Render::Body(render) => replace_body(response, None, render(&info)),
        Render::StatusAndBody(render) => {
            let (status, text) = render(&info);
            replace_body(response, Some(status), text)
        }
    }
}

/// Sets the rendered body (and status); the response no longer carries
/// [`ErrorInfo`], so no outer layer renders it again.
fn replace_body(response: Response, status: Option<u16>, text: String) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.extensions.remove::<ErrorInfo>();
    if let Some(status) = status.and_then(|s| axum::http::StatusCode::from_u16(s).ok()) {
        parts.status = status;
    }
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

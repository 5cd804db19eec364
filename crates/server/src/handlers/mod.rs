//! One module per endpoint family; each handler extracts, calls one registry
//! operation and renders the outcome.

pub mod api;
pub mod blobs;
pub mod gc;
pub mod listing;
pub mod manifests;
pub mod operations;
pub mod uploads;
pub mod visible;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

/// A response with `status`, `headers` and `body`. Header values we build are
/// always valid; one that is not is dropped rather than failing the request.
pub(crate) fn respond(status: StatusCode, headers: &[(&str, String)], body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::try_from(value)) {
            map.insert(name, value);
        }
    }
    response
}

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
use berth_registry::pull_through::CacheOutcome;

/// `Berth-Cache: hit|miss|stale` for a pull of a cached repository (none
/// for a local one), and on a stale answer the standard `Warning` too, so
/// that clients and proxies that know nothing of berth see it.
pub(crate) fn cache_headers(outcome: Option<&CacheOutcome>) -> Vec<(&'static str, String)> {
    let Some(outcome) = outcome else {
        return Vec::new();
    };
    let mut fields = vec![("berth-cache", outcome.as_str().to_string())];
    if let CacheOutcome::Stale { .. } = outcome {
        fields.push(("warning", "110 - \"Response is Stale\"".to_string()));
    }
    fields
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_headers_say_how_a_pull_was_served_and_warn_when_stale() {
        assert!(cache_headers(None).is_empty(), "a local repository");
        assert_eq!(
            cache_headers(Some(&CacheOutcome::Hit)),
            [("berth-cache", "hit".to_string())]
        );
        assert_eq!(
            cache_headers(Some(&CacheOutcome::Miss)),
            [("berth-cache", "miss".to_string())]
        );
        let stale = CacheOutcome::Stale {
            reason: "upstream unavailable: connection refused".into(),
        };
        assert_eq!(
            cache_headers(Some(&stale)),
            [
                ("berth-cache", "stale".to_string()),
                ("warning", "110 - \"Response is Stale\"".to_string())
            ],
            "the reason stays in the log"
        );
    }
}

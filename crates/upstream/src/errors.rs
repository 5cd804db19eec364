//! HTTP answers and transport failures as `UpstreamError`s: the one place
//! that decides what the cache sees (and so whether it may serve stale).

use berth_registry::pull_through::UpstreamError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// A non-2xx answer. 401/403 here means "after authenticating".
pub fn status_error(status: StatusCode, headers: &HeaderMap) -> UpstreamError {
    match status {
        StatusCode::NOT_FOUND => UpstreamError::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            UpstreamError::Unauthorized(format!("refused with HTTP {}", status.as_u16()))
        }
        StatusCode::TOO_MANY_REQUESTS => UpstreamError::RateLimited {
            retry_after: retry_after(headers),
        },
        s if s.is_server_error() => UpstreamError::Unavailable(format!("HTTP {}", s.as_u16())),
        s => UpstreamError::Invalid(format!("unexpected HTTP {}", s.as_u16())),
    }
}

/// `Retry-After` in seconds (the delay form; a date is not worth a parser:
/// registries send seconds).
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

/// A transport failure (connect, TLS, timeout, reset) as `Unavailable`,
/// described by its causes without the URL.
pub fn transport_error(error: reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        return UpstreamError::Unavailable("timed out".to_string());
    }
    if error.is_redirect() {
        return UpstreamError::Invalid("too many redirects".to_string());
    }
    UpstreamError::Unavailable(describe(&error.without_url()))
}

/// An error and its sources, `outer: inner: root`, deduplicated (hyper and
/// reqwest repeat each other).
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses() {
        let none = HeaderMap::new();
        assert_eq!(
            status_error(StatusCode::NOT_FOUND, &none),
            UpstreamError::NotFound
        );
        assert!(matches!(
            status_error(StatusCode::FORBIDDEN, &none),
            UpstreamError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_GATEWAY, &none),
            UpstreamError::Unavailable(_)
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, &none),
            UpstreamError::Invalid(_)
        ));
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("17"));
        assert_eq!(
            status_error(StatusCode::TOO_MANY_REQUESTS, &headers),
            UpstreamError::RateLimited {
                retry_after: Some(17)
            }
        );
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            status_error(StatusCode::TOO_MANY_REQUESTS, &headers),
            UpstreamError::RateLimited { retry_after: None }
        );
    }
}

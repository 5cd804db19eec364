//! The one mapping from registry errors to HTTP: status, headers and the
//! spec's JSON error body `{"errors":[{"code","message","detail"}]}`.

use crate::route::RouteError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_registry::pull_through::UpstreamError;
use berth_registry::{Error, ErrorCode};
use serde_json::json;

/// An error on its way to becoming a response.
#[derive(Debug)]
pub enum ApiError {
    Registry(Error),
    NotFound,
    MethodNotAllowed,
    /// Serving the request would exceed a shared memory budget.
    OverBudget,
    /// `301 Moved Permanently` to this path and query.
    Redirect(String),
    /// `/metrics` asked by a client that is not on loopback while the
    /// metrics are not public.
    MetricsDenied,
    /// An admin endpoint asked by a client off loopback while auth is off.
    AdminDenied,
    /// No or bad credentials: 401 with this `WWW-Authenticate` challenge.
    Unauthorized {
        challenge: String,
    },
    /// A known caller without the right: 403 `DENIED`, saying what was missing.
    Denied(String),
    /// Too many failed logins from this address: 429 with `Retry-After`.
    LoginsLimited {
        retry_after_secs: u64,
    },
    /// A `/token` request the token service cannot answer (400, OAuth2's
    /// `unsupported_grant_type` and the like), in the OCI error format.
    TokenRequestInvalid(String),
}

/// Why a request failed, in the server's words: logged once by the
/// dispatcher with the request, never sent to the client.
#[derive(Debug, Clone)]
pub struct Cause(pub String);

/// `Retry-After` of a 429 passed on from an upstream that named no wait.
const UPSTREAM_RETRY_AFTER_SECS: u64 = 60;

/// What clients see of a storage failure; the cause stays in the log.
const STORAGE_FAILURE: &str = "internal error; the cause is in the registry's log";

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Registry(e)
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NotFound => ApiError::NotFound,
            RouteError::MethodNotAllowed => ApiError::MethodNotAllowed,
            RouteError::Invalid(e) => ApiError::Registry(e),
            RouteError::TrailingSlash(to) => ApiError::Redirect(to),
        }
    }
}

/// The HTTP status of a registry error; the UI answers with the same ones.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::BlobUnknown(_)
        | Error::BlobUploadUnknown
        | Error::ManifestUnknown(_)
        | Error::ManifestNotAcceptable { .. }
        | Error::NameUnknown(_) => StatusCode::NOT_FOUND,
        Error::UploadOutOfOrder { .. } | Error::RangeNotSatisfiable { .. } => {
            StatusCode::RANGE_NOT_SATISFIABLE
        }
        Error::ManifestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        // The request is fine; what it names cannot be listed.
        Error::Layer { .. } | Error::IndexHasNoFiles { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::DeleteDisabled => StatusCode::METHOD_NOT_ALLOWED,
        Error::StillReferenced { .. } => StatusCode::CONFLICT,
        Error::TagImmutable { .. }
        | Error::ImmutableTagDelete { .. }
        | Error::QuotaExceeded { .. }
        | Error::CacheReadOnly { .. } => StatusCode::FORBIDDEN,
        Error::TooManyUploads { .. }
        | Error::Upstream {
            error: UpstreamError::RateLimited { .. },
            ..
        } => StatusCode::TOO_MANY_REQUESTS,
        Error::Upstream {
            error: UpstreamError::NotFound,
            ..
        } => StatusCode::NOT_FOUND,
        Error::Upstream { .. } | Error::UpstreamDigestMismatch { .. } => StatusCode::BAD_GATEWAY,
        Error::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::InsufficientStorage { .. } => StatusCode::INSUFFICIENT_STORAGE,
        Error::BlobUploadInvalid(_)
        | Error::BodyRead(_)
        | Error::DigestInvalid(_)
        | Error::DigestMismatch { .. }
        | Error::ManifestBlobUnknown(_)
        | Error::ManifestInvalid(_)
        | Error::ManifestSizeMismatch { .. }
        | Error::TagInvalid(_)
        | Error::NameInvalid(_)
        | Error::SizeInvalid(_)
        | Error::Unsupported(_) => StatusCode::BAD_REQUEST,
    }
}

fn detail_of(e: &Error) -> serde_json::Value {
    match e {
        Error::DigestMismatch { expected, actual } => {
            json!({ "expected": expected.to_string(), "actual": actual.to_string() })
        }
        Error::BlobUnknown(d) | Error::ManifestBlobUnknown(d) => json!({ "digest": d.to_string() }),
        Error::UploadOutOfOrder { offset, got } => json!({ "offset": offset, "chunkStart": got }),
        Error::StillReferenced { digest, by } => {
            json!({ "digest": digest.to_string(), "referencedBy": by.to_string() })
        }
        Error::Layer { digest, reason } => {
            json!({ "digest": digest.to_string(), "reason": reason.to_string() })
        }
        Error::TagImmutable {
            repository,
            tag,
            current,
        } => json!({ "repository": repository, "tag": tag, "current": current.to_string() }),
        Error::ImmutableTagDelete { repository, tag } => {
            json!({ "repository": repository, "tag": tag })
        }
        Error::QuotaExceeded {
            repository,
            resource,
            used,
            limit,
        } => {
            json!({ "repository": repository, "resource": resource.as_str(), "used": used, "limit": limit })
        }
        Error::UpstreamDigestMismatch {
            upstream,
            expected,
            actual,
        } => {
            json!({ "upstream": upstream, "expected": expected.to_string(), "actual": actual.to_string() })
        }
        Error::CacheReadOnly {
            repository,
            upstream,
        } => json!({ "repository": repository, "upstream": upstream }),
        Error::Upstream { upstream, .. } => json!({ "upstream": upstream }),
        Error::IndexHasNoFiles { digest, manifests } => {
            let manifests: Vec<String> = manifests.iter().map(ToString::to_string).collect();
            json!({ "digest": digest.to_string(), "manifests": manifests })
        }
        _ => serde_json::Value::Null,
    }
}

/// `Range` header value for an upload holding `offset` bytes (`0-0` when empty).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn body(code: &str, message: String, detail: serde_json::Value) -> String {
    json!({ "errors": [{ "code": code, "message": message, "detail": detail }] }).to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Redirect(to) = &self {
            let mut response = (
                StatusCode::MOVED_PERMANENTLY,
                [(header::CONTENT_LENGTH, "0")],
            )
                .into_response();
            if let Ok(location) = HeaderValue::from_str(to) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return response;
        }
        let (status, text) = match &self {
            // Storage failures carry SQLite's or the OS's text: not for clients.
            ApiError::Registry(Error::Storage(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                body(
                    ErrorCode::Unknown.as_str(),
                    STORAGE_FAILURE.into(),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::Registry(e) => (
                status_of(e),
                body(e.code().as_str(), e.to_string(), detail_of(e)),
            ),
            ApiError::Redirect(_) => (StatusCode::MOVED_PERMANENTLY, String::new()),
            ApiError::OverBudget => (
                StatusCode::TOO_MANY_REQUESTS,
                body(
                    ErrorCode::TooManyRequests.as_str(),
                    "too many large requests in progress; retry shortly".into(),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                body(
                    ErrorCode::Unsupported.as_str(),
                    "no such endpoint".into(),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::MetricsDenied => (
                StatusCode::FORBIDDEN,
                body(
                    ErrorCode::Denied.as_str(),
                    "metrics are served to loopback clients only unless metrics_public is set"
                        .into(),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::AdminDenied => (
                StatusCode::FORBIDDEN,
                body(
                    ErrorCode::Denied.as_str(),
                    "admin endpoints answer loopback clients and the admin socket only while auth is off"
                        .into(),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::Unauthorized { .. } => (
                StatusCode::UNAUTHORIZED,
                body(
                    ErrorCode::Unauthorized.as_str(),
                    "authentication required".into(),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::Denied(what) => (
                StatusCode::FORBIDDEN,
                body(
                    ErrorCode::Denied.as_str(),
                    format!("requested access to the resource is denied: {what}"),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::LoginsLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                body(
                    ErrorCode::TooManyRequests.as_str(),
                    "too many failed logins from this address; retry later".into(),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::TokenRequestInvalid(why) => (
                StatusCode::BAD_REQUEST,
                body(
                    ErrorCode::Unsupported.as_str(),
                    why.clone(),
                    serde_json::Value::Null,
                ),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                body(
                    ErrorCode::Unsupported.as_str(),
                    "method not allowed on this endpoint".into(),
                    serde_json::Value::Null,
                ),
            ),
        };
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], text).into_response();
        let extra = match &self {
            ApiError::Registry(Error::UploadOutOfOrder { offset, .. }) => {
                Some((header::RANGE, upload_range(*offset)))
            }
            ApiError::Registry(Error::RangeNotSatisfiable { size }) => {
                Some((header::CONTENT_RANGE, format!("bytes */{size}")))
            }
            ApiError::OverBudget => Some((header::RETRY_AFTER, "1".into())),
            // The upstream's own wait when it said one; clients retry no sooner.
            ApiError::Registry(Error::Upstream {
                error: UpstreamError::RateLimited { retry_after },
                ..
            }) => Some((
                header::RETRY_AFTER,
                retry_after
                    .unwrap_or(UPSTREAM_RETRY_AFTER_SECS)
                    .max(1)
                    .to_string(),
            )),
            ApiError::LoginsLimited { retry_after_secs } => {
                Some((header::RETRY_AFTER, (*retry_after_secs).max(1).to_string()))
            }
            ApiError::Unauthorized { challenge } => {
                Some((header::WWW_AUTHENTICATE, challenge.clone()))
            }
            _ => None,
        };
        if let Some((name, value)) = extra {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        if let ApiError::Registry(e) = &self {
            response.extensions_mut().insert(Cause(e.to_string()));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::Digest;
    use berth_registry::layers::LayerError;

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_storage_failure_keeps_its_cause_out_of_the_body() {
        let internal = "disk I/O error: SQLITE_IOERR_FSYNC at /var/lib/berth/meta.db";
        let response = ApiError::Registry(Error::Storage(internal.into())).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = response.extensions().get::<Cause>().cloned();
        let text = body_text(response).await;
        assert!(!text.contains("SQLITE"), "internal detail leaked: {text}");
        assert!(!text.contains("/var/lib"), "internal detail leaked: {text}");
        assert!(text.contains("UNKNOWN"), "{text}");
        // ... but it is kept for the log.
        assert!(cause.is_some_and(|c| c.0.contains("SQLITE_IOERR_FSYNC")));
    }

    #[tokio::test]
    async fn an_unlistable_layer_is_a_422_that_says_why() {
        let digest = Digest::sha256_of(b"{}");
        let reason = LayerError::NotATar("it looks like JSON".into());
        let response = ApiError::Registry(Error::Layer {
            digest: digest.clone(),
            reason,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let text = body_text(response).await;
        assert!(text.contains("UNSUPPORTED"), "{text}");
        assert!(text.contains("not a tar archive"), "{text}");
        assert!(text.contains(&digest.to_string()), "{text}");
    }

    #[tokio::test]
    async fn files_of_an_index_is_a_422_naming_its_platform_manifests() {
        let child = Digest::sha256_of(b"amd64");
        let response = ApiError::Registry(Error::IndexHasNoFiles {
            digest: Digest::sha256_of(b"index"),
            manifests: vec![child.clone()],
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let text = body_text(response).await;
        assert!(text.contains("platform manifest"), "{text}");
        assert!(text.contains(&child.to_string()), "{text}");
    }

    #[tokio::test]
    async fn auth_refusals_carry_their_codes_and_headers() {
        let response = ApiError::Unauthorized {
            challenge: r#"Basic realm="berth""#.into(),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Basic realm="berth""#
        );
        assert!(body_text(response).await.contains("UNAUTHORIZED"));
        let response = ApiError::Denied("pull on a".into()).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(body_text(response).await.contains("DENIED"));
        let response = ApiError::LoginsLimited {
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        assert!(body_text(response).await.contains("TOOMANYREQUESTS"));
    }

    #[tokio::test]
    async fn policy_refusals_are_403_denied_with_their_message_and_detail() {
        let current = Digest::sha256_of(b"v1");
        let response = ApiError::Registry(Error::TagImmutable {
            repository: "prod/app".into(),
            tag: "v1".into(),
            current: current.clone(),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
        let error = &body["errors"][0];
        assert_eq!(error["code"], "DENIED");
        assert_eq!(
            error["message"],
            format!("tag prod/app:v1 is immutable and already points at {current}; push under a new tag")
        );
        assert_eq!(error["detail"]["current"], current.to_string());
        let response = ApiError::Registry(Error::QuotaExceeded {
            repository: "team/app".into(),
            resource: berth_registry::error::QuotaResource::Tags,
            used: 3,
            limit: 2,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
        let error = &body["errors"][0];
        assert_eq!(error["code"], "DENIED");
        assert_eq!(
            error["message"],
            "repository team/app would hold 3 tags, over its quota of 2 tags"
        );
        assert_eq!(error["detail"]["resource"], "tags");
        assert_eq!(error["detail"]["limit"], 2);
    }

    #[tokio::test]
    async fn over_budget_is_too_many_requests_with_retry_after() {
        let response = ApiError::OverBudget.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert!(body_text(response).await.contains("TOOMANYREQUESTS"));
    }

    #[tokio::test]
    async fn pull_through_errors_map_to_denied_429_with_retry_after_and_502() {
        let response = ApiError::Registry(Error::CacheReadOnly {
            repository: "docker.io/library/busybox".into(),
            upstream: "docker.io".into(),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
        assert_eq!(body["errors"][0]["code"], "DENIED");
        assert_eq!(
            body["errors"][0]["message"],
            "repository docker.io/library/busybox is a cache of docker.io: push under another name"
        );
        assert_eq!(body["errors"][0]["detail"]["upstream"], "docker.io");

        let limited = |retry_after| {
            ApiError::Registry(Error::Upstream {
                upstream: "docker.io".into(),
                error: UpstreamError::RateLimited { retry_after },
            })
            .into_response()
        };
        let response = limited(Some(120));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "120");
        assert!(body_text(response).await.contains("TOOMANYREQUESTS"));
        let response = limited(None);
        assert_eq!(response.headers()[header::RETRY_AFTER], "60");

        let response = ApiError::Registry(Error::Upstream {
            upstream: "ghcr.io".into(),
            error: UpstreamError::Unavailable("connection refused".into()),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
        assert_eq!(body["errors"][0]["code"], "UNKNOWN");
        assert_eq!(
            body["errors"][0]["message"],
            "upstream ghcr.io: upstream unavailable: connection refused"
        );

        let (expected, actual) = (Digest::sha256_of(b"asked"), Digest::sha256_of(b"sent"));
        let response = ApiError::Registry(Error::UpstreamDigestMismatch {
            upstream: "ghcr.io".into(),
            expected: expected.clone(),
            actual: actual.clone(),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
        assert_eq!(body["errors"][0]["code"], "UNKNOWN");
        assert_eq!(
            body["errors"][0]["detail"]["expected"],
            expected.to_string()
        );
        assert_eq!(body["errors"][0]["detail"]["actual"], actual.to_string());
    }
}

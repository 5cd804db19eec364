//! The one mapping from registry errors to HTTP: status, headers and the
//! spec's JSON error body `{"errors":[{"code","message","detail"}]}`.

use crate::route::RouteError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_registry::{Error, ErrorCode};
use serde_json::json;

/// An error on its way to becoming a response.
#[derive(Debug)]
pub enum ApiError {
    Registry(Error),
    NotFound,
    MethodNotAllowed,
}

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
        }
    }
}

fn status_of(e: &Error) -> StatusCode {
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
        Error::DeleteDisabled => StatusCode::METHOD_NOT_ALLOWED,
        Error::StillReferenced { .. } => StatusCode::CONFLICT,
        Error::TooManyUploads { .. } => StatusCode::TOO_MANY_REQUESTS,
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
        let (status, text) = match &self {
            ApiError::Registry(e) => {
                if let Error::Storage(cause) = e {
                    tracing::error!(%cause, "storage failure");
                }
                (
                    status_of(e),
                    body(e.code().as_str(), e.to_string(), detail_of(e)),
                )
            }
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                body(
                    ErrorCode::Unsupported.as_str(),
                    "no such endpoint".into(),
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
            _ => None,
        };
        if let Some((name, value)) = extra {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

//! `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`

use super::{cache_headers, respond};
use crate::error::ApiError;
use crate::request::range_request;
use crate::sendfile::Outbox;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use berth_oci::{Digest, RepositoryName};
use berth_registry::{BlobContent, Registry};

pub async fn get(
    registry: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    with_body: bool,
    outbox: Option<&Outbox>,
) -> Result<Response, ApiError> {
    if with_body {
        // A blob this repository may read but that is not (yet) cached
        // from an upstream has no URL: it is served below.
        if let Ok(Some(url)) = registry.blob_redirect(name, digest).await {
            let fields = [
                ("location", url),
                ("docker-content-digest", digest.to_string()),
                ("content-length", "0".to_string()),
            ];
            return Ok(respond(
                StatusCode::TEMPORARY_REDIRECT,
                &fields,
                Body::empty(),
            ));
        }
    }
    let range = range_request(headers);
    let pulled = registry.pull_blob(name, digest, range, with_body).await?;
    let blob = pulled.value;
    let mut fields = vec![
        ("content-type", "application/octet-stream".to_string()),
        ("docker-content-digest", digest.to_string()),
        ("etag", format!("\"{digest}\"")),
        ("accept-ranges", "bytes".to_string()),
    ];
    let status = match blob.range {
        Some(r) => {
            fields.push(("content-length", r.length().to_string()));
            fields.push((
                "content-range",
                format!("bytes {}-{}/{}", r.start, r.end, blob.size),
            ));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            fields.push(("content-length", blob.size.to_string()));
            StatusCode::OK
        }
    };
    fields.extend(cache_headers(pulled.cache.as_ref()));
    let (body, via) = match (blob.content, outbox) {
        (Some(BlobContent::File(region)), Some(outbox)) => (outbox.body(region), "sendfile"),
        (Some(content), _) => (Body::from_stream(content.into_stream()), "stream"),
        (None, _) => (Body::empty(), "none"),
    };
    // Tests read this to prove which path served a blob (see crate::sendfile).
    tracing::debug!(%digest, via, "blob body");
    Ok(respond(status, &fields, body))
}

pub async fn delete(
    registry: &Registry,
    name: &RepositoryName,
    digest: &Digest,
) -> Result<Response, ApiError> {
    registry.delete_blob(name, digest).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &[("content-length", "0".into())],
        Body::empty(),
    ))
}

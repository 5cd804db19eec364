//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (monolithic, mount or start)
//! and `GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<id>`.

use super::respond;
use crate::error::{upload_range, ApiError};
use crate::request::{body_stream, chunk, content_length, Query};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use berth_oci::{Digest, RepositoryName};
use berth_registry::{Error, MountOutcome, Registry, UploadStatus};
use std::net::IpAddr;

fn created(name: &RepositoryName, digest: &Digest) -> Response {
    respond(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{name}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
            ("content-length", "0".into()),
        ],
        Body::empty(),
    )
}

fn in_progress(status: StatusCode, name: &RepositoryName, upload: &UploadStatus) -> Response {
    respond(
        status,
        &[
            (
                "location",
                format!("/v2/{name}/blobs/uploads/{}", upload.id),
            ),
            ("range", upload_range(upload.offset)),
            ("docker-upload-uuid", upload.id.clone()),
            ("content-length", "0".into()),
        ],
        Body::empty(),
    )
}

fn digest_param(query: &Query) -> Result<Option<Digest>, ApiError> {
    Ok(query
        .get("digest")
        .map(|d| d.parse().map_err(Error::DigestInvalid))
        .transpose()?)
}

pub async fn start(
    registry: &Registry,
    name: &RepositoryName,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
    client: Option<IpAddr>,
) -> Result<Response, ApiError> {
    if let Some(mount) = query.get("mount") {
        let digest: Digest = mount.parse().map_err(Error::DigestInvalid)?;
        // An invalid `from` cannot hold the blob: fall back to an upload like an unknown one.
        let from = query
            .get("from")
            .and_then(|f| f.parse::<RepositoryName>().ok());
        return Ok(
            match registry
                .mount_blob(name, &digest, from.as_ref(), client)
                .await?
            {
                MountOutcome::Mounted => created(name, &digest),
                MountOutcome::Upload(upload) => in_progress(StatusCode::ACCEPTED, name, &upload),
            },
        );
    }
    if let Some(digest) = digest_param(query)? {
        registry
            .push_blob(name, &digest, body_stream(body), client)
            .await?;
        return Ok(created(name, &digest));
    }
    if content_length(headers).is_some_and(|n| n > 0) {
        return Err(Error::BlobUploadInvalid("a POST with a body needs ?digest=".into()).into());
    }
    let upload = registry.start_upload(name, client).await?;
    Ok(in_progress(StatusCode::ACCEPTED, name, &upload))
}

pub async fn patch(
    registry: &Registry,
    name: &RepositoryName,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let chunk = chunk(headers)?;
    let upload = registry
        .append_upload(name, id, chunk, body_stream(body))
        .await?;
    Ok(in_progress(StatusCode::ACCEPTED, name, &upload))
}

pub async fn finish(
    registry: &Registry,
    name: &RepositoryName,
    id: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let digest = digest_param(query)?
        .ok_or_else(|| Error::BlobUploadInvalid("PUT to finish an upload needs ?digest=".into()))?;
    let chunk = chunk(headers)?;
    let last_chunk = (content_length(headers) != Some(0)).then(|| body_stream(body));
    registry
        .finish_upload(name, id, &digest, chunk, last_chunk)
        .await?;
    Ok(created(name, &digest))
}

pub async fn status(
    registry: &Registry,
    name: &RepositoryName,
    id: &str,
) -> Result<Response, ApiError> {
    let upload = registry.upload_status(name, id).await?;
    Ok(in_progress(StatusCode::NO_CONTENT, name, &upload))
}

pub async fn cancel(
    registry: &Registry,
    name: &RepositoryName,
    id: &str,
) -> Result<Response, ApiError> {
    registry.cancel_upload(name, id).await?;
    Ok(respond(StatusCode::NO_CONTENT, &[], Body::empty()))
}

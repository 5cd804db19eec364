//! `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`

use super::{cache_headers, respond};
use crate::budget::{BudgetedReadError, MemoryBudget, Reservation};
use crate::error::ApiError;
use crate::request::{accepted_types, content_length, content_type, read_limited};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::{Reference, RepositoryName};
use berth_registry::{Error, Registry};

pub async fn get(
    registry: &Registry,
    name: &RepositoryName,
    reference: &Reference,
    headers: &HeaderMap,
    with_body: bool,
) -> Result<Response, ApiError> {
    let accept = accepted_types(headers);
    let pulled = registry
        .pull_manifest(name, reference, &accept, with_body)
        .await?;
    let manifest = pulled.value;
    let mut fields = vec![
        ("content-type", manifest.media_type.clone()),
        ("content-length", manifest.size.to_string()),
        ("docker-content-digest", manifest.digest.to_string()),
        ("etag", format!("\"{}\"", manifest.digest)),
    ];
    fields.extend(cache_headers(pulled.cache.as_ref()));
    let body = manifest.body.map(Body::from).unwrap_or_else(Body::empty);
    Ok(respond(StatusCode::OK, &fields, body))
}

pub async fn put(
    registry: &Registry,
    name: &RepositoryName,
    reference: &Reference,
    headers: &HeaderMap,
    body: Body,
    budget: Option<&MemoryBudget>,
) -> Result<Response, ApiError> {
    let too_large = || Error::ManifestTooLarge {
        limit: MAX_MANIFEST_BYTES,
    };
    let length = content_length(headers);
    if length.is_some_and(|n| n > MAX_MANIFEST_BYTES as u64) {
        return Err(too_large().into());
    }
    // The body's memory stays reserved until the manifest is stored.
    let (bytes, _reserved) = match budget {
        Some(budget) => budget
            .read(body, MAX_MANIFEST_BYTES, length)
            .await
            .map_err(|e| match e {
                BudgetedReadError::TooLarge => too_large().into(),
                BudgetedReadError::OverBudget => ApiError::OverBudget,
                BudgetedReadError::Body(e) => Error::BodyRead(e).into(),
            })?,
        None => (
            read_limited(body, MAX_MANIFEST_BYTES, too_large).await?,
            Reservation::default(),
        ),
    };
    let pushed = registry
        .put_manifest(name, reference, content_type(headers), bytes)
        .await?;
    let mut fields = vec![
        (
            "location",
            format!("/v2/{name}/manifests/{}", pushed.digest),
        ),
        ("docker-content-digest", pushed.digest.to_string()),
        ("content-length", "0".to_string()),
    ];
    if let Some(subject) = &pushed.subject {
        fields.push(("oci-subject", subject.to_string()));
    }
    Ok(respond(StatusCode::CREATED, &fields, Body::empty()))
}

pub async fn delete(
    registry: &Registry,
    name: &RepositoryName,
    reference: &Reference,
) -> Result<Response, ApiError> {
    registry.delete_manifest(name, reference).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &[("content-length", "0".into())],
        Body::empty(),
    ))
}

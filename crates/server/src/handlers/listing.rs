//! Content discovery: `/v2/_catalog`, `/v2/<name>/tags/list` and
//! `/v2/<name>/referrers/<digest>`.

use super::respond;
use super::visible::visible_page;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::request::Query;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use berth_oci::media_type::OCI_INDEX;
use berth_oci::{Digest, RepositoryName};
use berth_registry::{Page, Registry};
use serde_json::json;

/// A JSON response, with a `Link` to the next page when there is one.
fn page_response(path: &str, n: Option<usize>, page: &Page, body: serde_json::Value) -> Response {
    let mut fields = vec![("content-type", "application/json".to_string())];
    if let Some(last) = &page.next {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(n) = n {
            query.append_pair("n", &n.to_string());
        }
        query.append_pair("last", last);
        fields.push(("link", format!("<{path}?{}>; rel=\"next\"", query.finish())));
    }
    respond(StatusCode::OK, &fields, Body::from(body.to_string()))
}

/// A catalog page without `n`: as large as the registry's largest.
const CATALOG_PAGE: usize = 10_000;

/// The catalog, listing only what `caller` may pull.
pub async fn catalog(
    registry: &Registry,
    query: &Query,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let n = query.page_size()?;
    let page = if caller.auth_enabled() {
        visible_page(
            |last, limit| async move { registry.catalog(last.as_deref(), Some(limit)).await },
            query.get("last"),
            n.unwrap_or(CATALOG_PAGE).min(CATALOG_PAGE),
            |name: &String| caller.may_list(name),
            String::clone,
        )
        .await?
    } else {
        registry.catalog(query.get("last"), n).await?
    };
    let body = json!({ "repositories": page.items });
    Ok(page_response("/v2/_catalog", n, &page, body))
}

pub async fn tags(
    registry: &Registry,
    name: &RepositoryName,
    query: &Query,
) -> Result<Response, ApiError> {
    let n = query.page_size()?;
    let page = registry.tags(name, query.get("last"), n).await?;
    let body = json!({ "name": name.as_str(), "tags": page.items });
    Ok(page_response(
        &format!("/v2/{name}/tags/list"),
        n,
        &page,
        body,
    ))
}

pub async fn referrers(
    registry: &Registry,
    name: &RepositoryName,
    subject: &Digest,
    query: &Query,
) -> Result<Response, ApiError> {
    let artifact_type = query.get("artifactType");
    let n = query.page_size()?;
    let page = registry
        .referrers(name, subject, artifact_type, query.get("last"), n)
        .await?;
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": page.manifests });
    let mut fields = vec![("content-type", OCI_INDEX.to_string())];
    if artifact_type.is_some() {
        fields.push(("oci-filters-applied", "artifactType".to_string()));
    }
    if let Some(last) = &page.next {
        let mut next = form_urlencoded::Serializer::new(String::new());
        if let Some(artifact_type) = artifact_type {
            next.append_pair("artifactType", artifact_type);
        }
        if let Some(n) = n {
            next.append_pair("n", &n.to_string());
        }
        next.append_pair("last", last);
        let path = format!("/v2/{name}/referrers/{subject}");
        fields.push(("link", format!("<{path}?{}>; rel=\"next\"", next.finish())));
    }
    Ok(respond(
        StatusCode::OK,
        &fields,
        Body::from(index.to_string()),
    ))
}

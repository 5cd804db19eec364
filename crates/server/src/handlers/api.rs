//! `/api/v1/`: JSON for the web UI and for tools, for what `/v2` cannot
//! answer in one request (counts, sizes, push times, search, platforms).
//! Reads only, public like `/v2` reads; errors in the OCI error format. A
//! layer that is not a readable tar is `422` with the reason.

use super::respond;
use super::visible::{visible_page, visible_totals, VisibleTotals};
use crate::api_route::ApiRoute;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::request::Query;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use berth_oci::{Reference, RepositoryName};
use berth_registry::{Overview, Page, Registry, RepositorySummary, TagDetail};
use serde::Serialize;

/// Page size when a request names none.
pub const DEFAULT_PAGE: usize = 100;

#[derive(Serialize)]
struct OverviewBody {
    #[serde(flatten)]
    totals: Overview,
    /// Whether DELETE is allowed, so a UI can hide what would be refused.
    deletes_enabled: bool,
}

/// The overview of a caller who may pull only part of the registry.
#[derive(Serialize)]
struct VisibleOverviewBody {
    #[serde(flatten)]
    totals: VisibleTotals,
    deletes_enabled: bool,
    /// Always true here: the totals cover only what the caller may pull.
    visible_only: bool,
}

#[derive(Serialize)]
struct RepositoriesBody<'a> {
    repositories: &'a [RepositorySummary],
    /// The `last` that asks for the next page; `null` on the last page.
    next: Option<&'a str>,
}

#[derive(Serialize)]
struct TagsBody<'a> {
    name: &'a str,
    tags: &'a [TagDetail],
    next: Option<&'a str>,
}

pub async fn handle(
    registry: &Registry,
    route: ApiRoute,
    query: &Query,
    caller: &Caller,
) -> Result<Response, ApiError> {
    match route {
        ApiRoute::Overview if !caller.may_pull_everything() => {
            visible_overview(registry, caller).await
        }
        ApiRoute::Overview => overview(registry).await,
        ApiRoute::Repositories => repositories(registry, query, caller).await,
        ApiRoute::Tags { name } => tags(registry, &name, query).await,
        ApiRoute::Manifest { name, reference } => manifest(registry, &name, &reference).await,
        ApiRoute::ManifestFiles { name, reference } => {
            json_response(&*registry.image_files(&name, &reference).await?, None)
        }
        ApiRoute::BlobFiles { name, digest } => {
            json_response(&*registry.layer_files(&name, &digest).await?, None)
        }
        // An operation, not a read: the dispatcher sends it to `handlers::gc`.
        ApiRoute::Gc => Err(ApiError::NotFound),
    }
}

fn json_response(body: &impl Serialize, link: Option<String>) -> Result<Response, ApiError> {
    let text = serde_json::to_string(body)
        .map_err(|e| berth_registry::Error::Storage(format!("encoding a JSON answer: {e}")))?;
    let mut fields = vec![("content-type", "application/json".to_string())];
    if let Some(link) = link {
        fields.push(("link", link));
    }
    Ok(respond(StatusCode::OK, &fields, Body::from(text)))
}

/// `Link: <path?...&n=&last=>; rel="next"` when the page has a next one,
/// keeping the request's other parameters (`keep`).
fn next_link<T>(path: &str, keep: &[(&str, &str)], n: usize, page: &Page<T>) -> Option<String> {
    let last = page.next.as_deref()?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in keep {
        query.append_pair(k, v);
    }
    query.append_pair("n", &n.to_string());
    query.append_pair("last", last);
    Some(format!("<{path}?{}>; rel=\"next\"", query.finish()))
}

async fn overview(registry: &Registry) -> Result<Response, ApiError> {
    let body = OverviewBody {
        totals: registry.overview().await?,
        deletes_enabled: registry.deletes_enabled(),
    };
    json_response(&body, None)
}

/// Totals over the repositories `caller` may pull.
async fn visible_overview(registry: &Registry, caller: &Caller) -> Result<Response, ApiError> {
    let body = VisibleOverviewBody {
        totals: visible_totals(registry, caller).await?,
        deletes_enabled: registry.deletes_enabled(),
        visible_only: true,
    };
    json_response(&body, None)
}

/// Summaries of the repositories `caller` may pull.
async fn repositories(
    registry: &Registry,
    query: &Query,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let n = query.page_size()?.unwrap_or(DEFAULT_PAGE);
    let filter = query.get("q").filter(|q| !q.is_empty());
    let page = if caller.auth_enabled() {
        visible_page(
            |last, limit| async move {
                registry
                    .repository_summaries(filter, last.as_deref(), limit)
                    .await
            },
            query.get("last"),
            n.min(berth_registry::MAX_BROWSE_PAGE),
            |summary: &RepositorySummary| caller.may_list(&summary.name),
            |summary| summary.name.clone(),
        )
        .await?
    } else {
        registry
            .repository_summaries(filter, query.get("last"), n)
            .await?
    };
    let keep: Vec<_> = filter.map(|q| ("q", q)).into_iter().collect();
    let link = next_link("/api/v1/repositories", &keep, n, &page);
    let body = RepositoriesBody {
        repositories: &page.items,
        next: page.next.as_deref(),
    };
    json_response(&body, link)
}

async fn tags(
    registry: &Registry,
    name: &RepositoryName,
    query: &Query,
) -> Result<Response, ApiError> {
    let n = query.page_size()?.unwrap_or(DEFAULT_PAGE);
    let page = registry.tag_details(name, query.get("last"), n).await?;
    let link = next_link(&format!("/api/v1/repositories/{name}/tags"), &[], n, &page);
    let body = TagsBody {
        name: name.as_str(),
        tags: &page.items,
        next: page.next.as_deref(),
    };
    json_response(&body, link)
}

async fn manifest(
    registry: &Registry,
    name: &RepositoryName,
    reference: &Reference,
) -> Result<Response, ApiError> {
    json_response(&registry.image_detail(name, reference).await?, None)
}

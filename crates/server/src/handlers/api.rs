//! `/api/v1/`: JSON for the web UI and for tools, for what `/v2` cannot
//! answer in one request (counts, sizes, push times, search, platforms).
//! Reads, public like `/v2` reads, and the admin's repository delete;
//! errors in the OCI error format. A layer that is not a readable tar is
//! `422` with the reason.

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

/// What `DELETE /api/v1/repositories/<name>` removed.
#[derive(Serialize)]
struct RepositoryDeletedBody<'a> {
    repository: &'a str,
    tags: u64,
    manifests: u64,
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
        ApiRoute::DeleteRepository { name } => delete_repository(registry, &name).await,
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

/// Deletes a repository whole; the authorize step (or, without auth, the
/// loopback rule) already let only an admin in.
async fn delete_repository(
    registry: &Registry,
    name: &RepositoryName,
) -> Result<Response, ApiError> {
    let deleted = registry.delete_repository(name).await?;
    tracing::info!(repository = %name, tags = deleted.tags, manifests = deleted.manifests, "repository deleted");
    json_response(
        &RepositoryDeletedBody {
            repository: name.as_str(),
            tags: deleted.tags,
            manifests: deleted.manifests,
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use crate::admin_socket::LocalAdmin;
    use crate::{router_with, router_with_auth, CorsPolicy, Operations};
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use berth_oci::Digest;
    use berth_registry::storage::fs::FsBlobStore;
    use berth_registry::storage::sqlite::SqliteMetaStore;
    use berth_registry::{Registry, RegistryOptions};
    use bytes::Bytes;
    use futures_util::StreamExt;
    use std::net::SocketAddr;
    use std::sync::Arc;

    const FAR: &str = "192.0.2.7:40000";
    const NEAR: &str = "127.0.0.1:40000";

    /// A registry holding `doomed-N:v1` for N in 0..count.
    async fn registry(dir: &std::path::Path, count: usize) -> Arc<Registry> {
        let registry = Registry::new(
            Arc::new(FsBlobStore::open(dir).unwrap()),
            Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
            RegistryOptions::default(),
        );
        for n in 0..count {
            let name = format!("doomed-{n}").parse().unwrap();
            let config = Digest::sha256_of(b"{}");
            let body = futures_util::stream::iter(vec![Ok(Bytes::from_static(b"{}"))]).boxed();
            registry
                .push_blob(&name, &config, body, None)
                .await
                .unwrap();
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#
            );
            registry
                .put_manifest(&name, &"v1".parse().unwrap(), None, Bytes::from(manifest))
                .await
                .unwrap();
        }
        Arc::new(registry)
    }

    async fn delete(
        app: &axum::Router,
        name: &str,
        client: &str,
        authorization: Option<&str>,
        socket: bool,
    ) -> (StatusCode, String) {
        let mut request = Request::delete(format!("/api/v1/repositories/{name}"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let client: SocketAddr = client.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(client));
        if socket {
            request.extensions_mut().insert(LocalAdmin);
        }
        let response = tower::ServiceExt::oneshot(app.clone(), request)
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn operations() -> Operations {
        Operations::new(Arc::new(crate::metrics::Metrics::new()), true)
    }

    #[tokio::test]
    async fn without_auth_only_loopback_and_the_socket_may_delete_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path(), 2).await;
        // Even with metrics public: that setting opens metrics, not admin.
        let app = router_with(registry.clone(), operations(), CorsPolicy::default());
        let (status, body) = delete(&app, "doomed-0", FAR, None, false).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body.contains("DENIED") && body.contains("loopback"),
            "{body}"
        );
        assert_eq!(registry.catalog(None, None).await.unwrap().items.len(), 2);

        let (status, body) = delete(&app, "doomed-0", NEAR, None, false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"repository": "doomed-0", "tags": 1, "manifests": 1})
        );
        let (status, body) = delete(&app, "doomed-1", FAR, None, true).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the socket, whatever the address: {body}"
        );
        assert!(registry.catalog(None, None).await.unwrap().items.is_empty());
        let (status, body) = delete(&app, "doomed-1", NEAR, None, false).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(body.contains("NAME_UNKNOWN"), "{body}");
    }

    #[tokio::test]
    async fn with_auth_a_repository_delete_needs_admin_even_on_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path(), 2).await;
        let auth = crate::handlers::operations::tests::auth(dir.path());
        let app = router_with_auth(
            registry.clone(),
            operations(),
            CorsPolicy::default(),
            Some(auth),
        );
        let basic = crate::handlers::operations::tests::basic;
        let (status, _) = delete(&app, "doomed-0", NEAR, None, false).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "loopback is not enough");
        let (status, body) = delete(&app, "doomed-0", NEAR, Some(&basic("puller")), false).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("DENIED") && body.contains("admin"), "{body}");
        assert_eq!(registry.catalog(None, None).await.unwrap().items.len(), 2);
        let (status, body) = delete(&app, "doomed-0", FAR, Some(&basic("admin")), false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = delete(&app, "doomed-1", FAR, None, true).await;
        assert_eq!(status, StatusCode::OK, "the socket: {body}");
        assert!(registry.catalog(None, None).await.unwrap().items.is_empty());
    }
}

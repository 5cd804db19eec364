//! The web UI: server-rendered pages under `/ui/` that read through the
//! registry, with an embedded stylesheet and script that only enhance.
//!
//! [`answer`] parses the path into a [`routes::UiRoute`], loads the page's
//! view data ([`load`]) and renders it ([`pages`]); errors become pages
//! too, with the status the `/v2` API would give.

pub mod assets;
pub(crate) mod csrf;
mod delete;
mod error;
pub mod format;
mod listing;
mod load;
pub mod login;
pub mod pages;
mod repository_delete;
mod respond;
pub mod routes;
pub mod session;
mod totals;
pub mod view;

use crate::caller::Caller;
use crate::operations::StatsCache;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use berth_auth::{Actions, Resource};
use berth_oci::RepositoryName;
use berth_registry::Registry;
use error::UiError;
use routes::UiRoute;
use std::time::Duration;
use view::{Context, Viewer};

/// How long the front page's totals are reused: they scan whole tables.
const OVERVIEW_TTL: Duration = Duration::from_secs(5);

/// What the pages keep between requests.
#[derive(Debug)]
pub struct UiState {
    overview: StatsCache<berth_registry::Overview>,
    /// Under auth: the totals of users who see part of the registry.
    visible: totals::VisibleTotalsCache,
    /// What GC could reclaim: a scan of the blobs table, so kept briefly.
    reclaimable: StatsCache<berth_registry::storage::Reclaimable>,
}

impl Default for UiState {
    fn default() -> Self {
        UiState {
            overview: StatsCache::new(OVERVIEW_TTL),
            visible: totals::VisibleTotalsCache::default(),
            reclaimable: StatsCache::new(OVERVIEW_TTL),
        }
    }
}

/// The context of a page for `caller`.
pub fn context(registry: &Registry, headers: &HeaderMap, caller: &Caller) -> Context {
    let viewer = match caller.name() {
        _ if !caller.auth_enabled() => Viewer::Everyone,
        Some(name) => Viewer::User(name.to_owned()),
        None => Viewer::Anonymous,
    };
    Context {
        host: host_of(headers),
        now: now(),
        deletes_enabled: registry.deletes_enabled(),
        may_delete_repositories: false,
        viewer,
    }
}

/// Answers a request for a UI path (`/ui/...`, or `/` and `/ui`, which
/// redirect) from `caller` at `client`, showing and allowing only what they may.
pub async fn answer(
    registry: &Registry,
    state: &UiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    (caller, client): (&Caller, Option<std::net::IpAddr>),
) -> Response {
    let context = Context {
        may_delete_repositories: registry.deletes_enabled() && caller.may_administer(client),
        ..context(registry, headers, caller)
    };
    let asked = Asked {
        method,
        uri,
        headers,
        caller,
    };
    match page(registry, state, &context, &asked).await {
        Ok(response) => response,
        Err(UiError::LoginRequired) => {
            let here = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
            respond::redirect(StatusCode::SEE_OTHER, &session::login_page_for(here))
        }
        Err(e) => error_response(&context, &e),
    }
}

/// An error as a page, its cause kept for the log line.
pub(crate) fn error_response(context: &Context, e: &UiError) -> Response {
    let (title, message) = e.words();
    let mut response = respond::html(e.status(), pages::error::render(context, title, &message));
    if let Some(cause) = e.cause() {
        response.extensions_mut().insert(crate::error::Cause(cause));
    }
    response
}

/// The request a page answers.
struct Asked<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    caller: &'a Caller,
}

/// Lets the caller see `name`'s pages only if they may pull it: the
/// anonymous are sent to log in; a user is refused with 403, whether or
/// not the repository exists (so the answer tells nothing about that).
fn may_see(caller: &Caller, name: &RepositoryName) -> Result<(), UiError> {
    if caller.may_pull(name.as_str()) {
        Ok(())
    } else if !caller.is_authenticated() {
        Err(UiError::LoginRequired)
    } else {
        Err(UiError::Forbidden(format!(
            "You may not see the repository {name}."
        )))
    }
}

async fn page(
    registry: &Registry,
    state: &UiState,
    context: &Context,
    asked: &Asked<'_>,
) -> Result<Response, UiError> {
    let (method, uri, caller) = (asked.method, asked.uri, asked.caller);
    let path = uri.path();
    if path == "/" || path == "/ui" {
        return Ok(respond::redirect(StatusCode::FOUND, routes::PREFIX));
    }
    let route = routes::parse(path)?;
    let reads = *method == Method::GET || *method == Method::HEAD;
    let posts_delete = *method == Method::POST
        && matches!(route, UiRoute::Delete(..) | UiRoute::DeleteRepository(_));
    if !reads && !posts_delete {
        return Err(UiError::MethodNotAllowed);
    }
    let query = Query::parse(uri.query());
    let ok = |body| Ok(respond::html(StatusCode::OK, body));
    // Delete controls only where this caller may delete.
    let for_repository = |name: &RepositoryName| Context {
        deletes_enabled: context.deletes_enabled
            && caller.may(
                &Resource::Repository(name.as_str().to_owned()),
                Actions::DELETE,
            ),
        ..context.clone()
    };
    match route {
        UiRoute::Asset(file) => assets::find(&file)
            .map(respond::asset)
            .ok_or(UiError::NotFound),
        UiRoute::Home => {
            if !caller.is_authenticated() && !caller.may_pull_somewhere() {
                return Err(UiError::LoginRequired);
            }
            let filter = &query.q;
            let last = query.last.as_deref();
            // Without auth the caller may see everything: the registry's own totals.
            let page = totals::home(registry, state, caller, filter, last).await?;
            ok(pages::home::render(context, &page))
        }
        UiRoute::Repository(name) => {
            may_see(caller, &name)?;
            let context = for_repository(&name);
            let page = load::repository(registry, name, query.last.as_deref()).await?;
            ok(pages::repository::render(&context, &page))
        }
        UiRoute::Image(name, reference) => {
            may_see(caller, &name)?;
            let context = for_repository(&name);
            let page = load::image(registry, name, reference).await?;
            ok(pages::image::render(&context, &page))
        }
        UiRoute::Layer(name, digest) => {
            may_see(caller, &name)?;
            let page = listing::layer(registry, name, digest).await?;
            Ok(files_page(context, &page))
        }
        UiRoute::ImageFiles(name, reference) => {
            may_see(caller, &name)?;
            let page = listing::image_files(registry, name, reference).await?;
            Ok(files_page(context, &page))
        }
        UiRoute::Delete(name, reference) => {
            may_see(caller, &name)?;
            let context = for_repository(&name);
            if registry.deletes_enabled() && !context.deletes_enabled {
                return Err(UiError::Forbidden(format!(
                    "You may not delete in the repository {name}."
                )));
            }
            delete::answer(registry, &context, method, asked.headers, name, reference).await
        }
        UiRoute::DeleteRepository(name) => {
            may_see(caller, &name)?;
            let answer =
                repository_delete::answer(registry, context, method, asked.headers, name).await?;
            if *method == Method::POST {
                // The front page it lands on shows the new totals and what became reclaimable.
                state.overview.forget().await;
                state.reclaimable.forget().await;
            }
            Ok(answer)
        }
    }
}

/// A file listing: `422` with the reason when the layer cannot be read.
fn files_page(context: &Context, page: &view::FilesPage) -> Response {
    let status = if page.files.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    respond::html(status, pages::files::render(context, page))
}

/// The query parameters pages read.
#[derive(Debug, Default)]
struct Query {
    /// The repository filter.
    q: String,
    /// The key of the previous page's last row.
    last: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Query::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*key {
                "q" => parsed.q = value.into_owned(),
                "last" if !value.is_empty() => parsed.last = Some(value.into_owned()),
                _ => {}
            }
        }
        parsed
    }
}

/// The registry's address as the browser wrote it, for pull commands.
fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost:5000")
        .to_owned()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use berth_registry::storage::fs::FsBlobStore;
    use berth_registry::storage::sqlite::SqliteMetaStore;
    use berth_registry::{Registry, RegistryOptions};
    use std::sync::Arc;

    fn app(dir: &std::path::Path) -> axum::Router {
        crate::router(Arc::new(Registry::new(
            Arc::new(FsBlobStore::open(dir).unwrap()),
            Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
            RegistryOptions::default(),
        )))
    }

    async fn send(app: &axum::Router, method: &str, path: &str) -> axum::response::Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        tower::ServiceExt::oneshot(app.clone(), request)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn pages_carry_a_strict_policy_and_refuse_other_methods() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let response = send(&app, "GET", "/ui/").await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        // Only a delete takes a POST; nothing takes a PUT.
        assert_eq!(
            send(&app, "POST", "/ui/").await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            send(&app, "PUT", "/ui/r/a/-/delete/t").await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        // Error pages are pages too.
        let response = send(&app, "GET", "/ui/r/nothing").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("<h1>Not found</h1>"));
        // Counted in the metrics under one route label for all pages.
        let mut request = Request::get("/metrics").body(Body::empty()).unwrap();
        let loopback: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(loopback));
        let response = tower::ServiceExt::oneshot(app.clone(), request)
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains(
                r#"berth_http_requests_total{method="GET",route="/ui/{page}",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"route="/ui/{page}",status="404"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn query_keeps_the_filter_and_drops_an_empty_last() {
        let query = super::Query::parse(Some("q=a%2Fb&last="));
        assert_eq!(query.q, "a/b");
        assert_eq!(query.last, None);
        let query = super::Query::parse(Some("last=x%2Fy&other=1"));
        assert_eq!(query.last.as_deref(), Some("x/y"));
        assert_eq!(query.q, "");
    }
}

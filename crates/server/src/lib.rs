//! The HTTP front of berth.
//!
//! Every `/v2/...` request goes to one handler that parses `(method, path)`
//! into a [`route::Route`], calls one [`Registry`] operation and renders the
//! result. Status codes, headers and the error body live here and nowhere else;
//! the rules of the spec live in `berth-registry`.
#![forbid(unsafe_code)]

mod budget;
mod connections;
pub mod cors;
mod error;
mod handlers;
pub mod range_header;
mod request;
pub mod route;
mod sendfile;
mod serve;
mod timeouts;

pub use budget::MemoryBudget;
pub use cors::{CorsError, CorsPolicy, CorsSettings};
pub use serve::{serve, serve_with, ServeOptions};
pub use timeouts::Timeouts;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRef, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use berth_registry::Registry;
use error::ApiError;
use route::Route;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// What every handler may reach; handlers extract the part they need.
#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    cors: Arc<CorsPolicy>,
}

impl FromRef<AppState> for Arc<Registry> {
    fn from_ref(state: &AppState) -> Self {
        state.registry.clone()
    }
}

impl FromRef<AppState> for Arc<CorsPolicy> {
    fn from_ref(state: &AppState) -> Self {
        state.cors.clone()
    }
}

/// The application: OCI distribution under `/v2/`, CORS off.
pub fn router(registry: Arc<Registry>) -> Router {
    router_with_cors(registry, CorsPolicy::default())
}

/// The application, answering browsers from the origins `cors` allows.
pub fn router_with_cors(registry: Arc<Registry>, cors: CorsPolicy) -> Router {
    let state = AppState {
        registry,
        cors: Arc::new(cors),
    };
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

async fn dispatch(
    State(registry): State<Arc<Registry>>,
    State(cors): State<Arc<CorsPolicy>>,
    request: Request<Body>,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let has_body = request::has_body(headers);
    let cors_origin = cors.allowed_origin(headers);
    let preflight = cors_origin.filter(|_| CorsPolicy::is_preflight(method));
    let mut response = match preflight {
        // Before any other processing: a browser's preflight carries no credentials.
        Some(origin) => {
            let mut response = axum::http::StatusCode::NO_CONTENT.into_response();
            *response.headers_mut() = cors.preflight_headers(origin);
            Ok(response)
        }
        None => route_and_handle(&registry, &parts, body).await,
    }
    .unwrap_or_else(IntoResponse::into_response);
    response
        .headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    if let (Some(origin), None) = (cors_origin, preflight) {
        cors.decorate(response.headers_mut(), origin);
    }
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        // The body may be unread: say so rather than leave the client guessing.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    log_request(method, uri.path(), &mut response, started);
    response
}

/// Parses the route and runs its handler.
async fn route_and_handle(
    registry: &Registry,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    match route::parse(method, uri.path()) {
        Ok(route) => {
            // What `serve` attached to the request; absent when the router
            // runs without it (in-process tests).
            let context = RequestContext {
                outbox: parts.extensions.get::<sendfile::Outbox>(),
                budget: parts.extensions.get::<MemoryBudget>(),
                client: parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(addr)| addr.ip()),
            };
            handle(registry, route, method, uri, headers, body, context).await
        }
        Err(route::RouteError::TrailingSlash(to)) => {
            let to = match uri.query() {
                Some(query) => format!("{to}?{query}"),
                None => to,
            };
            Err(ApiError::Redirect(to))
        }
        Err(e) => Err(ApiError::from(e)),
    }
}

/// The one log line of a request; an error's cause is logged here only.
fn log_request(method: &Method, path: &str, response: &mut Response, started: Instant) {
    let status = response.status();
    let cause = response.extensions_mut().remove::<error::Cause>();
    let elapsed = started.elapsed();
    match cause {
        Some(cause) if status.is_server_error() => {
            tracing::error!(%method, path, %status, ?elapsed, cause = %cause.0, "request failed")
        }
        Some(cause) => {
            tracing::debug!(%method, path, %status, ?elapsed, cause = %cause.0, "request refused")
        }
        None if status.is_server_error() => {
            tracing::error!(%method, path, %status, ?elapsed, "request failed")
        }
        None => tracing::debug!(%method, path, %status, ?elapsed, "request"),
    }
}

/// What the connection provides a request beyond the HTTP message; absent
/// when the router runs without `serve` (in-process tests).
#[derive(Clone, Copy, Default)]
struct RequestContext<'a> {
    outbox: Option<&'a sendfile::Outbox>,
    budget: Option<&'a MemoryBudget>,
    /// Whom per-client caps count this request against.
    client: Option<IpAddr>,
}

async fn handle(
    registry: &Registry,
    route: Route,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    context: RequestContext<'_>,
) -> Result<Response, ApiError> {
    let query = request::Query::parse(uri.query());
    use handlers::{blobs, listing, manifests, uploads};
    match route {
        Route::Base => Ok(handlers::respond(
            axum::http::StatusCode::OK,
            &[("content-type", "application/json".into())],
            Body::from("{}"),
        )),
        Route::Catalog => listing::catalog(registry, &query).await,
        Route::Tags { name } => listing::tags(registry, &name, &query).await,
        Route::Referrers { name, digest } => {
            listing::referrers(registry, &name, &digest, &query).await
        }
        Route::Manifest { name, reference } => match *method {
            Method::PUT => {
                manifests::put(registry, &name, &reference, headers, body, context.budget).await
            }
            Method::DELETE => manifests::delete(registry, &name, &reference).await,
            _ => manifests::get(registry, &name, &reference, headers, method == Method::GET).await,
        },
        Route::Blob { name, digest } => match *method {
            Method::DELETE => blobs::delete(registry, &name, &digest).await,
            _ => {
                let with_body = method == Method::GET;
                blobs::get(registry, &name, &digest, headers, with_body, context.outbox).await
            }
        },
        Route::StartUpload { name } => {
            uploads::start(registry, &name, &query, headers, body, context.client).await
        }
        Route::Upload { name, id } => match *method {
            Method::PATCH => uploads::patch(registry, &name, &id, headers, body).await,
            Method::PUT => uploads::finish(registry, &name, &id, &query, headers, body).await,
            Method::DELETE => uploads::cancel(registry, &name, &id).await,
            _ => uploads::status(registry, &name, &id).await,
        },
    }
}

//! The HTTP front of berth.
//!
//! Every `/v2/...` request (and `/healthz`, `/readyz`, `/metrics`, `/token`)
//! goes to one handler that answers a browser's CORS preflight, or parses
//! `(method, path)` into a [`route::Route`], authorizes it when auth is on
//! (`auth`: who asks, and whether the route's need is met), calls one
//! [`Registry`] operation and renders the result; then it counts it in the
//! metrics. Status codes, headers and the error body live here and nowhere
//! else; the rules of the spec live in `berth-registry`.
#![forbid(unsafe_code)]

pub mod admin_socket;
pub mod api_route;
mod auth;
mod budget;
mod caller;
mod connections;
pub mod cors;
mod counted_body;
mod error;
mod handlers;
pub mod metrics;
mod operations;
pub mod range_header;
mod request;
pub mod route;
mod sendfile;
mod serve;
mod timeouts;
pub mod tls;
mod ui;

pub use budget::MemoryBudget;
pub use caller::Caller;
pub use cors::{CorsError, CorsPolicy, CorsSettings};
pub use operations::Operations;
pub use serve::{serve, serve_with, Scheme, ServeOptions};
pub use timeouts::Timeouts;
pub use tls::{TlsError, TlsSettings};

use auth::need::Requirement;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use berth_registry::Registry;
use error::ApiError;
use route::{Endpoint, Route};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// The application: OCI distribution under `/v2/`, with fresh metrics
/// readable from loopback only, CORS off.
pub fn router(registry: Arc<Registry>) -> Router {
    let metrics = Arc::new(metrics::Metrics::new());
    router_with(
        registry,
        Operations::new(metrics, false),
        CorsPolicy::default(),
    )
}

/// The application with the given operations state (its metrics shared
/// with the accept loop, which counts connections), answering browsers
/// from the origins `cors` allows.
pub fn router_with(registry: Arc<Registry>, operations: Operations, cors: CorsPolicy) -> Router {
    router_with_auth(registry, operations, cors, None)
}

/// [`router_with`], and with `auth` every request but a CORS preflight,
/// `/healthz` and `/readyz` is authorized before it is handled.
pub fn router_with_auth(
    registry: Arc<Registry>,
    operations: Operations,
    cors: CorsPolicy,
    auth: Option<Arc<berth_auth::Auth>>,
) -> Router {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .route("/healthz", any(dispatch))
        .route("/readyz", any(dispatch))
        .route("/metrics", any(dispatch))
        .route("/token", any(dispatch))
        .route("/api/v1/{*rest}", any(dispatch))
        .route("/", any(ui_page))
        .route("/ui", any(ui_page))
        .route("/ui/", any(ui_page))
        .route("/ui/{*rest}", any(ui_page))
        .fallback(|| async { ApiError::NotFound })
        .with_state(Arc::new(App {
            registry,
            operations,
            cors,
            ui: ui::UiState::default(),
            auth,
            tokens: auth::token_cache::TokenCache::default(),
        }))
}

/// What every request may use.
struct App {
    registry: Arc<Registry>,
    operations: Operations,
    cors: CorsPolicy,
    ui: ui::UiState,
    /// Who may do what; `None`: everyone everything.
    auth: Option<Arc<berth_auth::Auth>>,
    /// Bearer tokens already verified.
    tokens: auth::token_cache::TokenCache,
}

async fn dispatch(State(app): State<Arc<App>>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let has_body = request::has_body(headers);
    let parsed = route::parse(method, uri.path());
    let endpoint = parsed.as_ref().map_or(Endpoint::Unmatched, Route::endpoint);
    let cors_origin = app.cors.allowed_origin(headers);
    let preflight = cors_origin.filter(|_| CorsPolicy::is_preflight(method));
    let mut response = match preflight {
        // Before any other processing: a browser's preflight carries no credentials.
        Some(origin) => {
            let mut response = axum::http::StatusCode::NO_CONTENT.into_response();
            *response.headers_mut() = app.cors.preflight_headers(origin);
            response
        }
        None => route_and_handle(&app, parsed, &parts, body).await,
    };
    response
        .headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    if let (Some(origin), None) = (cors_origin, preflight) {
        app.cors.decorate(response.headers_mut(), origin);
    }
    // Also on answers to other or no origins: they too depend on Origin.
    app.cors.add_vary(response.headers_mut());
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        // The body may be unread: say so rather than leave the client guessing.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let elapsed = started.elapsed();
    count(
        &app.operations.metrics,
        method,
        endpoint,
        &response,
        elapsed,
    );
    log_request(method, uri.path(), &mut response, elapsed);
    response
}

/// A page of the web UI (`/` and `/ui` redirect to `/ui/`); with auth on,
/// also the login and logout forms.
async fn ui_page(State(app): State<Arc<App>>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let registry = &app.registry;
    let attempt = ui::login::Attempt {
        method,
        uri,
        headers,
        client,
        tls: matches!(parts.extensions.get::<Scheme>(), Some(Scheme::Https)),
    };
    let mut response = match &app.auth {
        None => {
            ui::answer(
                registry,
                &app.ui,
                method,
                uri,
                headers,
                (&Caller::unrestricted(), client),
            )
            .await
        }
        Some(auth) if uri.path() == ui::routes::LOGIN => {
            let context = ui::context(registry, headers, &Caller::unrestricted());
            ui::login::login(auth, &context, attempt, body).await
        }
        Some(_) if uri.path() == ui::routes::LOGOUT => {
            let context = ui::context(registry, headers, &Caller::unrestricted());
            ui::login::logout(&context, attempt)
        }
        Some(auth) => match auth::identify_browser(auth, &app.tokens, headers, client).await {
            Ok(caller) => {
                ui::answer(registry, &app.ui, method, uri, headers, (&caller, client)).await
            }
            Err(refused) => refused.into_response(),
        },
    };
    let elapsed = started.elapsed();
    count(
        &app.operations.metrics,
        method,
        Endpoint::Ui,
        &response,
        elapsed,
    );
    log_request(method, uri.path(), &mut response, elapsed);
    response
}

/// Runs the handler of a parsed route; a route that did not parse becomes its error.
async fn route_and_handle(
    app: &App,
    parsed: Result<Route, route::RouteError>,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Response {
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    match parsed {
        Ok(mut route) => {
            let mut query = request::Query::parse(uri.query());
            // The pull-through cache's name for the repository (containerd's
            // `?ns=`, Docker Hub's `library/`), before anything reads it:
            // rights, handlers and logs all see the local name.
            if let Some(name) = route.repository_mut() {
                match app.registry.local_name(name, query.get("ns")) {
                    Ok(local) => *name = local,
                    Err(e) => return ApiError::from(e).into_response(),
                }
            }
            // What `serve` attached to the request; absent when the router
            // runs without it (in-process tests).
            let client = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip());
            let local_admin = parts.extensions.get::<admin_socket::LocalAdmin>().is_some();
            let caller = match &app.auth {
                // The socket file's mode admitted the caller: nothing to check.
                _ if local_admin => Caller::local_admin(),
                None => Caller::unrestricted(),
                Some(auth) => {
                    let asking = auth::Asking {
                        tokens: &app.tokens,
                        route: &route,
                        method,
                        query: &query,
                        headers,
                        client,
                        https: matches!(parts.extensions.get::<Scheme>(), Some(Scheme::Https))
                            || auth::challenge::forwarded_https(headers),
                    };
                    let admitted = match auth::authorize(auth, &asking).await {
                        Ok(admitted) => admitted,
                        Err(refused) => return refused.into_response(),
                    };
                    if admitted.drop_mount {
                        query.remove("mount");
                    }
                    admitted.caller
                }
            };
            // With auth on, the authorize step already applied this rule;
            // with auth off it is the only check: loopback or the socket.
            if auth::need::of(&route, method, &query) == Requirement::Admin
                && !caller.may_administer(client)
            {
                return ApiError::AdminDenied.into_response();
            }
            let context = RequestContext {
                outbox: parts.extensions.get::<sendfile::Outbox>(),
                budget: parts.extensions.get::<MemoryBudget>(),
                client,
                caller: &caller,
            };
            handle(app, route, method, uri, &query, headers, body, context).await
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
    .unwrap_or_else(IntoResponse::into_response)
}

/// The one log line of a request; an error's cause is logged here only.
fn log_request(method: &Method, path: &str, response: &mut Response, elapsed: std::time::Duration) {
    let status = response.status();
    let cause = response.extensions_mut().remove::<error::Cause>();
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

/// Counts an answered request in the metrics; a blob GET's body by its
/// Content-Length (what berth set out to send, by sendfile or not).
fn count(
    metrics: &metrics::Metrics,
    method: &Method,
    endpoint: Endpoint,
    response: &Response,
    elapsed: std::time::Duration,
) {
    let status = response.status();
    metrics.observe(method, endpoint, status, elapsed);
    if endpoint == Endpoint::Blob
        && method == Method::GET
        && matches!(
            status,
            axum::http::StatusCode::OK | axum::http::StatusCode::PARTIAL_CONTENT
        )
    {
        if let Some(bytes) = request::content_length(response.headers()) {
            metrics.count_pulled(bytes);
        }
    }
}

/// What the connection provides a request beyond the HTTP message; absent
/// when the router runs without `serve` (in-process tests).
#[derive(Clone, Copy)]
struct RequestContext<'a> {
    outbox: Option<&'a sendfile::Outbox>,
    budget: Option<&'a MemoryBudget>,
    /// Whom per-client caps count this request against.
    client: Option<IpAddr>,
    /// Who asked, as the authorize step found.
    caller: &'a Caller,
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    app: &App,
    route: Route,
    method: &Method,
    uri: &Uri,
    query: &request::Query,
    headers: &HeaderMap,
    body: Body,
    context: RequestContext<'_>,
) -> Result<Response, ApiError> {
    use handlers::{api, blobs, listing, manifests, operations, uploads};
    let registry = &*app.registry;
    let body = match route {
        Route::StartUpload { .. } | Route::Upload { .. } => {
            counted_body::counted(body, app.operations.metrics.pushed().clone())
        }
        _ => body,
    };
    match route {
        Route::Healthz => Ok(operations::healthz(method == Method::GET)),
        Route::Readyz => Ok(operations::readyz(registry, method == Method::GET).await),
        Route::Metrics => {
            // With auth on, the authorize step already let only admins and loopback in.
            let allowed = context.caller.auth_enabled()
                || context.caller.is_local_admin()
                || app.operations.may_read_metrics(context.client);
            if let Some(auth) = &app.auth {
                app.operations
                    .metrics
                    .sync_bcrypt_verifications(auth.bcrypt_verifications());
            }
            operations::metrics(registry, &app.operations, allowed).await
        }
        Route::Token => match &app.auth {
            Some(auth) if auth.token_service().is_some() => {
                auth::token_endpoint::answer(
                    auth,
                    method,
                    uri.query(),
                    headers,
                    body,
                    context.client,
                )
                .await
            }
            _ => Err(ApiError::NotFound),
        },
        Route::Base => Ok(handlers::respond(
            axum::http::StatusCode::OK,
            &[("content-type", "application/json".into())],
            Body::from("{}"),
        )),
        Route::Api(api_route::ApiRoute::Gc) => {
            handlers::gc::handle(&app.registry, method, query, headers).await
        }
        Route::Api(route) => api::handle(registry, route, query, context.caller).await,
        Route::Catalog => listing::catalog(registry, query, context.caller).await,
        Route::Tags { name } => listing::tags(registry, &name, query).await,
        Route::Referrers { name, digest } => {
            listing::referrers(registry, &name, &digest, query).await
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
            uploads::start(registry, &name, query, headers, body, context.client).await
        }
        Route::Upload { name, id } => match *method {
            Method::PATCH => uploads::patch(registry, &name, &id, headers, body).await,
            Method::PUT => uploads::finish(registry, &name, &id, query, headers, body).await,
            Method::DELETE => uploads::cancel(registry, &name, &id).await,
            _ => uploads::status(registry, &name, &id).await,
        },
    }
}

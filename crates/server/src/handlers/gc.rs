//! `/api/v1/gc`: `GET` the collector's state and what it could reclaim;
//! `POST ?dry_run=&grace=` a pass now, its progress streamed as NDJSON:
//! `{"phase":"blobs","total":N}`, `{"advance":n}`, ..., then a last line
//! `{"report":{...}}` or `{"error":"..."}`.
//!
//! Who may (`Requirement::Admin`, checked before this is called): an admin
//! with auth on, with auth off a loopback client, and the admin socket.

use super::respond;
use crate::error::ApiError;
use crate::request::Query;
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use berth_registry::gc::{GcProgress, GcReport, GcRequest, GcStatus, Reclaimable};
use berth_registry::{Error, Registry};
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::mpsc;

const NDJSON: &str = "application/x-ndjson";

/// What a pass asked for from another site's page is told.
const CROSS_SITE: &str = "a GC pass cannot be started from another site's page";

pub async fn handle(
    registry: &Arc<Registry>,
    method: &Method,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if *method == Method::POST {
        // A browser posts across sites without asking (no preflight for a
        // bare POST): any page the operator visits could start a pass with
        // `grace=0s` on a loopback registry without auth.
        if !crate::ui::csrf::is_same_origin(headers) {
            return Err(ApiError::Denied(CROSS_SITE.into()));
        }
        Ok(run(registry.clone(), request_of(query)?))
    } else {
        status(registry, *method == Method::GET).await
    }
}

/// `?dry_run=true&grace=90s`; a value that does not parse is a client error.
pub fn request_of(query: &Query) -> Result<GcRequest, ApiError> {
    let dry_run = match query.get("dry_run") {
        None | Some("false" | "0" | "") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(Error::Unsupported(format!("dry_run={other} is not true or false")).into())
        }
    };
    let grace = query
        .get("grace")
        .map(|g| {
            berth_registry::units::parse_duration(g)
                .map_err(|e| ApiError::from(Error::Unsupported(format!("grace: {e}"))))
        })
        .transpose()?;
    Ok(GcRequest { dry_run, grace })
}

#[derive(Serialize)]
struct StatusBody {
    #[serde(flatten)]
    status: GcStatus,
    /// What could be reclaimed once grace passes.
    reclaimable: Reclaimable,
}

async fn status(registry: &Registry, with_body: bool) -> Result<Response, ApiError> {
    let body = StatusBody {
        status: registry.gc_status(),
        reclaimable: registry.reclaimable().await?,
    };
    let text = serde_json::to_string(&body)
        .map_err(|e| Error::Storage(format!("encoding the GC status: {e}")))?;
    Ok(respond(
        StatusCode::OK,
        &[("content-type", "application/json".into())],
        if with_body {
            Body::from(text)
        } else {
            Body::empty()
        },
    ))
}

/// Starts a pass and answers at once with its progress as it happens. The
/// pass runs in a task of its own: a client that goes away does not cut a
/// pass short (each of its steps is safe to stop after, but finishing is
/// what the operator asked for).
fn run(registry: Arc<Registry>, request: GcRequest) -> Response {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let progress = Lines(sender.clone());
        let last = match registry.collect_garbage(&request, &progress).await {
            Ok(report) => Line::Report(Box::new(report)),
            Err(e) => {
                tracing::error!(error = %e, "GC pass failed");
                Line::Error(e.to_string())
            }
        };
        let _ = sender.send(last);
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let first = receiver.recv().await?;
        let text = encode_available(first, &mut receiver);
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(text)),
            receiver,
        ))
    });
    respond(
        StatusCode::OK,
        &[
            ("content-type", NDJSON.into()),
            ("cache-control", "no-store".into()),
        ],
        Body::from_stream(stream),
    )
}

/// One event of a pass, one NDJSON line.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Line {
    Phase { phase: String, total: u64 },
    Advance { advance: u64 },
    Report(Box<GcReport>),
    Error(String),
}

impl Line {
    fn json(&self) -> String {
        let value = match self {
            Line::Report(report) => serde_json::json!({ "report": report }),
            Line::Error(message) => serde_json::json!({ "error": message }),
            other => serde_json::to_value(other).unwrap_or_default(),
        };
        let mut text = value.to_string();
        text.push('\n');
        text
    }
}

/// `first` and whatever else is already queued, as NDJSON; consecutive
/// advances become one line, so a pass over many blobs sends few lines.
fn encode_available(first: Line, receiver: &mut mpsc::UnboundedReceiver<Line>) -> String {
    let mut text = String::new();
    let mut advanced = 0u64;
    let mut next = Some(first);
    while let Some(line) = next.take() {
        match line {
            Line::Advance { advance } => advanced += advance,
            other => {
                if advanced > 0 {
                    text.push_str(&Line::Advance { advance: advanced }.json());
                    advanced = 0;
                }
                text.push_str(&other.json());
            }
        }
        next = receiver.try_recv().ok();
    }
    if advanced > 0 {
        text.push_str(&Line::Advance { advance: advanced }.json());
    }
    text
}

/// The pass's progress, queued for the response body.
struct Lines(mpsc::UnboundedSender<Line>);

impl GcProgress for Lines {
    fn phase(&self, name: &str, total: u64) {
        let _ = self.0.send(Line::Phase {
            phase: name.to_string(),
            total,
        });
    }

    fn advance(&self, n: u64) {
        let _ = self.0.send(Line::Advance { advance: n });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin_socket::LocalAdmin;
    use crate::metrics::Metrics;
    use crate::{router_with_auth, CorsPolicy, Operations};
    use axum::extract::ConnectInfo;
    use axum::http::Request;
    use berth_registry::storage::fs::FsBlobStore;
    use berth_registry::storage::sqlite::SqliteMetaStore;
    use berth_registry::RegistryOptions;
    use std::net::SocketAddr;

    const FAR: &str = "192.0.2.7:40000";
    const NEAR: &str = "127.0.0.1:40000";

    fn app(dir: &std::path::Path, auth: Option<Arc<berth_auth::Auth>>) -> axum::Router {
        let registry = Arc::new(Registry::new(
            Arc::new(FsBlobStore::open(dir).unwrap()),
            Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
            RegistryOptions::default(),
        ));
        router_with_auth(
            registry,
            Operations::new(Arc::new(Metrics::new()), false),
            CorsPolicy::default(),
            auth,
        )
    }

    /// Auth with an admin and a user who may only pull; sessions signed.
    fn auth(dir: &std::path::Path) -> Arc<berth_auth::Auth> {
        let config = crate::handlers::operations::tests::auth_config(dir);
        let key = berth_auth::SigningKey::generate().unwrap();
        Arc::new(berth_auth::Auth::new(config).unwrap().with_session_key(key))
    }

    fn basic(user: &str) -> String {
        use base64::Engine;
        let pair = format!("{user}:pw");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Where a request comes from: a TCP client's address, or the admin socket.
    #[derive(Clone, Copy)]
    enum From {
        Address(&'static str),
        Socket,
    }

    async fn send(
        app: &axum::Router,
        method: Method,
        path: &str,
        from: From,
        headers: &[(&str, String)],
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        match from {
            From::Address(addr) => {
                let addr: SocketAddr = addr.parse().unwrap();
                request.extensions_mut().insert(ConnectInfo(addr));
            }
            From::Socket => {
                request.extensions_mut().insert(LocalAdmin);
            }
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

    /// The last line of an NDJSON answer, parsed.
    fn last_line(body: &str) -> serde_json::Value {
        let line = body.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    #[tokio::test]
    async fn without_auth_loopback_and_the_socket_may_collect_and_others_are_denied() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), None);
        for method in [Method::POST, Method::GET] {
            let (status, body) =
                send(&app, method.clone(), "/api/v1/gc", From::Address(FAR), &[]).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {body}");
            let errors: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(errors["errors"][0]["code"], "DENIED", "{body}");
        }
        for from in [From::Address(NEAR), From::Address("[::1]:1"), From::Socket] {
            let (status, body) =
                send(&app, Method::POST, "/api/v1/gc?dry_run=true", from, &[]).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let report = &last_line(&body)["report"];
            assert_eq!(report["dry_run"], true, "{body}");
            let (status, body) = send(&app, Method::GET, "/api/v1/gc", from, &[]).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let state: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(state["reclaimable"]["bytes"].is_u64(), "{body}");
            assert_eq!(state["last"]["dry_run"], true, "{body}");
        }
        let (status, body) = send(
            &app,
            Method::POST,
            "/api/v1/gc?grace=soon",
            From::Address(NEAR),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        // A page of another site, posting through the operator's browser.
        let near = From::Address(NEAR);
        for header in [
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://evil.example"),
        ] {
            let headers = [(header.0, header.1.to_string())];
            let (status, body) =
                send(&app, Method::POST, "/api/v1/gc?grace=0s", near, &headers).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{header:?}: {body}");
            assert!(body.contains("another site"), "{body}");
        }
        let headers = [("sec-fetch-site", "cross-site".to_string())];
        let (status, _) = send(&app, Method::GET, "/api/v1/gc", near, &headers).await;
        assert_eq!(status, StatusCode::OK, "reading the state changes nothing");
    }

    #[tokio::test]
    async fn with_auth_only_admins_and_the_socket_may_collect_wherever_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path());
        let app = app(dir.path(), Some(auth.clone()));
        let admin = [("authorization", basic("admin"))];
        let puller = [("authorization", basic("puller"))];
        for method in [Method::POST, Method::GET] {
            let path = "/api/v1/gc";
            let (status, _) = send(&app, method.clone(), path, From::Address(NEAR), &[]).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method}: loopback is no login"
            );
            let (status, body) =
                send(&app, method.clone(), path, From::Address(FAR), &puller).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {body}");
            assert!(body.contains("DENIED"), "{body}");
            let (status, body) = send(&app, method.clone(), path, From::Address(FAR), &admin).await;
            assert_eq!(status, StatusCode::OK, "{method} {body}");
            let (status, body) = send(&app, method.clone(), path, From::Socket, &[]).await;
            assert_eq!(status, StatusCode::OK, "{method} {body}");
        }
        // An admin's UI session reads the state but cannot start a pass: a
        // cookie is sent along with whatever another site's page asks.
        let session = auth
            .issue_session(&berth_auth::Identity::user("admin"))
            .unwrap();
        let cookie = [("cookie", format!("berth_session={}", session.token))];
        let (status, body) =
            send(&app, Method::GET, "/api/v1/gc", From::Address(FAR), &cookie).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = send(
            &app,
            Method::POST,
            "/api/v1/gc",
            From::Address(FAR),
            &cookie,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn the_query_says_dry_run_and_grace() {
        let request = request_of(&Query::parse(Some("dry_run=true&grace=90s"))).unwrap();
        assert!(request.dry_run);
        assert_eq!(request.grace, Some(std::time::Duration::from_secs(90)));
        let request = request_of(&Query::parse(None)).unwrap();
        assert!(!request.dry_run);
        assert_eq!(request.grace, None);
        for bad in ["dry_run=yes", "grace=soon", "grace=-1s"] {
            assert!(request_of(&Query::parse(Some(bad))).is_err(), "{bad}");
        }
    }

    #[test]
    fn queued_advances_become_one_line_between_phases() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let progress = Lines(sender);
        progress.advance(2);
        progress.advance(3);
        progress.phase("blobs", 10);
        progress.advance(1);
        let first = receiver.try_recv().unwrap();
        let text = encode_available(first, &mut receiver);
        assert_eq!(
            text,
            "{\"advance\":5}\n{\"phase\":\"blobs\",\"total\":10}\n{\"advance\":1}\n"
        );
    }

    #[test]
    fn the_last_line_is_a_report_or_an_error() {
        let report = Line::Report(Box::default()).json();
        let value: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(value["report"]["blobs_removed"], 0, "{report}");
        assert!(report.ends_with('\n'));
        assert_eq!(Line::Error("no".into()).json(), "{\"error\":\"no\"}\n");
    }
}

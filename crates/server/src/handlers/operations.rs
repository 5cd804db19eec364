//! `/healthz`, `/readyz` and `/metrics`.

use super::respond;
use crate::error::ApiError;
use crate::metrics::{CacheFigures, GcFigures, UpstreamFigures};
use crate::operations::Operations;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use berth_registry::Registry;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn body_if(with_body: bool, text: String) -> Body {
    if with_body {
        Body::from(text)
    } else {
        Body::empty()
    }
}

/// The process answers: nothing else is asked.
pub fn healthz(with_body: bool) -> Response {
    respond(
        StatusCode::OK,
        &[("content-type", "text/plain; charset=utf-8".into())],
        body_if(with_body, "ok\n".into()),
    )
}

/// 200 when both stores answer their check, else 503 naming which did not;
/// the causes (paths, OS errors) go to the log, not to anonymous callers.
pub async fn readyz(registry: &Registry, with_body: bool) -> Response {
    let readiness = registry.readiness().await;
    let word = |store: &str, result: &berth_registry::Result<()>| match result {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(store, error = %e, "not ready");
            "failed"
        }
    };
    let body = serde_json::json!({
        "ready": readiness.is_ready(),
        "blob_store": word("blob store", &readiness.blobs),
        "metadata_store": word("metadata store", &readiness.meta),
    });
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond(
        status,
        &[("content-type", "application/json".into())],
        body_if(with_body, body.to_string()),
    )
}

/// The metrics, to whom the caller found `allowed` (see [`Operations::may_read_metrics`]).
pub async fn metrics(
    registry: &Registry,
    operations: &Operations,
    allowed: bool,
) -> Result<Response, ApiError> {
    if !allowed {
        return Err(ApiError::MetricsDenied);
    }
    // A failed scan leaves the store gauges at their last values; the
    // request counters are still worth serving.
    let stats = match operations.stats(registry).await {
        Ok(stats) => Some(stats),
        Err(e) => {
            tracing::warn!(error = %e, "reading store totals for /metrics failed");
            None
        }
    };
    let reclaimable = match operations.reclaimable(registry).await {
        Ok(reclaimable) => Some(reclaimable.bytes),
        Err(e) => {
            tracing::warn!(error = %e, "reading what GC could reclaim for /metrics failed");
            None
        }
    };
    operations
        .metrics
        .show_gc(&GcFigures::new(&registry.gc_status(), reclaimable));
    match operations.quota_usage(registry).await {
        Ok(uses) => operations.metrics.show_quotas(&uses),
        Err(e) => tracing::warn!(error = %e, "reading quota use for /metrics failed"),
    }
    if let Some(figures) = cache_figures(registry).await {
        operations.metrics.show_cache(&figures);
    }
    let text = operations
        .metrics
        .render(stats.as_ref())
        .map_err(|e| berth_registry::Error::Storage(format!("rendering metrics: {e}")))?;
    Ok(respond(
        StatusCode::OK,
        &[("content-type", OPENMETRICS.into())],
        Body::from(text),
    ))
}

/// The pull-through cache's counters and size; `None` without a cache.
async fn cache_figures(registry: &Registry) -> Option<CacheFigures> {
    registry.pull_through()?;
    let cached_bytes = match registry.cached_bytes().await {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "reading the cache's size for /metrics failed");
            None
        }
    };
    let upstreams = registry
        .pull_through_stats()
        .into_iter()
        .map(|s| UpstreamFigures {
            upstream: s.upstream,
            hits: s.hits,
            misses: s.misses,
            stale: s.stale,
            errors: s.errors,
            fetched_bytes: s.fetched_bytes,
        })
        .collect();
    Some(CacheFigures {
        upstreams,
        cached_bytes,
        max_bytes: registry.cache_max_bytes(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::metrics::Metrics;
    use crate::{router_with, CorsPolicy, Operations};
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use berth_registry::storage::fs::FsBlobStore;
    use berth_registry::storage::sqlite::SqliteMetaStore;
    use berth_registry::{Registry, RegistryOptions};
    use std::net::SocketAddr;
    use std::sync::Arc;

    fn registry(dir: &std::path::Path) -> Arc<Registry> {
        Arc::new(Registry::new(
            Arc::new(FsBlobStore::open(dir).unwrap()),
            Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
            RegistryOptions::default(),
        ))
    }

    async fn get(app: &axum::Router, path: &str, client: &str) -> (StatusCode, String) {
        get_as(app, path, client, None).await
    }

    async fn get_as(
        app: &axum::Router,
        path: &str,
        client: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = Request::get(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let client: SocketAddr = client.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(client));
        let response = tower::ServiceExt::oneshot(app.clone(), request)
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_answer_a_client_off_loopback_denied_unless_public() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let private = router_with(
            registry.clone(),
            Operations::new(Arc::new(Metrics::new()), false),
            CorsPolicy::default(),
        );
        let (status, body) = get(&private, "/metrics", "192.0.2.7:40000").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("\"DENIED\""), "{body}");
        let (status, body) = get(&private, "/metrics", "127.0.0.1:40000").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("berth_http_requests_total"), "{body}");
        // The refusal above was counted, under its route template.
        assert!(
            body.contains(
                r#"berth_http_requests_total{method="GET",route="/metrics",status="403"} 1"#
            ),
            "{body}"
        );
        let public = router_with(
            registry,
            Operations::new(Arc::new(Metrics::new()), true),
            CorsPolicy::default(),
        );
        let (status, _) = get(&public, "/metrics", "192.0.2.7:40000").await;
        assert_eq!(status, StatusCode::OK);
    }

    /// Auth with an admin and a user who may only pull.
    pub(crate) fn auth(dir: &std::path::Path) -> Arc<berth_auth::Auth> {
        Arc::new(berth_auth::Auth::new(auth_config(dir)).unwrap())
    }

    /// The configuration of [`auth`]: its users (password `pw`) and rules.
    pub(crate) fn auth_config(dir: &std::path::Path) -> berth_auth::AuthConfig {
        let mut users = berth_auth::Htpasswd::default();
        users.set_password("admin", "pw", 4).unwrap();
        users.set_password("puller", "pw", 4).unwrap();
        let path = dir.join("htpasswd");
        users.write_atomic(&path).unwrap();
        let rules: berth_auth::AccessRules = toml::from_str(
            r#"
            [[access]]
            who = ["admin"]
            repositories = ["*"]
            actions = ["*"]
            [[access]]
            who = ["puller"]
            repositories = ["*"]
            actions = ["pull"]
            "#,
        )
        .unwrap();
        let mut config = berth_auth::AuthConfig::basic(path);
        config.rules = rules;
        config
    }

    pub(crate) fn basic(user: &str) -> String {
        use base64::Engine;
        let pair = format!("{user}:pw");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    #[tokio::test]
    async fn with_auth_metrics_off_loopback_need_admin_even_when_public() {
        let dir = tempfile::tempdir().unwrap();
        for public in [false, true] {
            let app = crate::router_with_auth(
                registry(dir.path()),
                Operations::new(Arc::new(Metrics::new()), public),
                CorsPolicy::default(),
                Some(auth(dir.path())),
            );
            let far = "192.0.2.7:40000";
            let (status, _) = get_as(&app, "/metrics", far, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "public={public}");
            let (status, body) = get_as(&app, "/metrics", far, Some(&basic("puller"))).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "public={public}");
            assert!(body.contains("DENIED"), "{body}");
            let (status, body) = get_as(&app, "/metrics", far, Some(&basic("admin"))).await;
            assert_eq!(status, StatusCode::OK, "public={public}");
            assert!(
                body.contains("berth_auth_bcrypt_verifications_total"),
                "{body}"
            );
            // Loopback needs no login, as without auth.
            let (status, _) = get(&app, "/metrics", "127.0.0.1:40000").await;
            assert_eq!(status, StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn probes_are_anonymous_and_readyz_names_the_failing_store() {
        let dir = tempfile::tempdir().unwrap();
        let app = router_with(
            registry(dir.path()),
            Operations::new(Arc::new(Metrics::new()), false),
            CorsPolicy::default(),
        );
        assert_eq!(get(&app, "/healthz", "192.0.2.7:1").await.0, StatusCode::OK);
        let (status, body) = get(&app, "/readyz", "192.0.2.7:1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        std::fs::rename(dir.path().join("blobs"), dir.path().join("gone")).unwrap();
        let (status, body) = get(&app, "/readyz", "192.0.2.7:1").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["blob_store"], "failed");
        assert_eq!(body["metadata_store"], "ok");
        assert!(!body.to_string().contains("gone"), "no paths: {body}");
    }
}

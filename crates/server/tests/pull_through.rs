//! The pull-through cache through the HTTP layer, in process, over the
//! registry's `FakeUpstream`: the headers of hits, misses and stale
//! answers, and how upstream failures reach clients (429 with
//! Retry-After, 502, DENIED). Real upstreams are the conformance suite's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use berth_registry::pull_through::{PullThrough, UpstreamRoute, UpstreamRoutes};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::testing::{FakeCall, FakeUpstream};
use berth_registry::{Registry, RegistryOptions};
use std::sync::Arc;
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct Setup {
    app: axum::Router,
    upstream: Arc<FakeUpstream>,
    manifest: Vec<u8>,
    _dir: tempfile::TempDir,
}

/// A registry caching `fake` (prefix `fake`) with `freshness`, whose
/// upstream holds `team/app:v1`.
fn setup(freshness: Duration) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Arc::new(FakeUpstream::new());
    let config = upstream.add_blob("team/app", &b"{}"[..]);
    let layer = upstream.add_blob("team/app", vec![7u8; 1000]);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.to_string(), "size": 1000}],
    }))
    .unwrap();
    upstream.add_manifest("team/app", Some("v1"), OCI_MANIFEST, manifest.clone());
    let routes = UpstreamRoutes::new(
        vec![UpstreamRoute {
            name: "fake".into(),
            prefix: "fake".into(),
            docker_hub: false,
            upstream: upstream.clone(),
        }],
        None,
    );
    let registry = Registry::new(
        Arc::new(FsBlobStore::open(dir.path()).unwrap()),
        Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap()),
        RegistryOptions::default(),
    )
    .with_pull_through(PullThrough::new(routes, freshness, None));
    Setup {
        app: berth_server::router(Arc::new(registry)),
        upstream,
        manifest,
        _dir: dir,
    }
}

async fn send(app: &axum::Router, method: Method, path: &str) -> Response {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("accept", OCI_MANIFEST)
        .body(Body::empty())
        .unwrap();
    tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn json(response: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_head_then_gets_by_ns_say_miss_then_hit_and_a_fresh_tag_is_not_asked_upstream() {
    let s = setup(Duration::from_secs(3600));
    let path = "/v2/team/app/manifests/v1?ns=fake";
    let head = send(&s.app, Method::HEAD, path).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(header(&head, "berth-cache").is_some());
    let get = send(&s.app, Method::GET, path).await;
    assert_eq!(get.status(), StatusCode::OK);
    assert!(matches!(header(&get, "berth-cache"), Some("hit" | "miss")));
    let asked = s.upstream.calls(FakeCall::Manifest) + s.upstream.calls(FakeCall::ManifestDigest);
    let again = send(&s.app, Method::GET, "/v2/fake/team/app/manifests/v1").await;
    assert_eq!(header(&again, "berth-cache"), Some("hit"));
    assert_eq!(header(&again, "warning"), None);
    let body = axum::body::to_bytes(again.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(body.as_ref(), s.manifest);
    assert_eq!(
        s.upstream.calls(FakeCall::Manifest) + s.upstream.calls(FakeCall::ManifestDigest),
        asked,
        "within the freshness interval the upstream is not asked"
    );
    // A name no upstream claims is local: no cache header, no upstream call.
    let before = s.upstream.total_calls();
    let local = send(
        &s.app,
        Method::GET,
        "/v2/team/app/manifests/v1?ns=localhost:5000",
    )
    .await;
    assert_eq!(local.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&local, "berth-cache"), None);
    assert_eq!(s.upstream.total_calls(), before);
}

#[tokio::test]
async fn a_rate_limited_upstream_is_a_429_with_retry_after_or_a_stale_copy_when_one_is_cached() {
    let s = setup(Duration::ZERO);
    s.upstream.set_rate_limited(true);
    let response = send(&s.app, Method::GET, "/v2/fake/team/app/manifests/v1").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), Some("60"));
    let body = json(response).await;
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS", "{body}");

    s.upstream.set_rate_limited(false);
    let cached = send(&s.app, Method::GET, "/v2/fake/team/app/manifests/v1").await;
    assert_eq!(header(&cached, "berth-cache"), Some("miss"));
    s.upstream.set_rate_limited(true);
    let stale = send(&s.app, Method::GET, "/v2/fake/team/app/manifests/v1").await;
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(header(&stale, "berth-cache"), Some("stale"));
    assert_eq!(
        header(&stale, "warning"),
        Some("110 - \"Response is Stale\"")
    );
}

#[tokio::test]
async fn a_manifest_whose_digest_is_not_the_upstream_s_word_is_a_502_and_nothing_is_cached() {
    let s = setup(Duration::from_secs(3600));
    s.upstream.set_wrong_manifest_digest(true);
    let response = send(&s.app, Method::GET, "/v2/fake/team/app/manifests/v1").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = json(response).await;
    assert_eq!(body["errors"][0]["code"], "UNKNOWN", "{body}");
    let catalog = json(send(&s.app, Method::GET, "/v2/_catalog").await).await;
    assert_eq!(catalog["repositories"], serde_json::json!([]), "{catalog}");
}

#[tokio::test]
async fn writes_into_a_cached_repository_are_denied_by_prefix_and_by_ns() {
    let s = setup(Duration::from_secs(3600));
    for path in [
        "/v2/fake/team/app/blobs/uploads/",
        "/v2/team/app/blobs/uploads/?ns=fake",
    ] {
        let response = send(&s.app, Method::POST, path).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body = json(response).await;
        assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
        assert_eq!(
            body["errors"][0]["message"],
            "repository fake/team/app is a cache of fake: push under another name"
        );
    }
    assert_eq!(s.upstream.total_calls(), 0);
}

#[tokio::test]
async fn a_name_too_long_under_its_upstreams_prefix_is_name_invalid_not_served_locally() {
    let s = setup(Duration::from_secs(60));
    let long = format!("team/{}", "a".repeat(250));
    let response = send(
        &s.app,
        Method::GET,
        &format!("/v2/{long}/tags/list?ns=fake"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("NAME_INVALID"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(s.upstream.total_calls(), 0);
}

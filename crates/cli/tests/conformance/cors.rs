//! CORS for browser clients: preflight `OPTIONS` and actual responses, for
//! allowed and other origins, configured by `BERTH_CORS_ALLOWED_ORIGINS` or
//! registry:2's `REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin`.

use super::harness::*;
use reqwest::Method;

const UI: &str = "http://ui.example:8080";

async fn preflight(registry: &Registry, path: &str, origin: &str) -> reqwest::Response {
    let request = registry
        .request(Method::OPTIONS, path)
        .header("origin", origin)
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "authorization");
    registry.send(request).await
}

async fn get_with_origin(registry: &Registry, path: &str, origin: &str) -> reqwest::Response {
    registry
        .send(registry.get(path).header("origin", origin))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_from_an_allowed_origin_is_answered_before_routing() {
    let registry = Registry::start_with_env(&[("BERTH_CORS_ALLOWED_ORIGINS", UI)]).await;
    for path in ["/v2/", "/v2/app/manifests/latest", "/v2/app/blobs/uploads/"] {
        let resp = preflight(&registry, path, UI).await;
        assert_eq!(resp.status(), 204, "{path}");
        assert_eq!(
            required_header(&resp, "access-control-allow-origin"),
            UI,
            "{path}"
        );
        let methods = required_header(&resp, "access-control-allow-methods");
        assert!(
            methods.contains("DELETE") && methods.contains("PUT"),
            "{methods}"
        );
        let headers = required_header(&resp, "access-control-allow-headers");
        for name in ["Authorization", "Content-Type", "Accept", "Range"] {
            assert!(headers.contains(name), "{name} in {headers}");
        }
        assert!(header(&resp, "access-control-max-age").is_some());
        assert_eq!(resp.headers().get_all("vary").iter().count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn actual_responses_to_an_allowed_origin_expose_the_registry_headers() {
    let registry = Registry::start_with_env(&[("BERTH_CORS_ALLOWED_ORIGINS", UI)]).await;
    let image = registry.push_image("app", "v1").await;
    let resp = get_with_origin(&registry, "/v2/app/manifests/v1", UI).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(required_header(&resp, "access-control-allow-origin"), UI);
    let exposed = required_header(&resp, "access-control-expose-headers");
    for name in [
        "Docker-Content-Digest",
        "Link",
        "Location",
        "WWW-Authenticate",
    ] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
    assert_eq!(
        required_header(&resp, "docker-content-digest"),
        image.digest
    );
    // Errors too: a page must be able to read why.
    let resp = get_with_origin(&registry, "/v2/app/manifests/missing", UI).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(required_header(&resp, "access-control-allow-origin"), UI);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_origins_and_unconfigured_servers_send_no_cors_headers() {
    let registry = Registry::start_with_env(&[("BERTH_CORS_ALLOWED_ORIGINS", UI)]).await;
    registry.push_image("app", "v1").await;
    let plain = Registry::start().await;
    plain.push_image("app", "v1").await;
    for (server, origin) in [(&registry, "http://evil.example"), (&plain, UI)] {
        let resp = get_with_origin(server, "/v2/app/manifests/v1", origin).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "access-control-allow-origin"), None);
        assert_eq!(header(&resp, "access-control-expose-headers"), None);
        // No preflight answer: OPTIONS is routed like any method, and refused.
        let resp = preflight(server, "/v2/app/manifests/v1", origin).await;
        assert_ne!(resp.status(), 204);
        assert_eq!(header(&resp, "access-control-allow-origin"), None);
    }
    // No Origin at all: unchanged.
    let resp = registry.send(registry.get("/v2/app/manifests/v1")).await;
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_2_header_variable_allows_origins_the_way_joxit_users_set_it() {
    let registry =
        Registry::start_with_env(&[("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", "['*']")])
            .await;
    let resp = preflight(&registry, "/v2/_catalog", "http://anywhere").await;
    assert_eq!(resp.status(), 204);
    assert_eq!(required_header(&resp, "access-control-allow-origin"), "*");
}

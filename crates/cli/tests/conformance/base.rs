//! The support check (`GET /v2/`, end-1) and the shape of error answers.

use super::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn api_root_answers_200_with_the_distribution_api_version_header() {
    let registry = Registry::start().await;
    let resp = registry.send(registry.get("/v2/")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        required_header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn error_bodies_are_json_with_code_and_message() {
    let registry = Registry::start().await;
    let missing = sha256_digest(b"never pushed");
    let resp = registry
        .send(registry.get(&format!("/v2/some/repo/blobs/{missing}")))
        .await;
    let body = assert_error(resp, 404, "BLOB_UNKNOWN").await;
    let error = &body["errors"][0];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "berth promises a human-readable message: {body}"
    );
    let keys: Vec<&String> = error.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["code", "message", "detail"].contains(&k.as_str())),
        "only code, message and detail belong in an error: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_method_an_endpoint_does_not_take_is_405_unsupported() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    for (method, path) in [
        (reqwest::Method::PUT, "/v2/app/tags/list"),
        (reqwest::Method::POST, "/v2/app/manifests/v1"),
        (reqwest::Method::PATCH, "/v2/_catalog"),
    ] {
        let resp = registry.send(registry.request(method, path)).await;
        assert_error(resp, 405, "UNSUPPORTED").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_size_that_is_not_a_number_is_400_unsupported() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    for path in ["/v2/app/tags/list?n=abc", "/v2/_catalog?n=-1"] {
        let resp = registry.send(registry.get(path)).await;
        assert_error(resp, 400, "UNSUPPORTED").await;
    }
}

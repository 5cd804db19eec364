//! Pull: `GET`/`HEAD /v2/<name>/manifests/<reference>` (end-3) and
//! `GET`/`HEAD /v2/<name>/blobs/<digest>` (end-2), with Accept negotiation and Range.

use super::harness::*;
use reqwest::Response;

/// The headers every successful manifest answer carries, GET or HEAD.
fn assert_manifest_headers(resp: &Response, media_type: &str, manifest: &[u8]) {
    let digest = sha256_digest(manifest);
    assert_eq!(resp.status(), 200, "{}", resp.url());
    assert_eq!(required_header(resp, "content-type"), media_type);
    assert_eq!(required_header(resp, "docker-content-digest"), digest);
    assert_eq!(
        required_header(resp, "content-length"),
        manifest.len().to_string()
    );
    assert_eq!(required_header(resp, "etag"), format!("\"{digest}\""));
}

fn assert_blob_headers(resp: &Response, blob: &[u8]) {
    let digest = sha256_digest(blob);
    assert_eq!(resp.status(), 200, "{}", resp.url());
    assert_eq!(
        required_header(resp, "content-length"),
        blob.len().to_string()
    );
    assert_eq!(required_header(resp, "docker-content-digest"), digest);
    assert_eq!(required_header(resp, "etag"), format!("\"{digest}\""));
    assert_eq!(
        required_header(resp, "content-type"),
        "application/octet-stream"
    );
    assert_eq!(required_header(resp, "accept-ranges"), "bytes");
}

/// A manifest whose bytes a re-serialising server would change (spacing, key order).
async fn push_oddly_formatted_manifest(registry: &Registry, repo: &str, tag: &str) -> Vec<u8> {
    let config = registry
        .push_descriptor(repo, OCI_CONFIG, &random_config())
        .await;
    let layer = registry
        .push_descriptor(repo, OCI_LAYER, &random_bytes(100))
        .await;
    let manifest = format!(
        "{{\n  \"schemaVersion\" :2,\n\t\"mediaType\": \"{OCI_MANIFEST}\",\n  \"layers\": [ {} ],\n  \"config\": {}\n}}\n\n",
        layer.json(),
        config.json()
    )
    .into_bytes();
    registry
        .push_manifest(repo, tag, OCI_MANIFEST, &manifest)
        .await;
    manifest
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_get_by_tag_returns_the_exact_bytes_pushed_with_headers() {
    let registry = Registry::start().await;
    let manifest = push_oddly_formatted_manifest(&registry, "app", "v1").await;
    let resp = registry.send(registry.get("/v2/app/manifests/v1")).await;
    assert_manifest_headers(&resp, OCI_MANIFEST, &manifest);
    assert_eq!(resp.bytes().await.unwrap(), manifest);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_get_by_digest_returns_the_exact_bytes_pushed_with_headers() {
    let registry = Registry::start().await;
    let manifest = push_oddly_formatted_manifest(&registry, "app", "v1").await;
    let digest = sha256_digest(&manifest);
    let resp = registry
        .send(registry.get(&format!("/v2/app/manifests/{digest}")))
        .await;
    assert_manifest_headers(&resp, OCI_MANIFEST, &manifest);
    assert_eq!(resp.bytes().await.unwrap(), manifest);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_head_has_the_get_headers_and_no_body() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    for reference in ["v1", image.digest.as_str()] {
        let resp = registry
            .send(registry.head(&format!("/v2/app/manifests/{reference}")))
            .await;
        assert_manifest_headers(&resp, OCI_MANIFEST, &image.manifest);
        assert!(resp.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_content_type_is_the_one_sent_on_put_not_the_body_media_type() {
    // A Docker schema2 manifest without a mediaType field: only the PUT's Content-Type names it.
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", DOCKER_CONFIG, &random_config())
        .await;
    let layer = registry
        .push_descriptor("app", DOCKER_LAYER, &random_bytes(64))
        .await;
    let manifest = ManifestBuilder::image(&config, &[layer])
        .without_media_type()
        .build();
    registry
        .push_manifest("app", "v1", DOCKER_MANIFEST, &manifest)
        .await;
    let resp = registry.send(registry.get("/v2/app/manifests/v1")).await;
    assert_manifest_headers(&resp, DOCKER_MANIFEST, &manifest);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_content_type_falls_back_to_the_body_media_type() {
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", DOCKER_CONFIG, &random_config())
        .await;
    let layer = registry
        .push_descriptor("app", DOCKER_LAYER, &random_bytes(64))
        .await;
    let manifest = ManifestBuilder::image(&config, &[layer])
        .media_type(DOCKER_MANIFEST)
        .build();
    registry.push_manifest("app", "v1", "", &manifest).await; // no Content-Type on the PUT
    let resp = registry.send(registry.get("/v2/app/manifests/v1")).await;
    assert_manifest_headers(&resp, DOCKER_MANIFEST, &manifest);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_is_served_when_accept_lists_its_type_among_others() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    // What containerd sends: several types, some with quality parameters.
    let accept = format!(
        "{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST};q=0.9, {OCI_INDEX}, {OCI_MANIFEST};q=0.8"
    );
    let resp = registry
        .send(
            registry
                .get("/v2/app/manifests/v1")
                .header("accept", accept),
        )
        .await;
    assert_manifest_headers(&resp, OCI_MANIFEST, &image.manifest);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_is_served_for_a_wildcard_accept() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let resp = registry
        .send(registry.get("/v2/app/manifests/v1").header("accept", "*/*"))
        .await;
    assert_manifest_headers(&resp, OCI_MANIFEST, &image.manifest);
    let resp = registry
        .send(
            registry
                .get("/v2/app/manifests/v1")
                .header("accept", format!("{DOCKER_MANIFEST}, */*")),
        )
        .await;
    assert_manifest_headers(&resp, OCI_MANIFEST, &image.manifest);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_is_not_served_when_accept_excludes_its_type() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let accept = format!("{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}");
    for reference in ["v1", image.digest.as_str()] {
        let resp = registry
            .send(
                registry
                    .get(&format!("/v2/app/manifests/{reference}"))
                    .header("accept", &accept),
            )
            .await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tag_and_digest_are_manifest_unknown() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    let missing = sha256_digest(b"not a manifest here");
    for reference in ["v2", missing.as_str()] {
        let resp = registry
            .send(registry.get(&format!("/v2/app/manifests/{reference}")))
            .await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
        let resp = registry
            .send(registry.head(&format!("/v2/app/manifests/{reference}")))
            .await;
        assert_eq!(resp.status(), 404, "HEAD {reference}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_in_an_unknown_repository_is_404() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    let resp = registry.send(registry.get("/v2/other/manifests/v1")).await;
    assert_error_one_of(resp, &[(404, "NAME_UNKNOWN"), (404, "MANIFEST_UNKNOWN")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_pushed_to_one_repository_is_unknown_in_another() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    registry.push_image("other", "v1").await;
    let resp = registry
        .send(registry.get(&format!("/v2/other/manifests/{}", image.digest)))
        .await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_get_returns_the_bytes_with_headers() {
    let registry = Registry::start().await;
    let blob = random_bytes(100_000);
    let digest = registry.push_blob("app", &blob).await;
    let resp = registry
        .send(registry.get(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_blob_headers(&resp, &blob);
    assert_eq!(resp.bytes().await.unwrap(), blob);
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_head_has_the_get_headers_and_no_body() {
    let registry = Registry::start().await;
    let blob = random_bytes(5000);
    let digest = registry.push_blob("app", &blob).await;
    let resp = registry
        .send(registry.head(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_blob_headers(&resp, &blob);
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_blob_is_served() {
    let registry = Registry::start().await;
    let digest = registry.push_blob("app", b"").await;
    let resp = registry
        .send(registry.get(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_blob_headers(&resp, b"");
    assert!(resp.bytes().await.unwrap().is_empty());
}

/// `GET /v2/app/blobs/<digest>` with a `Range` header.
async fn get_range(registry: &Registry, digest: &str, range: &str) -> reqwest::Response {
    registry
        .send(
            registry
                .get(&format!("/v2/app/blobs/{digest}"))
                .header("range", range),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_range_request_returns_206_with_the_exact_slice() {
    let registry = Registry::start().await;
    let blob = random_bytes(10_000);
    let digest = registry.push_blob("app", &blob).await;
    for (start, end) in [(0usize, 0usize), (100, 1099), (9000, 9999)] {
        let resp = get_range(&registry, &digest, &format!("bytes={start}-{end}")).await;
        assert_eq!(resp.status(), 206, "bytes={start}-{end}");
        assert_eq!(
            required_header(&resp, "content-range"),
            format!("bytes {start}-{end}/{}", blob.len())
        );
        assert_eq!(
            required_header(&resp, "content-length"),
            (end - start + 1).to_string()
        );
        assert_eq!(resp.bytes().await.unwrap(), blob[start..=end]);
    }
}

/// Blob bodies are sent from the file by the kernel (sendfile); requests that
/// follow each other on one kept-alive connection must each get exactly their bytes.
#[tokio::test(flavor = "multi_thread")]
async fn large_blobs_and_ranges_in_them_arrive_exactly_on_one_connection() {
    let registry = Registry::start().await;
    let blob = random_bytes((3 << 20) + 5);
    let digest = registry.push_blob("app", &blob).await;
    let other = random_bytes(1 << 20);
    let other_digest = registry.push_blob("app", &other).await;
    let url = format!("/v2/app/blobs/{digest}");
    for round in 0..2 {
        let resp = registry.send(registry.get(&url)).await;
        assert_eq!(resp.bytes().await.unwrap(), blob, "round {round}");
        let (start, end) = ((1 << 20) - 3, (2 << 20) + 7);
        let resp = get_range(&registry, &digest, &format!("bytes={start}-{end}")).await;
        assert_eq!(resp.status(), 206);
        assert_eq!(
            resp.bytes().await.unwrap(),
            blob[start..=end],
            "round {round}"
        );
        let resp = registry.send(registry.head(&url)).await;
        assert!(resp.bytes().await.unwrap().is_empty());
        let resp = registry
            .send(registry.get(&format!("/v2/app/blobs/{other_digest}")))
            .await;
        assert_eq!(resp.bytes().await.unwrap(), other, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_open_ended_range_resumes_a_download() {
    // RFC 9110 `bytes=N-`: what docker and containerd send to resume an interrupted pull.
    let registry = Registry::start().await;
    let blob = random_bytes(10_000);
    let digest = registry.push_blob("app", &blob).await;
    let resp = get_range(&registry, &digest, "bytes=4000-").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        required_header(&resp, "content-range"),
        "bytes 4000-9999/10000"
    );
    assert_eq!(resp.bytes().await.unwrap(), blob[4000..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_unsatisfiable_range_is_416() {
    let registry = Registry::start().await;
    let blob = random_bytes(1000);
    let digest = registry.push_blob("app", &blob).await;
    let resp = get_range(&registry, &digest, "bytes=1000-1999").await;
    assert_eq!(resp.status(), 416);
    // RFC 9110 §15.5.17: a 416 names the current length.
    assert_eq!(required_header(&resp, "content-range"), "bytes */1000");
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_range_berth_cannot_serve_is_416_with_the_real_size() {
    // Unparseable, multi-range and past-the-end alike: the 416 names the blob's
    // size, which is only known once the blob is found (it used to say `*/0`).
    let registry = Registry::start().await;
    let blob = random_bytes(1000);
    let digest = registry.push_blob("app", &blob).await;
    for range in ["bytes=abc", "bytes=0-1,5-6", "bytes=999999-", "items=0-1"] {
        let resp = get_range(&registry, &digest, range).await;
        assert_eq!(
            required_header(&resp, "content-range"),
            "bytes */1000",
            "{range}"
        );
        assert_error(resp, 416, "RANGE_INVALID").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_range_on_an_unknown_blob_is_404() {
    let registry = Registry::start().await;
    let digest = sha256_digest(b"never pushed");
    for range in ["bytes=0-9", "bytes=abc", "bytes=999999-"] {
        let resp = get_range(&registry, &digest, range).await;
        assert_error(resp, 404, "BLOB_UNKNOWN").await;
    }
}

/// GET answers 404 BLOB_UNKNOWN for `digest` in `repo`, and HEAD 404.
async fn assert_blob_unknown(registry: &Registry, repo: &str, digest: &str) {
    let url = format!("/v2/{repo}/blobs/{digest}");
    let resp = registry.send(registry.get(&url)).await;
    assert_error(resp, 404, "BLOB_UNKNOWN").await;
    let resp = registry.send(registry.head(&url)).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_blob_is_blob_unknown() {
    let registry = Registry::start().await;
    registry.push_blob("app", b"something").await;
    let missing = sha256_digest(b"something else");
    assert_blob_unknown(&registry, "app", &missing).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_pushed_to_another_repository_is_blob_unknown_here() {
    let registry = Registry::start().await;
    let blob = random_bytes(500);
    let digest = registry.push_blob("secret/app", &blob).await;
    registry.push_blob("public/app", b"unrelated").await;
    assert_blob_unknown(&registry, "public/app", &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_content_type_parameters_are_ignored_on_put_and_not_served() {
    // Spec: the registry SHOULD ignore parameters on the PUT's Content-Type and
    // SHOULD NOT include parameters on the GET's Content-Type.
    let registry = Registry::start().await;
    let image = registry.push_image("app", "plain").await;
    let typed = format!("{OCI_MANIFEST}; charset=utf-8");
    registry
        .push_manifest("app", "v1", &typed, &image.manifest)
        .await;
    let resp = registry.send(registry.get("/v2/app/manifests/v1")).await;
    assert_manifest_headers(&resp, OCI_MANIFEST, &image.manifest);
}

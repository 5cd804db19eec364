//! Content management: `DELETE /v2/<name>/manifests/<reference>` (end-9) and
//! `DELETE /v2/<name>/blobs/<digest>` (end-10), enabled and disabled.

use super::harness::*;
use serde_json::Value;

async fn status_of(registry: &Registry, path: &str) -> u16 {
    registry.send(registry.get(path)).await.status().as_u16()
}

async fn tags_of(registry: &Registry, repo: &str) -> Vec<Value> {
    let resp = registry
        .send(registry.get(&format!("/v2/{repo}/tags/list")))
        .await;
    if resp.status() == 404 {
        return Vec::new();
    }
    json_body(resp).await["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn catalog(registry: &Registry) -> Vec<Value> {
    let body = json_body(registry.send(registry.get("/v2/_catalog")).await).await;
    body["repositories"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_manifest_by_digest_removes_it_and_every_tag_on_it() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    registry
        .push_manifest("app", "latest", OCI_MANIFEST, &image.manifest)
        .await;
    let kept = registry.push_image("app", "other").await;

    let resp = registry
        .send(registry.delete(&format!("/v2/app/manifests/{}", image.digest)))
        .await;
    assert_eq!(resp.status(), 202);
    for reference in ["v1", "latest", image.digest.as_str()] {
        let resp = registry
            .send(registry.get(&format!("/v2/app/manifests/{reference}")))
            .await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    assert_eq!(tags_of(&registry, "app").await, ["other"]);
    assert_eq!(
        status_of(&registry, &format!("/v2/app/manifests/{}", kept.digest)).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_tag_keeps_other_tags_on_the_same_digest() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    registry
        .push_manifest("app", "latest", OCI_MANIFEST, &image.manifest)
        .await;

    let resp = registry
        .send(registry.delete("/v2/app/manifests/latest"))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = registry
        .send(registry.get("/v2/app/manifests/latest"))
        .await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    assert_eq!(status_of(&registry, "/v2/app/manifests/v1").await, 200);
    assert_eq!(
        status_of(&registry, &format!("/v2/app/manifests/{}", image.digest)).await,
        200
    );
    assert_eq!(tags_of(&registry, "app").await, ["v1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_last_tag_keeps_the_manifest_by_digest() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let resp = registry.send(registry.delete("/v2/app/manifests/v1")).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        status_of(&registry, &format!("/v2/app/manifests/{}", image.digest)).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_unknown_manifest_or_tag_is_404() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    let missing = sha256_digest(b"no such manifest");
    for reference in ["v9", missing.as_str()] {
        let resp = registry
            .send(registry.delete(&format!("/v2/app/manifests/{reference}")))
            .await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    let resp = registry
        .send(registry.delete(&format!("/v2/nope/manifests/{missing}")))
        .await;
    assert_error_one_of(resp, &[(404, "NAME_UNKNOWN"), (404, "MANIFEST_UNKNOWN")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_blob_makes_it_unknown_in_that_repository() {
    let registry = Registry::start().await;
    let blob = random_bytes(1_000);
    let digest = registry.push_blob("app", &blob).await;
    let resp = registry
        .send(registry.delete(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = registry
        .send(registry.get(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_error(resp, 404, "BLOB_UNKNOWN").await;
    let resp = registry
        .send(registry.head(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_blob_in_one_repository_keeps_it_in_another() {
    // Blobs are stored once and shared; deletion unlinks it from one repository only.
    let registry = Registry::start().await;
    let blob = random_bytes(1_000);
    let digest = registry.push_blob("app", &blob).await;
    registry.push_blob("other", &blob).await;
    let resp = registry
        .send(registry.delete(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = registry
        .send(registry.get(&format!("/v2/other/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), blob);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_unknown_blob_is_blob_unknown() {
    let registry = Registry::start().await;
    registry.push_blob("app", b"present").await;
    let resp = registry
        .send(registry.delete(&format!("/v2/app/blobs/{}", sha256_digest(b"absent"))))
        .await;
    assert_error(resp, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_without_manifests_leaves_the_catalog() {
    let registry = Registry::start().await;
    let image = registry.push_image("gone", "v1").await;
    registry.push_image("stays", "v1").await;
    assert_eq!(catalog(&registry).await, ["gone", "stays"]);
    let resp = registry
        .send(registry.delete(&format!("/v2/gone/manifests/{}", image.digest)))
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(catalog(&registry).await, ["stays"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_referrer_removes_it_from_the_referrers_list() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    registry.push_blob("app", EMPTY_JSON).await;
    let sbom = ManifestBuilder::artifact("application/vnd.example.sbom.v1", &[])
        .subject(&image.descriptor())
        .build();
    let sbom_digest = registry
        .push_manifest("app", &sha256_digest(&sbom), OCI_MANIFEST, &sbom)
        .await;
    let resp = registry
        .send(registry.delete(&format!("/v2/app/manifests/{sbom_digest}")))
        .await;
    assert_eq!(resp.status(), 202);
    let body = json_body(
        registry
            .send(registry.get(&format!("/v2/app/referrers/{}", image.digest)))
            .await,
    )
    .await;
    assert_eq!(
        body["manifests"].as_array().map_or(usize::MAX, Vec::len),
        0,
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_deletion_disabled_deletes_are_405_unsupported_and_change_nothing() {
    let registry = Registry::start_with_env(&[("BERTH_DELETE_ENABLED", "false")]).await;
    let image = registry.push_image("app", "v1").await;
    let layer = &image.layers[0].digest;
    let paths = [
        format!("/v2/app/manifests/{}", image.digest),
        "/v2/app/manifests/v1".to_string(),
        format!("/v2/app/blobs/{layer}"),
    ];
    for path in &paths {
        let resp = registry.send(registry.delete(path)).await;
        assert_error(resp, 405, "UNSUPPORTED").await;
    }
    for path in &paths {
        assert_eq!(status_of(&registry, path).await, 200, "{path} must survive");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_manifest_and_blob_can_be_pushed_again() {
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", OCI_CONFIG, &random_config())
        .await;
    let layer_bytes = random_bytes(700);
    let layer = registry
        .push_descriptor("app", OCI_LAYER, &layer_bytes)
        .await;
    let manifest = ManifestBuilder::image(&config, std::slice::from_ref(&layer)).build();
    let digest = registry
        .push_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    for path in [
        format!("/v2/app/manifests/{digest}"),
        format!("/v2/app/blobs/{}", layer.digest),
    ] {
        let resp = registry.send(registry.delete(&path)).await;
        assert_eq!(resp.status(), 202, "DELETE {path}");
    }
    // The deleted layer is gone from this repository's view, so the manifest needs it again.
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    registry.push_blob("app", &layer_bytes).await;
    registry
        .push_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(status_of(&registry, "/v2/app/manifests/v1").await, 200);
    assert_eq!(
        status_of(&registry, &format!("/v2/app/blobs/{}", layer.digest)).await,
        200
    );
}

/// An image tagged `amd64` and an index tagged `multi` naming it; returns
/// the image and the index's digest.
async fn push_image_under_index(registry: &Registry) -> (Image, String) {
    let image = registry.push_image("app", "amd64").await;
    let index = ManifestBuilder::index(&[image.descriptor()]).build();
    let index_digest = registry
        .push_manifest("app", "multi", OCI_INDEX, &index)
        .await;
    (image, index_digest)
}

/// A refused delete: `409 DENIED`, naming the manifest that holds on.
async fn assert_denied_naming(resp: reqwest::Response, holder: &str) {
    let body = assert_error(resp, 409, "DENIED").await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(holder), "names {holder}: {message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_a_manifest_still_references_cannot_be_deleted() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let layer = &image.layers[0].digest;
    let resp = registry
        .send(registry.delete(&format!("/v2/app/blobs/{layer}")))
        .await;
    assert_denied_naming(resp, &image.digest).await;
    // Nothing changed: the manifest and its layer still pull.
    assert_eq!(status_of(&registry, "/v2/app/manifests/v1").await, 200);
    assert_eq!(
        status_of(&registry, &format!("/v2/app/blobs/{layer}")).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_an_index_still_references_cannot_be_deleted() {
    let registry = Registry::start().await;
    let (image, index_digest) = push_image_under_index(&registry).await;
    let resp = registry
        .send(registry.delete(&format!("/v2/app/manifests/{}", image.digest)))
        .await;
    assert_denied_naming(resp, &index_digest).await;
    assert_eq!(status_of(&registry, "/v2/app/manifests/amd64").await, 200);
    // Its tag alone may go; the manifest stays for the index.
    let resp = registry
        .send(registry.delete("/v2/app/manifests/amd64"))
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        status_of(&registry, &format!("/v2/app/manifests/{}", image.digest)).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_top_down_frees_what_was_referenced() {
    let registry = Registry::start().await;
    let (image, index_digest) = push_image_under_index(&registry).await;
    for path in [
        format!("/v2/app/manifests/{index_digest}"),
        format!("/v2/app/manifests/{}", image.digest),
        format!("/v2/app/blobs/{}", image.layers[0].digest),
        format!("/v2/app/blobs/{}", image.config.digest),
    ] {
        let resp = registry.send(registry.delete(&path)).await;
        assert_eq!(resp.status(), 202, "DELETE {path}");
    }
}

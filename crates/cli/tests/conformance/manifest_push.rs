//! Push, manifests: `PUT /v2/<name>/manifests/<reference>` (end-7) — references by tag and
//! digest, `OCI-Subject`, referenced-content checks, accepted media types, size limit.

use super::harness::*;
use reqwest::Response;
use serde_json::json;

fn assert_manifest_created(resp: &Response, repo: &str, digest: &str) {
    assert_eq!(resp.status(), 201, "{}", resp.url());
    let location = location_path(required_header(resp, "location"));
    assert!(
        location.starts_with(&format!("/v2/{repo}/manifests/")),
        "Location {location}"
    );
    assert_eq!(required_header(resp, "docker-content-digest"), digest);
}

/// Asserts `reference` in `repo` serves exactly `manifest` as `media_type`.
async fn assert_manifest_served(
    registry: &Registry,
    repo: &str,
    reference: &str,
    media_type: &str,
    manifest: &[u8],
) {
    let resp = registry
        .send(registry.get(&format!("/v2/{repo}/manifests/{reference}")))
        .await;
    assert_eq!(resp.status(), 200, "GET {repo}:{reference}");
    assert_eq!(
        required_header(&resp, "content-type"),
        media_type,
        "{repo}:{reference}"
    );
    assert_eq!(resp.bytes().await.unwrap(), manifest, "{repo}:{reference}");
}

async fn assert_manifest_absent(registry: &Registry, repo: &str, reference: &str) {
    let resp = registry
        .send(registry.get(&format!("/v2/{repo}/manifests/{reference}")))
        .await;
    assert_eq!(resp.status(), 404, "{repo}:{reference} must not exist");
}

/// An image manifest whose config and layer are pushed to `repo`.
async fn image_manifest(registry: &Registry, repo: &str) -> ManifestBuilder {
    let config = registry
        .push_descriptor(repo, OCI_CONFIG, &random_config())
        .await;
    let layer = registry
        .push_descriptor(repo, OCI_LAYER, &random_bytes(512))
        .await;
    ManifestBuilder::image(&config, &[layer])
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_put_by_tag_is_201_with_location_and_digest() {
    let registry = Registry::start().await;
    let manifest = image_manifest(&registry, "app").await.build();
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_manifest_created(&resp, "app", &sha256_digest(&manifest));
    let location = registry.resolve(required_header(&resp, "location"));
    let pulled = registry.send(registry.client.get(location)).await;
    assert_eq!(
        pulled.status(),
        200,
        "Location must be a pullable manifest URL"
    );
    assert_eq!(pulled.bytes().await.unwrap(), manifest);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_put_by_matching_digest_is_201_and_creates_no_tag() {
    let registry = Registry::start().await;
    let manifest = image_manifest(&registry, "app").await.build();
    let digest = sha256_digest(&manifest);
    let resp = registry
        .put_manifest("app", &digest, OCI_MANIFEST, &manifest)
        .await;
    assert_manifest_created(&resp, "app", &digest);
    assert_manifest_served(&registry, "app", &digest, OCI_MANIFEST, &manifest).await;
    let tags = json_body(registry.send(registry.get("/v2/app/tags/list")).await).await;
    assert_eq!(tags["tags"].as_array().map_or(0, Vec::len), 0, "{tags}");
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_put_by_a_digest_not_matching_the_body_is_digest_invalid() {
    let registry = Registry::start().await;
    let manifest = image_manifest(&registry, "app").await.build();
    let wrong = sha256_digest(b"not this manifest");
    let resp = registry
        .put_manifest("app", &wrong, OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, 400, "DIGEST_INVALID").await;
    assert_manifest_absent(&registry, "app", &wrong).await;
    assert_manifest_absent(&registry, "app", &sha256_digest(&manifest)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_with_a_subject_gets_the_oci_subject_header_even_if_the_subject_is_absent() {
    let registry = Registry::start().await;
    let absent_subject = Descriptor::of(OCI_MANIFEST, b"{\"not\":\"pushed\"}");
    let artifact = ManifestBuilder::artifact("application/vnd.example.sbom.v1", &[])
        .subject(&absent_subject)
        .build();
    registry.push_blob("app", EMPTY_JSON).await;
    let resp = registry
        .put_manifest("app", &sha256_digest(&artifact), OCI_MANIFEST, &artifact)
        .await;
    assert_manifest_created(&resp, "app", &sha256_digest(&artifact));
    assert_eq!(required_header(&resp, "oci-subject"), absent_subject.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_without_a_subject_has_no_oci_subject_header() {
    let registry = Registry::start().await;
    let manifest = image_manifest(&registry, "app").await.build();
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_referencing_a_missing_config_is_manifest_blob_unknown() {
    let registry = Registry::start().await;
    let config = Descriptor::of(OCI_CONFIG, &random_config()); // never pushed
    let layer = registry
        .push_descriptor("app", OCI_LAYER, &random_bytes(100))
        .await;
    let manifest = ManifestBuilder::image(&config, &[layer]).build();
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert_manifest_absent(&registry, "app", "v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_referencing_a_missing_layer_is_manifest_blob_unknown() {
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", OCI_CONFIG, &random_config())
        .await;
    let present = registry
        .push_descriptor("app", OCI_LAYER, &random_bytes(100))
        .await;
    let missing = Descriptor::of(OCI_LAYER, &random_bytes(100));
    let manifest = ManifestBuilder::image(&config, &[present, missing]).build();
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert_manifest_absent(&registry, "app", "v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_referencing_a_blob_only_in_another_repository_is_manifest_blob_unknown() {
    // DESIGN write path rule 3: references are checked in that repository's view.
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", OCI_CONFIG, &random_config())
        .await;
    let foreign = registry
        .push_descriptor("other", OCI_LAYER, &random_bytes(100))
        .await;
    let manifest = ManifestBuilder::image(&config, &[foreign]).build();
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn non_distributable_layers_need_no_blob() {
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", OCI_CONFIG, &random_config())
        .await;
    let foreign = [
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ]
    .map(|media_type| Descriptor::of(media_type, &random_bytes(100)));
    let manifest = ManifestBuilder::image(&config, &foreign).build();
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_manifest_created(&resp, "app", &sha256_digest(&manifest));
}

#[tokio::test(flavor = "multi_thread")]
async fn index_with_present_children_is_accepted_and_served() {
    let registry = Registry::start().await;
    let amd64 = registry.push_image("app", "amd64").await;
    let arm64 = registry.push_image("app", "arm64").await;
    let index = ManifestBuilder::index(&[amd64.descriptor(), arm64.descriptor()]).build();
    registry.push_manifest("app", "v1", OCI_INDEX, &index).await;
    assert_manifest_served(&registry, "app", "v1", OCI_INDEX, &index).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn index_referencing_a_missing_child_manifest_is_manifest_blob_unknown() {
    let registry = Registry::start().await;
    let present = registry.push_image("app", "amd64").await;
    let missing = Descriptor::of(
        OCI_MANIFEST,
        &image_manifest(&registry, "app").await.build(),
    );
    let index = ManifestBuilder::index(&[present.descriptor(), missing]).build();
    let resp = registry.put_manifest("app", "v1", OCI_INDEX, &index).await;
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert_manifest_absent(&registry, "app", "v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_schema2_manifest_and_manifest_list_are_accepted_and_served() {
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", DOCKER_CONFIG, &random_config())
        .await;
    let layer = registry
        .push_descriptor("app", DOCKER_LAYER, &random_bytes(300))
        .await;
    let manifest = ManifestBuilder::image(&config, &[layer])
        .media_type(DOCKER_MANIFEST)
        .build();
    registry
        .push_manifest("app", "single", DOCKER_MANIFEST, &manifest)
        .await;
    assert_manifest_served(&registry, "app", "single", DOCKER_MANIFEST, &manifest).await;

    let mut child = Descriptor::of(DOCKER_MANIFEST, &manifest).json();
    child["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [child],
    }))
    .unwrap();
    registry
        .push_manifest("app", "multi", DOCKER_MANIFEST_LIST, &list)
        .await;
    assert_manifest_served(&registry, "app", "multi", DOCKER_MANIFEST_LIST, &list).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn artifact_with_the_empty_config_is_accepted_and_served() {
    let registry = Registry::start().await;
    registry.push_blob("app", EMPTY_JSON).await;
    let payload = registry
        .push_descriptor(
            "app",
            "application/spdx+json",
            b"{\"spdxVersion\":\"SPDX-2.3\"}",
        )
        .await;
    let artifact = ManifestBuilder::artifact("application/vnd.example.sbom.v1", &[payload]).build();
    registry
        .push_manifest("app", "sbom", OCI_MANIFEST, &artifact)
        .await;
    assert_manifest_served(&registry, "app", "sbom", OCI_MANIFEST, &artifact).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_can_move_between_an_index_and_a_manifest() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "image").await;
    let index = ManifestBuilder::index(&[image.descriptor()]).build();
    registry
        .push_manifest("app", "latest", OCI_INDEX, &index)
        .await;
    assert_manifest_served(&registry, "app", "latest", OCI_INDEX, &index).await;
    registry
        .push_manifest("app", "latest", OCI_MANIFEST, &image.manifest)
        .await;
    assert_manifest_served(&registry, "app", "latest", OCI_MANIFEST, &image.manifest).await;
    registry
        .push_manifest("app", "latest", OCI_INDEX, &index)
        .await;
    assert_manifest_served(&registry, "app", "latest", OCI_INDEX, &index).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn re_pushing_the_same_manifest_is_idempotent() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &image.manifest)
        .await;
    assert_manifest_created(&resp, "app", &image.digest);
    assert_manifest_served(&registry, "app", "v1", OCI_MANIFEST, &image.manifest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_manifest_invalid() {
    let registry = Registry::start().await;
    for body in [
        &b"{\"schemaVersion\": 2, \"mediaType\": "[..],
        b"not json at all",
        b"",
    ] {
        let resp = registry.put_manifest("app", "v1", OCI_MANIFEST, body).await;
        assert_error(resp, 400, "MANIFEST_INVALID").await;
    }
    assert_manifest_absent(&registry, "app", "v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image_manifests_breaking_the_image_spec_are_manifest_invalid() {
    // image-spec manifest.md: `config` is REQUIRED, `schemaVersion` MUST be 2,
    // each `layers` item MUST be a descriptor (with a digest).
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", OCI_CONFIG, &random_config())
        .await;
    let layer = registry
        .push_descriptor("app", OCI_LAYER, &random_bytes(64))
        .await;
    let cases = [
        (
            "no config",
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [layer.json()]}),
        ),
        (
            "schemaVersion 3",
            json!({"schemaVersion": 3, "mediaType": OCI_MANIFEST, "config": config.json(), "layers": [layer.json()]}),
        ),
        (
            "layer without digest",
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.json(),
                   "layers": [{"mediaType": OCI_LAYER, "size": 64}]}),
        ),
    ];
    let mut wrong = Vec::new();
    for (case, body) in cases {
        let resp = registry
            .put_manifest(
                "app",
                "v1",
                OCI_MANIFEST,
                &serde_json::to_vec(&body).unwrap(),
            )
            .await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status != 400 || !text.contains("\"MANIFEST_INVALID\"") {
            wrong.push(format!("{case}: {status} {text}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 400 MANIFEST_INVALID for:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_schema1_manifests_are_manifest_invalid() {
    let registry = Registry::start().await;
    let schema1 = serde_json::to_vec(&json!({
        "schemaVersion": 1,
        "name": "app",
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256_digest(b"layer")}],
        "history": [{"v1Compatibility": "{}"}],
        "signatures": []
    }))
    .unwrap();
    for content_type in [
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/json",
        "",
    ] {
        let resp = registry
            .put_manifest("app", "v1", content_type, &schema1)
            .await;
        assert_error(resp, 400, "MANIFEST_INVALID").await;
    }
    assert_manifest_absent(&registry, "app", "v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_with_an_unsupported_media_type_is_refused() {
    let registry = Registry::start().await;
    let body =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/x-unknown"}))
            .unwrap();
    let resp = registry
        .put_manifest("app", "v1", "application/x-unknown", &body)
        .await;
    assert_error_one_of(
        resp,
        &[
            (400, "MANIFEST_INVALID"),
            (400, "UNSUPPORTED"),
            (415, "UNSUPPORTED"),
        ],
    )
    .await;
    assert_manifest_absent(&registry, "app", "v1").await;
}

/// An artifact manifest padded with an annotation to exactly `size` bytes.
async fn manifest_of_size(registry: &Registry, size: usize) -> Vec<u8> {
    registry.push_blob("app", EMPTY_JSON).await;
    // Padded with trailing whitespace (valid JSON): annotations are capped
    // far below the manifest size limit.
    let mut manifest = ManifestBuilder::artifact("application/vnd.example.big", &[]).build();
    manifest.resize(size, b' ');
    assert_eq!(manifest.len(), size);
    manifest
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_of_exactly_4_mib_is_accepted() {
    let registry = Registry::start().await;
    let manifest = manifest_of_size(&registry, MANIFEST_LIMIT).await;
    registry
        .push_manifest("app", "big", OCI_MANIFEST, &manifest)
        .await;
    assert_manifest_served(&registry, "app", "big", OCI_MANIFEST, &manifest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_over_4_mib_is_413_manifest_invalid() {
    // Raw TCP, reading while writing: an early 413 may stop the server reading the body,
    // and reqwest reports the failed body write instead of the answer (see robustness).
    let mut registry = Registry::start().await;
    let manifest = manifest_of_size(&registry, MANIFEST_LIMIT + 1).await;
    let mut request = format!(
        "PUT /v2/app/manifests/big HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        registry.addr,
        manifest.len()
    )
    .into_bytes();
    request.extend_from_slice(&manifest);
    let resp = registry.raw(&request, false).await.expect("an answer");
    assert_eq!(
        (resp.status, resp.codes()),
        (413, vec!["MANIFEST_INVALID".to_string()])
    );
    registry.assert_alive();
    assert_manifest_absent(&registry, "app", "big").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_put_by_sha512_digest_is_accepted_and_fetchable() {
    // Spec: Docker-Content-Digest on a manifest PUT MUST equal the client-provided digest.
    let registry = Registry::start().await;
    let manifest = image_manifest(&registry, "app").await.build();
    let digest = sha512_digest(&manifest);
    let resp = registry
        .put_manifest("app", &digest, OCI_MANIFEST, &manifest)
        .await;
    assert_manifest_created(&resp, "app", &digest);
    assert_manifest_served(&registry, "app", &digest, OCI_MANIFEST, &manifest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_over_4_mib_without_content_length_is_413() {
    // Sent with chunked transfer encoding: the limit cannot rest on Content-Length alone.
    let mut registry = Registry::start().await;
    let manifest = manifest_of_size(&registry, MANIFEST_LIMIT + 1024).await;
    let mut request = format!(
        "PUT /v2/app/manifests/big HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        registry.addr
    )
    .into_bytes();
    for piece in manifest.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let resp = registry.raw(&request, false).await.expect("an answer");
    assert_eq!(
        (resp.status, resp.codes()),
        (413, vec!["MANIFEST_INVALID".to_string()])
    );
    registry.assert_alive();
    assert_manifest_absent(&registry, "app", "big").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_whose_descriptor_size_contradicts_the_stored_blob_is_rejected() {
    // Image-spec descriptor.md: `size` MUST be the exact byte count. A manifest that lies
    // about it would be pulled and then fail every client's size check; SIZE_INVALID
    // ("provided length did not match content length") is the code made for it.
    let registry = Registry::start().await;
    let config = registry
        .push_descriptor("app", OCI_CONFIG, &random_config())
        .await;
    let mut layer = registry
        .push_descriptor("app", OCI_LAYER, &random_bytes(1000))
        .await;
    layer.size = 999;
    let manifest = ManifestBuilder::image(&config, &[layer]).build();
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_error_one_of(resp, &[(400, "SIZE_INVALID"), (400, "MANIFEST_INVALID")]).await;
}

//! Immutable tags and quotas from a config file, as clients see them: a
//! refused manifest PUT is 403 `DENIED` with a message that says why, and
//! leaves the registry as it was.

use super::harness::*;
use reqwest::Method;

/// A registry started with `toml` as its config file.
async fn start_with_config(toml: &str) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(&config, toml).unwrap();
    let registry = Registry::start_with_args(&["--config", config.to_str().unwrap()], &[]).await;
    (registry, dir)
}

/// The one error's message of a DENIED answer.
async fn denied_message(resp: reqwest::Response) -> String {
    let body = assert_error(resp, 403, "DENIED").await;
    body["errors"][0]["message"].as_str().unwrap().to_string()
}

async fn tag_digest(registry: &Registry, repo: &str, tag: &str) -> Option<String> {
    let resp = registry
        .send(
            registry
                .head(&format!("/v2/{repo}/manifests/{tag}"))
                .header("accept", OCI_MANIFEST),
        )
        .await;
    (resp.status() == 200).then(|| header(&resp, "docker-content-digest").unwrap().to_string())
}

#[tokio::test]
async fn an_immutable_tag_refuses_another_manifest_with_denied_and_says_why() {
    let (registry, _config) =
        start_with_config("[[immutable]]\nrepositories = \"prod/*\"\ntags = [\"v*\"]\n").await;
    let first = registry.push_image("prod/app", "v1").await;
    // The same manifest again is a harmless 201.
    registry
        .push_manifest("prod/app", "v1", OCI_MANIFEST, &first.manifest)
        .await;
    let second = registry.push_image("prod/app", "other").await;
    let resp = registry
        .put_manifest("prod/app", "v1", OCI_MANIFEST, &second.manifest)
        .await;
    assert_eq!(
        denied_message(resp).await,
        format!(
            "tag prod/app:v1 is immutable and already points at {}; push under a new tag",
            first.digest
        )
    );
    assert_eq!(
        tag_digest(&registry, "prod/app", "v1").await.as_deref(),
        Some(first.digest.as_str())
    );
    // Tags outside the rule move as usual, in and out of the repositories.
    registry
        .push_manifest("prod/app", "other", OCI_MANIFEST, &first.manifest)
        .await;
    let dev = registry.push_image("dev/app", "v1").await;
    registry
        .push_manifest("dev/app", "v1", OCI_MANIFEST, &dev.manifest)
        .await;
    let moved = registry.push_image("dev/app", "v2").await;
    registry
        .push_manifest("dev/app", "v1", OCI_MANIFEST, &moved.manifest)
        .await;
}

#[tokio::test]
async fn a_byte_quota_counts_a_shared_layer_once_and_refuses_the_push_that_goes_over() {
    let (registry, _config) =
        start_with_config("[[quota]]\nrepositories = \"small/*\"\nmax_bytes = \"6KiB\"\n").await;
    let repo = "small/app";
    let layer = registry
        .push_descriptor(repo, OCI_LAYER, &random_bytes(4096))
        .await;
    let push = |tag: &'static str, layer: Descriptor| {
        let registry = &registry;
        async move {
            let config = registry
                .push_descriptor(repo, OCI_CONFIG, &random_config())
                .await;
            let manifest = ManifestBuilder::image(&config, &[layer]).build();
            (
                registry
                    .put_manifest(repo, tag, OCI_MANIFEST, &manifest)
                    .await,
                manifest,
            )
        }
    };
    // About 4.7 KiB, then 0.6 KiB more: the 4 KiB layer is counted once.
    let (resp, _) = push("v1", layer.clone()).await;
    assert_eq!(resp.status(), 201);
    let (resp, _) = push("v2", layer).await;
    assert_eq!(resp.status(), 201, "a shared layer counts once");
    let own_layer = registry
        .push_descriptor(repo, OCI_LAYER, &random_bytes(4096))
        .await;
    let (resp, refused) = push("v3", own_layer).await;
    let message = denied_message(resp).await;
    assert!(
        message.starts_with("repository small/app would hold ")
            && message.ends_with(", over its quota of 6 KiB"),
        "{message}"
    );
    assert_eq!(tag_digest(&registry, repo, "v3").await, None);
    let by_digest = format!("/v2/{repo}/manifests/{}", sha256_digest(&refused));
    let resp = registry.send(registry.head(&by_digest)).await;
    assert_eq!(resp.status(), 404, "the refused manifest is not recorded");
    // Other repositories have no quota.
    registry.push_image("big/app", "v1").await;
}

#[tokio::test]
async fn a_tag_quota_refuses_a_new_tag_beyond_it_but_not_a_moved_one() {
    let (registry, _config) =
        start_with_config("[[quota]]\nrepositories = \"few\"\nmax_tags = 2\n").await;
    let v1 = registry.push_image("few", "v1").await;
    registry.push_image("few", "v2").await;
    let third = registry.push_image("few", "v2").await; // moves v2: still two tags
    let resp = registry
        .put_manifest("few", "v3", OCI_MANIFEST, &v1.manifest)
        .await;
    assert_eq!(
        denied_message(resp).await,
        "repository few would hold 3 tags, over its quota of 2 tags"
    );
    let tags = json_body(
        registry
            .send(registry.request(Method::GET, "/v2/few/tags/list"))
            .await,
    )
    .await;
    assert_eq!(tags["tags"], serde_json::json!(["v1", "v2"]));
    // A push by digest adds no tag.
    registry
        .push_manifest("few", &third.digest, OCI_MANIFEST, &third.manifest)
        .await;
}

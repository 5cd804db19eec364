//! `DELETE /api/v1/repositories/<name>` against a real `berth serve`: what
//! it answers, who may call it, and that the repository is gone whole
//! while another sharing a layer still pulls.

use super::auth::{basic, AuthRegistry, PASSWORD};
use super::harness::*;
use reqwest::Method;
use serde_json::json;

/// Pushes an image to `repo` under `tag` whose one layer is `layer`.
async fn push_with_layer(registry: &Registry, repo: &str, tag: &str, layer: &[u8]) -> Image {
    let config = registry
        .push_descriptor(repo, OCI_CONFIG, &random_config())
        .await;
    let layer = registry.push_descriptor(repo, OCI_LAYER, layer).await;
    let manifest = ManifestBuilder::image(&config, std::slice::from_ref(&layer)).build();
    let digest = registry
        .push_manifest(repo, tag, OCI_MANIFEST, &manifest)
        .await;
    Image {
        digest,
        manifest,
        config,
        layers: vec![layer],
    }
}

async fn catalog(registry: &Registry) -> serde_json::Value {
    json_body(registry.send(registry.get("/v2/_catalog")).await).await["repositories"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_repository_leaves_the_catalog_and_its_neighbour_still_pulls() {
    let registry = Registry::start().await;
    let shared = random_bytes(4096);
    let gone = push_with_layer(&registry, "team/gone", "v1", &shared).await;
    registry
        .push_manifest("team/gone", "v2", OCI_MANIFEST, &gone.manifest)
        .await;
    let sbom = ManifestBuilder::artifact("application/spdx+json", &[])
        .subject(&gone.descriptor())
        .build();
    registry.push_blob("team/gone", EMPTY_JSON).await;
    registry
        .push_manifest("team/gone", &sha256_digest(&sbom), OCI_MANIFEST, &sbom)
        .await;
    let kept = push_with_layer(&registry, "team/kept", "v1", &shared).await;

    let resp = registry
        .send(registry.delete("/api/v1/repositories/team/gone"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    assert_eq!(
        json_body(resp).await,
        json!({"repository": "team/gone", "tags": 2, "manifests": 2})
    );

    assert_eq!(catalog(&registry).await, json!(["team/kept"]));
    let resp = registry.send(registry.get("/v2/team/gone/tags/list")).await;
    assert_error(resp, 404, "NAME_UNKNOWN").await;
    for reference in ["v1", "v2", gone.digest.as_str()] {
        let resp = registry
            .send(registry.get(&format!("/v2/team/gone/manifests/{reference}")))
            .await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    let layer = &gone.layers[0].digest;
    let resp = registry
        .send(registry.get(&format!("/v2/team/gone/blobs/{layer}")))
        .await;
    assert_error(resp, 404, "BLOB_UNKNOWN").await;
    let resp = registry
        .send(registry.get("/api/v1/repositories/team/gone/tags"))
        .await;
    assert_error(resp, 404, "NAME_UNKNOWN").await;

    // The layer both shared still pulls from the other repository.
    assert_eq!(kept.layers[0].digest, *layer);
    let resp = registry
        .send(registry.get(&format!("/v2/team/kept/blobs/{layer}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), shared.as_slice());
    let resp = registry
        .send(registry.get("/v2/team/kept/manifests/v1"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        kept.manifest.as_slice()
    );

    let resp = registry
        .send(registry.delete("/api/v1/repositories/team/gone"))
        .await;
    assert_error(resp, 404, "NAME_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_deletes_disabled_a_repository_delete_is_405_and_changes_nothing() {
    let registry = Registry::start_with_env(&[("BERTH_DELETE_ENABLED", "false")]).await;
    registry.push_image("kept", "v1").await;
    let resp = registry
        .send(registry.delete("/api/v1/repositories/kept"))
        .await;
    assert_error(resp, 405, "UNSUPPORTED").await;
    assert_eq!(catalog(&registry).await, json!(["kept"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_only_an_admin_may_delete_a_repository() {
    let mut auth = AuthRegistry::start(false, &[]).await;
    let admin = basic("admin", PASSWORD);
    auth.registry.authorize_with(&admin);
    auth.registry.push_image("team-a/app", "v1").await;
    let path = "/api/v1/repositories/team-a/app";
    let resp = auth.send(None, Method::DELETE, path).await;
    assert_eq!(resp.status(), 401, "anonymous, even from loopback");
    // alice may delete manifests in team-a, but a whole repository is admin's.
    let resp = auth
        .send(Some(&basic("alice", PASSWORD)), Method::DELETE, path)
        .await;
    let body = assert_error(resp, 403, "DENIED").await;
    assert!(body.to_string().contains("admin"), "{body}");
    let resp = auth.send(Some(&admin), Method::DELETE, path).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        json_body(resp).await,
        json!({"repository": "team-a/app", "tags": 1, "manifests": 1})
    );
}

async fn page(registry: &Registry, path: &str) -> (u16, String) {
    let resp = registry.send(registry.get(path)).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_confirms_then_deletes_from_the_same_origin_only() {
    let registry = Registry::start().await;
    registry.push_image("team/app", "v1").await;
    registry.push_image("team/app", "v2").await;
    registry.push_image("kept", "v1").await;
    let (status, html) = page(&registry, "/ui/r/team/app").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"href="/ui/r/team/app/-/delete">Delete repository</a>"#),
        "{html}"
    );
    let (status, html) = page(&registry, "/ui/r/team/app/-/delete").await;
    assert_eq!(status, 200);
    assert!(html.contains("<strong>2 tags</strong>"), "{html}");
    assert!(html.contains("<strong>2 manifests</strong>"), "{html}");
    assert!(
        html.contains(r#"<form method="post" action="/ui/r/team/app/-/delete">"#),
        "{html}"
    );

    let post = |site: &str, origin: &str| {
        registry
            .request(Method::POST, "/ui/r/team/app/-/delete")
            .header("sec-fetch-site", site)
            .header("origin", origin)
    };
    let resp = registry
        .send(post("cross-site", "http://evil.example"))
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(catalog(&registry).await, json!(["kept", "team/app"]));
    let (_, before) = page(&registry, "/ui/").await;
    assert!(
        before.contains(r#"data-bytes="0""#),
        "nothing reclaimable yet: {before}"
    );
    let origin = format!("http://{}", registry.addr);
    let resp = registry.send(post("same-origin", &origin)).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), Some("/ui/"));
    assert_eq!(catalog(&registry).await, json!(["kept"]));
    assert_eq!(page(&registry, "/ui/r/team/app").await.0, 404);
    // At once, though the front page keeps its totals a few seconds.
    let (_, home) = page(&registry, "/ui/").await;
    assert!(!home.contains("team/app"), "{home}");
    assert!(home.contains("<dt>Repositories</dt><dd>1</dd>"), "{home}");
    assert!(home.contains("Garbage collection"), "{home}");
    assert!(
        !home.contains(r#"data-bytes="0""#),
        "the images' blobs are reclaimable: {home}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_the_web_ui_offers_and_allows_the_repository_delete_to_admins_only() {
    let mut auth = AuthRegistry::start(false, &[]).await;
    let admin = basic("admin", PASSWORD);
    auth.registry.authorize_with(&admin);
    auth.registry.push_image("team-a/app", "v1").await;
    let alice = basic("alice", PASSWORD);
    let resp = auth
        .send(Some(&alice), Method::GET, "/ui/r/team-a/app")
        .await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(!html.contains("Delete repository"), "{html}");
    let resp = auth
        .send(Some(&alice), Method::POST, "/ui/r/team-a/app/-/delete")
        .await;
    assert_eq!(resp.status(), 403);
    let resp = auth
        .send(Some(&admin), Method::GET, "/ui/r/team-a/app")
        .await;
    assert!(resp.text().await.unwrap().contains("Delete repository"));
    let resp = auth
        .send(Some(&admin), Method::POST, "/ui/r/team-a/app/-/delete")
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(catalog(&auth.registry).await, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_shows_quota_use_where_a_quota_applies() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        "[[quota]]\nrepositories = \"limited/*\"\nmax_bytes = \"1MiB\"\nmax_tags = 5\n",
    )
    .unwrap();
    let registry = Registry::start_with_args(&["--config", config.to_str().unwrap()], &[]).await;
    registry.push_image("limited/app", "v1").await;
    registry.push_image("limited/app", "v2").await;
    registry.push_image("free/app", "v1").await;
    let (status, html) = page(&registry, "/ui/r/limited/app").await;
    assert_eq!(status, 200);
    assert!(html.contains("Quota: "), "{html}");
    assert!(
        html.contains("of 1.0 MiB") && html.contains("2 of 5 tags"),
        "{html}"
    );
    let (_, html) = page(&registry, "/ui/r/free/app").await;
    assert!(!html.contains("Quota"), "{html}");
    let (_, home) = page(&registry, "/ui/").await;
    assert!(home.contains(r#"<th scope="col">Quota</th>"#), "{home}");
    assert!(home.contains("2 of 5 tags"), "{home}");
}

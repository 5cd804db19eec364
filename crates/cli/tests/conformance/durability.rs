//! State survives the process: kill the server (no graceful shutdown), start a new one
//! on the same data directory, and everything answered 201/202 before is still there.

use super::harness::*;

/// `berth fsck` over what the killed servers left: every test here ends with it.
fn assert_fsck_clean(data: &std::path::Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["fsck", "--data-dir"])
        .arg(data)
        .env_remove("BERTH_DATA_DIR")
        .env_remove("BERTH_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "berth fsck found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_content_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::start_in(data.path()).await;
    let image = registry.push_image("org/app", "v1").await;
    registry
        .push_manifest("org/app", "latest", OCI_MANIFEST, &image.manifest)
        .await;
    let blob = random_bytes(50_000);
    let blob_digest = registry.push_blob("org/app", &blob).await;
    registry.push_blob("org/app", EMPTY_JSON).await;
    let sbom = ManifestBuilder::artifact("application/vnd.example.sbom.v1", &[])
        .subject(&image.descriptor())
        .build();
    let sbom_digest = registry
        .push_manifest("org/app", &sha256_digest(&sbom), OCI_MANIFEST, &sbom)
        .await;
    registry.stop();

    let registry = Registry::start_in(data.path()).await;
    let resp = registry
        .send(registry.get(&format!("/v2/org/app/blobs/{blob_digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), blob);
    let resp = registry
        .send(registry.head(&format!("/v2/org/app/blobs/{}", image.config.digest)))
        .await;
    assert_eq!(resp.status(), 200, "the image config");
    for reference in ["v1", "latest", image.digest.as_str()] {
        let resp = registry
            .send(registry.get(&format!("/v2/org/app/manifests/{reference}")))
            .await;
        assert_eq!(resp.status(), 200, "{reference}");
        assert_eq!(required_header(&resp, "content-type"), OCI_MANIFEST);
        assert_eq!(resp.bytes().await.unwrap(), image.manifest, "{reference}");
    }
    let tags = json_body(registry.send(registry.get("/v2/org/app/tags/list")).await).await;
    assert_eq!(tags["tags"], serde_json::json!(["latest", "v1"]));
    let catalog = json_body(registry.send(registry.get("/v2/_catalog")).await).await;
    assert_eq!(catalog["repositories"], serde_json::json!(["org/app"]));
    let referrers = json_body(
        registry
            .send(registry.get(&format!("/v2/org/app/referrers/{}", image.digest)))
            .await,
    )
    .await;
    assert_eq!(
        referrers["manifests"][0]["digest"], sbom_digest,
        "{referrers}"
    );
    registry.stop();
    assert_fsck_clean(data.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn deletions_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::start_in(data.path()).await;
    let image = registry.push_image("app", "v1").await;
    registry
        .push_manifest("app", "latest", OCI_MANIFEST, &image.manifest)
        .await;
    let resp = registry
        .send(registry.delete("/v2/app/manifests/latest"))
        .await;
    assert_eq!(resp.status(), 202);
    registry.stop();

    let registry = Registry::start_in(data.path()).await;
    let resp = registry
        .send(registry.get("/v2/app/manifests/latest"))
        .await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    let resp = registry.send(registry.get("/v2/app/manifests/v1")).await;
    assert_eq!(resp.status(), 200);
    registry.stop();
    assert_fsck_clean(data.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_session_can_be_resumed_after_a_restart() {
    // DESIGN: upload state lives in the metadata store so a restart can continue it.
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::start_in(data.path()).await;
    let blob = random_bytes(20_000);
    let location = location_path(&registry.start_upload("app").await).to_string();
    let resp = registry
        .send(
            registry
                .client
                .patch(registry.url(&location))
                .header("content-type", "application/octet-stream")
                .header("content-range", "0-9999")
                .body(blob[..10_000].to_vec()),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let location = location_path(required_header(&resp, "location")).to_string();
    registry.stop();

    let registry = Registry::start_in(data.path()).await;
    let resp = registry.send(registry.get(&location)).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(required_header(&resp, "range"), "0-9999");
    let resp = registry
        .send(
            registry
                .client
                .put(with_query(
                    &registry.url(&location),
                    "digest",
                    &sha256_digest(&blob),
                ))
                .header("content-type", "application/octet-stream")
                .header("content-range", "10000-19999")
                .body(blob[10_000..].to_vec()),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let resp = registry
        .send(registry.get(&format!("/v2/app/blobs/{}", sha256_digest(&blob))))
        .await;
    assert_eq!(resp.bytes().await.unwrap(), blob);
    registry.stop();
    assert_fsck_clean(data.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_removes_upload_files_no_session_owns_and_keeps_live_uploads() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::start_in(data.path()).await;
    let location = location_path(&registry.start_upload("app").await).to_string();
    registry.stop();
    // What killed requests leave behind: a monolithic push, a manifest PUT,
    // an upload whose session is gone.
    let uploads = data.path().join("uploads");
    for leftover in [
        "mono-killed",
        "put-killed",
        "7d5c4b44-0000-4000-8000-000000000000",
    ] {
        std::fs::write(uploads.join(leftover), b"partial").unwrap();
    }
    let registry = Registry::start_in(data.path()).await;
    let left: Vec<String> = std::fs::read_dir(&uploads)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "only the live upload's file: {left:?}");
    assert!(location.ends_with(&left[0]), "{location} keeps its file");
    let resp = registry.send(registry.get(&location)).await;
    assert_eq!(resp.status(), 204);
}

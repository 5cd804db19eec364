//! A full disk: pushes fail cleanly (5xx, OCI error body, no hang), what was
//! pushed stays readable, failed pushes leave nothing in `uploads/`, and once
//! there is room again pushes work and fsck is clean.

use crate::client::{image_manifest, sha256_digest, Client, Rng};
use crate::server::{fsck, mount_crashfs, Berth};
use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1 << 20;
const CAPACITY: u64 = 32 * MIB;
const BIG: usize = 2 * MIB as usize;

/// Pushes that fail on a full disk must say so in the spec's error format.
fn assert_clean_failure(what: &str, result: Result<(), String>) {
    let Err(status) = result else {
        panic!("{what} succeeded on a full disk");
    };
    assert!(
        status.contains(": 5"),
        "{what} on a full disk: want a 5xx, got {status}"
    );
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_pushes_cleanly_and_recovers() {
    let mount = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let Some(fs) = mount_crashfs(mount.path(), CAPACITY) else {
        return;
    };
    let data = mount.path().join("berth");
    let env = [("BERTH_DELETE_ENABLED", "true")];
    let mut berth = Berth::start(&data, logs.path(), &env)
        .await
        .unwrap_or_else(|e| panic!("berth did not start: {e}"));
    let client = Client::new(berth.addr);
    let mut rng = Rng::new(7);

    // Something to read back later.
    let kept = rng.bytes(200_000);
    client.push_monolithic("full/app", &kept).await.unwrap();
    let config = br#"{"kept":true}"#;
    client.push_monolithic("full/app", config).await.unwrap();
    let manifest = image_manifest(
        (&sha256_digest(config), config.len()),
        &[(sha256_digest(&kept), kept.len())],
    );
    client
        .put_manifest("full/app", "kept", &manifest)
        .await
        .unwrap();

    // Fill it: monolithic pushes until one fails.
    let mut first_failure = None;
    for i in 0..(CAPACITY as usize / BIG + 4) {
        let blob = rng.bytes(BIG);
        let pushed = tokio::time::timeout(
            Duration::from_secs(30),
            client.push_monolithic("full/app", &blob),
        )
        .await
        .unwrap_or_else(|_| panic!("push {i} hung on a filling disk"));
        if let Err(e) = pushed {
            first_failure = Some(e);
            break;
        }
    }
    let failure = first_failure.expect("a push failed before the disk was over-full");
    eprintln!(
        "disk full: first failure {failure}, {} bytes used",
        fs.used()
    );
    assert_clean_failure("monolithic push", Err(failure));
    assert!(
        berth.is_running(),
        "berth died on a full disk:\n{}",
        berth.stderr()
    );
    let uploads = data.join("uploads");
    let left = files_in(&uploads);
    assert!(
        left.is_empty(),
        "failed pushes left temporary files: {left:?}"
    );

    // Full now: every kind of push fails cleanly, with the OCI error body.
    let blob = rng.bytes(BIG);
    let resp = reqwest::Client::new()
        .post(berth.url(&format!(
            "/v2/full/app/blobs/uploads/?digest={}",
            sha256_digest(&blob)
        )))
        .timeout(Duration::from_secs(30))
        .body(blob.clone())
        .send()
        .await
        .expect("an answer, not a hang");
    let status = resp.status();
    let body: serde_json::Value =
        serde_json::from_slice(&resp.bytes().await.unwrap_or_default()).unwrap_or_default();
    assert!(status.is_server_error(), "monolithic push: {status}");
    assert!(
        body["errors"][0]["code"].is_string(),
        "not the OCI error format: {body}"
    );
    assert_clean_failure(
        "chunked push",
        client.push_chunked("full/app", &blob, 1 << 20).await,
    );

    // Reads keep working.
    let (status, _, got) = client
        .get(&format!("/v2/full/app/blobs/{}", sha256_digest(&kept)))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got[..], kept[..]);
    let (status, _, got) = client.get("/v2/full/app/manifests/kept").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got[..], manifest[..]);

    // What the failed pushes wrote is gone; only the chunked session that
    // the client could still resume (or cancel) may keep its file.
    let left = files_in(&uploads);
    eprintln!("disk full: uploads/ holds {left:?}");
    assert!(
        left.len() <= 1,
        "failed pushes left temporary files: {left:?}"
    );

    // Room again: pushes work.
    fs.set_capacity(CAPACITY * 4);
    let blob = rng.bytes(BIG);
    client.push_monolithic("full/app", &blob).await.unwrap();
    client
        .push_chunked("full/app", &rng.bytes(BIG), 1 << 20)
        .await
        .unwrap();
    let manifest = image_manifest(
        (&sha256_digest(config), config.len()),
        &[(sha256_digest(&blob), blob.len())],
    );
    client
        .put_manifest("full/app", "after", &manifest)
        .await
        .unwrap();

    berth.kill();
    if let Some((clean, out)) = fsck(&data) {
        assert!(clean, "berth fsck after a full disk:\n{out}");
    } else {
        eprintln!("berth fsck not in this build: skipped");
    }
}

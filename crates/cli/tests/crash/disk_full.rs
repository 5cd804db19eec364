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

/// A push that fails on a full disk says so with a 5xx (507 once the
/// free-space watermark is in) and the spec's error body.
async fn assert_oci_server_error(what: &str, resp: reqwest::Response) {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    assert!(
        status.is_server_error(),
        "{what} on a full disk: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert!(
        body["errors"][0]["code"].is_string(),
        "{what} on a full disk: not the OCI error format: {body}"
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
    assert!(failure.contains(": 5"), "the first failure: {failure}");
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let blob = rng.bytes(BIG);
    let resp = http
        .post(berth.url(&format!(
            "/v2/full/app/blobs/uploads/?digest={}",
            sha256_digest(&blob)
        )))
        .body(blob.clone())
        .send()
        .await
        .expect("an answer, not a hang");
    assert_oci_server_error("monolithic push", resp).await;

    // Chunked: the session may start (little to write), the PATCH cannot.
    // The client then cancels it, as a client giving up would.
    let resp = http
        .post(berth.url("/v2/full/app/blobs/uploads/"))
        .send()
        .await
        .expect("an answer, not a hang");
    if resp.status() == StatusCode::ACCEPTED {
        let at = resp.headers()["location"].to_str().unwrap().to_string();
        let at = if at.starts_with("http") {
            at
        } else {
            berth.url(&at)
        };
        let resp = http
            .patch(&at)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("0-{}", blob.len() - 1))
            .body(blob.clone())
            .send()
            .await
            .expect("an answer, not a hang");
        assert_oci_server_error("chunked PATCH", resp).await;
        let resp = http.delete(&at).send().await.expect("an answer");
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "cancel the upload");
    } else {
        assert_oci_server_error("starting an upload", resp).await;
    }

    // A manifest may still fit in the database's free pages; if not, the
    // answer is a clean 5xx too.
    let config_digest = sha256_digest(config);
    let small = image_manifest(
        (&config_digest, config.len()),
        &[(sha256_digest(&kept), kept.len())],
    );
    let small = [
        &small[..small.len() - 1],
        br#","annotations":{"x":"full"}}"#,
    ]
    .concat();
    let resp = http
        .put(berth.url("/v2/full/app/manifests/while-full"))
        .header("content-type", crate::client::OCI_MANIFEST)
        .body(small)
        .send()
        .await
        .expect("an answer, not a hang");
    if resp.status() != StatusCode::CREATED {
        assert_oci_server_error("manifest put", resp).await;
    }

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

    // Nothing the failed pushes wrote is left behind.
    let left = files_in(&uploads);
    assert!(left.is_empty(), "failed pushes left files: {left:?}");

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

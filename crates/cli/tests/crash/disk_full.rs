//! A full disk: pushes fail cleanly (5xx, OCI error body, no hang), what was
//! pushed stays readable, failed pushes leave nothing in `uploads/`, and once
//! there is room again pushes work and fsck is clean.

use crate::client::{image_manifest, sha256_digest, Client, Rng};
use crate::server::{fsck, mount_crashfs, Berth};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1 << 20;
const CAPACITY: u64 = 32 * MIB;
const BIG: usize = 2 * MIB as usize;

/// A push that fails on a full disk says so with a 5xx (507 once the
/// free-space watermark is in) and the spec's error body.
fn assert_oci_server_error(what: &str, (status, body): (u16, Vec<u8>)) {
    assert!(
        (500..600).contains(&status),
        "{what} on a full disk: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert!(
        body["errors"][0]["code"].is_string(),
        "{what} on a full disk: not the OCI error format: {body}"
    );
}

/// Sends a request with `body` and returns the status and body of the answer.
/// Over raw TCP, reading while writing: under the watermark berth answers 507
/// before reading the body and closes, and an HTTP client that only reads
/// once it has written everything reports the broken pipe, not the answer.
async fn send_reading_early(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_range: Option<String>,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let range = content_range.map_or(String::new(), |r| format!("Content-Range: {r}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n{range}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let sending = tokio::spawn(async move {
        // Fails once berth stops reading: expected when it answered early.
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut answer = Vec::new();
    // A reset after the answer is fine: what arrived before it is kept.
    let _ = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer))
        .await
        .expect("an answer, not a hang");
    sending.abort();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .find("\r\n\r\n")
        .map_or_else(Vec::new, |end| answer[end + 4..].to_vec());
    (status, body)
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
    for _ in 0..(CAPACITY as usize / BIG + 4) {
        let blob = rng.bytes(BIG);
        let path = format!(
            "/v2/full/app/blobs/uploads/?digest={}",
            sha256_digest(&blob)
        );
        let answer = send_reading_early(berth.addr, "POST", &path, None, blob).await;
        if answer.0 != 201 {
            first_failure = Some(answer);
            break;
        }
    }
    let failure = first_failure.expect("a push failed before the disk was over-full");
    eprintln!(
        "disk full: first failure {}, {} bytes used",
        failure.0,
        fs.used()
    );
    assert_oci_server_error("the first failed push", failure);
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
    let path = format!(
        "/v2/full/app/blobs/uploads/?digest={}",
        sha256_digest(&blob)
    );
    let answer = send_reading_early(berth.addr, "POST", &path, None, blob.clone()).await;
    assert_oci_server_error("monolithic push", answer);

    // Chunked: the session may start (little to write), the PATCH cannot.
    // The client then cancels it, as a client giving up would.
    let resp = http
        .post(berth.url("/v2/full/app/blobs/uploads/"))
        .send()
        .await
        .expect("an answer, not a hang");
    if resp.status() == StatusCode::ACCEPTED {
        let location = resp.headers()["location"].to_str().unwrap();
        // The upload's path, whether the Location is absolute or not.
        let path = location[location.find("/v2/").unwrap_or(0)..].to_string();
        let range = format!("0-{}", blob.len() - 1);
        let answer = send_reading_early(berth.addr, "PATCH", &path, Some(range), blob).await;
        assert_oci_server_error("chunked PATCH", answer);
        let resp = http
            .delete(berth.url(&path))
            .send()
            .await
            .expect("an answer");
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "cancel the upload");
    } else {
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default().to_vec();
        assert_oci_server_error("starting an upload", (status, body));
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
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default().to_vec();
        assert_oci_server_error("manifest put", (status, body));
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

//! What real networks and real clients do: bodies that end early or run long,
//! parallel pushes of the same content, and abandoned uploads.

use std::sync::Arc;
use std::time::Duration;

use super::harness::*;
use reqwest::Method;
use sha2::{Digest as _, Sha256};

/// The path of a fresh upload session (raw requests need a path, not a URL).
async fn upload_path(registry: &Registry, repo: &str) -> String {
    location_path(&registry.start_upload(repo).await).to_string()
}

/// Sends `method path` announcing `content_length` but carrying `body`, then stops writing.
async fn send_mismatched_body(
    registry: &Registry,
    method: &str,
    path: &str,
    content_length: usize,
    body: &[u8],
) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {content_length}\r\nConnection: close\r\n\r\n",
        registry.addr
    )
    .into_bytes();
    request.extend_from_slice(body);
    // Any answer (an error) or none (a closed connection) is fine; what follows is what counts.
    if let Some(resp) = registry.raw(&request, true).await {
        assert!(
            resp.status >= 400 || content_length == body.len(),
            "{method} {path} with a {}-byte body for Content-Length {content_length} answered {}",
            body.len(),
            resp.status
        );
    }
}

/// The server must still answer, and `digest` must not exist in `repo`.
async fn assert_serving_without(registry: &mut Registry, repo: &str, digest: &str) {
    registry.assert_alive();
    let resp = registry.send(registry.get("/v2/")).await;
    assert_eq!(resp.status(), 200, "the server must keep serving");
    let resp = registry
        .send(registry.get(&format!("/v2/{repo}/blobs/{digest}")))
        .await;
    assert_error(resp, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_put_with_a_short_body_leaves_no_blob() {
    let mut registry = Registry::start().await;
    let sent = random_bytes(5_000);
    // The digest of what did arrive: a server that took the short body as whole would store it.
    let digest = sha256_digest(&sent);
    let path = format!("{}?digest={digest}", upload_path(&registry, "app").await);
    send_mismatched_body(&registry, "PUT", &path, 10_000, &sent).await;
    assert_serving_without(&mut registry, "app", &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn single_post_with_a_short_body_leaves_no_blob() {
    let mut registry = Registry::start().await;
    let sent = random_bytes(5_000);
    let digest = sha256_digest(&sent);
    let path = format!("/v2/app/blobs/uploads/?digest={digest}");
    send_mismatched_body(&registry, "POST", &path, 8_000, &sent).await;
    assert_serving_without(&mut registry, "app", &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_with_a_short_body_leaves_no_blob_and_the_server_serving() {
    let mut registry = Registry::start().await;
    let sent = random_bytes(5_000);
    let digest = sha256_digest(&sent);
    let path = upload_path(&registry, "app").await;
    send_mismatched_body(&registry, "PATCH", &path, 10_000, &sent).await;
    assert_serving_without(&mut registry, "app", &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_put_with_a_body_longer_than_content_length_leaves_no_blob_of_it() {
    let mut registry = Registry::start().await;
    let sent = random_bytes(6_000);
    // The whole sent body's digest: only the first 3000 bytes were announced.
    let digest = sha256_digest(&sent);
    let path = format!("{}?digest={digest}", upload_path(&registry, "app").await);
    send_mismatched_body(&registry, "PUT", &path, 3_000, &sent).await;
    assert_serving_without(&mut registry, "app", &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_put_with_a_short_body_leaves_no_manifest() {
    let mut registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    send_mismatched_body(
        &registry,
        "PUT",
        "/v2/app/manifests/v2",
        image.manifest.len() + 100,
        &image.manifest,
    )
    .await;
    registry.assert_alive();
    let resp = registry.send(registry.get("/v2/app/manifests/v2")).await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_uploads_of_the_same_blob_all_succeed_and_serve_it_once() {
    let registry = Arc::new(Registry::start().await);
    let blob = Arc::new(random_bytes(1 << 20));
    let digest = sha256_digest(&blob);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (registry, blob, digest) = (registry.clone(), blob.clone(), digest.clone());
        tasks.spawn(async move {
            let resp = registry.post_blob("app", &digest, blob.to_vec()).await;
            resp.status().as_u16()
        });
    }
    let statuses: Vec<u16> = tasks.join_all().await;
    assert_eq!(statuses, [201; 8]);
    let resp = registry
        .send(registry.get(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        required_header(&resp, "content-length"),
        blob.len().to_string()
    );
    assert!(
        resp.bytes().await.unwrap() == blob.as_slice(),
        "served bytes differ from the blob"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_manifest_puts_to_one_tag_leave_it_on_one_of_them() {
    let registry = Arc::new(Registry::start().await);
    for round in 0..5 {
        let a = registry.push_image("app", &format!("a{round}")).await;
        let b = registry.push_image("app", &format!("b{round}")).await;
        let mut tasks = tokio::task::JoinSet::new();
        for manifest in [a.manifest.clone(), b.manifest.clone()] {
            let registry = registry.clone();
            tasks.spawn(async move {
                registry
                    .put_manifest("app", "race", OCI_MANIFEST, &manifest)
                    .await
                    .status()
            });
        }
        assert!(
            tasks.join_all().await.iter().all(|s| *s == 201),
            "round {round}"
        );
        let resp = registry.send(registry.get("/v2/app/manifests/race")).await;
        assert_eq!(resp.status(), 200);
        let digest = required_header(&resp, "docker-content-digest").to_string();
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            sha256_digest(&body),
            digest,
            "round {round}: header and body disagree"
        );
        assert!(
            digest == a.digest || digest == b.digest,
            "round {round}: tag points at neither"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_upload_expires() {
    let registry = Registry::start_with_env(&[("BERTH_UPLOAD_EXPIRY_SECS", "1")]).await;
    let location = registry.start_upload("app").await;
    let resp = registry
        .send(registry.client.patch(&location).body(random_bytes(100)))
        .await;
    assert_eq!(resp.status(), 202);
    let location = registry.resolve(required_header(&resp, "location"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resp = registry.send(registry.client.get(&location)).await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_that_keeps_receiving_chunks_does_not_expire() {
    // Expiry is for *abandoned* uploads: activity resets the clock.
    let registry = Registry::start_with_env(&[("BERTH_UPLOAD_EXPIRY_SECS", "1")]).await;
    let blob = random_bytes(600);
    let mut location = registry.start_upload("app").await;
    for chunk in blob.chunks(100) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let resp = registry
            .send(registry.client.patch(&location).body(chunk.to_vec()))
            .await;
        assert_eq!(resp.status(), 202);
        location = registry.resolve(required_header(&resp, "location"));
    }
    let resp = registry
        .send(
            registry
                .client
                .put(with_query(&location, "digest", &sha256_digest(&blob))),
        )
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_early_error_answer_leaves_a_usable_or_announced_closed_connection() {
    // The server answers 416 before reading a large PATCH body. It must then either
    // read (drain) the body and keep serving the connection, or say `Connection: close`:
    // closing a connection it left open for reuse breaks the client's next request on it.
    let registry = Registry::start().await;
    let path = upload_path(&registry, "app").await;
    let body = random_bytes(1 << 20);
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Range: 5000-{}\r\nContent-Length: {}\r\n\r\n",
        registry.addr,
        5000 + body.len() - 1,
        body.len()
    );
    let stream = tokio::net::TcpStream::connect(registry.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        writer // keep the write half open
    });
    let first = read_response(&mut reader)
        .await
        .expect("an answer to the PATCH");
    assert_eq!(first.status, 416);
    if first
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        return;
    }
    let mut writer = writing.await.unwrap();
    use tokio::io::AsyncWriteExt;
    let next = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        registry.addr
    );
    let _ = writer.write_all(next.as_bytes()).await;
    let second = read_response(&mut reader).await;
    assert_eq!(
        second.map(|r| r.status),
        Some(200),
        "the 416 did not say Connection: close, yet the connection was not usable afterwards"
    );
}

/// Blobs stream through the server: pushing and pulling one far larger than
/// the server's memory ceiling must not raise its peak RSS past that ceiling.
#[tokio::test(flavor = "multi_thread")]
async fn memory_does_not_grow_with_blob_size() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 128; // 128 MiB, twice the ceiling
    const CEILING: u64 = 64 << 20;
    let registry = Registry::start().await;
    // Content made on the fly, so the client never holds the whole blob either.
    let chunk = |i: usize| bytes::Bytes::from(vec![(i % 251) as u8; CHUNK]);
    let mut hasher = Sha256::new();
    (0..CHUNKS).for_each(|i| hasher.update(chunk(i)));
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    let body =
        futures_util::stream::iter((0..CHUNKS).map(move |i| Ok::<_, std::io::Error>(chunk(i))));
    let resp = registry
        .send(
            registry
                .request(
                    Method::POST,
                    &format!("/v2/big/blobs/uploads/?digest={digest}"),
                )
                .header("content-length", (CHUNK * CHUNKS).to_string())
                .body(reqwest::Body::wrap_stream(body)),
        )
        .await;
    assert_eq!(resp.status(), 201);

    let mut resp = registry
        .send(registry.get(&format!("/v2/big/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    let mut pulled = Sha256::new();
    while let Some(part) = resp.chunk().await.unwrap() {
        pulled.update(&part);
    }
    assert_eq!(format!("sha256:{}", hex::encode(pulled.finalize())), digest);
    let peak = registry.peak_rss();
    assert!(
        peak < CEILING,
        "peak RSS {} MiB for a {} MiB blob",
        peak >> 20,
        CHUNKS
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_failure_answers_500_without_internal_detail_and_is_logged_once() {
    let registry = Registry::start().await;
    // Uploads can no longer be written: the folder is now a file.
    let uploads = registry.data_dir().join("uploads");
    std::fs::remove_dir_all(&uploads).unwrap();
    std::fs::write(&uploads, b"in the way").unwrap();

    let bytes = random_bytes(1000);
    let resp = registry
        .post_blob("broken/disk", &sha256_digest(&bytes), bytes)
        .await;
    let body = assert_error(resp, 500, "UNKNOWN").await.to_string();
    let data_dir = registry.data_dir().display().to_string();
    for internal in ["os error", "directory", "uploads", data_dir.as_str()] {
        assert!(
            !body.contains(internal),
            "{internal:?} reached the client: {body}"
        );
    }
    let log = registry.stderr();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(
        failures.len(),
        1,
        "logged once, not {}:\n{log}",
        failures.len()
    );
    assert!(
        failures[0].contains("POST")
            && failures[0].contains("500")
            && failures[0].contains("os error"),
        "the log line names the request and its cause: {}",
        failures[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_naming_thirty_thousand_descriptors_is_refused_and_stalls_no_one() {
    let registry = Registry::start().await;
    let child = registry.push_image("app", "v1").await.descriptor();
    let entry = format!(
        // A terse media type, so that 30,000 of them fit the size limit.
        r#"{{"mediaType":"x/y","digest":"{}","size":{}}}"#,
        child.digest, child.size
    );
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        vec![entry; 30_000].join(",")
    )
    .into_bytes();
    assert!(
        index.len() < MANIFEST_LIMIT,
        "refused for its count, not its size"
    );
    let (refused, other) = tokio::join!(
        registry.put_manifest("app", "huge", OCI_INDEX, &index),
        registry.push_image("other", "v1")
    );
    let body = assert_error(refused, 400, "MANIFEST_INVALID").await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("descriptors"), "{message}");
    let resp = registry
        .send(registry.get(&format!("/v2/other/manifests/{}", other.digest)))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn under_the_free_space_watermark_pushes_get_507_and_reads_go_on() {
    let registry = Registry::start_with_env(&[
        ("BERTH_MIN_FREE_BYTES", "18446744073709551615"),
        ("BERTH_MIN_FREE_PERCENT", "100"),
    ])
    .await;
    let resp = registry
        .send(registry.request(Method::POST, "/v2/app/blobs/uploads/"))
        .await;
    assert_error(resp, 507, "UNKNOWN").await;
    let resp = registry
        .put_manifest("app", "v1", OCI_MANIFEST, b"{\"schemaVersion\":2}")
        .await;
    assert_error(resp, 507, "UNKNOWN").await;
    let resp = registry.send(registry.get("/v2/")).await;
    assert_eq!(resp.status(), 200);
    let resp = registry.send(registry.get("/v2/_catalog")).await;
    assert_eq!(resp.status(), 200);
}

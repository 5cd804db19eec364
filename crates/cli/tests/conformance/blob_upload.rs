//! Push, blobs: `POST /v2/<name>/blobs/uploads/` (end-4a/4b, mount end-11), `PATCH` (end-5),
//! `PUT` (end-6), upload status `GET` (end-13) and cancel `DELETE`.

use super::harness::*;
use reqwest::{Method, Response};

/// Asserts a 201 for a finished blob: Location names the blob, Docker-Content-Digest its digest.
fn assert_blob_created(resp: &Response, repo: &str, digest: &str) {
    assert_eq!(resp.status(), 201, "{}", resp.url());
    assert_eq!(
        location_path(required_header(resp, "location")),
        format!("/v2/{repo}/blobs/{digest}")
    );
    assert_eq!(required_header(resp, "docker-content-digest"), digest);
}

/// Asserts the blob is served with exactly `bytes` from `repo`.
async fn assert_blob_served(registry: &Registry, repo: &str, bytes: &[u8]) {
    let digest = sha256_digest(bytes);
    let resp = registry
        .send(registry.get(&format!("/v2/{repo}/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200, "GET {repo} blob {digest}");
    assert_eq!(resp.bytes().await.unwrap(), bytes, "blob {digest} content");
}

async fn assert_blob_absent(registry: &Registry, repo: &str, digest: &str) {
    let resp = registry
        .send(registry.get(&format!("/v2/{repo}/blobs/{digest}")))
        .await;
    assert_error(resp, 404, "BLOB_UNKNOWN").await;
}

async fn close_upload(registry: &Registry, location: &str, digest: &str, body: &[u8]) -> Response {
    let mut request = registry.client.put(with_query(location, "digest", digest));
    if !body.is_empty() {
        request = request
            .header("content-type", "application/octet-stream")
            .body(body.to_vec());
    }
    registry.send(request).await
}

/// Asserts a 202 chunk answer with `Range: 0-<last>` and returns the next Location.
fn assert_chunk_accepted(registry: &Registry, resp: &Response, last: usize) -> String {
    assert_eq!(resp.status(), 202, "{}", resp.url());
    assert_eq!(required_header(resp, "range"), format!("0-{last}"));
    registry.resolve(required_header(resp, "location"))
}

#[tokio::test(flavor = "multi_thread")]
async fn single_post_with_digest_creates_the_blob() {
    let registry = Registry::start().await;
    let blob = random_bytes(3000);
    let digest = sha256_digest(&blob);
    let resp = registry.post_blob("app", &digest, blob.clone()).await;
    assert_blob_created(&resp, "app", &digest);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn post_without_digest_opens_a_session_with_location_range_and_uuid() {
    let registry = Registry::start().await;
    let resp = registry
        .send(registry.request(Method::POST, "/v2/org/app/blobs/uploads/"))
        .await;
    assert_eq!(resp.status(), 202);
    let location = location_path(required_header(&resp, "location"));
    assert!(
        location.starts_with("/v2/org/app/blobs/uploads/"),
        "Location {location}"
    );
    let uuid = required_header(&resp, "docker-upload-uuid");
    assert!(
        !uuid.is_empty() && location.contains(uuid),
        "Location {location} must contain the session id {uuid}"
    );
    assert_eq!(required_header(&resp, "range"), "0-0");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sessions_get_different_locations() {
    let registry = Registry::start().await;
    let a = registry.start_upload("app").await;
    let b = registry.start_upload("app").await;
    assert_ne!(a, b);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_then_put_with_the_whole_blob_creates_it() {
    let registry = Registry::start().await;
    let blob = random_bytes(70_000);
    let digest = sha256_digest(&blob);
    let location = registry.start_upload("app").await;
    let resp = close_upload(&registry, &location, &digest, &blob).await;
    assert_blob_created(&resp, "app", &digest);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_upload_with_content_ranges_assembles_the_blob() {
    let registry = Registry::start().await;
    let blob = random_bytes(30_000);
    let digest = sha256_digest(&blob);
    let mut location = registry.start_upload("app").await;
    for (start, end) in [(0, 9_999), (10_000, 19_999), (20_000, 29_999)] {
        let resp = registry
            .patch_chunk(&location, Some((start, end)), &blob[start..=end])
            .await;
        location = assert_chunk_accepted(&registry, &resp, end);
    }
    let resp = close_upload(&registry, &location, &digest, b"").await;
    assert_blob_created(&resp, "app", &digest);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn final_chunk_may_arrive_with_the_closing_put() {
    let registry = Registry::start().await;
    let blob = random_bytes(20_000);
    let digest = sha256_digest(&blob);
    let location = registry.start_upload("app").await;
    let resp = registry
        .patch_chunk(&location, Some((0, 11_999)), &blob[..12_000])
        .await;
    let location = assert_chunk_accepted(&registry, &resp, 11_999);
    // A final chunk with a gap is out of order too.
    let resp = registry
        .send(
            registry
                .client
                .put(with_query(&location, "digest", &digest))
                .header("content-type", "application/octet-stream")
                .header("content-range", "13000-19999")
                .body(blob[13_000..].to_vec()),
        )
        .await;
    assert_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    let resp = registry
        .send(
            registry
                .client
                .put(with_query(&location, "digest", &digest))
                .header("content-type", "application/octet-stream")
                .header("content-range", "12000-19999")
                .body(blob[12_000..].to_vec()),
        )
        .await;
    assert_blob_created(&resp, "app", &digest);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_without_content_range_appends_a_streamed_chunk() {
    // docker pushes layers as one or more PATCHes with no Content-Range.
    let registry = Registry::start().await;
    let blob = random_bytes(9_000);
    let digest = sha256_digest(&blob);
    let location = registry.start_upload("app").await;
    let resp = registry.patch_chunk(&location, None, &blob[..4_000]).await;
    let location = assert_chunk_accepted(&registry, &resp, 3_999);
    let resp = registry.patch_chunk(&location, None, &blob[4_000..]).await;
    let location = assert_chunk_accepted(&registry, &resp, 8_999);
    let resp = close_upload(&registry, &location, &digest, b"").await;
    assert_blob_created(&resp, "app", &digest);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_status_reports_the_range_and_location() {
    let registry = Registry::start().await;
    let blob = random_bytes(5_000);
    let location = registry.start_upload("app").await;
    let resp = registry
        .patch_chunk(&location, Some((0, 2_499)), &blob[..2_500])
        .await;
    let location = assert_chunk_accepted(&registry, &resp, 2_499);
    let resp = registry.send(registry.client.get(&location)).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(required_header(&resp, "range"), "0-2499");
    let status_location = registry.resolve(required_header(&resp, "location"));
    // The upload continues from the status answer's Location.
    let resp = registry
        .patch_chunk(&status_location, Some((2_500, 4_999)), &blob[2_500..])
        .await;
    let location = assert_chunk_accepted(&registry, &resp, 4_999);
    let resp = close_upload(&registry, &location, &sha256_digest(&blob), b"").await;
    assert_eq!(resp.status(), 201);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_chunk_is_416_with_the_current_range() {
    let registry = Registry::start().await;
    let blob = random_bytes(3_000);
    let location = registry.start_upload("app").await;
    let resp = registry
        .patch_chunk(&location, Some((0, 999)), &blob[..1_000])
        .await;
    let location = assert_chunk_accepted(&registry, &resp, 999);
    // A gap, then a rewind: both out of order.
    for (start, end) in [(2_000, 2_999), (0, 999), (500, 1_499)] {
        let resp = registry
            .patch_chunk(&location, Some((start, end)), &blob[start..=end])
            .await;
        assert_eq!(resp.status(), 416, "chunk {start}-{end}");
        assert_eq!(
            required_header(&resp, "range"),
            "0-999",
            "chunk {start}-{end}"
        );
        assert_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    }
    // The rejected chunks left the upload untouched.
    let resp = registry
        .patch_chunk(&location, Some((1_000, 2_999)), &blob[1_000..])
        .await;
    let location = assert_chunk_accepted(&registry, &resp, 2_999);
    let resp = close_upload(&registry, &location, &sha256_digest(&blob), b"").await;
    assert_eq!(resp.status(), 201);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn first_chunk_not_starting_at_zero_is_416() {
    let registry = Registry::start().await;
    let location = registry.start_upload("app").await;
    let resp = registry
        .patch_chunk(&location, Some((10, 19)), &random_bytes(10))
        .await;
    assert_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_content_range_is_blob_upload_invalid() {
    let registry = Registry::start().await;
    let location = registry.start_upload("app").await;
    let resp = registry
        .send(
            registry
                .client
                .patch(&location)
                .header("content-type", "application/octet-stream")
                .header("content-range", "zero-nine")
                .body(random_bytes(10)),
        )
        .await;
    assert_error(resp, 400, "BLOB_UPLOAD_INVALID").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn content_range_whose_length_overflows_is_refused_and_appends_nothing() {
    // `0-18446744073709551615` is 2^64 bytes: its length wrapped to 0 and,
    // with an empty body, the chunk was accepted (or the server panicked).
    let registry = Registry::start().await;
    let location = registry.start_upload("app").await;
    let resp = registry
        .send(
            registry
                .client
                .patch(&location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("0-{}", u64::MAX))
                .header("content-length", "0")
                .body(Vec::new()),
        )
        .await;
    assert_error_one_of(
        resp,
        &[(400, "BLOB_UPLOAD_INVALID"), (416, "BLOB_UPLOAD_INVALID")],
    )
    .await;
    // The session is untouched: the first real chunk still starts at 0.
    let chunk = random_bytes(10);
    let resp = registry.patch_chunk(&location, Some((0, 9)), &chunk).await;
    let location = assert_chunk_accepted(&registry, &resp, 9);
    let resp = close_upload(&registry, &location, &sha256_digest(&chunk), b"").await;
    assert_blob_created(&resp, "app", &sha256_digest(&chunk));
    assert_blob_served(&registry, "app", &chunk).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chunk_whose_length_disagrees_with_its_content_range_is_rejected() {
    let registry = Registry::start().await;
    let location = registry.start_upload("app").await;
    // Content-Range announces 100 bytes; the body has 10.
    let resp = registry
        .patch_chunk(&location, Some((0, 99)), &random_bytes(10))
        .await;
    assert_error_one_of(
        resp,
        &[
            (400, "SIZE_INVALID"),
            (400, "BLOB_UPLOAD_INVALID"),
            (416, "BLOB_UPLOAD_INVALID"),
        ],
    )
    .await;
    let resp = registry.send(registry.client.get(&location)).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        required_header(&resp, "range"),
        "0-0",
        "the rejected chunk must not be kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_upload_is_unknown_afterwards() {
    let registry = Registry::start().await;
    let location = registry.start_upload("app").await;
    let resp = registry
        .patch_chunk(&location, None, &random_bytes(100))
        .await;
    let location = assert_chunk_accepted(&registry, &resp, 99);
    let resp = registry.send(registry.client.delete(&location)).await;
    assert_eq!(resp.status(), 204);
    let resp = registry.send(registry.client.get(&location)).await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = registry
        .patch_chunk(&location, None, &random_bytes(100))
        .await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_upload_session_is_blob_upload_unknown() {
    let registry = Registry::start().await;
    registry.start_upload("app").await;
    let path = "/v2/app/blobs/uploads/00000000-0000-4000-8000-000000000000";
    let resp = registry.send(registry.get(path)).await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = registry
        .patch_chunk(&registry.url(path), None, b"abc")
        .await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = close_upload(
        &registry,
        &registry.url(path),
        &sha256_digest(b"abc"),
        b"abc",
    )
    .await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_session_belongs_to_its_repository() {
    let registry = Registry::start().await;
    let location = registry.start_upload("app").await;
    let foreign = location.replacen("/v2/app/", "/v2/other/", 1);
    let resp = registry.send(registry.client.get(&foreign)).await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_put_with_a_wrong_digest_is_digest_invalid_and_stores_nothing() {
    let registry = Registry::start().await;
    let blob = random_bytes(4_000);
    let claimed = sha256_digest(b"something else entirely");
    let location = registry.start_upload("app").await;
    let resp = close_upload(&registry, &location, &claimed, &blob).await;
    assert_error(resp, 400, "DIGEST_INVALID").await;
    assert_blob_absent(&registry, "app", &claimed).await;
    assert_blob_absent(&registry, "app", &sha256_digest(&blob)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn single_post_with_a_wrong_digest_is_digest_invalid_and_stores_nothing() {
    let registry = Registry::start().await;
    let blob = random_bytes(4_000);
    let claimed = sha256_digest(b"another thing");
    let resp = registry
        .send(
            registry
                .request(
                    Method::POST,
                    &format!("/v2/app/blobs/uploads/?digest={claimed}"),
                )
                .header("content-type", "application/octet-stream")
                .body(blob.clone()),
        )
        .await;
    assert_error(resp, 400, "DIGEST_INVALID").await;
    assert_blob_absent(&registry, "app", &claimed).await;
    assert_blob_absent(&registry, "app", &sha256_digest(&blob)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_put_without_a_digest_is_rejected() {
    let registry = Registry::start().await;
    let location = registry.start_upload("app").await;
    let resp = registry
        .send(registry.client.put(&location).body(random_bytes(10)))
        .await;
    assert_error_one_of(
        resp,
        &[(400, "DIGEST_INVALID"), (400, "BLOB_UPLOAD_INVALID")],
    )
    .await;
}

/// `POST /v2/<repo>/blobs/uploads/?<query>`: a cross-repository mount request.
async fn post_mount(registry: &Registry, repo: &str, query: &str) -> Response {
    registry
        .send(registry.request(Method::POST, &format!("/v2/{repo}/blobs/uploads/?{query}")))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn mount_from_a_repository_holding_the_blob_is_201() {
    let registry = Registry::start().await;
    let blob = random_bytes(1_000);
    let digest = registry.push_blob("base/image", &blob).await;
    let resp = post_mount(
        &registry,
        "my/app",
        &format!("mount={digest}&from=base/image"),
    )
    .await;
    assert_blob_created(&resp, "my/app", &digest);
    assert_blob_served(&registry, "my/app", &blob).await;
}

/// Asserts a mount fell back to a usable upload session, and the blob was not linked.
async fn assert_mount_fell_back(registry: &Registry, resp: Response, repo: &str, digest: &str) {
    assert_eq!(resp.status(), 202, "{}", resp.url());
    let location = registry.resolve(required_header(&resp, "location"));
    assert!(
        location_path(&location).starts_with(&format!("/v2/{repo}/blobs/uploads/")),
        "{location}"
    );
    assert_blob_absent(registry, repo, digest).await;
    let resp = registry.send(registry.client.get(&location)).await;
    assert_eq!(resp.status(), 204, "the fallback session must be live");
}

#[tokio::test(flavor = "multi_thread")]
async fn mount_from_a_repository_lacking_the_blob_falls_back_to_an_upload() {
    let registry = Registry::start().await;
    let blob = random_bytes(1_000);
    // The blob exists in the registry, but not in the repository named by `from`.
    let digest = registry.push_blob("private/secret", &blob).await;
    registry.push_blob("base/image", b"another blob").await;
    let resp = post_mount(
        &registry,
        "my/app",
        &format!("mount={digest}&from=base/image"),
    )
    .await;
    assert_mount_fell_back(&registry, resp, "my/app", &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mount_from_an_unknown_repository_falls_back_to_an_upload() {
    let registry = Registry::start().await;
    let digest = sha256_digest(b"nowhere");
    let resp = post_mount(
        &registry,
        "my/app",
        &format!("mount={digest}&from=no/such/repo"),
    )
    .await;
    assert_mount_fell_back(&registry, resp, "my/app", &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mount_without_from_falls_back_to_an_upload() {
    let registry = Registry::start().await;
    let digest = sha256_digest(b"nowhere either");
    let resp = post_mount(&registry, "my/app", &format!("mount={digest}")).await;
    assert_mount_fell_back(&registry, resp, "my/app", &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fallback_session_from_a_failed_mount_completes_an_upload() {
    let registry = Registry::start().await;
    let blob = random_bytes(2_000);
    let digest = sha256_digest(&blob);
    let resp = post_mount(&registry, "app", &format!("mount={digest}&from=elsewhere")).await;
    assert_eq!(resp.status(), 202);
    let location = registry.resolve(required_header(&resp, "location"));
    let resp = close_upload(&registry, &location, &digest, &blob).await;
    assert_blob_created(&resp, "app", &digest);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_upload_session_is_closed() {
    let registry = Registry::start().await;
    let blob = random_bytes(100);
    let location = registry.start_upload("app").await;
    let resp = close_upload(&registry, &location, &sha256_digest(&blob), &blob).await;
    assert_eq!(resp.status(), 201);
    let resp = registry.send(registry.client.get(&location)).await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = registry.patch_chunk(&location, None, b"more").await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

/// Sends `method path` with `body` in HTTP/1.1 chunked transfer encoding (no Content-Length),
/// as docker does for layer PATCHes; returns the status.
async fn send_chunked(registry: &Registry, method: &str, path: &str, body: &[u8]) -> u16 {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        registry.addr
    )
    .into_bytes();
    for piece in body.chunks(7_777) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let resp = registry.raw(&request, false).await;
    resp.unwrap_or_else(|| panic!("{method} {path}: no answer"))
        .status
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_transfer_encoded_patch_and_put_are_accepted() {
    let registry = Registry::start().await;
    let blob = random_bytes(50_000);
    let digest = sha256_digest(&blob);
    let path = location_path(&registry.start_upload("app").await).to_string();
    assert_eq!(
        send_chunked(&registry, "PATCH", &path, &blob[..30_000]).await,
        202
    );
    let resp = registry.send(registry.get(&path)).await;
    assert_eq!(required_header(&resp, "range"), "0-29999");
    let put = with_query(&path, "digest", &digest);
    assert_eq!(
        send_chunked(&registry, "PUT", &put, &blob[30_000..]).await,
        201
    );
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_blob_in_many_chunks_is_assembled_exactly() {
    let registry = Registry::start().await;
    let blob = random_bytes(16 << 20);
    let digest = sha256_digest(&blob);
    let mut location = registry.start_upload("app").await;
    let chunk = 1 << 20;
    for start in (0..blob.len()).step_by(chunk) {
        let end = start + chunk - 1;
        let resp = registry
            .patch_chunk(&location, Some((start, end)), &blob[start..=end])
            .await;
        location = assert_chunk_accepted(&registry, &resp, end);
    }
    let resp = close_upload(&registry, &location, &digest, b"").await;
    assert_blob_created(&resp, "app", &digest);
    assert_blob_served(&registry, "app", &blob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_chunks_for_the_same_offset_leave_one_consistent_upload() {
    // DESIGN write path rule 4: concurrent writers end in one consistent state —
    // exactly one chunk is accepted, and the upload holds exactly that chunk.
    let registry = std::sync::Arc::new(Registry::start().await);
    for round in 0..5 {
        let location = registry.start_upload("app").await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..2 {
            let (registry, location) = (registry.clone(), location.clone());
            let chunk = random_bytes(50_000);
            tasks.spawn(async move {
                // Unpooled connections: connection reuse after an early 416 has its own test.
                let request = registry
                    .client
                    .patch(&location)
                    .header("connection", "close")
                    .header("content-range", format!("0-{}", chunk.len() - 1))
                    .body(chunk.clone());
                (registry.send(request).await.status().as_u16(), chunk)
            });
        }
        let mut results = tasks.join_all().await;
        results.sort_by_key(|(status, _)| *status);
        let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            statuses,
            [202, 416],
            "round {round}: exactly one chunk may land at offset 0"
        );
        let resp = registry.send(registry.client.get(&location)).await;
        assert_eq!(required_header(&resp, "range"), "0-49999", "round {round}");
        let accepted = &results[0].1;
        let resp = close_upload(&registry, &location, &sha256_digest(accepted), b"").await;
        assert_eq!(
            resp.status(),
            201,
            "round {round}: the upload must hold the accepted chunk"
        );
        assert_blob_served(&registry, "app", accepted).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_patch_longer_than_its_content_range_is_refused_and_appends_nothing() {
    let registry = Registry::start().await;
    let location = registry.start_upload("app").await;
    let path = location_path(&location).to_string();
    // 20 bytes, chunked (no Content-Length), for `Content-Range: 0-9`.
    let body =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 20]))]);
    let resp = registry
        .send(
            registry
                .request(Method::PATCH, &path)
                .header("content-type", "application/octet-stream")
                .header("content-range", "0-9")
                .body(reqwest::Body::wrap_stream(body)),
        )
        .await;
    assert_error(resp, 400, "BLOB_UPLOAD_INVALID").await;
    let resp = registry.send(registry.request(Method::GET, &path)).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(required_header(&resp, "range"), "0-0", "nothing appended");
}

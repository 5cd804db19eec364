//! The paths berth takes where Linux's calls are missing (macOS), forced on
//! Linux with `BERTH_PORTABLE_IO=1`: no sendfile (blob bodies are read on a
//! blocking thread and streamed), no page-cache probe, no writeback hint, no
//! glibc allocator tuning. Pushes (monolithic, chunked past the writeback
//! stretch, whole images) and pulls (full, Range, HEAD, pipelined) must give
//! back the exact bytes, and the log must show that no blob went by sendfile.

use super::harness::*;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Logs which body each blob GET used (`via=sendfile` or `via=stream`).
const PATH_LOG: (&str, &str) = ("BERTH_LOG", "info,berth_server::handlers::blobs=debug");

/// How many blob bodies the log says went out by `via`.
fn bodies_via(registry: &Registry, via: &str) -> usize {
    registry
        .stderr()
        .lines()
        .filter(|l| l.contains("blob body"))
        .filter(|l| l.contains(&format!("via={via}")) || l.contains(&format!("via=\"{via}\"")))
        .count()
}

/// GETs a blob; asserts the status and returns the body.
async fn get_blob(registry: &Registry, repo: &str, digest: &str, range: Option<&str>) -> Vec<u8> {
    let mut request = registry.get(&format!("/v2/{repo}/blobs/{digest}"));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let resp = registry.send(request).await;
    let want = if range.is_some() { 206 } else { 200 };
    assert_eq!(resp.status(), want, "GET {digest} range {range:?}");
    assert_eq!(required_header(&resp, "docker-content-digest"), digest);
    resp.bytes().await.unwrap().to_vec()
}

/// Pushes `bytes` as PATCHes of `chunk` bytes with Content-Range, then PUT.
async fn push_chunked(registry: &Registry, repo: &str, bytes: &[u8], chunk: usize) -> String {
    let digest = sha256_digest(bytes);
    let mut location = registry.start_upload(repo).await;
    for (i, piece) in bytes.chunks(chunk).enumerate() {
        let start = i * chunk;
        let resp = registry
            .patch_chunk(&location, Some((start, start + piece.len() - 1)), piece)
            .await;
        assert_eq!(resp.status(), 202, "PATCH chunk {i}");
        location = registry.resolve(required_header(&resp, "location"));
    }
    let resp = registry
        .send(
            registry
                .request(Method::PUT, location_path(&location))
                .query(&[("digest", digest.as_str())]),
        )
        .await;
    assert_eq!(resp.status(), 201, "closing PUT");
    digest
}

#[tokio::test]
async fn forced_portable_io_pushes_and_pulls_exact_bytes_without_sendfile() {
    let registry = Registry::start_with_env(&[("BERTH_PORTABLE_IO", "1"), PATH_LOG]).await;
    assert!(
        registry.stderr().contains("linux_io=false"),
        "berth says it runs without Linux's calls:\n{}",
        registry.stderr()
    );
    let repo = "portable/io";

    // Chunked, across more than one 8 MiB writeback stretch.
    let big = random_bytes(20 << 20);
    let big_digest = push_chunked(&registry, repo, &big, 3 << 20).await;
    assert_eq!(big_digest, sha256_digest(&big));
    let small = random_bytes(1000);
    let small_digest = registry.push_blob(repo, &small).await;
    let image = registry.push_image(repo, "v1").await;

    // Full, twice (the second read finds it in the page cache: still streamed).
    for _ in 0..2 {
        let got = get_blob(&registry, repo, &big_digest, None).await;
        assert_eq!(sha256_digest(&got), big_digest, "full GET digest");
    }
    let got = get_blob(&registry, repo, &big_digest, Some("bytes=5000000-12999999")).await;
    assert!(got == big[5_000_000..13_000_000], "Range bytes");
    let got = get_blob(&registry, repo, &big_digest, Some("bytes=-10")).await;
    assert_eq!(got, &big[big.len() - 10..], "suffix Range bytes");
    assert_eq!(
        get_blob(&registry, repo, &small_digest, None).await,
        small,
        "monolithic blob"
    );

    // The image, as a client pulls it: manifest by tag, then each blob by digest.
    let resp = registry
        .send(
            registry
                .get(&format!("/v2/{repo}/manifests/v1"))
                .header("accept", OCI_MANIFEST),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    for d in std::iter::once(&image.config).chain(&image.layers) {
        let got = get_blob(&registry, repo, &d.digest, None).await;
        assert_eq!(sha256_digest(&got), d.digest);
        assert_eq!(got.len() as u64, d.size);
    }

    // HEAD then GET pipelined on one connection: HEAD sends no body.
    let wire = format!(
        "HEAD /v2/{repo}/blobs/{small_digest} HTTP/1.1\r\nHost: {0}\r\n\r\n\
         GET /v2/{repo}/blobs/{small_digest} HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        registry.addr
    );
    let mut stream = TcpStream::connect(registry.addr).await.unwrap();
    stream.write_all(wire.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let responses = split_responses(&raw, &["HEAD", "GET"]);
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0].header("content-length"), Some("1000"));
    assert!(responses[0].body.is_empty());
    assert!(responses[1].body == small, "pipelined GET bytes");

    let streamed = bodies_via(&registry, "stream");
    assert_eq!(
        bodies_via(&registry, "sendfile"),
        0,
        "no blob by sendfile; log:\n{}",
        registry.stderr()
    );
    assert!(streamed >= 8, "every blob GET streamed ({streamed})");
}

/// The control: the same warm blob without the switch goes by sendfile on
/// Linux, so the test above fails if the switch stops switching.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn without_the_switch_a_warm_blob_goes_by_sendfile() {
    let registry = Registry::start_with_env(&[PATH_LOG]).await;
    let repo = "portable/control";
    let bytes = random_bytes(64 << 10);
    let digest = registry.push_blob(repo, &bytes).await;
    assert_eq!(get_blob(&registry, repo, &digest, None).await, bytes);
    assert_eq!(
        get_blob(&registry, repo, &digest, None).await,
        bytes,
        "second read, from the page cache"
    );
    assert!(registry.stderr().contains("linux_io=true"));
    assert!(
        bodies_via(&registry, "sendfile") >= 1,
        "log:\n{}",
        registry.stderr()
    );
}

//! Blob bytes on real sockets, where the sendfile path could go wrong
//! (see the invariant in crates/server/src/sendfile.rs): pipelined requests,
//! compression asked for, HEAD then GET, clients leaving mid-body, and a
//! page cache that holds only part of a blob. Each test also checks which
//! path served the blob, so neither sendfile nor the streaming fallback can
//! silently stop being exercised.

use std::fs::File;
use std::time::Duration;

use super::harness::*;
use rustix::fs::{fadvise, Advice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Logs which body each blob GET used (`via=sendfile` or `via=stream`).
const PATH_LOG: (&str, &str) = ("BERTH_LOG", "info,berth_server::handlers::blobs=debug");

async fn start() -> Registry {
    Registry::start_with_env(&[PATH_LOG]).await
}

/// How many blob bodies went out by each path: (sendfile, stream).
fn paths_taken(registry: &Registry) -> (usize, usize) {
    let log = registry.stderr();
    let count = |via: &str| {
        log.lines()
            .filter(|l| l.contains("blob body") && l.contains(&format!("via=\"{via}\"")))
            .count()
            + log
                .lines()
                .filter(|l| l.contains("blob body") && l.contains(&format!("via={via}")))
                .count()
    };
    (count("sendfile"), count("stream"))
}

/// Writes `requests` on one connection in a single write; the last asks to
/// close, so everything the server sends can be read to the end.
async fn pipelined(registry: &Registry, requests: &[(&str, String, &str)]) -> Vec<RawResponse> {
    let mut wire = String::new();
    for (i, (method, path, extra)) in requests.iter().enumerate() {
        let close = if i + 1 == requests.len() {
            "Connection: close\r\n"
        } else {
            ""
        };
        wire.push_str(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}{close}\r\n",
            registry.addr
        ));
    }
    let mut stream = TcpStream::connect(registry.addr).await.unwrap();
    stream.write_all(wire.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut got))
        .await
        .expect("the server answers every pipelined request and closes")
        .unwrap();
    let methods: Vec<&str> = requests.iter().map(|(m, _, _)| *m).collect();
    split_responses(&got, &methods)
}

/// Pushes `len` random bytes to `repo`; returns them and their digest.
async fn blob(registry: &Registry, repo: &str, len: usize) -> (Vec<u8>, String) {
    let bytes = random_bytes(len);
    let digest = registry.push_blob(repo, &bytes).await;
    (bytes, digest)
}

#[tokio::test]
async fn pipelined_blob_and_manifest_requests_are_answered_in_order() {
    let registry = start().await;
    let repo = "wire/pipelined";
    let (a, a_digest) = blob(&registry, repo, 3 << 20).await;
    let (b, b_digest) = blob(&registry, repo, 1000).await;
    let image = registry.push_image(repo, "v1").await;
    let accept = format!("Accept: {OCI_MANIFEST}\r\n");
    let requests = [
        ("GET", format!("/v2/{repo}/blobs/{a_digest}"), ""),
        ("GET", format!("/v2/{repo}/manifests/v1"), accept.as_str()),
        ("GET", format!("/v2/{repo}/blobs/{b_digest}"), ""),
        ("HEAD", format!("/v2/{repo}/blobs/{a_digest}"), ""),
        (
            "GET",
            format!("/v2/{repo}/blobs/{a_digest}"),
            "Range: bytes=10-99\r\n",
        ),
        ("GET", format!("/v2/{repo}/blobs/{b_digest}"), ""),
        ("GET", format!("/v2/{repo}/blobs/{a_digest}"), ""),
    ];
    let responses = pipelined(&registry, &requests).await;
    let expected: [(u16, &[u8]); 7] = [
        (200, &a),
        (200, &image.manifest),
        (200, &b),
        (200, b""),
        (206, &a[10..100]),
        (200, &b),
        (200, &a),
    ];
    for (i, (resp, (status, body))) in responses.iter().zip(expected).enumerate() {
        assert_eq!(resp.status, status, "response {i} ({:?})", requests[i].1);
        assert!(
            resp.body == body,
            "response {i}: wrong bytes ({:?})",
            requests[i].1
        );
    }
    assert_eq!(responses[3].header("content-length"), Some("3145728"));
    let (sendfile, _) = paths_taken(&registry);
    assert!(
        sendfile >= 5,
        "freshly pushed blobs go by sendfile; log:\n{}",
        registry.stderr()
    );
}

#[tokio::test]
async fn asking_for_gzip_still_gets_the_exact_blob_bytes() {
    let registry = start().await;
    let (bytes, digest) = blob(&registry, "wire/gzip", 2 << 20).await;
    let resp = registry
        .raw(
            format!(
                "GET /v2/wire/gzip/blobs/{digest} HTTP/1.1\r\nHost: {}\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: close\r\n\r\n",
                registry.addr
            )
            .as_bytes(),
            false,
        )
        .await
        .expect("an answer");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-encoding"), None);
    assert!(resp.body == bytes, "blob bytes, untransformed");
    assert_eq!(paths_taken(&registry).0, 1, "{}", registry.stderr());
}

#[tokio::test]
async fn head_then_get_on_one_connection() {
    let registry = start().await;
    let (bytes, digest) = blob(&registry, "wire/head", 1 << 20).await;
    let path = format!("/v2/wire/head/blobs/{digest}");
    let mut stream = TcpStream::connect(registry.addr).await.unwrap();
    let head = format!("HEAD {path} HTTP/1.1\r\nHost: {}\r\n\r\n", registry.addr);
    stream.write_all(head.as_bytes()).await.unwrap();
    // Let the HEAD answer go out alone before the GET arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let get = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        registry.addr
    );
    stream.write_all(get.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.unwrap();
    let responses = split_responses(&got, &["HEAD", "GET"]);
    assert_eq!(responses[0].status, 200);
    assert!(responses[0].body.is_empty());
    assert_eq!(responses[1].status, 200);
    assert!(responses[1].body == bytes);
}

#[tokio::test]
async fn a_client_leaving_mid_body_does_not_disturb_the_next() {
    let mut registry = start().await;
    let (bytes, digest) = blob(&registry, "wire/leave", 8 << 20).await;
    let path = format!("/v2/wire/leave/blobs/{digest}");
    for _ in 0..5 {
        let mut stream = TcpStream::connect(registry.addr).await.unwrap();
        let get = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", registry.addr);
        stream.write_all(get.as_bytes()).await.unwrap();
        let mut some = vec![0u8; 64 << 10];
        stream.read_exact(&mut some).await.unwrap();
        drop(stream); // mid-body
    }
    let resp = registry.send(registry.get(&path)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.unwrap() == bytes,
        "the next client gets the right bytes"
    );
    registry.assert_alive();
}

/// Writes the blob's pages to disk, then drops `range` of them from the page cache.
fn evict(registry: &Registry, digest: &str, offset: u64, len: u64) {
    let file = File::open(registry.blob_file(digest)).expect("blob file");
    file.sync_all().unwrap();
    fadvise(
        &file,
        offset,
        std::num::NonZeroU64::new(len),
        Advice::DontNeed,
    )
    .unwrap();
}

#[tokio::test]
async fn a_blob_partly_evicted_from_the_page_cache_is_sent_whole() {
    let registry = start().await;
    let len = 6 << 20;
    let (bytes, digest) = blob(&registry, "wire/evict", len).await;
    // The first and last pages stay cached, the middle does not: the
    // cache probe says "cached", and sendfile reads the middle from disk.
    evict(&registry, &digest, 4096, len as u64 - 2 * 4096);
    let resp = registry
        .send(registry.get(&format!("/v2/wire/evict/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap() == bytes);
    assert_eq!(
        paths_taken(&registry),
        (1, 0),
        "expected sendfile: is the data folder on a filesystem without RWF_NOWAIT (tmpfs)?\n{}",
        registry.stderr()
    );
}

#[tokio::test]
async fn a_blob_not_in_the_page_cache_is_streamed() {
    let registry = start().await;
    let len = 3 << 20;
    let (bytes, digest) = blob(&registry, "wire/cold", len).await;
    evict(&registry, &digest, 0, len as u64);
    let resp = registry
        .send(registry.get(&format!("/v2/wire/cold/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap() == bytes);
    assert_eq!(
        paths_taken(&registry),
        (0, 1),
        "expected the streaming fallback\n{}",
        registry.stderr()
    );
}

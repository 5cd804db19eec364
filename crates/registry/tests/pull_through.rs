//! The pull-through cache's rules, driven in-process over the real
//! filesystem and SQLite stores with an in-memory upstream (FakeUpstream).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::pull_through::{UpstreamError, UpstreamRoute, UpstreamRoutes};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::testing::{FakeCall, FakeUpstream};
use berth_registry::{
    BlobContent, BlobStore, ByteStream, CacheOutcome, Error, ManifestContent, MountOutcome,
    PullThrough, Pulled, Registry, RegistryOptions,
};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;

const REMOTE: &str = "library/busybox";
const LOCAL: &str = "docker.io/library/busybox";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry caching `docker.io` (prefix `docker.io`) from a fake upstream,
/// with its blob store at hand to look for stray files.
struct Cache {
    reg: Arc<Registry>,
    blobs: Arc<FsBlobStore>,
    fake: Arc<FakeUpstream>,
    _dir: tempfile::TempDir,
}

fn route(name: &str, docker_hub: bool, fake: &Arc<FakeUpstream>) -> UpstreamRoute {
    UpstreamRoute {
        name: name.into(),
        prefix: name.into(),
        docker_hub,
        upstream: fake.clone(),
    }
}

fn cache_with(freshness: Duration, fallback: bool) -> Cache {
    cache_limited(freshness, fallback, None)
}

fn cache_limited(freshness: Duration, fallback: bool, max_bytes: Option<u64>) -> Cache {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeUpstream::new());
    let routes = if fallback {
        UpstreamRoutes::new(vec![], Some(route("proxy", false, &fake)))
    } else {
        UpstreamRoutes::new(vec![route("docker.io", true, &fake)], None)
    };
    let blobs = Arc::new(FsBlobStore::open(dir.path()).unwrap());
    let reg = Registry::new(
        blobs.clone(),
        Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap()),
        RegistryOptions::default(),
    )
    .with_pull_through(PullThrough::new(routes, freshness, max_bytes));
    Cache {
        reg: Arc::new(reg),
        blobs,
        fake,
        _dir: dir,
    }
}

fn cache() -> Cache {
    cache_with(Duration::from_secs(300), false)
}

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

/// An image upstream: config, one layer of `layer` bytes, a manifest
/// tagged `tag`. Returns (manifest, config, layer) digests.
fn upstream_image(
    fake: &FakeUpstream,
    remote: &str,
    tag: &str,
    layer: &[u8],
) -> (Digest, Digest, Digest) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","tag":"{tag}"}}"#);
    let config_digest = fake.add_blob(remote, config.clone().into_bytes());
    let layer_digest = fake.add_blob(remote, layer.to_vec());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let manifest_digest = fake.add_manifest(remote, Some(tag), OCI_MANIFEST, manifest.into_bytes());
    (manifest_digest, config_digest, layer_digest)
}

async fn collect(content: BlobContent) -> Result<Vec<u8>, std::io::Error> {
    let chunks: Vec<Bytes> = content.into_stream().try_collect().await?;
    Ok(chunks.concat())
}

async fn pull_body(reg: &Registry, name: &str, digest: &Digest) -> (Vec<u8>, Option<CacheOutcome>) {
    let pulled = reg
        .pull_blob(&repo(name), digest, None, true)
        .await
        .unwrap();
    let bytes = collect(pulled.value.content.unwrap()).await.unwrap();
    (bytes, pulled.cache)
}

/// Waits until the background fill has linked `digest` in `name`.
async fn linked(reg: &Registry, name: &str, digest: &Digest) {
    // Generous: the machine running the tests may be busy.
    for _ in 0..1000 {
        if reg.blob(&repo(name), digest, None, false).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{digest} never got linked in {name}");
}

fn big(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn body(bytes: &[u8]) -> ByteStream<'static> {
    stream::iter([Ok(Bytes::copy_from_slice(bytes))]).boxed()
}

#[tokio::test]
async fn twenty_concurrent_pulls_of_one_uncached_blob_fetch_it_once() {
    let c = cache();
    let layer = big(1 << 20, 7);
    let (_, _, digest) = upstream_image(&c.fake, REMOTE, "latest", &layer);
    // Slow enough that every pull arrives while the first is still fetching.
    c.fake.set_slow(Some(Duration::from_millis(5)));
    let pulls = (0..20).map(|_| {
        let reg = c.reg.clone();
        let digest = digest.clone();
        tokio::spawn(async move { pull_body(&reg, LOCAL, &digest).await })
    });
    let results = futures_util::future::join_all(pulls).await;
    let mut misses = 0;
    for result in results {
        let (bytes, outcome) = result.unwrap();
        assert!(bytes == layer, "every caller gets the whole, right blob");
        if outcome == Some(CacheOutcome::Miss) {
            misses += 1;
        }
    }
    assert_eq!(
        c.fake
            .calls_for(FakeCall::Blob, REMOTE, &digest.to_string()),
        1
    );
    assert_eq!(misses, 1, "one leader, the others served from the store");
    let stats = c.reg.pull_through_stats();
    assert_eq!((stats[0].misses, stats[0].hits), (1, 19));
    assert_eq!(stats[0].fetched_bytes, layer.len() as u64);
}

#[tokio::test]
async fn the_first_caller_gets_bytes_before_the_upstream_sent_the_last() {
    let c = cache();
    let layer = big(10 * 1024, 3);
    let (_, _, digest) = upstream_image(&c.fake, REMOTE, "latest", &layer);
    c.fake.set_chunk_size(1024);
    c.fake.set_slow(Some(Duration::from_millis(100)));
    let pulled = c
        .reg
        .pull_blob(&repo(LOCAL), &digest, None, true)
        .await
        .unwrap();
    assert_eq!(pulled.cache, Some(CacheOutcome::Miss));
    assert_eq!(
        pulled.value.size,
        layer.len() as u64,
        "the upstream's length, announced up front"
    );
    let mut stream = pulled.value.content.unwrap().into_stream();
    let first = stream.next().await.unwrap().unwrap();
    let sent = c.fake.chunks_sent();
    assert!(
        sent < 10,
        "the first chunk came after {sent} of 10 upstream chunks"
    );
    let mut got = first.to_vec();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == layer);
    linked(&c.reg, LOCAL, &digest).await;
}

#[tokio::test]
async fn the_cache_fills_when_the_first_caller_goes_away() {
    let c = cache();
    let layer = big(64 * 1024, 5);
    let (_, _, digest) = upstream_image(&c.fake, REMOTE, "latest", &layer);
    c.fake.set_chunk_size(1024);
    c.fake.set_slow(Some(Duration::from_millis(2)));
    let pulled = c
        .reg
        .pull_blob(&repo(LOCAL), &digest, None, true)
        .await
        .unwrap();
    drop(pulled);
    linked(&c.reg, LOCAL, &digest).await;
    let (bytes, outcome) = pull_body(&c.reg, LOCAL, &digest).await;
    assert!(bytes == layer);
    assert_eq!(outcome, Some(CacheOutcome::Hit));
    assert_eq!(c.fake.calls(FakeCall::Blob), 1);
}

#[tokio::test]
async fn wrong_bytes_from_upstream_are_an_error_and_nothing_is_cached() {
    let c = cache();
    let layer = big(8 * 1024, 9);
    let (_, _, digest) = upstream_image(&c.fake, REMOTE, "latest", &layer);
    c.fake.set_wrong_bytes(true);
    c.fake.set_chunk_size(1024);
    let pulled = c
        .reg
        .pull_blob(&repo(LOCAL), &digest, None, true)
        .await
        .unwrap();
    let read = collect(pulled.value.content.unwrap()).await;
    let e = read.expect_err("the stream ends with an error, never with the whole wrong blob");
    assert!(e.to_string().contains("docker.io"), "{e}");
    // Nothing linked, nothing in the blob store, no upload left behind.
    for _ in 0..1000 {
        if c.reg.pull_through_stats()[0].errors == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.reg.pull_through_stats()[0].errors, 1);
    assert!(c.blobs.read(&digest, None).await.unwrap().is_none());
    assert!(c
        .blobs
        .uploads_older_than(Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    c.fake.set_down(true);
    let e = c
        .reg
        .blob(&repo(LOCAL), &digest, None, false)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::BlobUnknown(_)), "{e:?}");
}

#[tokio::test]
async fn waiters_of_a_mismatched_blob_get_the_mismatch() {
    let c = cache();
    let layer = big(64 * 1024, 11);
    let (_, _, digest) = upstream_image(&c.fake, REMOTE, "latest", &layer);
    c.fake.set_wrong_bytes(true);
    c.fake.set_chunk_size(1024);
    c.fake.set_slow(Some(Duration::from_millis(2)));
    let leader = c
        .reg
        .pull_blob(&repo(LOCAL), &digest, None, true)
        .await
        .unwrap();
    let name = repo(LOCAL);
    let waiter = c.reg.pull_blob(&name, &digest, None, true);
    let (waited, read) = tokio::join!(waiter, collect(leader.value.content.unwrap()));
    assert!(read.is_err());
    match waited {
        Err(Error::UpstreamDigestMismatch {
            upstream, expected, ..
        }) => {
            assert_eq!((upstream.as_str(), &expected), ("docker.io", &digest));
        }
        other => panic!("{:?}", other.map(|p| p.cache)),
    }
    assert_eq!(c.fake.calls(FakeCall::Blob), 1);
}

#[tokio::test]
async fn a_manifest_that_does_not_match_its_digest_is_not_cached() {
    let c = cache();
    let (manifest, _, _) = upstream_image(&c.fake, REMOTE, "latest", b"layer");
    c.fake.set_wrong_manifest_digest(true);
    let e = c
        .reg
        .pull_manifest(&repo(LOCAL), &reference("latest"), &[], true)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UpstreamDigestMismatch { .. }), "{e:?}");
    c.fake.set_wrong_manifest_digest(false);
    c.fake.set_down(true);
    let by_digest = Reference::Digest(manifest);
    let e = c
        .reg
        .manifest(&repo(LOCAL), &by_digest, &[], false)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::ManifestUnknown(_)),
        "nothing stored: {e:?}"
    );
    assert_eq!(c.reg.pull_through_stats()[0].errors, 1);
}

#[tokio::test]
async fn a_tag_is_checked_upstream_at_most_once_per_interval() {
    let c = cache_with(Duration::from_secs(2), false);
    let (first, _, _) = upstream_image(&c.fake, REMOTE, "latest", b"one");
    let (name, latest) = (repo(LOCAL), reference("latest"));
    let pull = || c.reg.pull_manifest(&name, &latest, &[], true);
    let pulled = pull().await.unwrap();
    assert_eq!(
        (pulled.value.digest.clone(), pulled.cache),
        (first.clone(), Some(CacheOutcome::Miss))
    );
    let pulled = pull().await.unwrap();
    assert_eq!(pulled.cache, Some(CacheOutcome::Hit));
    assert_eq!(
        c.fake.calls(FakeCall::ManifestDigest),
        0,
        "within the interval: no HEAD"
    );
    assert_eq!(c.fake.calls(FakeCall::Manifest), 1);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let pulled = pull().await.unwrap();
    assert_eq!(
        (pulled.value.digest.clone(), pulled.cache),
        (first, Some(CacheOutcome::Hit))
    );
    assert_eq!(
        c.fake.calls(FakeCall::ManifestDigest),
        1,
        "after it: one HEAD"
    );
    pull().await.unwrap();
    assert_eq!(
        c.fake.calls(FakeCall::ManifestDigest),
        1,
        "and then fresh again"
    );
    assert_eq!(c.fake.calls(FakeCall::Manifest), 1, "same digest: no GET");

    // The tag moves upstream: the next check fetches and moves it here.
    let (second, _, _) = upstream_image(&c.fake, REMOTE, "latest", b"two");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let pulled = pull().await.unwrap();
    assert_eq!(
        (pulled.value.digest, pulled.cache),
        (second, Some(CacheOutcome::Miss))
    );
    assert_eq!(c.fake.calls(FakeCall::ManifestDigest), 2);
    assert_eq!(c.fake.calls(FakeCall::Manifest), 2);
}

/// A cache holding `latest` (checked at every pull) with `uncached`
/// upstream only, then the upstream failing as `fail` makes it.
async fn failing_upstream(fail: impl Fn(&FakeUpstream)) -> (Cache, Digest) {
    let c = cache_with(Duration::ZERO, false);
    let (digest, _, _) = upstream_image(&c.fake, REMOTE, "latest", b"layer");
    upstream_image(&c.fake, REMOTE, "uncached", b"other");
    pull_tag(&c, "latest").await.unwrap();
    fail(&c.fake);
    (c, digest)
}

async fn pull_tag(c: &Cache, tag: &str) -> berth_registry::Result<Pulled<ManifestContent>> {
    c.reg
        .pull_manifest(&repo(LOCAL), &reference(tag), &[], true)
        .await
}

#[tokio::test]
async fn a_cached_copy_is_served_stale_when_the_upstream_is_down() {
    let (c, digest) = failing_upstream(|fake| fake.set_down(true)).await;
    let pulled = pull_tag(&c, "latest").await.unwrap();
    assert_eq!(pulled.value.digest, digest);
    match pulled.cache {
        Some(CacheOutcome::Stale { reason }) => assert!(reason.contains("unavailable"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let e = pull_tag(&c, "uncached").await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Upstream {
                error: UpstreamError::Unavailable(_),
                ..
            }
        ),
        "{e:?}"
    );
    let stats = &c.reg.pull_through_stats()[0];
    assert_eq!((stats.stale, stats.errors), (1, 2));
}

#[tokio::test]
async fn a_cached_copy_is_served_stale_when_the_upstream_rate_limits() {
    let (c, digest) = failing_upstream(|fake| fake.set_rate_limited(true)).await;
    let pulled = pull_tag(&c, "latest").await.unwrap();
    assert_eq!(pulled.value.digest, digest);
    match pulled.cache {
        Some(CacheOutcome::Stale { reason }) => assert!(reason.contains("429"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let e = pull_tag(&c, "uncached").await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Upstream {
                error: UpstreamError::RateLimited {
                    retry_after: Some(60)
                },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), berth_registry::ErrorCode::TooManyRequests);
}

#[tokio::test]
async fn a_hung_upstream_delays_one_stale_answer_by_the_check_deadline_then_none() {
    let (c, digest) = failing_upstream(|fake| fake.set_hung(true)).await;
    let started = std::time::Instant::now();
    let pulled = tokio::time::timeout(Duration::from_secs(20), pull_tag(&c, "latest"))
        .await
        .expect("a hung upstream held the pull")
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(pulled.value.digest, digest);
    assert!(
        matches!(&pulled.cache, Some(CacheOutcome::Stale { reason }) if reason.contains("no answer")),
        "{:?}",
        pulled.cache
    );
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(15)).contains(&waited),
        "the check's deadline, not the upstream client's timeouts: {waited:?}"
    );
    let asked = c.fake.total_calls();
    let started = std::time::Instant::now();
    let pulled = pull_tag(&c, "latest").await.unwrap();
    assert!(matches!(pulled.cache, Some(CacheOutcome::Stale { .. })));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served at once while the outage is remembered"
    );
    assert_eq!(c.fake.total_calls(), asked, "the upstream not asked again");
}

#[tokio::test]
async fn a_tag_gone_upstream_is_unknown_even_with_a_cached_copy() {
    let c = cache_with(Duration::ZERO, false);
    upstream_image(&c.fake, REMOTE, "latest", b"layer");
    let latest = reference("latest");
    c.reg
        .pull_manifest(&repo(LOCAL), &latest, &[], true)
        .await
        .unwrap();
    let e = c
        .reg
        .pull_manifest(&repo(LOCAL), &reference("never"), &[], true)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ManifestUnknown(_)), "{e:?}");
    let e = c
        .reg
        .pull_blob(&repo(LOCAL), &Digest::sha256_of(b"nope"), None, true)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::BlobUnknown(_)), "{e:?}");
    assert_eq!(
        c.reg.pull_through_stats()[0].errors,
        0,
        "not found is no upstream error"
    );
}

#[tokio::test]
async fn pulls_by_digest_of_cached_content_never_ask_the_upstream() {
    let c = cache();
    let (manifest, config, layer) = upstream_image(&c.fake, REMOTE, "latest", b"layer bytes");
    c.reg
        .pull_manifest(&repo(LOCAL), &reference("latest"), &[], true)
        .await
        .unwrap();
    pull_body(&c.reg, LOCAL, &config).await;
    pull_body(&c.reg, LOCAL, &layer).await;
    linked(&c.reg, LOCAL, &layer).await;
    let before = c.fake.total_calls();
    let by_digest = Reference::Digest(manifest.clone());
    let pulled = c
        .reg
        .pull_manifest(&repo(LOCAL), &by_digest, &[], true)
        .await
        .unwrap();
    assert_eq!(
        (pulled.value.digest, pulled.cache),
        (manifest, Some(CacheOutcome::Hit))
    );
    for digest in [&config, &layer] {
        let (_, outcome) = pull_body(&c.reg, LOCAL, digest).await;
        assert_eq!(outcome, Some(CacheOutcome::Hit));
        let head = c
            .reg
            .pull_blob(&repo(LOCAL), digest, None, false)
            .await
            .unwrap();
        assert_eq!(head.cache, Some(CacheOutcome::Hit));
    }
    assert_eq!(c.fake.total_calls(), before, "no upstream request at all");
}

#[tokio::test]
async fn an_uncached_manifest_by_digest_is_fetched_and_verified() {
    let c = cache();
    let (manifest, _, _) = upstream_image(&c.fake, REMOTE, "latest", b"layer");
    let by_digest = Reference::Digest(manifest.clone());
    let pulled = c
        .reg
        .pull_manifest(&repo(LOCAL), &by_digest, &[], true)
        .await
        .unwrap();
    assert_eq!(
        (pulled.value.digest, pulled.cache),
        (manifest.clone(), Some(CacheOutcome::Miss))
    );
    assert_eq!(
        c.fake
            .calls_for(FakeCall::Manifest, REMOTE, &manifest.to_string()),
        1
    );
}

#[tokio::test]
async fn a_head_of_an_uncached_blob_asks_the_size_and_caches_nothing() {
    let c = cache();
    let (_, _, layer) = upstream_image(&c.fake, REMOTE, "latest", b"twelve bytes");
    let head = c
        .reg
        .pull_blob(&repo(LOCAL), &layer, None, false)
        .await
        .unwrap();
    assert_eq!(
        (head.value.size, head.cache),
        (12, Some(CacheOutcome::Miss))
    );
    assert!(head.value.content.is_none());
    assert_eq!(c.fake.calls(FakeCall::BlobSize), 1);
    assert_eq!(c.fake.calls(FakeCall::Blob), 0);
    assert!(c.blobs.read(&layer, None).await.unwrap().is_none());
}

#[tokio::test]
async fn without_a_length_or_with_a_range_the_whole_blob_is_cached_first() {
    let c = cache();
    let layer = big(5000, 1);
    let (_, _, digest) = upstream_image(&c.fake, REMOTE, "latest", &layer);
    c.fake.set_send_length(false);
    let pulled = c
        .reg
        .pull_blob(&repo(LOCAL), &digest, None, true)
        .await
        .unwrap();
    let content = pulled.value.content.unwrap();
    assert!(
        matches!(content, BlobContent::File(_)),
        "served from the store"
    );
    assert!(collect(content).await.unwrap() == layer);

    let other = big(5000, 2);
    let (_, _, digest) = upstream_image(&c.fake, "library/other", "latest", &other);
    let range = berth_registry::RangeRequest::Bounded(10, 19);
    let pulled = c
        .reg
        .pull_blob(&repo("docker.io/library/other"), &digest, Some(range), true)
        .await
        .unwrap();
    assert_eq!(pulled.cache, Some(CacheOutcome::Miss));
    assert!(collect(pulled.value.content.unwrap()).await.unwrap() == other[10..20]);
    c.reg
        .blob(&repo("docker.io/library/other"), &digest, None, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_blob_stored_for_another_repository_is_linked_once_the_upstream_confirms() {
    let c = cache();
    let shared = b"a layer both images have".to_vec();
    let (_, _, digest) = upstream_image(&c.fake, REMOTE, "latest", &shared);
    upstream_image(&c.fake, "library/alpine", "latest", &shared);
    pull_body(&c.reg, LOCAL, &digest).await;
    linked(&c.reg, LOCAL, &digest).await;

    let (bytes, outcome) = pull_body(&c.reg, "docker.io/library/alpine", &digest).await;
    assert!(bytes == shared);
    assert_eq!(outcome, Some(CacheOutcome::Hit));
    assert_eq!(
        c.fake
            .calls_for(FakeCall::Blob, "library/alpine", &digest.to_string()),
        0
    );
    assert_eq!(
        c.fake
            .calls_for(FakeCall::BlobSize, "library/alpine", &digest.to_string()),
        1
    );

    // An upstream repository without it gets nothing, though berth has the bytes.
    let e = c
        .reg
        .pull_blob(&repo("docker.io/library/private"), &digest, None, true)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::BlobUnknown(_)), "{e:?}");
    let e = c
        .reg
        .blob(&repo("docker.io/library/private"), &digest, None, false)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::BlobUnknown(_)), "not linked: {e:?}");
}

#[tokio::test]
async fn a_pushed_blob_does_not_leak_into_a_cached_repository_without_the_upstream() {
    let c = cache();
    let secret = b"private layer".to_vec();
    let digest = Digest::sha256_of(&secret);
    c.reg
        .push_blob(&repo("team/private"), &digest, body(&secret), None)
        .await
        .unwrap();
    let e = c
        .reg
        .pull_blob(&repo(LOCAL), &digest, None, true)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::BlobUnknown(_)), "{e:?}");
    assert_eq!(
        c.fake.calls(FakeCall::BlobSize),
        1,
        "the upstream was asked"
    );
}

#[tokio::test]
async fn writes_into_a_cached_repository_are_refused() {
    let c = cache();
    let name = repo(LOCAL);
    let (manifest, _, layer) = upstream_image(&c.fake, REMOTE, "latest", b"layer");
    c.reg
        .pull_manifest(&name, &reference("latest"), &[], true)
        .await
        .unwrap();
    pull_body(&c.reg, LOCAL, &layer).await;
    linked(&c.reg, LOCAL, &layer).await;
    let read_only = |e: Error| match e {
        Error::CacheReadOnly {
            repository,
            upstream,
        } => {
            assert_eq!(
                (repository.as_str(), upstream.as_str()),
                (LOCAL, "docker.io")
            );
        }
        other => panic!("{other:?}"),
    };
    let data = b"pushed";
    let digest = Digest::sha256_of(data);
    read_only(
        c.reg
            .push_blob(&name, &digest, body(data), None)
            .await
            .unwrap_err(),
    );
    read_only(c.reg.start_upload(&name, None).await.unwrap_err());
    read_only(
        c.reg
            .mount_blob(&name, &digest, Some(&repo("team/app")), None)
            .await
            .unwrap_err(),
    );
    read_only(
        c.reg
            .put_manifest(&name, &reference("mine"), None, Bytes::from_static(b"{}"))
            .await
            .unwrap_err(),
    );
    read_only(
        c.reg
            .delete_manifest(&name, &Reference::Digest(manifest))
            .await
            .unwrap_err(),
    );
    read_only(
        c.reg
            .delete_manifest(&name, &reference("latest"))
            .await
            .unwrap_err(),
    );
    read_only(c.reg.delete_blob(&name, &layer).await.unwrap_err());
    let e = Error::CacheReadOnly {
        repository: LOCAL.into(),
        upstream: "docker.io".into(),
    };
    assert_eq!(e.code(), berth_registry::ErrorCode::Denied);
    assert_eq!(
        e.to_string(),
        "repository docker.io/library/busybox is a cache of docker.io: push under another name"
    );
    // Under a prefix the rule holds before anything is cached, too.
    read_only_empty(&c, "docker.io/library/nothing-yet").await;

    // Elsewhere pushes work, even a mount from the cache; deleting the
    // cached repository whole (an admin's purge) is allowed.
    let mounted = c
        .reg
        .mount_blob(&repo("team/app"), &layer, Some(&name), None)
        .await
        .unwrap();
    assert_eq!(mounted, MountOutcome::Mounted);
    c.reg
        .push_blob(&repo("team/app"), &digest, body(data), None)
        .await
        .unwrap();
    c.reg.delete_repository(&name).await.unwrap();
}

async fn read_only_empty(c: &Cache, name: &str) {
    let e = c.reg.start_upload(&repo(name), None).await.unwrap_err();
    assert!(matches!(e, Error::CacheReadOnly { .. }), "{e:?}");
}

#[tokio::test]
async fn with_the_fallback_pushed_repositories_stay_local_and_absent_ones_go_upstream() {
    let c = cache_with(Duration::from_secs(300), true);
    let (manifest, _, layer) = upstream_image(&c.fake, "library/busybox", "latest", b"layer");
    upstream_image(&c.fake, "team/app", "latest", b"upstream's app");
    // A pushed repository: served locally, never sent upstream.
    let app = repo("team/app");
    let data = b"local layer";
    let digest = Digest::sha256_of(data);
    c.reg
        .push_blob(&app, &digest, body(data), None)
        .await
        .unwrap();
    let e = c
        .reg
        .pull_manifest(&app, &reference("latest"), &[], true)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ManifestUnknown(_)), "{e:?}");
    let pulled = c.reg.pull_blob(&app, &digest, None, true).await.unwrap();
    assert_eq!(pulled.cache, None, "a local repository");
    let e = c
        .reg
        .pull_blob(&app, &layer, None, true)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::BlobUnknown(_)), "{e:?}");
    assert_eq!(c.fake.total_calls(), 0);

    // An absent one goes through the fallback, and is a cache from then on.
    let busybox = repo("library/busybox");
    let pulled = c
        .reg
        .pull_manifest(&busybox, &reference("latest"), &[], true)
        .await
        .unwrap();
    assert_eq!(
        (pulled.value.digest, pulled.cache),
        (manifest, Some(CacheOutcome::Miss))
    );
    let (_, outcome) = pull_body(&c.reg, "library/busybox", &layer).await;
    assert_eq!(outcome, Some(CacheOutcome::Miss));
    let origin = c.reg.cache_origin(&busybox).await.unwrap().unwrap();
    assert_eq!(
        (origin.upstream.as_str(), origin.remote.as_str()),
        ("proxy", "library/busybox")
    );
    let e = c.reg.start_upload(&busybox, None).await.unwrap_err();
    assert!(
        matches!(e, Error::CacheReadOnly { ref upstream, .. } if upstream == "proxy"),
        "{e:?}"
    );
    assert!(c.reg.cache_origin(&app).await.unwrap().is_none());

    // A blob pulled first into an absent repository makes it a cache too.
    let (_, _, alone) = upstream_image(&c.fake, "solo/blob", "latest", b"alone");
    pull_body(&c.reg, "solo/blob", &alone).await;
    linked(&c.reg, "solo/blob", &alone).await;
    let e = c
        .reg
        .start_upload(&repo("solo/blob"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CacheReadOnly { .. }), "{e:?}");
    // A new name is still free to push to.
    c.reg.start_upload(&repo("team/new"), None).await.unwrap();
}

#[tokio::test]
async fn local_names_follow_the_routes() {
    let c = cache();
    let local = |n: &str, ns: Option<&str>| c.reg.local_name(&repo(n), ns).unwrap().to_string();
    assert_eq!(local("busybox", Some("docker.io")), LOCAL);
    assert_eq!(local("library/app", Some("localhost:5000")), "library/app");
    let plain = Registry::new(
        c.blobs.clone(),
        Arc::new(SqliteMetaStore::open(&c._dir.path().join("other.db")).unwrap()),
        RegistryOptions::default(),
    );
    assert_eq!(
        plain
            .local_name(&repo("busybox"), Some("docker.io"))
            .unwrap()
            .to_string(),
        "busybox"
    );
    let pulled = plain
        .pull_manifest(&repo("busybox"), &reference("x"), &[], true)
        .await;
    assert!(matches!(pulled, Err(Error::ManifestUnknown(_))));
    assert!(plain.pull_through_stats().is_empty());
}

#[tokio::test]
async fn the_summary_says_where_a_cached_repository_comes_from() {
    let c = cache();
    upstream_image(&c.fake, REMOTE, "latest", b"layer");
    c.reg
        .pull_manifest(&repo(LOCAL), &reference("latest"), &[], true)
        .await
        .unwrap();
    let origin = c.reg.cache_origin(&repo(LOCAL)).await.unwrap().unwrap();
    assert_eq!(
        (origin.upstream.as_str(), origin.remote.as_str()),
        ("docker.io", REMOTE)
    );
    assert!(origin.checked_at.is_some());
}

#[tokio::test]
async fn concurrent_pulls_of_one_tag_fetch_the_manifest_once() {
    let c = cache();
    let (manifest, _, _) = upstream_image(&c.fake, REMOTE, "latest", b"layer");
    let pulls = (0..10).map(|_| {
        let reg = c.reg.clone();
        tokio::spawn(async move {
            reg.pull_manifest(&repo(LOCAL), &reference("latest"), &[], true)
                .await
                .unwrap()
        })
    });
    for pulled in futures_util::future::join_all(pulls).await {
        assert_eq!(pulled.unwrap().value.digest, manifest);
    }
    assert_eq!(c.fake.calls(FakeCall::Manifest), 1);
    assert_eq!(
        c.fake.calls(FakeCall::ManifestDigest),
        0,
        "the waiters found it fresh"
    );
}

/// Caches `remote`'s image tagged latest whole: manifest, config, layer.
async fn cache_image(c: &Cache, remote: &str, layer: &[u8]) -> Digest {
    let (manifest, config, layer) = upstream_image(&c.fake, remote, "latest", layer);
    let local = format!("docker.io/{remote}");
    c.reg
        .pull_manifest(&repo(&local), &reference("latest"), &[], true)
        .await
        .unwrap();
    for digest in [&config, &layer] {
        pull_body(&c.reg, &local, digest).await;
        linked(&c.reg, &local, digest).await;
    }
    manifest
}

/// Pushes an image of `layer` to `name` tagged latest.
async fn push_image(reg: &Registry, name: &str, layer: &[u8]) -> Digest {
    let name = repo(name);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let (config_digest, layer_digest) = (Digest::sha256_of(config), Digest::sha256_of(layer));
    reg.push_blob(&name, &config_digest, body(config), None)
        .await
        .unwrap();
    reg.push_blob(&name, &layer_digest, body(layer), None)
        .await
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    reg.put_manifest(
        &name,
        &reference("latest"),
        Some(OCI_MANIFEST),
        Bytes::from(manifest),
    )
    .await
    .unwrap()
    .digest
}

async fn present(reg: &Registry, name: &str, manifest: &Digest) -> bool {
    let by_digest = Reference::Digest(manifest.clone());
    reg.manifest(&repo(name), &by_digest, &[], false)
        .await
        .is_ok()
}

#[tokio::test]
async fn eviction_takes_the_least_recently_pulled_cached_image_never_a_pushed_one() {
    // Room for one 10 KiB cached image, not two.
    let c = cache_limited(Duration::from_secs(300), false, Some(15_000));
    // Pushed first: the least recently used image of all, were it a candidate.
    let pushed = push_image(&c.reg, "team/app", &big(50_000, 3)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = cache_image(&c, "library/a", &big(10_240, 1)).await;
    let b = cache_image(&c, "library/b", &big(10_240, 2)).await;
    let before = c.reg.cached_bytes().await.unwrap();
    assert!(before > 20_480 && before < 25_000, "{before}");
    // a is pulled again later: b is now the least recently pulled.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.reg
        .pull_manifest(
            &repo("docker.io/library/a"),
            &reference("latest"),
            &[],
            true,
        )
        .await
        .unwrap();

    let report = c
        .reg
        .collect_garbage(&berth_registry::gc::GcRequest::default(), &())
        .await
        .unwrap();
    assert_eq!(report.evicted_images, 1);
    assert!(present(&c.reg, "docker.io/library/a", &a).await);
    assert!(
        !present(&c.reg, "docker.io/library/b", &b).await,
        "b was least recently pulled"
    );
    assert!(present(&c.reg, "team/app", &pushed).await);
    let after = c.reg.cached_bytes().await.unwrap();
    assert!(after <= 15_000, "{after}");
    assert_eq!(c.reg.gc_status().totals.evicted_images, 1);
}

#[tokio::test]
async fn eviction_down_to_nothing_still_leaves_pushed_images() {
    let c = cache_limited(Duration::from_secs(300), false, Some(0));
    let pushed = push_image(&c.reg, "team/app", b"layer of app").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = cache_image(&c, "library/a", b"layer of a").await;
    let b = cache_image(&c, "library/b", b"layer of b").await;
    let dry = berth_registry::gc::GcRequest {
        dry_run: true,
        ..Default::default()
    };
    let report = c.reg.collect_garbage(&dry, &()).await.unwrap();
    assert_eq!(report.evicted_images, 0, "a dry run evicts nothing");
    assert!(present(&c.reg, "docker.io/library/a", &a).await);

    let report = c
        .reg
        .collect_garbage(&berth_registry::gc::GcRequest::default(), &())
        .await
        .unwrap();
    assert_eq!(report.evicted_images, 2);
    assert!(!present(&c.reg, "docker.io/library/a", &a).await);
    assert!(!present(&c.reg, "docker.io/library/b", &b).await);
    assert!(present(&c.reg, "team/app", &pushed).await);
    assert_eq!(c.reg.cached_bytes().await.unwrap(), 0);
    // Evicted, not forbidden: the next pull caches it again.
    c.reg
        .pull_manifest(
            &repo("docker.io/library/a"),
            &reference("latest"),
            &[],
            true,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_blob_pulled_before_any_manifest_marks_its_repository_cached() {
    let c = cache();
    let (_, _, layer) = upstream_image(&c.fake, REMOTE, "latest", b"blob first");
    pull_body(&c.reg, LOCAL, &layer).await;
    linked(&c.reg, LOCAL, &layer).await;
    let origin = c.reg.cache_origin(&repo(LOCAL)).await.unwrap().unwrap();
    assert_eq!(
        (
            origin.upstream.as_str(),
            origin.remote.as_str(),
            origin.checked_at
        ),
        ("docker.io", REMOTE, None)
    );
}

//! The S3 blob store against a real Garage on loopback: the mechanics the
//! kit cannot see (parts and tails, continuing on another replica, failed
//! appends, a cluster losing a node). One Garage serves the whole file;
//! every test works under a root prefix of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::Digest;
use berth_registry::storage::s3::{S3BlobStore, S3Settings, PART_SIZE};
use berth_registry::storage::{ByteRange, ByteStream};
use berth_registry::testing::{self, engines::TempGarage};
use berth_registry::{BlobStore, Error};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::sync::{Arc, OnceLock};

const MIB: usize = 1024 * 1024;

static GARAGE: OnceLock<Option<TempGarage>> = OnceLock::new();

/// Settings for the shared Garage under a fresh root; None without Garage.
fn settings() -> Option<S3Settings> {
    let garage = GARAGE.get_or_init(TempGarage::start).as_ref()?;
    let mut settings = garage.settings();
    settings.root = Some(format!("test-{}", uuid::Uuid::new_v4().simple()));
    Some(settings)
}

fn store() -> Option<S3BlobStore> {
    Some(S3BlobStore::new(settings()?).unwrap())
}

/// Bytes that do not compress and differ by seed.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Appends through the trait, as (new offset, new state).
async fn append(
    store: &S3BlobStore,
    id: &str,
    offset: u64,
    state: &[u8],
    body: ByteStream<'_>,
) -> Result<(u64, Vec<u8>), Error> {
    let appended = store.append_upload(id, offset, state, body).await?;
    Ok((appended.offset, appended.state))
}

fn body(chunks: Vec<Vec<u8>>) -> ByteStream<'static> {
    stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).boxed()
}

async fn read_all(store: &S3BlobStore, digest: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    let content = store.read(digest, range).await.unwrap().expect("stored");
    let chunks: Vec<Bytes> = content.into_stream().try_collect().await.unwrap();
    chunks.concat()
}

/// One test per kit promise, each on a fresh root of the shared Garage.
macro_rules! kit {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(store) = store() else { return };
            testing::$name(&store).await;
        }
    )*};
}

kit!(
    uploads_are_private_until_committed_and_appends_all_or_nothing,
    a_failed_large_append_leaves_the_old_state_usable,
    an_empty_blob_round_trips,
    committing_a_digest_twice_keeps_the_content,
    ranges_are_cut_at_the_end,
    a_missing_upload_is_unknown,
    stale_uploads_are_listed_by_age,
    a_working_store_passes_its_check,
    blobs_are_listed_in_order_and_deleted,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_do_not_mix() {
    let Some(store) = store() else { return };
    testing::concurrent_uploads_do_not_mix(Arc::new(store)).await;
}

/// The whole kit in one go, as `berth_registry::testing::blob_store` runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_kit_passes_on_one_root() {
    let Some(store) = store() else { return };
    testing::blob_store(Arc::new(store)).await;
}

#[tokio::test]
async fn parts_and_tails_make_the_exact_bytes() {
    let Some(store) = store() else { return };
    let sizes = [MIB, 3 * MIB, 16 * MIB, 7];
    let content = pattern(sizes.iter().sum(), 1);
    let mut state = store.create_upload("big").await.unwrap();
    let mut offset = 0u64;
    let mut at = 0;
    for size in sizes {
        let chunk = content[at..at + size].to_vec();
        (offset, state) = append(&store, "big", offset, &state, body(vec![chunk]))
            .await
            .unwrap();
        at += size;
        assert_eq!(offset, at as u64);
    }
    assert!(
        matches!(
            store.read_upload("big", &state).await,
            Err(Error::Unsupported(_))
        ),
        "two whole parts were sent"
    );
    let digest = Digest::sha256_of(&content);
    store.commit_upload("big", &state, &digest).await.unwrap();
    assert_eq!(read_all(&store, &digest, None).await, content);
    assert!(
        store
            .uploads_older_than(std::time::Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "cleaned up"
    );
}

#[tokio::test]
async fn an_empty_upload_is_one_plain_put() {
    let Some(store) = store() else { return };
    let state = store.create_upload("empty").await.unwrap();
    let (offset, state) = append(&store, "empty", 0, &state, body(vec![]))
        .await
        .unwrap();
    assert_eq!(offset, 0);
    let digest = Digest::sha256_of(b"");
    store.commit_upload("empty", &state, &digest).await.unwrap();
    assert_eq!(read_all(&store, &digest, None).await, b"");
    let listed = store.list(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].digest.clone(), listed[0].size), (digest, 0));
}

#[tokio::test]
async fn another_replica_continues_from_the_stored_state() {
    let Some(settings) = settings() else { return };
    let first = S3BlobStore::new(settings.clone()).unwrap();
    // A second client on the same bucket and root: another replica.
    let second = S3BlobStore::new(settings).unwrap();
    let content = pattern(PART_SIZE as usize + 3 * MIB, 2);
    let (a, b) = content.split_at(PART_SIZE as usize + MIB);
    let state = first.create_upload("moved").await.unwrap();
    let (offset, state) = append(&first, "moved", 0, &state, body(vec![a.to_vec()]))
        .await
        .unwrap();
    drop(first);
    let (offset, state) = append(&second, "moved", offset, &state, body(vec![b.to_vec()]))
        .await
        .unwrap();
    assert_eq!(offset, content.len() as u64);
    let digest = Digest::sha256_of(&content);
    second
        .commit_upload("moved", &state, &digest)
        .await
        .unwrap();
    assert_eq!(read_all(&second, &digest, None).await, content);
}

/// A body that yields `good`, then fails as a client that went away.
fn failing_body(good: Vec<Vec<u8>>) -> ByteStream<'static> {
    let mut items: Vec<std::io::Result<Bytes>> =
        good.into_iter().map(|c| Ok(Bytes::from(c))).collect();
    items.push(Err(std::io::Error::other("client went away")));
    stream::iter(items).boxed()
}

#[tokio::test]
async fn an_append_failing_midway_leaves_the_upload_as_it_was() {
    let Some(store) = store() else { return };
    let content = pattern(2 * PART_SIZE as usize + 5 * MIB, 3);
    let first_len = PART_SIZE as usize + 2 * MIB;
    let state = store.create_upload("broken").await.unwrap();
    let (offset, state) = append(
        &store,
        "broken",
        0,
        &state,
        body(vec![content[..first_len].to_vec()]),
    )
    .await
    .unwrap();
    // Other bytes, enough for a whole part (sent) and a tail, then a failure.
    let junk = pattern(PART_SIZE as usize, 99);
    let failed = append(&store, "broken", offset, &state, failing_body(vec![junk])).await;
    assert!(matches!(failed, Err(Error::BodyRead(_))), "{failed:?}");
    // A first append that fails after starting the multipart upload.
    let fresh = store.create_upload("broken-early").await.unwrap();
    let failed = append(
        &store,
        "broken-early",
        0,
        &fresh,
        failing_body(vec![pattern(PART_SIZE as usize + 1, 5)]),
    )
    .await;
    assert!(matches!(failed, Err(Error::BodyRead(_))));
    // Retried from the old (offset, state): the junk part is never used.
    let (offset, state) = append(
        &store,
        "broken",
        offset,
        &state,
        body(vec![content[first_len..].to_vec()]),
    )
    .await
    .unwrap();
    assert_eq!(offset, content.len() as u64);
    let digest = Digest::sha256_of(&content);
    store
        .commit_upload("broken", &state, &digest)
        .await
        .unwrap();
    assert_eq!(read_all(&store, &digest, None).await, content);
    let small = b"small after all".to_vec();
    let (n, fresh) = append(&store, "broken-early", 0, &fresh, body(vec![small.clone()]))
        .await
        .unwrap();
    assert_eq!(n, small.len() as u64);
    let small_digest = Digest::sha256_of(&small);
    store
        .commit_upload("broken-early", &fresh, &small_digest)
        .await
        .unwrap();
    assert_eq!(read_all(&store, &small_digest, None).await, small);
}

#[tokio::test]
async fn a_stale_state_cannot_append() {
    let Some(store) = store() else { return };
    let state = store.create_upload("stale").await.unwrap();
    let (offset, _) = append(&store, "stale", 0, &state, body(vec![b"abc".to_vec()]))
        .await
        .unwrap();
    let again = append(&store, "stale", offset, &state, body(vec![b"d".to_vec()])).await;
    assert!(
        matches!(again, Err(Error::UploadOutOfOrder { offset: 0, got: 3 })),
        "{again:?}"
    );
}

#[tokio::test]
async fn ranges_read_within_parts_and_across_them() {
    let Some(store) = store() else { return };
    let content = pattern(PART_SIZE as usize + 100, 4);
    let state = store.create_upload("ranged").await.unwrap();
    let (_, state) = append(&store, "ranged", 0, &state, body(vec![content.clone()]))
        .await
        .unwrap();
    let digest = Digest::sha256_of(&content);
    store
        .commit_upload("ranged", &state, &digest)
        .await
        .unwrap();
    let across = ByteRange {
        start: PART_SIZE - 10,
        end: PART_SIZE + 9,
    };
    let got = read_all(&store, &digest, Some(across)).await;
    assert_eq!(got, &content[across.start as usize..=across.end as usize]);
    let past_end = ByteRange {
        start: PART_SIZE + 90,
        end: PART_SIZE + 1000,
    };
    assert_eq!(
        read_all(&store, &digest, Some(past_end)).await,
        &content[PART_SIZE as usize + 90..]
    );
    let beyond = ByteRange {
        start: PART_SIZE + 100,
        end: PART_SIZE + 200,
    };
    assert_eq!(read_all(&store, &digest, Some(beyond)).await, b"");
    let absent = Digest::sha256_of(b"never stored");
    assert!(store.read(&absent, Some(across)).await.unwrap().is_none());
}

#[tokio::test]
async fn listing_pages_through_every_blob_in_digest_order() {
    let Some(store) = store() else { return };
    let mut digests = Vec::new();
    for i in 0..7u8 {
        let content = vec![i; usize::from(i) + 1];
        let digest = Digest::sha256_of(&content);
        store.put(&digest, Bytes::from(content)).await.unwrap();
        digests.push((digest, u64::from(i) + 1));
    }
    digests.sort();
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(after.as_ref(), 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.digest.clone());
        paged.extend(page.into_iter().map(|b| (b.digest, b.size)));
    }
    assert_eq!(paged, digests);
}

#[tokio::test]
async fn redirects_are_presigned_only_when_configured() {
    let Some(mut settings) = settings() else {
        return;
    };
    let store = S3BlobStore::new(settings.clone()).unwrap();
    let digest = Digest::sha256_of(b"redirected");
    store
        .put(&digest, Bytes::from_static(b"redirected"))
        .await
        .unwrap();
    assert_eq!(store.redirect_url(&digest).await.unwrap(), None);
    settings.redirect = true;
    let redirecting = S3BlobStore::new(settings).unwrap();
    let url = redirecting
        .redirect_url(&digest)
        .await
        .unwrap()
        .expect("a presigned URL");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let (status, fetched) = http_get(&url).await;
    assert_eq!(
        (status.as_str(), fetched.as_slice()),
        ("200", &b"redirected"[..])
    );
}

/// A bare HTTP/1.0 GET of an `http://host:port/…` URL: status and body.
async fn http_get(url: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head.split(' ').nth(1).unwrap_or_default().to_string();
    (status, response[end + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_serves_with_one_node_stopped() {
    let Some(mut cluster) = tokio::task::block_in_place(|| TempGarage::cluster(3)) else {
        return;
    };
    let store = S3BlobStore::new(cluster.settings_via(0)).unwrap();
    let before = Digest::sha256_of(b"stored with three nodes");
    store
        .put(&before, Bytes::from_static(b"stored with three nodes"))
        .await
        .unwrap();

    cluster.stop_node(2);
    let content = pattern(PART_SIZE as usize + MIB, 6);
    let state = store.create_upload("degraded").await.unwrap();
    let (_, state) = append(&store, "degraded", 0, &state, body(vec![content.clone()]))
        .await
        .unwrap();
    let digest = Digest::sha256_of(&content);
    store
        .commit_upload("degraded", &state, &digest)
        .await
        .unwrap();
    assert_eq!(read_all(&store, &digest, None).await, content);
    assert_eq!(
        read_all(&store, &before, None).await,
        b"stored with three nodes"
    );
    let through_one = S3BlobStore::new(cluster.settings_via(1)).unwrap();
    assert_eq!(read_all(&through_one, &digest, None).await, content);

    tokio::task::block_in_place(|| cluster.start_node(2));
    let through_two = S3BlobStore::new(cluster.settings_via(2)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while let Err(e) = through_two.check().await {
        let log = cluster.log_tail(2);
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 is back: {e}\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(read_all(&through_two, &digest, None).await, content);
}

/// Two replicas appending from the same (offset, state) of an upload that
/// already has a multipart upload: the metadata store records one of them
/// (here the first). The other sent its part later under the same number;
/// the commit must fail rather than publish those bytes.
#[tokio::test]
async fn a_losing_append_cannot_slip_its_part_into_the_commit() {
    let Some(store) = store() else { return };
    let base = pattern(PART_SIZE as usize + MIB, 7);
    let winner = pattern(PART_SIZE as usize, 8);
    let loser = pattern(PART_SIZE as usize, 9);
    let created = store.create_upload("raced").await.unwrap();
    let (offset, shared) = append(&store, "raced", 0, &created, body(vec![base.clone()]))
        .await
        .unwrap();
    let (_, recorded) = append(&store, "raced", offset, &shared, body(vec![winner.clone()]))
        .await
        .unwrap();
    append(&store, "raced", offset, &shared, body(vec![loser]))
        .await
        .unwrap();
    let content = [base, winner].concat();
    let digest = Digest::sha256_of(&content);
    let committed = store.commit_upload("raced", &recorded, &digest).await;
    assert!(committed.is_err(), "Garage checks part ETags");
    assert!(store.read(&digest, None).await.unwrap().is_none());
}

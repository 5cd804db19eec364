//! The promises of [`BlobStore`].

use super::{body, collect};
use crate::error::Error;
use crate::storage::{BlobStore, ByteRange};
use berth_oci::Digest;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use std::sync::Arc;
use std::time::Duration;

async fn read_all(store: &dyn BlobStore, digest: &Digest) -> Option<Vec<u8>> {
    let content = store.read(digest, None).await.expect("read")?;
    Some(collect(content.into_stream()).await)
}

/// Commits `content` under its digest through a fresh upload `id`.
async fn commit(store: &dyn BlobStore, id: &str, content: &[u8]) -> Digest {
    let digest = Digest::sha256_of(content);
    let state = store.create_upload(id).await.unwrap();
    let appended = store
        .append_upload(id, 0, &state, body(&[content]))
        .await
        .unwrap();
    assert_eq!(appended.offset, content.len() as u64);
    store
        .commit_upload(id, &appended.state, &digest)
        .await
        .unwrap();
    digest
}

/// An upload is invisible under its digest until committed; a failed append
/// leaves the upload as it was; reads honour ranges; `put` publishes.
pub async fn uploads_are_private_until_committed_and_appends_all_or_nothing(store: &dyn BlobStore) {
    let digest = Digest::sha256_of(b"hello world");
    let created = store.create_upload("kit-private").await.unwrap();
    let first = store
        .append_upload("kit-private", 0, &created, body(&[b"hello", b" "]))
        .await
        .unwrap();
    assert_eq!(first.offset, 6);
    let broken = stream::iter(vec![
        Ok(Bytes::from_static(b"XXX")),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    assert!(matches!(
        store
            .append_upload("kit-private", 6, &first.state, broken)
            .await,
        Err(Error::BodyRead(_))
    ));
    // The failed append is not part of the upload: it goes on from the
    // state before it.
    let second = store
        .append_upload("kit-private", 6, &first.state, body(&[b"world"]))
        .await
        .unwrap();
    assert_eq!(second.offset, 11);
    match store.read_upload("kit-private", &second.state).await {
        Ok(held) => assert_eq!(collect(held).await, b"hello world"),
        Err(Error::Unsupported(_)) => {} // a store that cannot read parts back
        Err(e) => panic!("reading the upload back: {e}"),
    }
    assert!(
        read_all(store, &digest).await.is_none(),
        "visible before commit"
    );

    store
        .commit_upload("kit-private", &second.state, &digest)
        .await
        .unwrap();
    assert_eq!(read_all(store, &digest).await.unwrap(), b"hello world");
    let part = store
        .read(&digest, Some(ByteRange { start: 6, end: 10 }))
        .await
        .unwrap();
    assert_eq!(collect(part.unwrap().into_stream()).await, b"world");

    let small = Digest::sha256_of(b"{\"kit\":1}");
    store
        .put(&small, Bytes::from_static(b"{\"kit\":1}"))
        .await
        .unwrap();
    assert_eq!(read_all(store, &small).await.unwrap(), b"{\"kit\":1}");
}

/// An append that fails after storing much of its body (more than an object
/// store's part, so a multipart store has sent parts for it) changes
/// nothing the old state names: the upload continues from the old offset
/// and state, and commits byte for byte.
pub async fn a_failed_large_append_leaves_the_old_state_usable(store: &dyn BlobStore) {
    const MIB: usize = 1024 * 1024;
    let content: Vec<u8> = (0..20 * MIB).map(|i| (i % 251) as u8).collect();
    let (head, rest) = content.split_at(9 * MIB);
    let created = store.create_upload("kit-failed-large").await.unwrap();
    let first = store
        .append_upload("kit-failed-large", 0, &created, body(&[head]))
        .await
        .unwrap();
    assert_eq!(first.offset, head.len() as u64);
    let broken = stream::iter(vec![
        Ok(Bytes::from(vec![0xA5; 12 * MIB])),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    assert!(matches!(
        store
            .append_upload("kit-failed-large", first.offset, &first.state, broken)
            .await,
        Err(Error::BodyRead(_))
    ));
    let chunks: Vec<&[u8]> = rest.chunks(5 * MIB).collect();
    let second = store
        .append_upload(
            "kit-failed-large",
            first.offset,
            &first.state,
            body(&chunks),
        )
        .await
        .unwrap();
    assert_eq!(second.offset, content.len() as u64);
    let digest = Digest::sha256_of(&content);
    store
        .commit_upload("kit-failed-large", &second.state, &digest)
        .await
        .unwrap();
    assert!(
        read_all(store, &digest).await.unwrap() == content,
        "the bytes differ"
    );
}

/// A zero-length blob (a valid layer or config) commits and reads back empty.
pub async fn an_empty_blob_round_trips(store: &dyn BlobStore) {
    let created = store.create_upload("kit-empty").await.unwrap();
    let appended = store
        .append_upload("kit-empty", 0, &created, body(&[]))
        .await
        .unwrap();
    assert_eq!(appended.offset, 0);
    let digest = Digest::sha256_of(b"");
    store
        .commit_upload("kit-empty", &appended.state, &digest)
        .await
        .unwrap();
    assert_eq!(read_all(store, &digest).await.unwrap(), b"");
}

/// Committing or putting a digest that is already stored succeeds, and the
/// content stays readable and right.
pub async fn committing_a_digest_twice_keeps_the_content(store: &dyn BlobStore) {
    let content = b"committed twice";
    let digest = commit(store, "kit-twice-1", content).await;
    assert_eq!(commit(store, "kit-twice-2", content).await, digest);
    assert_eq!(read_all(store, &digest).await.unwrap(), content);
    store
        .put(&digest, Bytes::from_static(content))
        .await
        .unwrap();
    store
        .put(&digest, Bytes::from_static(content))
        .await
        .unwrap();
    assert_eq!(read_all(store, &digest).await.unwrap(), content);
}

/// A range reaching past the end yields the bytes that exist, and one that
/// starts at or past the end yields none; neither is an error.
pub async fn ranges_are_cut_at_the_end(store: &dyn BlobStore) {
    let digest = commit(store, "kit-range", b"0123456789").await;
    let tail = store
        .read(&digest, Some(ByteRange { start: 7, end: 100 }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collect(tail.into_stream()).await, b"789");
    let beyond = store
        .read(&digest, Some(ByteRange { start: 10, end: 20 }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collect(beyond.into_stream()).await, b"");
}

/// Appending to or reading an upload that does not exist is
/// `BlobUploadUnknown`; deleting one is not an error; an absent blob reads
/// as `None`.
pub async fn a_missing_upload_is_unknown(store: &dyn BlobStore) {
    assert!(matches!(
        store.append_upload("kit-nope", 0, &[], body(&[b"x"])).await,
        Err(Error::BlobUploadUnknown)
    ));
    assert!(matches!(
        store.read_upload("kit-nope", &[]).await,
        Err(Error::BlobUploadUnknown)
    ));
    store.delete_upload("kit-nope", None).await.unwrap();
    store.delete_upload("kit-nope", Some(&[])).await.unwrap();
    let absent = Digest::sha256_of(b"kit: never stored");
    assert!(store.read(&absent, None).await.unwrap().is_none());
}

/// Every upload, with or without a session, is listed once old enough, and
/// a fresh one is not; a deleted one is gone.
pub async fn stale_uploads_are_listed_by_age(store: &dyn BlobStore) {
    let state = store.create_upload("kit-stale").await.unwrap();
    let fresh = store
        .uploads_older_than(Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(!fresh.contains(&"kit-stale".to_string()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let all = store
        .uploads_older_than(Duration::from_millis(10))
        .await
        .unwrap();
    assert!(all.contains(&"kit-stale".to_string()), "{all:?}");
    store
        .delete_upload("kit-stale", Some(&state))
        .await
        .unwrap();
    let after = store.uploads_older_than(Duration::ZERO).await.unwrap();
    assert!(!after.contains(&"kit-stale".to_string()));
}

/// Uploads appended to from many tasks at once stay each their own.
pub async fn concurrent_uploads_do_not_mix(store: Arc<dyn BlobStore>) {
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("kit-concurrent-{i}");
                let content = vec![i; 100_000 + usize::from(i)];
                let mut state = store.create_upload(&id).await.unwrap();
                let mut offset = 0;
                for part in content.chunks(30_000) {
                    let appended = store
                        .append_upload(&id, offset, &state, body(&[part]))
                        .await
                        .unwrap();
                    (offset, state) = (appended.offset, appended.state);
                }
                let digest = Digest::sha256_of(&content);
                store.commit_upload(&id, &state, &digest).await.unwrap();
                (digest, content)
            })
        })
        .collect();
    for task in tasks {
        let (digest, content) = task.await.unwrap();
        assert_eq!(read_all(&*store, &digest).await.unwrap(), content);
    }
}

/// A working store passes its check, and a check leaves no upload behind.
pub async fn a_working_store_passes_its_check(store: &dyn BlobStore) {
    store
        .check()
        .await
        .expect("a working store passes its check");
    store.check().await.expect("and again");
    let leftovers = store.uploads_older_than(Duration::ZERO).await.unwrap();
    assert!(
        leftovers.iter().all(|id| !id.starts_with(".ready")),
        "the check left {leftovers:?}"
    );
}

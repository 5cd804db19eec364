//! The registry's rules, driven in-process over the real filesystem and
//! SQLite stores in a temporary folder (no HTTP).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::{Digest, Reference, RepositoryName, Tag};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::storage::{
    BlobClaim, ManifestRecord, ManifestRow, PutOptions, ReferrerRecord, UploadLimits, UploadSession,
};
use berth_registry::{ByteStream, Error, MetaStore, MountOutcome, Registry, RegistryOptions};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, options: RegistryOptions) -> Registry {
    Registry::new(
        Arc::new(FsBlobStore::open(dir).unwrap()),
        Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
        options,
    )
}

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn body(bytes: &[u8]) -> ByteStream<'static> {
    body_in_chunks_of(7, bytes)
}

fn body_in_chunks_of(size: usize, bytes: &[u8]) -> ByteStream<'static> {
    let chunks: Vec<_> = bytes
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks).boxed()
}

async fn read_blob(
    reg: &Registry,
    name: &RepositoryName,
    digest: &Digest,
) -> Result<Vec<u8>, Error> {
    let blob = reg.blob(name, digest, None, true).await?;
    let chunks: Vec<Bytes> = blob.content.unwrap().into_stream().try_collect().await?;
    Ok(chunks.concat())
}

fn image_manifest(config: &Digest, layer: &Digest) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}]}}"#
    ))
}

/// Pushes config `{}` and layer `hello` to `name` and a manifest tagged `tag`.
async fn push_image(reg: &Registry, name: &RepositoryName, tag: &str) -> Digest {
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"hello");
    reg.push_blob(name, &config, body(b"{}"), None)
        .await
        .unwrap();
    reg.push_blob(name, &layer, body(b"hello"), None)
        .await
        .unwrap();
    let tag: Reference = tag.parse().unwrap();
    reg.put_manifest(name, &tag, None, image_manifest(&config, &layer))
        .await
        .unwrap()
        .digest
}

#[tokio::test]
async fn chunked_upload_survives_a_restart_and_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("team/app");
    let data = b"0123456789abcdef".repeat(1000);
    let digest = Digest::sha256_of(&data);
    let id = {
        let reg = open(dir.path(), RegistryOptions::default());
        let up = reg.start_upload(&name, None).await.unwrap();
        let up = reg
            .append_upload(&name, &up.id, Some(0), body(&data[..5000]))
            .await
            .unwrap();
        assert_eq!(up.offset, 5000);
        up.id
    };
    // A new process (or another replica) continues from the hash saved
    // with the session, without reading the 5000 bytes back.
    let meta = SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
    let saved = meta.upload(&id).await.unwrap().unwrap().hash_state.unwrap();
    let mut resumed = berth_oci::DigestHasher::resume(&saved).unwrap();
    resumed.update(&data[5000..]);
    assert_eq!(
        resumed.finish(),
        digest,
        "the saved hash covers the first 5000 bytes"
    );
    let reg = open(dir.path(), RegistryOptions::default());
    assert_eq!(reg.upload_status(&name, &id).await.unwrap().offset, 5000);
    let err = reg
        .append_upload(&name, &id, Some(10), body(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::UploadOutOfOrder {
            offset: 5000,
            got: 10
        }
    ));
    reg.append_upload(&name, &id, Some(5000), body(&data[5000..]))
        .await
        .unwrap();
    reg.finish_upload(&name, &id, &digest, None, None)
        .await
        .unwrap();
    assert_eq!(read_blob(&reg, &name, &digest).await.unwrap(), data);
    assert!(matches!(
        reg.upload_status(&name, &id).await,
        Err(Error::BlobUploadUnknown)
    ));
}

#[tokio::test]
async fn a_wrong_digest_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("a");
    let claimed = Digest::sha256_of(b"something else");
    let err = reg
        .push_blob(&name, &claimed, body(b"actual"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }));
    assert!(matches!(
        read_blob(&reg, &name, &claimed).await,
        Err(Error::BlobUnknown(_))
    ));
    let actual = Digest::sha256_of(b"actual");
    assert!(matches!(
        read_blob(&reg, &name, &actual).await,
        Err(Error::BlobUnknown(_))
    ));
    // The temporary file is gone too.
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn sha512_uploads_are_verified_with_sha512() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("a");
    let mut h = berth_oci::Algorithm::Sha512.hasher();
    h.update(b"payload");
    let digest = h.finish();
    let up = reg.start_upload(&name, None).await.unwrap();
    reg.append_upload(&name, &up.id, None, body(b"payload"))
        .await
        .unwrap();
    reg.finish_upload(&name, &up.id, &digest, None, None)
        .await
        .unwrap();
    assert_eq!(read_blob(&reg, &name, &digest).await.unwrap(), b"payload");
}

#[tokio::test]
async fn blobs_are_scoped_to_repositories_and_mountable() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let (a, b) = (repo("a"), repo("b"));
    let digest = Digest::sha256_of(b"layer");
    reg.push_blob(&a, &digest, body(b"layer"), None)
        .await
        .unwrap();
    assert!(matches!(
        reg.blob(&b, &digest, None, false).await,
        Err(Error::BlobUnknown(_))
    ));
    let unknown_source = reg
        .mount_blob(&b, &digest, Some(&repo("c")), None)
        .await
        .unwrap();
    assert!(matches!(unknown_source, MountOutcome::Upload(_)));
    assert_eq!(
        reg.mount_blob(&b, &digest, Some(&a), None).await.unwrap(),
        MountOutcome::Mounted
    );
    assert_eq!(read_blob(&reg, &b, &digest).await.unwrap(), b"layer");
}

#[tokio::test]
async fn manifests_need_their_blobs_in_the_same_repository() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"hello");
    reg.push_blob(&repo("other"), &layer, body(b"hello"), None)
        .await
        .unwrap();
    reg.push_blob(&repo("a"), &config, body(b"{}"), None)
        .await
        .unwrap();
    let err = reg
        .put_manifest(
            &repo("a"),
            &"v1".parse().unwrap(),
            None,
            image_manifest(&config, &layer),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestBlobUnknown(d) if d == layer));
    assert!(matches!(
        reg.tags(&repo("a"), None, None).await,
        Err(Error::NameUnknown(_))
    ));
}

#[tokio::test]
async fn deleting_a_tag_keeps_other_tags_on_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("busybox");
    let digest = push_image(&reg, &name, "latest").await;
    push_image(&reg, &name, "stable").await;
    reg.delete_manifest(&name, &"latest".parse().unwrap())
        .await
        .unwrap();
    let tags = reg.tags(&name, None, None).await.unwrap().items;
    assert_eq!(tags, vec!["stable"]);
    let by_digest = Reference::Digest(digest.clone());
    assert!(reg.manifest(&name, &by_digest, &[], true).await.is_ok());
    // Deleting by digest removes the manifest and every tag on it; the
    // repository then leaves the catalog.
    reg.delete_manifest(&name, &by_digest).await.unwrap();
    assert!(matches!(
        reg.tags(&name, None, None).await,
        Err(Error::NameUnknown(_))
    ));
    assert!(reg.catalog(None, None).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn listings_are_sorted_and_paginated() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    for name in ["c", "a/x", "b"] {
        push_image(&reg, &repo(name), "v1").await;
    }
    let first = reg.catalog(None, Some(2)).await.unwrap();
    assert_eq!(first.items, vec!["a/x", "b"]);
    assert_eq!(first.next.as_deref(), Some("b"));
    let second = reg.catalog(first.next.as_deref(), Some(2)).await.unwrap();
    assert_eq!(second.items, vec!["c"]);
    assert_eq!(second.next, None);
    assert!(reg.catalog(None, Some(0)).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn deletes_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        delete_enabled: false,
        ..Default::default()
    };
    let reg = open(dir.path(), options);
    let name = repo("a");
    let digest = push_image(&reg, &name, "v1").await;
    let err = reg
        .delete_manifest(&name, &Reference::Digest(digest))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DeleteDisabled));
    let layer = Digest::sha256_of(b"hello");
    assert!(matches!(
        reg.delete_blob(&name, &layer).await,
        Err(Error::DeleteDisabled)
    ));
}

#[tokio::test]
async fn abandoned_uploads_expire() {
    let dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        upload_expiry: std::time::Duration::from_secs(0),
        ..Default::default()
    };
    let reg = open(dir.path(), options);
    let name = repo("a");
    let up = reg.start_upload(&name, None).await.unwrap();
    // A file a crash left behind, with no session.
    std::fs::write(dir.path().join("uploads").join("mono-orphan"), b"partial").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(reg.expire_uploads().await.unwrap(), 2);
    assert!(matches!(
        reg.upload_status(&name, &up.id).await,
        Err(Error::BlobUploadUnknown)
    ));
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn a_descriptor_size_that_contradicts_the_stored_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("a");
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"hello!"); // six bytes, the manifest says five
    reg.push_blob(&name, &config, body(b"{}"), None)
        .await
        .unwrap();
    reg.push_blob(&name, &layer, body(b"hello!"), None)
        .await
        .unwrap();
    let err = reg
        .put_manifest(
            &name,
            &"v1".parse().unwrap(),
            None,
            image_manifest(&config, &layer),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ManifestSizeMismatch {
            declared: 5,
            stored: 6,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_commit_together_and_a_failing_one_undoes_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(open(dir.path(), RegistryOptions::default()));
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"hello");
    let missing = Digest::sha256_of(b"never pushed");
    let pushes = (0..64).map(|i| {
        let reg = reg.clone();
        let (config, layer, missing) = (config.clone(), layer.clone(), missing.clone());
        tokio::spawn(async move {
            let name = repo(&format!("r{i:02}"));
            reg.push_blob(&name, &config, body(b"{}"), None)
                .await
                .unwrap();
            reg.push_blob(&name, &layer, body(b"hello"), None)
                .await
                .unwrap();
            // Odd repositories reference a blob they do not have.
            let wanted = if i % 2 == 0 { &layer } else { &missing };
            let manifest = image_manifest(&config, wanted);
            reg.put_manifest(&name, &"v1".parse().unwrap(), None, manifest)
                .await
        })
    });
    let outcomes = futures_util::future::join_all(pushes).await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.unwrap();
        assert_eq!(
            outcome.is_ok(),
            i % 2 == 0,
            "repository r{i:02}: {outcome:?}"
        );
    }
    let catalog = reg.catalog(None, None).await.unwrap().items;
    let expected: Vec<String> = (0..64).step_by(2).map(|i| format!("r{i:02}")).collect();
    assert_eq!(catalog, expected);
}

/// A body that sends `chunks` and then stalls forever, like a client that
/// stopped sending mid-request.
fn stalling_body(chunks: Vec<Bytes>) -> ByteStream<'static> {
    stream::iter(chunks.into_iter().map(Ok))
        .chain(stream::pending())
        .boxed()
}

fn blob_file(dir: &Path, digest: &Digest) -> std::path::PathBuf {
    let hex = digest.hex();
    dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// A body that sends `first`, pauses 100 ms, then sends `rest`: a slow client.
fn pausing_body(first: &[u8], rest: &[u8]) -> ByteStream<'static> {
    pausing_body_for(100, first, rest)
}

fn pausing_body_for(millis: u64, first: &[u8], rest: &[u8]) -> ByteStream<'static> {
    let first = stream::iter([Ok(Bytes::copy_from_slice(first))]);
    let pause = stream::once(tokio::time::sleep(std::time::Duration::from_millis(millis)))
        .filter_map(|()| async { None::<std::io::Result<Bytes>> });
    first
        .chain(pause)
        .chain(body_in_chunks_of(64 << 10, rest))
        .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_append_cannot_corrupt_the_retry_that_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let data: Vec<u8> = (0..256 << 10).map(|i| (i % 251 + 1) as u8).collect();
    let digest = Digest::sha256_of(&data);
    for round in 0..3 {
        let id = {
            let reg = open(dir.path(), RegistryOptions::default());
            let up = reg.start_upload(&name, None).await.unwrap();
            reg.append_upload(&name, &up.id, Some(0), body(&data[..1]))
                .await
                .unwrap();
            up.id
        };
        // After a restart the running hash is gone, so appends go straight
        // to the writer thread, as fast as the disk takes them.
        let reg = open(dir.path(), RegistryOptions::default());
        // Much queued for the writer, then the body stalls and the request
        // is dropped (as a body timeout would) while the writer is still busy.
        let junk = Bytes::from(vec![0xAA; 4 << 20]);
        let dropped = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            reg.append_upload(&name, &id, Some(1), stalling_body(vec![junk; 8])),
        )
        .await;
        assert!(dropped.is_err(), "the stalled append timed out");
        // The client retries at once from where the session stands, slowly.
        assert_eq!(reg.upload_status(&name, &id).await.unwrap().offset, 1);
        let retry = pausing_body(&data[1..2], &data[2..]);
        let up = reg.append_upload(&name, &id, Some(1), retry).await.unwrap();
        assert_eq!(up.offset, data.len() as u64);
        reg.finish_upload(&name, &id, &digest, None, None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let stored = std::fs::read(blob_file(dir.path(), &digest)).unwrap();
        assert!(
            Digest::sha256_of(&stored) == digest,
            "round {round}: the published bytes ({} of them) do not hash to their digest",
            stored.len()
        );
    }
}

#[tokio::test]
async fn a_corrupt_blob_file_is_repaired_by_pushing_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("a");
    let data = b"the real content".repeat(100);
    let digest = Digest::sha256_of(&data);
    reg.push_blob(&name, &digest, body(&data), None)
        .await
        .unwrap();
    // Damage the stored copy (a disk error, a crash before this fix).
    std::fs::write(blob_file(dir.path(), &digest), b"garbage").unwrap();
    reg.push_blob(&name, &digest, body(&data), None)
        .await
        .unwrap();
    assert_eq!(read_blob(&reg, &name, &digest).await.unwrap(), data);
    // A chunked re-push repairs it too.
    std::fs::write(blob_file(dir.path(), &digest), b"garbage").unwrap();
    let up = reg.start_upload(&name, None).await.unwrap();
    reg.finish_upload(&name, &up.id, &digest, Some(0), Some(body(&data)))
        .await
        .unwrap();
    assert_eq!(read_blob(&reg, &name, &digest).await.unwrap(), data);
}

#[tokio::test]
async fn a_session_ahead_of_its_file_resumes_from_the_real_length() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("a");
    let data = b"0123456789abcdefghij";
    let digest = Digest::sha256_of(data);
    let up = reg.start_upload(&name, None).await.unwrap();
    reg.append_upload(&name, &up.id, Some(0), body(&data[..10]))
        .await
        .unwrap();
    // The file lost its last bytes (say, a crash before they reached the disk).
    let file = dir.path().join("uploads").join(&up.id);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(4)
        .unwrap();
    let err = reg
        .append_upload(&name, &up.id, Some(10), body(&data[10..]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UploadOutOfOrder { offset: 4, got: 10 }),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), &data[..4], "no zero-fill");
    assert_eq!(reg.upload_status(&name, &up.id).await.unwrap().offset, 4);
    reg.finish_upload(&name, &up.id, &digest, Some(4), Some(body(&data[4..])))
        .await
        .unwrap();
    assert_eq!(read_blob(&reg, &name, &digest).await.unwrap(), data);
}

fn upload_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn leftovers_no_session_owns_are_swept_whatever_their_age() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("a");
    let live = reg.start_upload(&name, None).await.unwrap();
    reg.append_upload(&name, &live.id, Some(0), body(b"kept"))
        .await
        .unwrap();
    // What killed requests leave: monolithic pushes, manifest PUTs, and an
    // upload whose session row is gone. All of them brand new.
    let orphan = uuid::Uuid::new_v4().to_string();
    for leftover in ["mono-killed", "put-killed", orphan.as_str()] {
        std::fs::write(dir.path().join("uploads").join(leftover), b"partial").unwrap();
    }
    // And a session whose file a crash lost: it can never be resumed.
    let lost = reg.start_upload(&name, None).await.unwrap();
    std::fs::remove_file(dir.path().join("uploads").join(&lost.id)).unwrap();
    assert_eq!(reg.sweep_leftovers().await.unwrap(), 4);
    assert_eq!(upload_files(dir.path()), vec![live.id.clone()]);
    assert!(matches!(
        reg.upload_status(&name, &lost.id).await,
        Err(Error::BlobUploadUnknown)
    ));
    let digest = Digest::sha256_of(b"kept");
    reg.finish_upload(&name, &live.id, &digest, None, None)
        .await
        .unwrap();
    assert_eq!(read_blob(&reg, &name, &digest).await.unwrap(), b"kept");
}

#[tokio::test]
async fn a_patch_streaming_longer_than_the_expiry_is_not_expired_underneath_itself() {
    let dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        upload_expiry: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let reg = open(dir.path(), options);
    let name = repo("a");
    let data = b"a slow client's only chunk";
    let digest = Digest::sha256_of(data);
    let up = reg.start_upload(&name, None).await.unwrap();
    let (appended, expired) = tokio::join!(
        reg.append_upload(
            &name,
            &up.id,
            Some(0),
            pausing_body_for(3_000, &data[..5], &data[5..])
        ),
        async {
            // Past the expiry while the PATCH is still streaming.
            tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
            let expired = reg.expire_uploads().await.unwrap();
            let status = reg.upload_status(&name, &up.id).await;
            (expired, status)
        }
    );
    let (expired, status) = expired;
    assert_eq!(expired, 0, "a live upload is not stale");
    assert_eq!(status.unwrap().offset, 0, "and is still known");
    assert_eq!(appended.unwrap().offset, data.len() as u64);
    reg.finish_upload(&name, &up.id, &digest, None, None)
        .await
        .unwrap();
    assert_eq!(read_blob(&reg, &name, &digest).await.unwrap(), data);
}

#[tokio::test]
async fn an_append_whose_session_vanished_meanwhile_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("a");
    let up = reg.start_upload(&name, None).await.unwrap();
    // Another actor (an older berth's sweeper, an operator) drops the session.
    let other = SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
    let (appended, ()) = tokio::join!(
        reg.append_upload(&name, &up.id, Some(0), pausing_body(b"ab", b"cd")),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            other.delete_upload(&up.id).await.unwrap();
        }
    );
    assert!(
        matches!(appended, Err(Error::BlobUploadUnknown)),
        "{appended:?}"
    );
}

/// The SQLite store, except that removing an upload session always fails.
struct SessionsStick(SqliteMetaStore);

#[async_trait::async_trait]
impl berth_registry::MetaStore for SessionsStick {
    async fn link_blob(
        &self,
        r: &RepositoryName,
        d: &Digest,
        size: u64,
        claim: Option<&BlobClaim>,
    ) -> Result<bool, Error> {
        self.0.link_blob(r, d, size, claim).await
    }
    async fn blob_size(&self, r: &RepositoryName, d: &Digest) -> Result<Option<u64>, Error> {
        self.0.blob_size(r, d).await
    }
    async fn unlink_blob(&self, r: &RepositoryName, d: &Digest) -> Result<bool, Error> {
        self.0.unlink_blob(r, d).await
    }
    async fn put_manifest(
        &self,
        r: &RepositoryName,
        m: &ManifestRecord,
        t: Option<&Tag>,
        o: &PutOptions,
    ) -> Result<(), Error> {
        self.0.put_manifest(r, m, t, o).await
    }
    async fn manifest_by_tag(
        &self,
        r: &RepositoryName,
        t: &Tag,
    ) -> Result<Option<ManifestRow>, Error> {
        self.0.manifest_by_tag(r, t).await
    }
    async fn manifest_by_digest(
        &self,
        r: &RepositoryName,
        d: &Digest,
    ) -> Result<Option<ManifestRow>, Error> {
        self.0.manifest_by_digest(r, d).await
    }
    async fn delete_manifest(&self, r: &RepositoryName, d: &Digest) -> Result<bool, Error> {
        self.0.delete_manifest(r, d).await
    }
    async fn delete_repository(
        &self,
        r: &RepositoryName,
    ) -> Result<Option<berth_registry::storage::RepositoryDeleted>, Error> {
        self.0.delete_repository(r).await
    }
    async fn delete_tag(&self, r: &RepositoryName, t: &Tag) -> Result<bool, Error> {
        self.0.delete_tag(r, t).await
    }
    async fn list_tags(
        &self,
        r: &RepositoryName,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>, Error> {
        self.0.list_tags(r, last, limit).await
    }
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, Error> {
        self.0.list_repositories(last, limit).await
    }
    async fn referrers(
        &self,
        r: &RepositoryName,
        s: &Digest,
        a: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ReferrerRecord>, Error> {
        self.0.referrers(r, s, a, last, limit).await
    }
    async fn repository_summaries(
        &self,
        filter: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<berth_registry::RepositorySummary>, Error> {
        self.0.repository_summaries(filter, last, limit).await
    }
    async fn repository_summary(
        &self,
        r: &RepositoryName,
    ) -> Result<Option<berth_registry::RepositorySummary>, Error> {
        self.0.repository_summary(r).await
    }
    async fn tag_details(
        &self,
        r: &RepositoryName,
        after: Option<&berth_registry::storage::TagCursor>,
        limit: usize,
    ) -> Result<Option<Vec<berth_registry::storage::TagRow>>, Error> {
        self.0.tag_details(r, after, limit).await
    }
    async fn manifest_facts(
        &self,
        r: &RepositoryName,
        d: &Digest,
    ) -> Result<Option<berth_registry::storage::ManifestFacts>, Error> {
        self.0.manifest_facts(r, d).await
    }
    async fn overview(&self) -> Result<berth_registry::Overview, Error> {
        self.0.overview().await
    }
    async fn create_upload(&self, s: &UploadSession, l: UploadLimits) -> Result<(), Error> {
        self.0.create_upload(s, l).await
    }
    async fn upload(&self, id: &str) -> Result<Option<UploadSession>, Error> {
        self.0.upload(id).await
    }
    async fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: &berth_registry::storage::UploadProgress,
        at: i64,
    ) -> Result<bool, Error> {
        self.0.advance_upload(id, from, to, at).await
    }
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, Error> {
        self.0.try_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), Error> {
        self.0.release_lease(name, holder).await
    }
    async fn shared_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.0.shared_secret(name, candidate).await
    }
    async fn repository_links(
        &self,
        r: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>, Error> {
        self.0.repository_links(r, after, limit).await
    }
    async fn repository_manifests(
        &self,
        r: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<berth_registry::storage::ManifestRow>, Error> {
        self.0.repository_manifests(r, after, limit).await
    }
    async fn delete_upload(&self, _id: &str) -> Result<(), Error> {
        Err(Error::Storage("the disk said no".into()))
    }
    async fn stale_uploads(&self, cutoff: i64) -> Result<Vec<String>, Error> {
        self.0.stale_uploads(cutoff).await
    }
    async fn check(&self) -> Result<(), Error> {
        self.0.check().await
    }
    async fn stats(&self) -> Result<berth_registry::StoreStats, Error> {
        self.0.stats().await
    }
    async fn claim_blob(
        &self,
        d: &Digest,
        lease: std::time::Duration,
    ) -> Result<Option<BlobClaim>, Error> {
        self.0.claim_blob(d, lease).await
    }
    async fn release_claim(&self, c: &BlobClaim) -> Result<(), Error> {
        self.0.release_claim(c).await
    }
    async fn touch_blobs(&self, t: Vec<(RepositoryName, Digest)>, at: i64) -> Result<(), Error> {
        self.0.touch_blobs(t, at).await
    }
    async fn gc_untagged_manifests(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest)>, Error> {
        self.0.gc_untagged_manifests(before, limit).await
    }
    async fn delete_untagged_manifest(
        &self,
        r: &RepositoryName,
        d: &Digest,
        before: i64,
    ) -> Result<bool, Error> {
        self.0.delete_untagged_manifest(r, d, before).await
    }
    async fn gc_dangling_links(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest, u64)>, Error> {
        self.0.gc_dangling_links(before, limit).await
    }
    async fn unlink_dangling(
        &self,
        r: &RepositoryName,
        d: &Digest,
        before: i64,
    ) -> Result<bool, Error> {
        self.0.unlink_dangling(r, d, before).await
    }
    async fn gc_blob_candidates(
        &self,
        before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>, Error> {
        self.0.gc_blob_candidates(before, after, limit).await
    }
    async fn tombstone_blob(&self, d: &Digest, before: i64) -> Result<Option<u64>, Error> {
        self.0.tombstone_blob(d, before).await
    }
    async fn drop_tombstone(&self, d: &Digest) -> Result<(), Error> {
        self.0.drop_tombstone(d).await
    }
    async fn tombstones(&self) -> Result<Vec<Digest>, Error> {
        self.0.tombstones().await
    }
    async fn tombstone_orphan(&self, d: &Digest) -> Result<bool, Error> {
        self.0.tombstone_orphan(d).await
    }
    async fn known_blob(&self, d: &Digest) -> Result<bool, Error> {
        self.0.known_blob(d).await
    }
    async fn reclaimable(&self) -> Result<berth_registry::storage::Reclaimable, Error> {
        self.0.reclaimable().await
    }
    async fn expire_claims(&self, now: i64) -> Result<u64, Error> {
        self.0.expire_claims(now).await
    }
    async fn record_pulls(
        &self,
        pulls: Vec<berth_registry::storage::PullRecord>,
    ) -> Result<(), Error> {
        self.0.record_pulls(pulls).await
    }
    async fn tag_states(
        &self,
        r: &RepositoryName,
    ) -> Result<Vec<berth_registry::policy::TagState>, Error> {
        self.0.tag_states(r).await
    }
    async fn delete_tag_if(
        &self,
        r: &RepositoryName,
        t: &Tag,
        d: &Digest,
        updated_at: i64,
    ) -> Result<bool, Error> {
        self.0.delete_tag_if(r, t, d, updated_at).await
    }
    async fn repository_usage(
        &self,
        r: &RepositoryName,
    ) -> Result<berth_registry::storage::RepositoryUsage, Error> {
        self.0.repository_usage(r).await
    }
    async fn repository_origin(
        &self,
        r: &RepositoryName,
    ) -> Result<berth_registry::storage::RepositoryOrigin, Error> {
        self.0.repository_origin(r).await
    }
    async fn mark_cached(
        &self,
        r: &RepositoryName,
        source: &berth_registry::storage::CacheSource,
    ) -> Result<(), Error> {
        self.0.mark_cached(r, source).await
    }
    async fn tag_checked_at(
        &self,
        r: &RepositoryName,
        tag: &berth_oci::Tag,
    ) -> Result<Option<i64>, Error> {
        self.0.tag_checked_at(r, tag).await
    }
    async fn set_tag_checked(
        &self,
        r: &RepositoryName,
        tag: &berth_oci::Tag,
        at: i64,
    ) -> Result<(), Error> {
        self.0.set_tag_checked(r, tag, at).await
    }
    async fn cached_bytes(&self) -> Result<u64, Error> {
        self.0.cached_bytes().await
    }
    async fn eviction_candidates(
        &self,
        limit: usize,
    ) -> Result<Vec<berth_registry::storage::EvictionCandidate>, Error> {
        self.0.eviction_candidates(limit).await
    }
}

#[tokio::test]
async fn a_published_blob_stays_published_when_its_upload_cannot_be_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(
        Arc::new(FsBlobStore::open(dir.path()).unwrap()),
        Arc::new(SessionsStick(
            SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap(),
        )),
        RegistryOptions::default(),
    );
    let name = repo("a");
    let digest = Digest::sha256_of(b"published");
    let up = reg.start_upload(&name, None).await.unwrap();
    reg.finish_upload(&name, &up.id, &digest, Some(0), Some(body(b"published")))
        .await
        .unwrap();
    assert_eq!(read_blob(&reg, &name, &digest).await.unwrap(), b"published");
}

#[tokio::test]
async fn under_the_free_space_watermark_pushes_fail_cleanly_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let pushed = {
        let reg = open(dir.path(), RegistryOptions::default());
        push_image(&reg, &name, "v1").await
    };
    let full = RegistryOptions {
        min_free_bytes: u64::MAX,
        min_free_percent: 100,
        ..Default::default()
    };
    let reg = open(dir.path(), full);
    let low = |e: &Error| matches!(e, Error::InsufficientStorage { .. });
    assert!(low(&reg.start_upload(&name, None).await.unwrap_err()));
    let digest = Digest::sha256_of(b"more");
    assert!(low(&reg
        .push_blob(&name, &digest, body(b"more"), None)
        .await
        .unwrap_err()));
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"hello");
    let manifest = image_manifest(&config, &layer);
    let err = reg
        .put_manifest(&name, &"v2".parse().unwrap(), None, manifest)
        .await
        .unwrap_err();
    assert!(low(&err), "{err}");
    let found = reg
        .manifest(&name, &"v1".parse().unwrap(), &[], true)
        .await
        .unwrap();
    assert_eq!(found.digest, pushed);
    assert_eq!(read_blob(&reg, &name, &layer).await.unwrap(), b"hello");
    assert_eq!(
        upload_files(dir.path()),
        Vec::<String>::new(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn upload_sessions_and_pushes_are_capped_per_client_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        max_uploads: 4,
        max_uploads_per_client: 2,
        ..Default::default()
    };
    let reg = open(dir.path(), options);
    let name = repo("a");
    let (one, two): (std::net::IpAddr, std::net::IpAddr) =
        ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let first = reg.start_upload(&name, Some(one)).await.unwrap();
    reg.start_upload(&name, Some(one)).await.unwrap();
    let err = reg.start_upload(&name, Some(one)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyUploads {
                per_client: true,
                ..
            }
        ),
        "{err}"
    );
    // Monolithic pushes in progress are capped per client the same way.
    let digest = Digest::sha256_of(b"mono");
    let (first_push, second_push, refused) = tokio::join!(
        reg.push_blob(&name, &digest, pausing_body(b"mo", b"no"), Some(two)),
        reg.push_blob(&name, &digest, pausing_body(b"mo", b"no"), Some(two)),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            reg.push_blob(&name, &digest, body(b"mono"), Some(two))
                .await
        }
    );
    first_push.unwrap();
    second_push.unwrap();
    assert!(
        matches!(refused, Err(Error::TooManyUploads { .. })),
        "{refused:?}"
    );
    reg.push_blob(&name, &digest, body(b"mono"), Some(two))
        .await
        .unwrap();
    reg.start_upload(&name, Some(two)).await.unwrap();
    reg.start_upload(&name, None).await.unwrap();
    let err = reg.start_upload(&name, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyUploads {
                per_client: false,
                ..
            }
        ),
        "{err}"
    );
    // Finishing or cancelling frees a place; refused starts left no file.
    reg.cancel_upload(&name, &first.id).await.unwrap();
    reg.start_upload(&name, Some(one)).await.unwrap();
    assert_eq!(upload_files(dir.path()).len(), 4);
}

#[tokio::test]
async fn a_chunk_whose_body_contradicts_its_range_is_refused_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let name = repo("a");
    let up = reg.start_upload(&name, None).await.unwrap();
    let range = |start, len| berth_registry::ExpectedChunk {
        start: Some(start),
        len: Some(len),
    };
    // 20 bytes sent for `Content-Range: 0-9`, chunked (no Content-Length).
    let long = reg
        .append_upload(&name, &up.id, range(0, 10), body(&[b'x'; 20]))
        .await
        .unwrap_err();
    assert!(matches!(long, Error::BodyRead(_)), "{long}");
    let short = reg
        .append_upload(&name, &up.id, range(0, 10), body(b"12345"))
        .await
        .unwrap_err();
    assert!(matches!(short, Error::BodyRead(_)), "{short}");
    assert_eq!(reg.upload_status(&name, &up.id).await.unwrap().offset, 0);
    let file = dir.path().join("uploads").join(&up.id);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "nothing kept");
    let data = b"0123456789";
    reg.append_upload(&name, &up.id, range(0, 10), body(data))
        .await
        .unwrap();
    reg.finish_upload(&name, &up.id, &Digest::sha256_of(data), None, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn readiness_names_the_store_that_fails() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(
        Arc::new(FsBlobStore::open(dir.path()).unwrap()),
        Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap()),
        RegistryOptions::default(),
    );
    assert!(reg.readiness().await.is_ready());
    std::fs::rename(dir.path().join("uploads"), dir.path().join("moved")).unwrap();
    let blobs_gone = reg.readiness().await;
    assert!(!blobs_gone.is_ready());
    assert!(blobs_gone.blobs.is_err() && blobs_gone.meta.is_ok());
    std::fs::rename(dir.path().join("moved"), dir.path().join("uploads")).unwrap();
    std::fs::rename(dir.path().join("meta.db"), dir.path().join("moved.db")).unwrap();
    let meta_gone = reg.readiness().await;
    assert!(meta_gone.blobs.is_ok() && meta_gone.meta.is_err());
    std::fs::rename(dir.path().join("moved.db"), dir.path().join("meta.db")).unwrap();
    assert!(reg.readiness().await.is_ready());
}

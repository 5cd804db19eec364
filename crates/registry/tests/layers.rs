//! "Inside a layer" through the registry: access rules, the cache by
//! digest, and the merged tree of an image, over the real filesystem and
//! SQLite stores (no HTTP).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use async_trait::async_trait;
use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::layers::{list_layer, Compression, EntryKind, LayerError, ListingLimits};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::storage::FreeSpace;
use berth_registry::{
    BlobContent, BlobStore, ByteRange, ByteStream, Error, Registry, RegistryOptions, Result,
};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tar::{EntryType, Header};

/// The filesystem store, counting whole-blob reads and optionally handing
/// content over as a stream (as an object store would) instead of a file.
struct Counting {
    inner: FsBlobStore,
    reads: AtomicUsize,
    as_stream: bool,
    /// Streams fail after their first chunk, as a dropped connection would.
    broken: bool,
    /// Streams wait for the test before their first byte.
    gate: Option<Arc<Gate>>,
}

/// Lets a test hold a blob's stream (read only by the listing's blocking
/// task) until it says so, and hear when it started and ended.
#[derive(Default)]
struct Gate {
    started: tokio::sync::Notify,
    open: tokio::sync::Notify,
    finished: tokio::sync::Notify,
}

impl Gate {
    fn around(self: Arc<Self>, inner: ByteStream<'static>) -> ByteStream<'static> {
        let (before, after) = (self.clone(), self);
        let wait = stream::once(async move {
            before.started.notify_one();
            before.open.notified().await;
            None
        });
        let done = stream::once(async move {
            after.finished.notify_one();
            None
        });
        wait.chain(inner.map(Some))
            .chain(done)
            .filter_map(|item| async move { item })
            .boxed()
    }
}

#[async_trait]
impl BlobStore for Counting {
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<Option<BlobContent>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let content = self.inner.read(digest, range).await?;
        Ok(match content {
            Some(c) if self.broken => {
                let failure = std::io::Error::other("connection reset by the object store");
                let stream = c.into_stream().take(1).chain(stream::iter([Err(failure)]));
                Some(BlobContent::Stream(stream.boxed()))
            }
            Some(c) if self.gate.is_some() => {
                let gate = self.gate.clone().unwrap();
                Some(BlobContent::Stream(gate.around(c.into_stream())))
            }
            Some(c) if self.as_stream => Some(BlobContent::Stream(c.into_stream())),
            other => other,
        })
    }
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        self.inner.put(digest, bytes).await
    }
    async fn create_upload(&self, id: &str) -> Result<berth_registry::storage::UploadState> {
        self.inner.create_upload(id).await
    }
    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        state: &[u8],
        body: ByteStream<'_>,
    ) -> Result<berth_registry::storage::Appended> {
        self.inner.append_upload(id, offset, state, body).await
    }
    async fn read_upload(&self, id: &str, state: &[u8]) -> Result<ByteStream<'static>> {
        self.inner.read_upload(id, state).await
    }
    async fn commit_upload(&self, id: &str, state: &[u8], d: &Digest) -> Result<()> {
        self.inner.commit_upload(id, state, d).await
    }
    async fn delete_upload(&self, id: &str, state: Option<&[u8]>) -> Result<()> {
        self.inner.delete_upload(id, state).await
    }
    async fn delete(&self, digest: &Digest) -> Result<bool> {
        self.inner.delete(digest).await
    }
    async fn list(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<berth_registry::storage::StoredBlob>> {
        self.inner.list(after, limit).await
    }
    async fn uploads_older_than(&self, age: std::time::Duration) -> Result<Vec<String>> {
        self.inner.uploads_older_than(age).await
    }
    fn free_space(&self) -> Result<Option<FreeSpace>> {
        Ok(None)
    }
    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }
}

fn open(dir: &Path, as_stream: bool) -> (Registry, Arc<Counting>) {
    open_with(dir, as_stream, false)
}

fn open_with(dir: &Path, as_stream: bool, broken: bool) -> (Registry, Arc<Counting>) {
    let blobs = Arc::new(Counting {
        inner: FsBlobStore::open(dir).unwrap(),
        reads: AtomicUsize::new(0),
        as_stream,
        broken,
        gate: None,
    });
    let meta = Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap());
    let registry = Registry::new(blobs.clone(), meta, RegistryOptions::default());
    (registry, blobs)
}

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

/// Members of a layer: `(path, kind, content)`; links carry their target as content.
fn layer(members: &[(&str, EntryType, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, kind, content) in members {
        let mut h = Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        match kind {
            EntryType::Symlink | EntryType::Link => {
                h.set_size(0);
                tar.append_link(&mut h, path, content).unwrap();
            }
            _ => {
                h.set_size(content.len() as u64);
                tar.append_data(&mut h, path, content.as_bytes()).unwrap();
            }
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

async fn push(reg: &Registry, name: &RepositoryName, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256_of(bytes);
    let body = stream::iter([Ok(Bytes::copy_from_slice(bytes))]).boxed();
    reg.push_blob(name, &digest, body, None).await.unwrap();
    digest
}

/// Pushes `layers` and a manifest over them, tagged `tag`.
async fn push_image(
    reg: &Registry,
    name: &RepositoryName,
    tag: &str,
    layers: &[Vec<u8>],
) -> Digest {
    let config = push(reg, name, b"{}").await;
    let mut descriptors = Vec::new();
    for bytes in layers {
        let digest = push(reg, name, bytes).await;
        descriptors.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{digest}","size":{}}}"#,
            bytes.len()
        ));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{}]}}"#,
        descriptors.join(",")
    );
    let tag: Reference = tag.parse().unwrap();
    reg.put_manifest(name, &tag, None, Bytes::from(manifest))
        .await
        .unwrap()
        .digest
}

#[tokio::test]
async fn a_layer_is_listed_once_and_then_served_from_the_cache_in_any_repository() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, blobs) = open(dir.path(), false);
    let (app, other) = (repo("team/app"), repo("team/other"));
    let bytes = layer(&[
        ("etc/", EntryType::Directory, ""),
        ("etc/motd", EntryType::Regular, "hi"),
    ]);
    let digest = push(&reg, &app, &bytes).await;
    push(&reg, &other, &bytes).await;

    let before = blobs.reads.load(Ordering::SeqCst);
    let first = reg.layer_files(&app, &digest).await.unwrap();
    assert_eq!(first.entries.len(), 2);
    assert_eq!(blobs.reads.load(Ordering::SeqCst), before + 1);
    let again = reg.layer_files(&app, &digest).await.unwrap();
    let elsewhere = reg.layer_files(&other, &digest).await.unwrap();
    assert_eq!(
        blobs.reads.load(Ordering::SeqCst),
        before + 1,
        "no second read"
    );
    assert!(Arc::ptr_eq(&first, &again) && Arc::ptr_eq(&first, &elsewhere));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_for_one_layer_read_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, blobs) = open(dir.path(), false);
    let name = repo("team/app");
    let files: Vec<String> = (0..3000).map(|i| format!("usr/share/f{i}")).collect();
    let members: Vec<(&str, EntryType, &str)> = files
        .iter()
        .map(|f| (f.as_str(), EntryType::Regular, "some content"))
        .collect();
    let digest = push(&reg, &name, &layer(&members)).await;
    let before = blobs.reads.load(Ordering::SeqCst);
    let (a, b, c) = tokio::join!(
        reg.layer_files(&name, &digest),
        reg.layer_files(&name, &digest),
        reg.layer_files(&name, &digest)
    );
    assert_eq!(a.unwrap().entries.len(), 3000);
    assert!(Arc::ptr_eq(&b.unwrap(), &c.unwrap()));
    assert_eq!(
        blobs.reads.load(Ordering::SeqCst),
        before + 1,
        "listed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_is_finished_and_kept_when_its_request_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("team/app");
    let digest = {
        let (reg, _) = open(dir.path(), false);
        push(&reg, &name, &layer(&[("a", EntryType::Regular, "1")])).await
    };
    let gate = Arc::new(Gate::default());
    let blobs = Arc::new(Counting {
        inner: FsBlobStore::open(dir.path()).unwrap(),
        reads: AtomicUsize::new(0),
        as_stream: false,
        broken: false,
        gate: Some(gate.clone()),
    });
    let meta = Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap());
    let reg = Arc::new(Registry::new(
        blobs.clone(),
        meta,
        RegistryOptions::default(),
    ));

    let request = tokio::spawn({
        let (reg, name, digest) = (reg.clone(), name.clone(), digest.clone());
        async move { reg.layer_files(&name, &digest).await.map(|_| ()) }
    });
    gate.started.notified().await; // the blocking task is reading
    request.abort(); // the client went away
    assert!(request.await.unwrap_err().is_cancelled());
    gate.open.notify_one();
    gate.finished.notified().await;
    // The blocking task caches right after its stream ends.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Listing again would wait at the closed gate: time out instead of hanging.
    let again = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reg.layer_files(&name, &digest),
    );
    let listed = again.await;
    // Release a second listing, if one started, so that the runtime can stop.
    gate.open.notify_one();
    let listing = listed.expect("served from the cache").unwrap();
    assert_eq!(listing.entries[0].path, "a");
    assert_eq!(
        blobs.reads.load(Ordering::SeqCst),
        1,
        "the abandoned listing was kept"
    );
}

#[tokio::test]
async fn a_layer_not_linked_in_the_repository_is_unknown_there_even_when_cached() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = open(dir.path(), false);
    let bytes = layer(&[("a", EntryType::Regular, "1")]);
    let digest = push(&reg, &repo("team/app"), &bytes).await;
    reg.layer_files(&repo("team/app"), &digest).await.unwrap();
    let err = reg
        .layer_files(&repo("team/stranger"), &digest)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BlobUnknown(d) if *d == digest),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_streamed_blob_lists_like_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = open(dir.path(), true);
    let name = repo("team/app");
    let big = "x".repeat(300_000); // several chunks of the stream
    let bytes = layer(&[
        ("big", EntryType::Regular, &big),
        ("small", EntryType::Regular, "s"),
    ]);
    let digest = push(&reg, &name, &bytes).await;
    let listing = reg.layer_files(&name, &digest).await.unwrap();
    let sizes: Vec<u64> = listing.entries.iter().map(|e| e.size).collect();
    assert_eq!(sizes, [300_000, 1]);
}

#[tokio::test]
async fn a_failing_store_is_a_storage_error_and_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("team/app");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: String = (0..800_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let bytes = layer(&[
        ("big", EntryType::Regular, &noise),
        ("b", EntryType::Regular, "1"),
    ]);
    assert!(bytes.len() > 300_000, "more than the store's first chunk");
    let digest = {
        let (reg, _) = open(dir.path(), false);
        push(&reg, &name, &bytes).await
    };
    let (reg, _) = open_with(dir.path(), true, true);
    let err = reg.layer_files(&name, &digest).await.unwrap_err();
    assert!(
        matches!(&err, Error::Storage(cause) if cause.contains("reset")),
        "{err:?}"
    );
    // Once the store is back, the layer lists: the failure was not cached.
    let (reg, _) = open(dir.path(), true);
    assert_eq!(
        reg.layer_files(&name, &digest).await.unwrap().entries.len(),
        2
    );
}

#[tokio::test]
async fn a_blob_that_is_not_a_layer_is_a_layer_error_remembered_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, blobs) = open(dir.path(), false);
    let name = repo("team/app");
    let digest = push(&reg, &name, br#"{"architecture":"amd64"}"#).await;
    for _ in 0..2 {
        match reg.layer_files(&name, &digest).await {
            Err(Error::Layer {
                digest: d,
                reason: LayerError::NotATar(_),
            }) => assert_eq!(d, digest),
            other => panic!("expected a layer error, got {other:?}"),
        }
    }
    assert_eq!(
        blobs.reads.load(Ordering::SeqCst),
        1,
        "the verdict is cached too"
    );
}

#[tokio::test]
async fn the_image_tree_applies_layers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, blobs) = open(dir.path(), false);
    let name = repo("team/app");
    let base = layer(&[
        ("bin/", EntryType::Directory, ""),
        ("bin/sh", EntryType::Regular, "ash"),
        ("etc/", EntryType::Directory, ""),
        ("etc/motd", EntryType::Regular, "old"),
        ("etc/hosts", EntryType::Regular, "localhost"),
        ("var/cache/", EntryType::Directory, ""),
        ("var/cache/a", EntryType::Regular, "1"),
        ("var/cache/b", EntryType::Regular, "2"),
    ]);
    let middle = layer(&[
        ("etc/motd", EntryType::Regular, "newer"),
        ("etc/.wh.hosts", EntryType::Regular, ""),
        ("var/cache/.wh..wh..opq", EntryType::Regular, ""),
        ("var/cache/c", EntryType::Regular, "3"),
    ]);
    let top = layer(&[
        ("bin/.wh.sh", EntryType::Regular, ""),
        ("bin/bash", EntryType::Regular, "bash!"),
        ("bin/sh", EntryType::Symlink, "bash"),
    ]);
    let layers = [base, middle, top];
    let digests: Vec<Digest> = layers.iter().map(|l| Digest::sha256_of(l)).collect();
    push_image(&reg, &name, "v1", &layers).await;

    let tree = reg
        .image_files(&name, &"v1".parse().unwrap())
        .await
        .unwrap();
    let got: Vec<(&str, EntryKind, usize)> = tree
        .entries
        .iter()
        .map(|e| (e.entry.path.as_str(), e.entry.kind, e.layer))
        .collect();
    assert_eq!(
        got,
        [
            ("bin", EntryKind::Dir, 0),
            ("bin/bash", EntryKind::File, 2),
            ("bin/sh", EntryKind::Symlink, 2),
            ("etc", EntryKind::Dir, 0),
            ("etc/motd", EntryKind::File, 1),
            ("var/cache", EntryKind::Dir, 0),
            ("var/cache/c", EntryKind::File, 1),
        ]
    );
    assert_eq!(tree.layer_of(&tree.entries[4]), Some(&digests[1]));
    assert_eq!(tree.entries[4].entry.size, 5, "the newer motd");
    assert_eq!(tree.total_size, 5 + 5 + 1);
    assert_eq!(tree.layers.len(), 3);

    let reads = blobs.reads.load(Ordering::SeqCst);
    let again = reg
        .image_files(&name, &"v1".parse().unwrap())
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&tree, &again), "the merged tree is cached");
    assert_eq!(
        blobs.reads.load(Ordering::SeqCst),
        reads,
        "no layer read again"
    );
}

#[tokio::test]
async fn an_index_has_no_tree_and_names_its_platform_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = open(dir.path(), false);
    let name = repo("team/app");
    let child = push_image(
        &reg,
        &name,
        "amd64",
        &[layer(&[("a", EntryType::Regular, "1")])],
    )
    .await;
    let size = reg
        .manifest(&name, &Reference::Digest(child.clone()), &[], false)
        .await
        .unwrap()
        .size;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":{size},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
    );
    reg.put_manifest(&name, &"multi".parse().unwrap(), None, Bytes::from(index))
        .await
        .unwrap();
    match reg.image_files(&name, &"multi".parse().unwrap()).await {
        Err(Error::IndexHasNoFiles { manifests, .. }) => assert_eq!(manifests, [child]),
        other => panic!("expected IndexHasNoFiles, got {other:?}"),
    }
}

#[tokio::test]
async fn an_image_with_a_broken_layer_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = open(dir.path(), false);
    let name = repo("team/app");
    let good = layer(&[("a", EntryType::Regular, "1")]);
    let broken = good[..good.len() - 12].to_vec(); // gzip cut inside its stream
    let broken_digest = Digest::sha256_of(&broken);
    push_image(&reg, &name, "v1", &[good, broken]).await;
    match reg.image_files(&name, &"v1".parse().unwrap()).await {
        Err(Error::Layer { digest, reason }) => {
            assert_eq!(digest, broken_digest);
            assert!(matches!(reason, LayerError::Corrupt { .. }), "{reason:?}");
        }
        other => panic!("expected a layer error, got {other:?}"),
    }
}

/// Layers made by the real tools (`tar --format=gnu | gzip`, `tar
/// --format=pax | zstd`) from one folder: a file, a symlink, a hard link,
/// a whiteout, an opaque folder and a 131-byte path.
#[test]
fn layers_made_by_gnu_tar_gzip_and_zstd_list_alike() {
    let long = format!("{}/{}", "d".repeat(90), "f".repeat(40));
    for (blob, compression) in [
        (&include_bytes!("data/gnu.tar.gz")[..], Compression::Gzip),
        (&include_bytes!("data/pax.tar.zst")[..], Compression::Zstd),
    ] {
        let listing = list_layer(blob, &ListingLimits::default()).unwrap();
        assert_eq!(listing.compression, compression);
        let kind = |path: &str| {
            let entry = listing.entries.iter().find(|e| e.path == path);
            entry.map(|e| (e.kind, e.size, e.link_target.clone()))
        };
        assert_eq!(kind("etc/hostname"), Some((EntryKind::File, 6, None)));
        let link = |t: &str| Some(t.to_string());
        assert_eq!(
            kind("bin/sh"),
            Some((EntryKind::Symlink, 0, link("busybox")))
        );
        // Whichever name tar met first holds the bytes; the other links to it.
        let (ash, busybox) = (kind("bin/ash"), kind("bin/busybox"));
        assert!(
            ash == Some((EntryKind::Hardlink, 0, link("bin/busybox")))
                && busybox == Some((EntryKind::File, 1, None))
                || busybox == Some((EntryKind::Hardlink, 0, link("bin/ash")))
                    && ash == Some((EntryKind::File, 1, None)),
            "{ash:?} {busybox:?}"
        );
        assert_eq!(kind("etc/motd"), Some((EntryKind::Whiteout, 0, None)));
        // The folder itself, then its opaque marker, under one path.
        let opaque = |e: &&berth_registry::layers::LayerEntry| e.kind == EntryKind::OpaqueWhiteout;
        let marker = listing.entries.iter().find(opaque).map(|e| e.path.as_str());
        assert_eq!(marker, Some("var/cache"));
        assert_eq!(kind(&long), Some((EntryKind::File, 0, None)));
        assert_eq!(listing.entries.len(), 12, "{:#?}", listing.entries);
    }
}

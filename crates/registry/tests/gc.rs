//! Online garbage collection, in-process over the real stores: the grace
//! delay, every rescue (a manifest PUT, a mount, a re-push, a read between
//! a candidate's listing and its tombstone), claims and tombstones, crash
//! recovery, untagged manifests, dry runs, and a stress of pushes, deletes
//! and passes at once.
//!
//! Time is controlled without sleeping: "an hour ago" is made by moving the
//! recorded times back in the database (`age`), and passes get their grace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::gc::{GcReport, GcRequest, GcSettings, RemovalKind};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{
    BlobStore, ByteStream, Error, MetaStore, MountOutcome, Registry, RegistryOptions,
};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

struct Fixture {
    dir: tempfile::TempDir,
    reg: Arc<Registry>,
    meta: Arc<SqliteMetaStore>,
    blobs: Arc<FsBlobStore>,
}

fn fixture(gc: GcSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap());
    let blobs = Arc::new(FsBlobStore::open(dir.path()).unwrap());
    let options = RegistryOptions {
        min_free_bytes: 0,
        min_free_percent: 0,
        gc,
        ..Default::default()
    };
    let reg = Arc::new(Registry::new(blobs.clone(), meta.clone(), options));
    Fixture {
        dir,
        reg,
        meta,
        blobs,
    }
}

fn default_fixture() -> Fixture {
    fixture(GcSettings::default())
}

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn body(bytes: &[u8]) -> ByteStream<'static> {
    stream::iter([Ok(Bytes::copy_from_slice(bytes))]).boxed()
}

async fn push(reg: &Registry, r: &RepositoryName, content: &[u8]) -> Digest {
    let digest = Digest::sha256_of(content);
    reg.push_blob(r, &digest, body(content), None)
        .await
        .unwrap();
    digest
}

fn descriptor(media_type: &str, digest: &Digest, size: usize) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
}

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image manifest naming `config` and `layers` (digest, size), with an
/// optional subject (digest, size).
fn image_json(
    config: (&Digest, usize),
    layers: &[(Digest, usize)],
    subject: Option<(&Digest, usize)>,
) -> Bytes {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| descriptor("application/vnd.oci.image.layer.v1.tar", d, *s))
        .collect();
    let subject = subject
        .map(|(d, s)| format!(r#","subject":{}"#, descriptor(IMAGE, d, s)))
        .unwrap_or_default();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{IMAGE}","config":{},"layers":[{}]{subject}}}"#,
        descriptor(
            "application/vnd.oci.image.config.v1+json",
            config.0,
            config.1
        ),
        layers.join(",")
    ))
}

fn index_json(children: &[(Digest, usize)]) -> Bytes {
    let children: Vec<String> = children
        .iter()
        .map(|(d, s)| descriptor(IMAGE, d, *s))
        .collect();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{}]}}"#,
        children.join(",")
    ))
}

async fn put(reg: &Registry, r: &RepositoryName, reference: &str, json: Bytes) -> Digest {
    let reference: Reference = reference.parse().unwrap();
    reg.put_manifest(r, &reference, None, json)
        .await
        .unwrap()
        .digest
}

/// An image of a config and one layer, pushed and tagged; its digests.
struct Image {
    manifest: Digest,
    manifest_size: usize,
    config: Digest,
    layer: Digest,
}

async fn push_image(reg: &Registry, r: &RepositoryName, tag: &str, seed: &str) -> Image {
    let config_bytes = format!("{{\"seed\":\"{seed}\"}}");
    let layer_bytes = format!("layer of {seed}");
    let config = push(reg, r, config_bytes.as_bytes()).await;
    let layer = push(reg, r, layer_bytes.as_bytes()).await;
    let json = image_json(
        (&config, config_bytes.len()),
        &[(layer.clone(), layer_bytes.len())],
        None,
    );
    let manifest_size = json.len();
    let manifest = put(reg, r, tag, json).await;
    Image {
        manifest,
        manifest_size,
        config,
        layer,
    }
}

/// Moves every recorded time `by` into the past: as if all that happened
/// so far happened that much earlier.
fn age(dir: &Path, by: Duration) {
    let conn = rusqlite::Connection::open(dir.join("meta.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let secs = by.as_secs() as i64;
    conn.execute_batch(&format!(
        "UPDATE blobs SET touched_at = touched_at - {secs};
         UPDATE repo_blobs SET touched_at = touched_at - {secs};
         UPDATE manifests SET pushed_at = pushed_at - {secs};
         UPDATE tags SET updated_at = updated_at - {secs};"
    ))
    .unwrap();
}

/// Digests of the files the blob store holds.
async fn stored(blobs: &FsBlobStore) -> BTreeSet<Digest> {
    blobs
        .list(None, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect()
}

/// Whether `r` may read `d`, asked without counting as a read.
async fn linked(meta: &SqliteMetaStore, r: &RepositoryName, d: &Digest) -> bool {
    meta.blob_size(r, d).await.unwrap().is_some()
}

async fn pass(reg: &Registry, grace: Option<Duration>) -> GcReport {
    reg.collect_garbage(
        &GcRequest {
            dry_run: false,
            grace,
        },
        &(),
    )
    .await
    .unwrap()
}

fn cutoff(grace: Duration) -> i64 {
    unix_now() - grace.as_secs() as i64
}

#[tokio::test]
async fn a_fresh_unreferenced_blob_survives_and_an_old_one_goes() {
    let f = default_fixture();
    let r = repo("grace");
    let old = push(&f.reg, &r, b"pushed two hours ago, never used").await;
    age(f.dir.path(), 2 * HOUR);
    let fresh = push(&f.reg, &r, b"pushed just now").await;

    let report = pass(&f.reg, None).await;
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert_eq!(
        report.bytes_removed,
        b"pushed two hours ago, never used".len() as u64
    );
    assert_eq!(report.candidates, 1);
    let blobs: Vec<_> = report
        .removed
        .iter()
        .filter(|r| r.kind == RemovalKind::Blob)
        .collect();
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0].name, old.to_string());
    assert_eq!(report.links_removed, 1, "its link went first, as dangling");
    assert_eq!(stored(&f.blobs).await, BTreeSet::from([fresh.clone()]));
    assert!(!linked(&f.meta, &r, &old).await);
    assert!(matches!(
        f.reg.blob(&r, &old, None, false).await,
        Err(Error::BlobUnknown(_))
    ));
    assert!(f.reg.blob(&r, &fresh, None, true).await.is_ok());

    let status = f.reg.gc_status();
    assert!(!status.running);
    assert_eq!(status.totals.runs, 1);
    assert_eq!(status.totals.blobs_removed, 1);
    assert_eq!(status.last.unwrap().blobs_removed, 1);
    // A shorter grace, asked for one pass, takes the fresh one too once
    // its second has passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = pass(&f.reg, Some(Duration::ZERO)).await;
    assert_eq!(report.blobs_removed, 1);
    assert!(stored(&f.blobs).await.is_empty());
}

#[tokio::test]
async fn referenced_blobs_stay_until_their_manifest_is_deleted_and_the_grace_passes() {
    let f = default_fixture();
    let r = repo("refs");
    let image = push_image(&f.reg, &r, "v1", "refs").await;
    age(f.dir.path(), 2 * HOUR);
    let report = pass(&f.reg, None).await;
    assert_eq!(report.blobs_removed, 0, "{report:?}");
    let kept = stored(&f.blobs).await;
    let image_blobs = [&image.manifest, &image.config, &image.layer];
    assert_eq!(kept, image_blobs.into_iter().cloned().collect());

    let by_digest = Reference::Digest(image.manifest.clone());
    f.reg.delete_manifest(&r, &by_digest).await.unwrap();
    let report = pass(&f.reg, None).await;
    assert_eq!(report.blobs_removed, 0, "the delete started a fresh grace");
    assert_eq!(f.reg.reclaimable().await.unwrap().blobs, 3);

    age(f.dir.path(), 2 * HOUR);
    let report = pass(&f.reg, None).await;
    assert_eq!(report.blobs_removed, 3, "{report:?}");
    let sizes = report
        .removed
        .iter()
        .filter(|r| r.kind == RemovalKind::Blob)
        .map(|r| r.bytes)
        .sum::<u64>();
    assert_eq!(report.bytes_removed, sizes);
    assert!(report.bytes_removed >= image.manifest_size as u64);
    assert!(stored(&f.blobs).await.is_empty());
    assert_eq!(f.reg.reclaimable().await.unwrap().blobs, 0);
}

/// One candidate, `x` in `r`, old enough; the pass's cutoff.
async fn old_candidate(f: &Fixture, r: &RepositoryName, content: &[u8]) -> (Digest, i64) {
    let x = push(&f.reg, r, content).await;
    age(f.dir.path(), 2 * HOUR);
    let cut = cutoff(HOUR);
    let listed = f.meta.gc_blob_candidates(cut, None, 100).await.unwrap();
    assert!(listed.iter().any(|(d, _)| *d == x), "a candidate");
    (x, cut)
}

#[tokio::test]
async fn a_manifest_put_between_listing_and_tombstone_rescues_the_blob() {
    let f = default_fixture();
    let r = repo("rescue/put");
    let config = b"{\"rescued\":true}";
    let (x, cut) = old_candidate(&f, &r, config).await;
    // The client saw the blob long ago and PUTs a manifest naming it now.
    let json = image_json((&x, config.len()), &[], None);
    put(&f.reg, &r, "v1", json).await;
    assert_eq!(f.meta.tombstone_blob(&x, cut).await.unwrap(), None);
    assert_eq!(pass(&f.reg, None).await.blobs_removed, 0);
    assert!(f.reg.blob(&r, &x, None, true).await.is_ok());
}

#[tokio::test]
async fn a_manifest_put_after_the_tombstone_is_refused_not_dangling() {
    let f = default_fixture();
    let r = repo("rescue/late");
    let config = b"{\"late\":true}";
    let (x, cut) = old_candidate(&f, &r, config).await;
    assert!(f.meta.tombstone_blob(&x, cut).await.unwrap().is_some());
    let json = image_json((&x, config.len()), &[], None);
    let refused = f
        .reg
        .put_manifest(&r, &"v1".parse().unwrap(), None, json)
        .await;
    assert!(
        matches!(refused, Err(Error::ManifestBlobUnknown(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_mount_between_listing_and_tombstone_rescues_the_blob() {
    let f = default_fixture();
    let (a, b) = (repo("rescue/a"), repo("rescue/b"));
    let (x, cut) = old_candidate(&f, &a, b"mounted at the last moment").await;
    let mounted = f.reg.mount_blob(&b, &x, Some(&a), None).await.unwrap();
    assert_eq!(mounted, MountOutcome::Mounted);
    assert_eq!(f.meta.tombstone_blob(&x, cut).await.unwrap(), None);
    assert!(linked(&f.meta, &b, &x).await);
}

#[tokio::test]
async fn a_repush_between_listing_and_tombstone_rescues_the_blob() {
    let f = default_fixture();
    let r = repo("rescue/repush");
    let content = b"pushed again at the last moment";
    let (x, cut) = old_candidate(&f, &r, content).await;
    push(&f.reg, &r, content).await;
    assert_eq!(f.meta.tombstone_blob(&x, cut).await.unwrap(), None);
    assert_eq!(pass(&f.reg, None).await.blobs_removed, 0);
}

#[tokio::test]
async fn a_blob_head_restarts_its_grace() {
    let f = default_fixture();
    let r = repo("rescue/head");
    let (x, cut) = old_candidate(&f, &r, b"HEAD before the manifest").await;
    // docker: HEAD answers 200, so the layer is not pushed again.
    let head = f.reg.blob(&r, &x, None, false).await.unwrap();
    assert!(head.content.is_none());
    let report = pass(&f.reg, None).await;
    assert_eq!(report.blobs_removed, 0, "{report:?}");
    assert!(linked(&f.meta, &r, &x).await);
    // The read was written (coalesced) for the next pass and a restart.
    let listed = f.meta.gc_blob_candidates(cut, None, 100).await.unwrap();
    assert!(
        listed.iter().all(|(d, _)| *d != x),
        "touched in the database"
    );
    // A HEAD of a blob the repository does not have records nothing.
    let absent = Digest::sha256_of(b"never pushed");
    assert!(f.reg.blob(&r, &absent, None, false).await.is_err());
}

#[tokio::test]
async fn a_live_claim_blocks_tombstoning_until_released() {
    let f = default_fixture();
    let r = repo("claimed");
    let (x, _) = old_candidate(&f, &r, b"claimed by a publish in progress").await;
    let claim = f
        .meta
        .claim_blob(&x, Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();
    let report = pass(&f.reg, None).await;
    assert_eq!((report.blobs_removed, report.rescued), (0, 1), "{report:?}");
    f.meta.release_claim(&claim).await.unwrap();
    assert_eq!(pass(&f.reg, None).await.blobs_removed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_makes_a_publish_wait_and_it_succeeds_once_dropped() {
    let f = default_fixture();
    let r = repo("tombstoned");
    let content = b"deleted while pushed again";
    let (x, cut) = old_candidate(&f, &r, content).await;
    assert!(f.meta.tombstone_blob(&x, cut).await.unwrap().is_some());
    let pushing = {
        let (reg, r, x) = (f.reg.clone(), r.clone(), x.clone());
        tokio::spawn(async move { reg.push_blob(&r, &x, body(content), None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pushing.is_finished(),
        "the publish waits for the tombstone"
    );
    // The collector finishes: file gone, tombstone dropped.
    assert!(f.blobs.delete(&x).await.unwrap());
    f.meta.drop_tombstone(&x).await.unwrap();
    pushing.await.unwrap().unwrap();
    assert!(linked(&f.meta, &r, &x).await);
    assert!(
        stored(&f.blobs).await.contains(&x),
        "the new bytes are there"
    );
    let manifest = put(&f.reg, &r, "v1", image_json((&x, content.len()), &[], None)).await;
    assert!(f
        .meta
        .manifest_by_digest(&r, &manifest)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_mount_of_a_tombstoned_blob_starts_an_upload_instead() {
    let f = default_fixture();
    let (a, b) = (repo("mount/a"), repo("mount/b"));
    let (x, cut) = old_candidate(&f, &a, b"mounted while deleted").await;
    // The mount looked the source up just before the tombstone.
    let size = f.meta.blob_size(&a, &x).await.unwrap().unwrap();
    assert!(f.meta.tombstone_blob(&x, cut).await.unwrap().is_some());
    assert!(!f.meta.link_blob(&b, &x, size, None).await.unwrap());
    let outcome = f.reg.mount_blob(&b, &x, Some(&a), None).await.unwrap();
    assert!(matches!(outcome, MountOutcome::Upload(_)), "{outcome:?}");
}

#[tokio::test]
async fn recover_gc_finishes_a_tombstone_a_crash_left() {
    let f = default_fixture();
    let r = repo("crashed");
    let (x, cut) = old_candidate(&f, &r, b"tombstoned, then berth was killed").await;
    assert!(f.meta.tombstone_blob(&x, cut).await.unwrap().is_some());
    drop(f.reg);
    // A new process over the same folder.
    let meta = Arc::new(SqliteMetaStore::open(&f.dir.path().join("meta.db")).unwrap());
    let blobs = Arc::new(FsBlobStore::open(f.dir.path()).unwrap());
    let reg = Registry::new(blobs.clone(), meta.clone(), RegistryOptions::default());
    assert_eq!(reg.recover_gc().await.unwrap(), 1);
    assert!(stored(&blobs).await.is_empty());
    assert!(meta.tombstones().await.unwrap().is_empty());
    assert!(!meta.known_blob(&x).await.unwrap());
    assert_eq!(reg.recover_gc().await.unwrap(), 0);
    // And the digest can be pushed again at once.
    push(&reg, &r, b"tombstoned, then berth was killed").await;
}

#[tokio::test]
async fn untagged_manifests_go_but_not_index_children_nor_live_subjects_referrers() {
    let f = fixture(GcSettings {
        untagged_after: Some(HOUR),
        ..Default::default()
    });
    let r = repo("untagged");
    let tagged = push_image(&f.reg, &r, "v1", "tagged").await;
    let loose = push_image(&f.reg, &r, "loose", "loose").await;
    f.reg
        .delete_manifest(&r, &"loose".parse().unwrap())
        .await
        .unwrap(); // the tag only: the manifest stays, untagged
    let child = push_image(&f.reg, &r, "child", "child").await;
    let index = put(
        &f.reg,
        &r,
        "idx",
        index_json(&[(child.manifest.clone(), child.manifest_size)]),
    )
    .await;
    f.reg
        .delete_manifest(&r, &"child".parse().unwrap())
        .await
        .unwrap();
    f.reg
        .delete_manifest(&r, &"idx".parse().unwrap())
        .await
        .unwrap();
    let sig_bytes = b"{\"signature\":1}";
    let sig_config = push(&f.reg, &r, sig_bytes).await;
    let signature = put(
        &f.reg,
        &r,
        "sig",
        image_json(
            (&sig_config, sig_bytes.len()),
            &[],
            Some((&tagged.manifest, tagged.manifest_size)),
        ),
    )
    .await;
    f.reg
        .delete_manifest(&r, &"sig".parse().unwrap())
        .await
        .unwrap();
    let manifests = |f: &Fixture| {
        let (meta, r) = (f.meta.clone(), r.clone());
        let all = [
            tagged.manifest.clone(),
            loose.manifest.clone(),
            child.manifest.clone(),
            index.clone(),
            signature.clone(),
        ];
        async move {
            let mut present = Vec::new();
            for d in all {
                present.push(meta.manifest_by_digest(&r, &d).await.unwrap().is_some());
            }
            present
        }
    };
    let report = pass(&f.reg, None).await;
    assert_eq!(report.manifests_removed, 0, "pushed within untagged_after");
    age(f.dir.path(), 2 * HOUR);
    let report = pass(&f.reg, None).await;
    // loose, the index and then its orphaned child; the signature stays
    // while what it signs is there.
    assert_eq!(report.manifests_removed, 3, "{report:?}");
    let listed = report
        .removed
        .iter()
        .find(|r| r.name == loose.manifest.to_string())
        .unwrap();
    assert_eq!(listed.kind, RemovalKind::Manifest);
    assert_eq!(listed.bytes, loose.manifest_size as u64);
    assert_eq!(listed.repository.as_deref(), Some("untagged"));
    assert_eq!(manifests(&f).await, [true, false, false, false, true]);

    // Untagging what it signs takes the signature along, in one pass.
    f.reg
        .delete_manifest(&r, &"v1".parse().unwrap())
        .await
        .unwrap();
    let report = pass(&f.reg, None).await;
    assert_eq!(report.manifests_removed, 2, "{report:?}");
    assert_eq!(manifests(&f).await, [false; 5]);
}

#[tokio::test]
async fn untagged_manifests_are_kept_unless_configured() {
    let f = default_fixture();
    let r = repo("untagged/kept");
    let image = push_image(&f.reg, &r, "v1", "kept").await;
    f.reg
        .delete_manifest(&r, &"v1".parse().unwrap())
        .await
        .unwrap();
    age(f.dir.path(), 2000 * HOUR);
    let report = pass(&f.reg, None).await;
    assert_eq!((report.manifests_removed, report.blobs_removed), (0, 0));
    assert!(f
        .meta
        .manifest_by_digest(&r, &image.manifest)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_says_what_would_go() {
    let f = fixture(GcSettings {
        untagged_after: Some(HOUR),
        ..Default::default()
    });
    let (a, b) = (repo("dry/a"), repo("dry/b"));
    let loose = push(&f.reg, &a, b"loose and old").await;
    let image = push_image(&f.reg, &a, "v1", "dry").await;
    f.reg
        .delete_manifest(&a, &"v1".parse().unwrap())
        .await
        .unwrap();
    f.reg
        .mount_blob(&b, &image.layer, Some(&a), None)
        .await
        .unwrap();
    age(f.dir.path(), 2 * HOUR);
    let before = stored(&f.blobs).await;
    let dry = f
        .reg
        .collect_garbage(
            &GcRequest {
                dry_run: true,
                grace: None,
            },
            &(),
        )
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.manifests_removed, 1, "{dry:?}");
    assert_eq!(
        dry.blobs_removed, 1,
        "only the loose blob is unreferenced yet"
    );
    assert_eq!(
        dry.links_removed, 2,
        "a's to the loose blob, b's to the layer"
    );
    assert_eq!(stored(&f.blobs).await, before);
    assert!(linked(&f.meta, &a, &loose).await && linked(&f.meta, &b, &image.layer).await);
    assert!(f
        .meta
        .manifest_by_digest(&a, &image.manifest)
        .await
        .unwrap()
        .is_some());
    assert!(f.meta.tombstones().await.unwrap().is_empty());
    assert_eq!(f.reg.gc_status().totals.runs, 0, "dry runs are not counted");

    let real = pass(&f.reg, None).await;
    assert_eq!(real.manifests_removed, dry.manifests_removed);
    assert_eq!(real.links_removed, dry.links_removed);
    assert_eq!(real.blobs_removed, 1, "{real:?}");
    assert!(!linked(&f.meta, &a, &loose).await);
    assert!(!linked(&f.meta, &b, &image.layer).await);
    // The manifest's blobs were touched when it went: they wait a grace.
    assert!(stored(&f.blobs).await.contains(&image.layer));
}

#[tokio::test]
async fn files_no_metadata_records_go_after_the_grace() {
    let f = default_fixture();
    let orphan = Bytes::from_static(b"written, then berth crashed before recording it");
    let old = Digest::sha256_of(&orphan);
    f.blobs.put(&old, orphan).await.unwrap();
    let fresh = Digest::sha256_of(b"a fresh orphan");
    f.blobs
        .put(&fresh, Bytes::from_static(b"a fresh orphan"))
        .await
        .unwrap();
    let hex = old.hex();
    let path = f.dir.path().join("blobs/sha256").join(&hex[..2]).join(hex);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - 2 * HOUR)
        .unwrap();
    let report = pass(&f.reg, None).await;
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert_eq!(stored(&f.blobs).await, BTreeSet::from([fresh]));
    assert!(f.meta.tombstones().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_passes_on_its_interval() {
    let f = fixture(GcSettings {
        interval: Some(Duration::from_millis(50)),
        ..Default::default()
    });
    let r = repo("worker");
    push(&f.reg, &r, b"collected by the worker").await;
    age(f.dir.path(), 2 * HOUR);
    let worker = tokio::spawn(f.reg.clone().run_gc_worker());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.reg.gc_status().totals.runs < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no passes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    let status = f.reg.gc_status();
    assert_eq!(status.totals.blobs_removed, 1);
    assert!(status.next_run_at.is_some());

    let off = fixture(GcSettings {
        interval: None,
        ..Default::default()
    });
    tokio::time::timeout(Duration::from_secs(1), off.reg.clone().run_gc_worker())
        .await
        .expect("returns at once when off");
}

/// What a stress run saw.
#[derive(Debug, Default)]
#[allow(dead_code)] // read through Debug, in the failure messages
struct Stress {
    puts: usize,
    pushed_layers: usize,
    skipped_layers: usize,
    deletes: usize,
    passes: usize,
    blobs_removed: u64,
    rescued: u64,
    /// Manifest PUTs refused although every blob had answered a HEAD with 200.
    lost: Vec<String>,
}

/// Pushers that HEAD each layer and push only the absent ones (as docker
/// does), then PUT a manifest; deleters removing manifests; passes one after
/// another at `grace` — all at once for `run`.
async fn stress(f: &Fixture, grace: Duration, run: Duration) -> Stress {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    use std::sync::Mutex;
    let stop = Arc::new(AtomicBool::new(false));
    let layers: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..12)
            .map(|i| format!("stress layer {i};").repeat(40).into_bytes())
            .collect(),
    );
    let counts = Arc::new([(); 5].map(|()| AtomicUsize::new(0)));
    let lost = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for p in 0..4usize {
        let (reg, stop, layers, counts, lost) = (
            f.reg.clone(),
            stop.clone(),
            layers.clone(),
            counts.clone(),
            lost.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = repo(&format!("stress/{}", p % 2));
            let mut seed = p as u64 * 7919 + 1;
            let mut round = 0;
            while !stop.load(Relaxed) {
                round += 1;
                let mut chosen = Vec::new();
                for _ in 0..3 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let content = &layers[(seed >> 33) as usize % layers.len()];
                    let d = Digest::sha256_of(content);
                    if !chosen.iter().any(|(c, _)| *c == d) {
                        chosen.push((d, content.len()));
                    }
                }
                for (d, _) in &chosen {
                    match reg.blob(&r, d, None, false).await {
                        Ok(_) => counts[1].fetch_add(1, Relaxed),
                        Err(Error::BlobUnknown(_)) => {
                            let content = layers.iter().find(|l| Digest::sha256_of(l) == *d);
                            reg.push_blob(&r, d, body(content.unwrap()), None)
                                .await
                                .unwrap();
                            counts[0].fetch_add(1, Relaxed)
                        }
                        Err(e) => panic!("HEAD failed: {e}"),
                    };
                }
                let config = format!("{{\"pusher\":{p},\"round\":{round}}}");
                let config_digest = push(&reg, &r, config.as_bytes()).await;
                let json = image_json((&config_digest, config.len()), &chosen, None);
                let tag: Reference = format!("p{p}-{}", round % 5).parse().unwrap();
                match reg.put_manifest(&r, &tag, None, json).await {
                    Ok(_) => {
                        counts[2].fetch_add(1, Relaxed);
                    }
                    Err(e) => lost.lock().unwrap().push(format!("{r}:{tag}: {e}")),
                }
            }
        }));
    }
    for k in 0..2usize {
        let (meta, reg, stop, counts) =
            (f.meta.clone(), f.reg.clone(), stop.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = k;
            while !stop.load(Relaxed) {
                n += 1;
                let r = repo(&format!("stress/{}", n % 2));
                let tags = meta
                    .list_tags(&r, None, 100)
                    .await
                    .unwrap()
                    .unwrap_or_default();
                if let Some(tag) = tags.get(n % tags.len().max(1)) {
                    let found = meta
                        .manifest_by_tag(&r, &tag.parse().unwrap())
                        .await
                        .unwrap();
                    if let Some(m) = found {
                        let by_digest = Reference::Digest(m.digest);
                        match reg.delete_manifest(&r, &by_digest).await {
                            Ok(()) => {
                                counts[3].fetch_add(1, Relaxed);
                            }
                            Err(Error::ManifestUnknown(_)) => {}
                            Err(e) => panic!("delete failed: {e}"),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }));
    }
    let collector = {
        let (reg, stop, counts) = (f.reg.clone(), stop.clone(), counts.clone());
        tokio::spawn(async move {
            let (mut removed, mut rescued) = (0, 0);
            while !stop.load(Relaxed) {
                let report = pass(&reg, Some(grace)).await;
                removed += report.blobs_removed;
                rescued += report.rescued;
                counts[4].fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (removed, rescued)
        })
    };
    tokio::time::sleep(run).await;
    stop.store(true, Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let (blobs_removed, rescued) = collector.await.unwrap();
    let lost = std::mem::take(&mut *lost.lock().unwrap());
    Stress {
        pushed_layers: counts[0].load(Relaxed),
        skipped_layers: counts[1].load(Relaxed),
        puts: counts[2].load(Relaxed),
        deletes: counts[3].load(Relaxed),
        passes: counts[4].load(Relaxed),
        blobs_removed,
        rescued,
        lost,
    }
}

/// Every digest the metadata references: manifests and what they name.
fn referenced(dir: &Path) -> (BTreeSet<Digest>, Vec<(RepositoryName, Digest)>) {
    let conn = rusqlite::Connection::open(dir.join("meta.db")).unwrap();
    let mut named = Vec::new();
    let mut all = BTreeSet::new();
    let mut q = conn
        .prepare(
            "SELECT r.name, f.child FROM manifest_refs f JOIN repositories r ON r.id = f.repo_id",
        )
        .unwrap();
    for row in q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (r, d) = row.unwrap();
        let d: Digest = d.parse().unwrap();
        all.insert(d.clone());
        named.push((repo(&r), d));
    }
    let mut q = conn.prepare("SELECT digest FROM manifests").unwrap();
    for d in q.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        all.insert(d.unwrap().parse().unwrap());
    }
    (all, named)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_deletes_and_passes_at_once_never_lose_a_blob_a_head_reported() {
    let grace = Duration::from_secs(2);
    let f = fixture(GcSettings {
        grace,
        interval: None,
        untagged_after: None,
    });
    let seen = stress(&f, grace, Duration::from_secs(6)).await;
    eprintln!("{seen:?}");
    assert!(seen.lost.is_empty(), "{:?}", seen.lost);
    // Enough happened for the run to mean something, even on a loaded machine.
    assert!(
        seen.puts > 20 && seen.deletes > 5 && seen.passes > 3,
        "{seen:?}"
    );
    assert!(
        seen.skipped_layers > 0 && seen.blobs_removed > 0,
        "{seen:?}"
    );

    // Every stored manifest's blobs are readable and right.
    let (_, named) = referenced(f.dir.path());
    for (r, d) in &named {
        let blob = f.reg.blob(r, d, None, true).await.unwrap();
        let bytes = futures_util::TryStreamExt::try_collect::<Vec<Bytes>>(
            blob.content.unwrap().into_stream(),
        )
        .await
        .unwrap()
        .concat();
        assert_eq!(Digest::sha256_of(&bytes), *d);
    }
    // Once nothing moves, a pass leaves exactly what is referenced...
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pass(&f.reg, Some(Duration::ZERO)).await;
    let (wanted, _) = referenced(f.dir.path());
    assert_eq!(stored(&f.blobs).await, wanted);
    assert!(f.meta.tombstones().await.unwrap().is_empty());
    // ...and with every manifest deleted, nothing.
    for (r, _) in [(repo("stress/0"), ()), (repo("stress/1"), ())] {
        while let Some(tag) = f
            .meta
            .list_tags(&r, None, 1)
            .await
            .unwrap()
            .and_then(|t| t.into_iter().next())
        {
            let m = f
                .meta
                .manifest_by_tag(&r, &tag.parse().unwrap())
                .await
                .unwrap()
                .unwrap();
            f.reg
                .delete_manifest(&r, &Reference::Digest(m.digest))
                .await
                .unwrap();
        }
    }
    let conn = rusqlite::Connection::open(f.dir.path().join("meta.db")).unwrap();
    let untagged: Vec<(String, String)> = conn
        .prepare("SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (r, d) in untagged {
        f.reg
            .delete_manifest(&repo(&r), &Reference::Digest(d.parse().unwrap()))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pass(&f.reg, Some(Duration::ZERO)).await;
    assert!(stored(&f.blobs).await.is_empty());
    assert_eq!(f.reg.reclaimable().await.unwrap().blobs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_grace_zero_only_manifest_puts_can_fail_and_nothing_dangles() {
    let f = fixture(GcSettings {
        grace: Duration::ZERO,
        interval: None,
        untagged_after: None,
    });
    let seen = stress(&f, Duration::ZERO, Duration::from_secs(3)).await;
    eprintln!(
        "grace 0: {} of {} manifest PUTs refused",
        seen.lost.len(),
        seen.puts + seen.lost.len()
    );
    assert!(
        seen.lost.iter().all(|e| e.contains("blob unknown")),
        "{:?}",
        seen.lost
    );
    let (_, named) = referenced(f.dir.path());
    for (r, d) in &named {
        assert!(f.reg.blob(r, d, None, false).await.is_ok(), "{r} {d}");
        assert!(stored(&f.blobs).await.contains(d));
    }
}

/// Reads a blob (or, with `as_manifest`, a manifest by digest) with a HEAD
/// when a pass announces `phase`: after the pass wrote the reads it knew
/// of, before it removes anything of that phase.
struct HeadDuringThePass {
    reg: Arc<Registry>,
    repo: RepositoryName,
    digest: Digest,
    phase: &'static str,
    as_manifest: bool,
    done: std::sync::atomic::AtomicBool,
}

impl HeadDuringThePass {
    fn new(f: &Fixture, r: &RepositoryName, d: &Digest, phase: &'static str) -> Self {
        HeadDuringThePass {
            reg: f.reg.clone(),
            repo: r.clone(),
            digest: d.clone(),
            phase,
            as_manifest: false,
            done: Default::default(),
        }
    }
}

impl berth_registry::gc::GcProgress for HeadDuringThePass {
    fn phase(&self, name: &str, _total: u64) {
        if name == self.phase && !self.done.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let found = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    if self.as_manifest {
                        let by_digest = Reference::Digest(self.digest.clone());
                        self.reg
                            .manifest(&self.repo, &by_digest, &[], false)
                            .await
                            .is_ok()
                    } else {
                        self.reg
                            .blob(&self.repo, &self.digest, None, false)
                            .await
                            .is_ok()
                    }
                })
            });
            assert!(found, "present when read");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_during_a_pass_keeps_the_blob_though_not_yet_written() {
    let f = default_fixture();
    let r = repo("rescue/head-during");
    let (x, _) = old_candidate(&f, &r, b"read while the pass runs").await;
    let reading = HeadDuringThePass::new(&f, &r, &x, "links");
    let report = f
        .reg
        .collect_garbage(&GcRequest::default(), &reading)
        .await
        .unwrap();
    assert_eq!(
        (report.links_removed, report.blobs_removed, report.rescued),
        (0, 0, 1),
        "{report:?}"
    );
    assert!(linked(&f.meta, &r, &x).await);
    assert!(stored(&f.blobs).await.contains(&x));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_put_waits_while_its_own_bytes_are_being_deleted() {
    let f = default_fixture();
    let r = repo("tombstoned/manifest");
    let image = push_image(&f.reg, &r, "v1", "re-put").await;
    let json = f
        .reg
        .manifest(&r, &"v1".parse().unwrap(), &[], true)
        .await
        .unwrap()
        .body
        .unwrap();
    let by_digest = Reference::Digest(image.manifest.clone());
    f.reg.delete_manifest(&r, &by_digest).await.unwrap();
    age(f.dir.path(), 2 * HOUR);
    // Its layer and config are needed again: the client re-pushes them.
    push(&f.reg, &r, b"{\"seed\":\"re-put\"}").await;
    push(&f.reg, &r, b"layer of re-put").await;
    let m = image.manifest.clone();
    assert!(f
        .meta
        .tombstone_blob(&m, cutoff(HOUR))
        .await
        .unwrap()
        .is_some());
    let putting = {
        let (reg, r, json) = (f.reg.clone(), r.clone(), json.clone());
        tokio::spawn(async move {
            reg.put_manifest(&r, &"v1".parse().unwrap(), None, json)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!putting.is_finished(), "waits for the collector");
    assert!(f.blobs.delete(&m).await.unwrap());
    f.meta.drop_tombstone(&m).await.unwrap();
    assert_eq!(putting.await.unwrap().unwrap().digest, m);
    assert!(stored(&f.blobs).await.contains(&m), "its bytes are back");
    let served = f
        .reg
        .manifest(&r, &"v1".parse().unwrap(), &[], true)
        .await
        .unwrap();
    assert_eq!(served.body.unwrap(), json);
}

/// Phase names in the order a pass announced them, each once.
#[derive(Default)]
struct Phases(std::sync::Mutex<Vec<String>>, std::sync::atomic::AtomicU64);

impl berth_registry::gc::GcProgress for Phases {
    fn phase(&self, name: &str, _total: u64) {
        let mut seen = self.0.lock().unwrap();
        if seen.last().map(String::as_str) != Some(name) {
            seen.push(name.to_string());
        }
    }
    fn advance(&self, n: u64) {
        self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_pass_announces_its_phases_in_order() {
    let f = fixture(GcSettings {
        untagged_after: Some(HOUR),
        ..Default::default()
    });
    push(&f.reg, &repo("phases"), b"one candidate").await;
    age(f.dir.path(), 2 * HOUR);
    let phases = Phases::default();
    let report = f
        .reg
        .collect_garbage(&GcRequest::default(), &phases)
        .await
        .unwrap();
    assert_eq!(report.blobs_removed, 1);
    let seen = phases.0.lock().unwrap().clone();
    let expected = [
        "retention",
        "manifests",
        "links",
        "blobs",
        "orphans",
        "uploads",
        "claims",
    ];
    assert_eq!(seen, expected);
    assert!(
        phases.1.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "advanced"
    );
}

#[tokio::test]
async fn reads_not_yet_written_are_written_by_a_flush() {
    let f = default_fixture();
    let r = repo("flush");
    let (x, cut) = old_candidate(&f, &r, b"read just before shutdown").await;
    f.reg.blob(&r, &x, None, false).await.unwrap();
    assert_eq!(f.reg.flush_touches().await.unwrap(), 1);
    assert_eq!(f.reg.flush_touches().await.unwrap(), 0, "written once");
    let listed = f.meta.gc_blob_candidates(cut, None, 100).await.unwrap();
    assert!(listed.iter().all(|(d, _)| *d != x));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_of_an_untagged_manifest_by_digest_during_a_pass_keeps_it() {
    let f = fixture(GcSettings {
        untagged_after: Some(HOUR),
        ..Default::default()
    });
    let r = repo("untagged/read");
    let image = push_image(&f.reg, &r, "v1", "read by digest").await;
    f.reg
        .delete_manifest(&r, &"v1".parse().unwrap())
        .await
        .unwrap();
    age(f.dir.path(), 2 * HOUR);
    // A client about to push an index naming it HEADs it, and skips it.
    let reading = HeadDuringThePass {
        as_manifest: true,
        ..HeadDuringThePass::new(&f, &r, &image.manifest, "manifests")
    };
    let report = f
        .reg
        .collect_garbage(&GcRequest::default(), &reading)
        .await
        .unwrap();
    assert_eq!(report.manifests_removed, 0, "{report:?}");
    let index = index_json(&[(image.manifest.clone(), image.manifest_size)]);
    put(&f.reg, &r, "multi", index).await;
    assert!(f
        .meta
        .manifest_by_digest(&r, &image.manifest)
        .await
        .unwrap()
        .is_some());
}

/// The filesystem store, whose first delete takes a while.
struct SlowDeletes(Arc<FsBlobStore>, std::sync::atomic::AtomicBool);

#[async_trait::async_trait]
impl BlobStore for SlowDeletes {
    async fn read(
        &self,
        d: &Digest,
        range: Option<berth_registry::ByteRange>,
    ) -> Result<Option<berth_registry::BlobContent>, Error> {
        self.0.read(d, range).await
    }
    async fn put(&self, d: &Digest, bytes: Bytes) -> Result<(), Error> {
        self.0.put(d, bytes).await
    }
    async fn create_upload(&self, id: &str) -> Result<berth_registry::storage::UploadState, Error> {
        self.0.create_upload(id).await
    }
    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        state: &[u8],
        body: ByteStream<'_>,
    ) -> Result<berth_registry::storage::Appended, Error> {
        self.0.append_upload(id, offset, state, body).await
    }
    async fn read_upload(&self, id: &str, state: &[u8]) -> Result<ByteStream<'static>, Error> {
        self.0.read_upload(id, state).await
    }
    async fn commit_upload(&self, id: &str, state: &[u8], d: &Digest) -> Result<(), Error> {
        self.0.commit_upload(id, state, d).await
    }
    async fn delete_upload(&self, id: &str, state: Option<&[u8]>) -> Result<(), Error> {
        self.0.delete_upload(id, state).await
    }
    async fn uploads_older_than(&self, age: Duration) -> Result<Vec<String>, Error> {
        self.0.uploads_older_than(age).await
    }
    async fn delete(&self, d: &Digest) -> Result<bool, Error> {
        if !self.1.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.0.delete(d).await
    }
    async fn list(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<berth_registry::storage::StoredBlob>, Error> {
        self.0.list(after, limit).await
    }
    async fn check(&self) -> Result<(), Error> {
        self.0.check().await
    }
}

/// Says when a phase starts.
struct Announce(tokio::sync::mpsc::UnboundedSender<String>);

impl berth_registry::gc::GcProgress for Announce {
    fn phase(&self, name: &str, _total: u64) {
        let _ = self.0.send(name.to_string());
    }
}

/// A registry over a store whose first delete is slow; a candidate in it,
/// and a pass started on it, dropped while that delete runs.
async fn a_pass_dropped_while_deleting() -> (
    tempfile::TempDir,
    Arc<Registry>,
    Arc<SqliteMetaStore>,
    Arc<FsBlobStore>,
    RepositoryName,
    Digest,
) {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap());
    let fs = Arc::new(FsBlobStore::open(dir.path()).unwrap());
    let reg = Arc::new(Registry::new(
        Arc::new(SlowDeletes(fs.clone(), Default::default())),
        meta.clone(),
        RegistryOptions {
            min_free_bytes: 0,
            min_free_percent: 0,
            ..Default::default()
        },
    ));
    let r = repo("dropped");
    let x = push(&reg, &r, DROPPED).await;
    age(dir.path(), 2 * HOUR);
    let (tx, mut phases) = tokio::sync::mpsc::unbounded_channel();
    let running = {
        let reg = reg.clone();
        tokio::spawn(async move {
            reg.collect_garbage(&GcRequest::default(), &Announce(tx))
                .await
        })
    };
    while phases.recv().await.unwrap() != "blobs" {}
    // The tombstone is decided at once; the file's delete takes 300 ms.
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.abort(); // an admin client hanging up, say
    assert!(running.await.unwrap_err().is_cancelled());
    (dir, reg, meta, fs, r, x)
}

const DROPPED: &[u8] = b"deleted by a pass whose caller left";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_waits_for_a_dropped_pass_still_deleting() {
    let (_dir, reg, meta, fs, r, x) = a_pass_dropped_while_deleting().await;
    // A new pass (or start-up) finishes leftover tombstones at once, and
    // the digest is pushed again, while the dropped batch still deletes.
    reg.recover_gc().await.unwrap();
    reg.push_blob(&r, &x, body(DROPPED), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(meta.tombstones().await.unwrap().is_empty());
    assert!(
        stored(&fs).await.contains(&x),
        "the new bytes were not deleted"
    );
    assert!(reg.blob(&r, &x, None, true).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_dropped_midway_leaves_no_tombstone_behind() {
    let (_dir, reg, meta, fs, r, x) = a_pass_dropped_while_deleting().await;
    assert!(!reg.gc_status().running, "a dropped pass is not running");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        meta.tombstones().await.unwrap().is_empty(),
        "finished anyway"
    );
    assert!(stored(&fs).await.is_empty());
    // A publish of that digest does not wait on a forgotten tombstone.
    let pushed = tokio::time::timeout(
        Duration::from_secs(2),
        reg.push_blob(&r, &x, body(DROPPED), None),
    )
    .await;
    assert!(matches!(pushed, Ok(Ok(()))), "{pushed:?}");
}

#[tokio::test]
async fn a_pass_waits_for_no_one_but_refuses_while_another_process_holds_the_lease() {
    use berth_registry::gc::lease::{LEASE, LEASE_TTL};
    let f = default_fixture();
    let r = repo("lease");
    let old = push(&f.reg, &r, b"unreferenced, two hours old").await;
    age(f.dir.path(), 2 * HOUR);
    // Another replica on the same metadata store is collecting.
    assert!(f
        .meta
        .try_lease(LEASE, "replica-b", LEASE_TTL)
        .await
        .unwrap());
    let err = f
        .reg
        .collect_garbage(&GcRequest::default(), &())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lease"), "{err}");
    let skipped = f
        .reg
        .collect_garbage_if_free(&GcRequest::default(), &())
        .await
        .unwrap();
    assert!(skipped.is_none());
    assert!(
        stored(&f.blobs).await.contains(&old),
        "nothing was collected"
    );
    // Once it is done, this process collects, and lets the lease go after.
    f.meta.release_lease(LEASE, "replica-b").await.unwrap();
    let report = pass(&f.reg, None).await;
    assert_eq!(report.blobs_removed, 1);
    assert!(f
        .meta
        .try_lease(LEASE, "replica-b", LEASE_TTL)
        .await
        .unwrap());
}

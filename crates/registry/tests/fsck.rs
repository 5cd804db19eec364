//! fsck over data folders a real [`Registry`] filled, then damaged the way
//! disks, crashes and bugs damage them: each damage is found, repair
//! quarantines it, and a second check is clean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::fsck::{self, Access, ContentFault, ManifestFault, Problem, Report};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{ByteStream, Registry, RegistryOptions};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn open(dir: &Path) -> Registry {
    Registry::new(
        Arc::new(FsBlobStore::open(dir).unwrap()),
        Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
        RegistryOptions::default(),
    )
}

fn body(bytes: &[u8]) -> ByteStream<'static> {
    stream::iter(vec![Ok(Bytes::copy_from_slice(bytes))]).boxed()
}

fn repo() -> RepositoryName {
    "team/app".parse().unwrap()
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    dir.join("blobs")
        .join(digest.algorithm().as_str())
        .join(&hex[..2])
        .join(hex)
}

/// What [`filled`] pushed.
struct Pushed {
    config: Digest,
    sha512: Digest,
    layer: Digest,
    image: Digest,
    index: Digest,
    upload: String,
}

/// A registry with an image tagged `v1`, an index over it tagged `multi`,
/// an upload in progress and an unreferenced (deleted) blob.
async fn filled(dir: &Path) -> Pushed {
    let reg = open(dir);
    let name = repo();
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"hello layer");
    reg.push_blob(&name, &config, body(b"{}"), None)
        .await
        .unwrap();
    reg.push_blob(&name, &layer, body(b"hello layer"), None)
        .await
        .unwrap();
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":11}}]}}"#
    );
    let image_size = image.len();
    let v1: Reference = "v1".parse().unwrap();
    let image = reg
        .put_manifest(&name, &v1, None, Bytes::from(image))
        .await
        .unwrap()
        .digest;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image}","size":{image_size}}}]}}"#
    );
    let multi: Reference = "multi".parse().unwrap();
    let index = reg
        .put_manifest(&name, &multi, None, Bytes::from(index))
        .await
        .unwrap()
        .digest;
    let mut hasher = berth_oci::Algorithm::Sha512.hasher();
    hasher.update(b"a sha512 blob");
    let sha512 = hasher.finish();
    reg.push_blob(&name, &sha512, body(b"a sha512 blob"), None)
        .await
        .unwrap();
    let gone = Digest::sha256_of(b"deleted");
    reg.push_blob(&name, &gone, body(b"deleted"), None)
        .await
        .unwrap();
    reg.delete_blob(&name, &gone).await.unwrap();
    let upload = reg.start_upload(&name, None).await.unwrap().id;
    reg.append_upload(&name, &upload, Some(0), body(b"partial"))
        .await
        .unwrap();
    Pushed {
        config,
        sha512,
        layer,
        image,
        index,
        upload,
    }
}

fn check(dir: &Path) -> Report {
    let access = fsck::lock(dir).unwrap();
    assert!(matches!(access, Access::Exclusive(_)));
    fsck::check(dir, &access, &()).unwrap()
}

/// Repairs what `report` found, then checks again: the folder must be clean.
fn repair_then_clean(dir: &Path, report: &Report) -> fsck::Repaired {
    let repaired = fsck::repair(dir, &report.problems).unwrap();
    assert!(repaired.left.is_empty(), "{:?}", repaired.left);
    let again = check(dir);
    assert!(
        again.is_clean(),
        "still wrong after repair: {:#?}",
        again.problems
    );
    repaired
}

fn sql(dir: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(dir.join("meta.db")).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[tokio::test]
async fn a_store_the_registry_filled_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).await;
    let report = check(dir.path());
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.blobs, 6); // config, layer, sha512, image, index, deleted
    assert_eq!(report.unreferenced.count, 1);
    assert_eq!(report.unreferenced.bytes, 7);
    // Nothing to do: repair creates no quarantine.
    let repaired = fsck::repair(dir.path(), &report.problems).unwrap();
    assert!(repaired.folder.is_none());
}

#[tokio::test]
async fn a_flipped_byte_is_quarantined_with_everything_that_served_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    let path = blob_path(dir.path(), &p.layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();

    let report = check(dir.path());
    let layer = p.layer.to_string();
    assert!(report
        .problems
        .iter()
        .any(|x| matches!(x, Problem::CorruptBlob { path, .. } if path.ends_with(p.layer.hex()))));
    assert!(report.problems.iter().any(|x| matches!(x,
        Problem::BrokenBlobLink { digest, fault: ContentFault::Corrupt, .. } if *digest == layer)));
    // The image loses its layer, the index its child; both tags dangle.
    let broken: Vec<_> = report
        .problems
        .iter()
        .filter_map(|x| match x {
            Problem::BrokenManifest { digest, fault, .. } => Some((digest.clone(), fault.clone())),
            _ => None,
        })
        .collect();
    assert!(broken.contains(&(
        p.image.to_string(),
        ManifestFault::BlobMissing {
            digest: layer.clone()
        }
    )));
    assert!(broken.contains(&(
        p.index.to_string(),
        ManifestFault::ChildMissing {
            digest: p.image.to_string()
        }
    )));
    let dangling = report
        .problems
        .iter()
        .filter(|x| matches!(x, Problem::DanglingTag { .. }))
        .count();
    assert_eq!(dangling, 2);

    let repaired = repair_then_clean(dir.path(), &report);
    let folder = repaired.folder.unwrap();
    assert!(!path.exists());
    let moved = folder.join(path.strip_prefix(dir.path()).unwrap());
    assert!(
        moved.is_file(),
        "the corrupt file is kept in {}",
        folder.display()
    );
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("rows.json")).unwrap()).unwrap();
    let removed = rows["removed"].as_array().unwrap();
    // layer link, image and index manifests with their refs (2 + 1), two tags
    assert_eq!(removed.len(), 1 + 2 + 3 + 2, "{rows:#}");
    assert!(removed
        .iter()
        .any(|r| r["table"] == "tags" && r["row"]["name"] == "v1"));
    // Whole rows are kept, enough to put them back by hand.
    let image_row = removed
        .iter()
        .find(|r| r["table"] == "manifests" && r["row"]["digest"] == p.image.to_string())
        .unwrap();
    assert_eq!(
        image_row["row"]["media_type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(image_row["row"]["pushed_at"].as_i64().unwrap() > 0);
    assert_eq!(image_row["row"]["repository"], "team/app");
    // The registry no longer serves what it cannot serve whole.
    let reg = open(dir.path());
    let v1: Reference = "v1".parse().unwrap();
    assert!(reg.manifest(&repo(), &v1, &[], true).await.is_err());
}

#[tokio::test]
async fn a_deleted_blob_file_is_found_and_its_link_removed() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    std::fs::remove_file(blob_path(dir.path(), &p.config)).unwrap();
    let report = check(dir.path());
    let config = p.config.to_string();
    assert!(
        report.problems.iter().any(|x| matches!(x,
        Problem::BrokenBlobLink { digest, fault: ContentFault::Missing, .. } if *digest == config))
    );
    assert!(report.problems.iter().any(|x| matches!(x,
        Problem::BrokenManifest { digest, .. } if *digest == p.image.to_string())));
    repair_then_clean(dir.path(), &report);
}

#[tokio::test]
async fn a_manifest_whose_file_is_gone_is_removed_with_its_tag() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    std::fs::remove_file(blob_path(dir.path(), &p.index)).unwrap();
    let report = check(dir.path());
    assert!(report.problems.iter().any(|x| matches!(x,
        Problem::BrokenManifest { digest, fault: ManifestFault::Content(ContentFault::Missing), .. }
            if *digest == p.index.to_string())));
    assert!(report
        .problems
        .iter()
        .any(|x| matches!(x, Problem::DanglingTag { tag, .. } if tag == "multi")));
    assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    repair_then_clean(dir.path(), &report);
    // The image and its tag are untouched.
    let reg = open(dir.path());
    let v1: Reference = "v1".parse().unwrap();
    assert!(reg.manifest(&repo(), &v1, &[], true).await.is_ok());
}

#[tokio::test]
async fn a_tag_to_a_missing_manifest_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).await;
    let nowhere = Digest::sha256_of(b"no such manifest");
    sql(
        dir.path(),
        &format!(
            "INSERT INTO tags (repo_id, name, digest, updated_at)
             SELECT id, 'ghost', '{nowhere}', 0 FROM repositories WHERE name = 'team/app'"
        ),
    );
    let report = check(dir.path());
    assert!(matches!(&report.problems[..],
        [Problem::DanglingTag { tag, digest, .. }] if tag == "ghost" && *digest == nowhere.to_string()));
    repair_then_clean(dir.path(), &report);
}

#[tokio::test]
async fn leftover_upload_files_and_broken_sessions_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    let uploads = dir.path().join("uploads");
    std::fs::write(uploads.join("mono-1234"), b"killed halfway").unwrap();
    std::fs::write(uploads.join("put-5678"), b"{").unwrap();
    // The session claims more than its file holds.
    sql(
        dir.path(),
        &format!("UPDATE uploads SET bytes = 100 WHERE id = '{}'", p.upload),
    );
    // A session whose file is gone.
    sql(
        dir.path(),
        "INSERT INTO uploads (id, repository, bytes, updated_at) VALUES ('lost', 'team/app', 0, 0)",
    );
    let report = check(dir.path());
    let leftovers: Vec<_> = report
        .problems
        .iter()
        .filter_map(|x| match x {
            Problem::LeftoverUpload { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        leftovers,
        vec![
            PathBuf::from("uploads/mono-1234"),
            PathBuf::from("uploads/put-5678")
        ]
    );
    assert!(report.problems.iter().any(|x| matches!(x,
        Problem::SessionBeyondFile { id, recorded: 100, actual: 7, .. } if *id == p.upload)));
    assert!(report
        .problems
        .iter()
        .any(|x| matches!(x, Problem::SessionWithoutFile { id, .. } if id == "lost")));
    assert_eq!(report.problems.len(), 4, "{:#?}", report.problems);
    let repaired = repair_then_clean(dir.path(), &report);
    assert_eq!(repaired.moved.len(), 3);
    assert_eq!(repaired.rows_removed, 2);
}

#[tokio::test]
async fn stray_files_under_blobs_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    let blobs = dir.path().join("blobs");
    std::fs::write(blobs.join("README"), b"?").unwrap();
    std::fs::create_dir_all(blobs.join("md5/ab")).unwrap();
    let fan = blob_path(dir.path(), &p.layer);
    let fan = fan.parent().unwrap();
    std::fs::write(fan.join("not-a-digest"), b"?").unwrap();
    // A name that is not even UTF-8 is still moved by its real name.
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(fan.join(std::ffi::OsStr::from_bytes(b"\xff\xfe")), b"?").unwrap();
    // A valid digest in the wrong fan-out folder.
    let other = Digest::sha256_of(b"elsewhere");
    let wrong = if other.hex().starts_with("00") {
        "01"
    } else {
        "00"
    };
    std::fs::create_dir_all(blobs.join("sha256").join(wrong)).unwrap();
    std::fs::write(
        blobs.join("sha256").join(wrong).join(other.hex()),
        b"elsewhere",
    )
    .unwrap();
    let report = check(dir.path());
    let strays = report
        .problems
        .iter()
        .filter(|x| matches!(x, Problem::StrayEntry { .. }))
        .count();
    assert_eq!(strays, 5, "{:#?}", report.problems);
    assert_eq!(report.problems.len(), 5);
    repair_then_clean(dir.path(), &report);
}

#[tokio::test]
async fn derived_rows_are_restored_from_intact_content() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    // Lost rows whose content is still intact: a link and a reference.
    sql(
        dir.path(),
        &format!(
            "DELETE FROM repo_blobs WHERE digest = '{}';
             DELETE FROM manifest_refs WHERE manifest = '{}';",
            p.config, p.index
        ),
    );
    let report = check(dir.path());
    assert!(report.problems.iter().any(|x| matches!(x,
        Problem::UnlinkedBlob { digest, size: 2, .. } if *digest == p.config.to_string())));
    assert!(report.problems.iter().any(|x| matches!(x,
        Problem::MissingRef { manifest, child, .. }
            if *manifest == p.index.to_string() && *child == p.image.to_string())));
    assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    let repaired = repair_then_clean(dir.path(), &report);
    assert_eq!(repaired.rows_added, 2);
    assert_eq!(repaired.rows_removed, 0);
}

#[tokio::test]
async fn a_size_that_disagrees_with_the_blob_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    sql(
        dir.path(),
        &format!(
            "UPDATE repo_blobs SET size = 3 WHERE digest = '{}'",
            p.layer
        ),
    );
    let report = check(dir.path());
    assert!(report.problems.iter().any(|x| matches!(
        x,
        Problem::BrokenBlobLink {
            fault: ContentFault::SizeDiffers {
                recorded: 3,
                actual: 11
            },
            ..
        }
    )));
    repair_then_clean(dir.path(), &report);
}

#[tokio::test]
async fn repair_needs_the_lock_a_server_holds() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).await;
    let server = std::fs::File::create(dir.path().join("berth.lock")).unwrap();
    server.try_lock().unwrap();
    let access = fsck::lock(dir.path()).unwrap();
    assert!(matches!(access, Access::Shared));
    // A check beside the server leaves fresh upload files alone.
    std::fs::write(dir.path().join("uploads/mono-inflight"), b"x").unwrap();
    // An old session without a file is still found: the recheck keeps it.
    sql(
        dir.path(),
        "INSERT INTO uploads (id, repository, bytes, updated_at) VALUES ('lost', 'team/app', 0, 0)",
    );
    let report = fsck::check(dir.path(), &access, &()).unwrap();
    assert!(
        matches!(&report.problems[..], [Problem::SessionWithoutFile { id, .. }] if id == "lost"),
        "{:#?}",
        report.problems
    );
    assert_eq!(report.in_flight, 2); // the session's file and the temp file
}

#[tokio::test]
async fn sha512_blobs_are_hashed_with_sha512() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    let path = blob_path(dir.path(), &p.sha512);
    assert!(path.starts_with(dir.path().join("blobs/sha512")));
    std::fs::write(&path, b"a sha512 blot").unwrap();
    let report = check(dir.path());
    assert!(report
        .problems
        .iter()
        .any(|x| matches!(x, Problem::CorruptBlob { found, .. } if found.starts_with("sha512:"))));
    repair_then_clean(dir.path(), &report);
}

#[tokio::test]
async fn rows_that_no_registry_code_writes_are_found_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = filled(dir.path()).await;
    let nowhere = Digest::sha256_of(b"nowhere");
    sql(
        dir.path(),
        &format!(
            "PRAGMA foreign_keys = OFF; -- as an older or foreign tool may have written
             -- a reference the manifest does not make
             INSERT INTO manifest_refs (repo_id, manifest, child)
               SELECT id, '{image}', '{nowhere}' FROM repositories;
             -- a link of a repository that does not exist
             INSERT INTO repo_blobs (repo_id, digest, size) VALUES (999, '{config}', 2);
             -- a manifest row over bytes that are not a manifest
             INSERT INTO manifests (repo_id, digest, media_type, size, pushed_at)
               SELECT id, '{layer}', 'application/vnd.oci.image.manifest.v1+json', 11, 0
               FROM repositories;
             -- a name the registry refuses
             INSERT INTO repositories (name) VALUES ('Not/Valid');",
            image = p.image,
            config = p.config,
            layer = p.layer,
        ),
    );
    let report = check(dir.path());
    let problems = &report.problems;
    assert!(problems.iter().any(|x| matches!(x,
        Problem::StaleRef { child, .. } if *child == nowhere.to_string())));
    assert!(problems
        .iter()
        .any(|x| matches!(x, Problem::OrphanRow { row } if row.table == "repo_blobs")));
    assert!(problems.iter().any(|x| matches!(x,
        Problem::BrokenManifest { digest, fault: ManifestFault::Unparseable(_), .. }
            if *digest == p.layer.to_string())));
    assert!(problems
        .iter()
        .any(|x| matches!(x, Problem::BadRepositoryName { name } if name == "Not/Valid")));
    assert_eq!(problems.len(), 4, "{problems:#?}");

    // A bad name is for a person to decide: repair leaves it and says so.
    let repaired = fsck::repair(dir.path(), problems).unwrap();
    assert!(matches!(
        &repaired.left[..],
        [Problem::BadRepositoryName { .. }]
    ));
    assert_eq!(repaired.rows_removed, 3);
    let again = check(dir.path());
    assert!(matches!(
        &again.problems[..],
        [Problem::BadRepositoryName { .. }]
    ));
}

/// Counts what a progress bar would be told.
#[derive(Default)]
struct Counted {
    total: std::sync::atomic::AtomicU64,
    advanced: std::sync::atomic::AtomicU64,
    finished: std::sync::atomic::AtomicBool,
}

impl fsck::Progress for Counted {
    fn start(&self, total_bytes: u64) {
        self.total
            .store(total_bytes, std::sync::atomic::Ordering::SeqCst);
    }
    fn advance(&self, bytes: u64) {
        self.advanced
            .fetch_add(bytes, std::sync::atomic::Ordering::SeqCst);
    }
    fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn progress_covers_every_byte_hashed() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).await;
    let big = vec![42u8; 5 << 20];
    let reg = open(dir.path());
    reg.push_blob(&repo(), &Digest::sha256_of(&big), body(&big), None)
        .await
        .unwrap();
    let progress = Counted::default();
    let access = fsck::lock(dir.path()).unwrap();
    let report = fsck::check(dir.path(), &access, &progress).unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    let total = progress.total.into_inner();
    assert!(total > 5 << 20);
    assert_eq!(total, report.bytes_hashed);
    assert_eq!(progress.advanced.into_inner(), total);
    assert!(progress.finished.into_inner());
}

#[tokio::test]
async fn lazy_references_of_a_cached_repository_are_no_problem() {
    use berth_registry::pull_through::{UpstreamRoute, UpstreamRoutes};
    use berth_registry::testing::FakeUpstream;
    use berth_registry::PullThrough;

    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeUpstream::new());
    // In each upstream repository: an image (its blobs never pulled) and an
    // index over it tagged latest.
    for remote in ["library/busybox", "library/alpine"] {
        let config = fake.add_blob(remote, b"{}".to_vec());
        let layer = fake.add_blob(remote, b"never pulled".to_vec());
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":12}}]}}"#
        );
        let image_size = image.len();
        let image = fake.add_manifest(
            remote,
            Some("image"),
            "application/vnd.oci.image.manifest.v1+json",
            image.into_bytes(),
        );
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image}","size":{image_size}}}]}}"#
        );
        fake.add_manifest(
            remote,
            Some("latest"),
            "application/vnd.oci.image.index.v1+json",
            index.into_bytes(),
        );
    }
    {
        let routes = UpstreamRoutes::new(
            vec![UpstreamRoute {
                name: "docker.io".into(),
                prefix: "docker.io".into(),
                docker_hub: true,
                upstream: fake.clone(),
            }],
            None,
        );
        let reg = open(dir.path()).with_pull_through(PullThrough::new(
            routes,
            std::time::Duration::from_secs(300),
            None,
        ));
        // busybox: the index without its child; alpine: the image without its blobs.
        let busybox: RepositoryName = "docker.io/library/busybox".parse().unwrap();
        reg.pull_manifest(&busybox, &"latest".parse().unwrap(), &[], false)
            .await
            .unwrap();
        let alpine: RepositoryName = "docker.io/library/alpine".parse().unwrap();
        reg.pull_manifest(&alpine, &"image".parse().unwrap(), &[], false)
            .await
            .unwrap();
    }
    // And a pushed repository: the check still sees everything else.
    filled(dir.path()).await;
    let report = check(dir.path());
    assert!(report.is_clean(), "{:#?}", report.problems);
}

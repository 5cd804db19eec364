//! The importer over a hand-built registry:2 tree and real berth stores.

use super::*;
use crate::storage::{fs::FsBlobStore, sqlite::SqliteMetaStore};
use crate::RegistryOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Writes a registry:2 tree by hand, the way its filesystem driver lays it out.
struct Tree {
    v2: std::path::PathBuf,
}

impl Tree {
    fn new(root: &Path) -> Tree {
        Tree {
            v2: root.join("docker/registry/v2"),
        }
    }

    fn blob(&self, content: &[u8]) -> Digest {
        let d = Digest::sha256_of(content);
        let dir = self
            .v2
            .join("blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data"), content).unwrap();
        d
    }

    fn link(&self, repo: &str, sub: &str, d: &Digest) {
        let dir = self.v2.join("repositories").join(repo).join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("link"), d.to_string()).unwrap();
    }

    fn layer(&self, repo: &str, d: &Digest) {
        self.link(repo, &format!("_layers/sha256/{}", d.hex()), d);
    }

    fn revision(&self, repo: &str, d: &Digest) {
        self.link(repo, &format!("_manifests/revisions/sha256/{}", d.hex()), d);
    }

    fn tag(&self, repo: &str, tag: &str, d: &Digest) {
        self.link(repo, &format!("_manifests/tags/{tag}/current"), d);
    }

    /// An image (config + one layer) pushed to `repo`, returning its manifest digest.
    fn image(&self, repo: &str, config: &[u8], layer: &[u8]) -> Digest {
        let c = self.blob(config);
        let l = self.blob(layer);
        self.layer(repo, &c);
        self.layer(repo, &l);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": c, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": l, "size": layer.len()}],
        });
        let m = self.blob(manifest.to_string().as_bytes());
        self.revision(repo, &m);
        m
    }

    fn index(&self, repo: &str, children: &[&Digest]) -> Digest {
        let manifests: Vec<_> = children
            .iter()
            .map(|d| {
                let size = std::fs::metadata(self.path(d)).unwrap().len();
                serde_json::json!({"mediaType": DOCKER_MANIFEST, "digest": d, "size": size})
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
        });
        let d = self.blob(index.to_string().as_bytes());
        self.revision(repo, &d);
        d
    }

    fn path(&self, d: &Digest) -> std::path::PathBuf {
        self.v2
            .join("blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data")
    }
}

#[derive(Default)]
struct Counted {
    total: AtomicU64,
    done: AtomicU64,
}

impl ImportProgress for Counted {
    fn start(&self, total_bytes: u64) {
        self.total.store(total_bytes, Ordering::Relaxed);
    }
    fn repository(&self, _: &str) {}
    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
    fn finish(&self) {}
}

fn registry(dir: &Path) -> Registry {
    Registry::new(
        Arc::new(FsBlobStore::open(dir).unwrap()),
        Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
        RegistryOptions {
            min_free_bytes: 0,
            min_free_percent: 0,
            ..Default::default()
        },
    )
}

async fn digest_of(reg: &Registry, repo: &str, reference: &str) -> Option<Digest> {
    let repo: RepositoryName = repo.parse().unwrap();
    let reference: Reference = reference.parse().unwrap();
    reg.manifest(&repo, &reference, &[], false)
        .await
        .ok()
        .map(|m| m.digest)
}

#[tokio::test]
async fn imports_repositories_tags_untagged_manifests_and_indexes_then_a_rerun_copies_nothing() {
    let src = tempfile::tempdir().unwrap();
    let tree = Tree::new(src.path());
    let amd64 = tree.image("app", b"config amd64", b"layer amd64");
    let arm64 = tree.image("app", b"config arm64", b"layer arm64");
    let index = tree.index("app", &[&amd64, &arm64]);
    tree.tag("app", "latest", &index);
    tree.tag("app", "stable", &index);
    let nested = tree.image("team/tools/jq", b"config jq", b"layer amd64");
    tree.tag("team/tools/jq", "1.7", &nested);
    let untagged = tree.image("team/tools/jq", b"config jq old", b"layer jq old");

    // In place: berth's data folder is the registry:2 root itself.
    let reg = registry(src.path());
    let located = DistributionTree::locate(src.path()).unwrap();
    let progress = Counted::default();
    let linking = ImportOptions { hard_link: true };
    let report = import(&reg, &located, linking, &progress).await.unwrap();
    assert!(report.is_complete(), "{:?}", report.skipped);
    assert_eq!(report.repositories, 2);
    assert_eq!(report.manifests, 5);
    assert_eq!(report.tags, 3);
    // Seven distinct blobs; "layer amd64" is in both repositories but copied once.
    assert_eq!(report.blobs, 7);
    assert_eq!(report.blobs_linked, 7);
    assert_eq!(report.blobs_present, 1);
    // Linked, not copied: berth's blob file is registry:2's inode.
    let layer = Digest::sha256_of(b"layer amd64");
    let berth_file = src
        .path()
        .join("blobs/sha256")
        .join(&layer.hex()[..2])
        .join(layer.hex());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&berth_file).unwrap().ino(),
        std::fs::metadata(tree.path(&layer)).unwrap().ino()
    );
    let total = progress.total.load(Ordering::Relaxed);
    assert!(total > 0);
    assert_eq!(progress.done.load(Ordering::Relaxed), total);

    assert_eq!(digest_of(&reg, "app", "latest").await, Some(index.clone()));
    assert_eq!(digest_of(&reg, "app", "stable").await, Some(index.clone()));
    assert_eq!(
        digest_of(&reg, "app", &amd64.to_string()).await,
        Some(amd64.clone())
    );
    assert_eq!(
        digest_of(&reg, "team/tools/jq", "1.7").await,
        Some(nested.clone())
    );
    assert_eq!(
        digest_of(&reg, "team/tools/jq", &untagged.to_string()).await,
        Some(untagged.clone())
    );
    let page = reg.catalog(None, None).await.unwrap();
    assert_eq!(page.items, ["app", "team/tools/jq"]);

    let again = import(&reg, &located, linking, &Counted::default())
        .await
        .unwrap();
    assert!(again.is_complete(), "{:?}", again.skipped);
    assert_eq!(
        (again.blobs, again.bytes, again.manifests, again.tags),
        (0, 0, 0, 0)
    );
    assert_eq!(again.blobs_present, 8);
    assert_eq!(again.manifests_present, 5);
    assert_eq!(again.tags_present, 3);
}

#[tokio::test]
async fn a_corrupt_or_missing_blob_skips_what_needs_it_and_imports_the_rest() {
    let src = tempfile::tempdir().unwrap();
    let tree = Tree::new(src.path());
    let good = tree.image("good", b"config good", b"layer good");
    tree.tag("good", "v1", &good);
    let bad = tree.image("bad", b"config bad", b"layer bad");
    tree.tag("bad", "v1", &bad);
    let index = tree.index("bad", &[&bad]);
    tree.tag("bad", "multi", &index);
    let bad_layer = Digest::sha256_of(b"layer bad");
    std::fs::write(tree.path(&bad_layer), b"layer BAD").unwrap();
    let gone = tree.image("gone", b"config gone", b"layer gone");
    tree.tag("gone", "v1", &gone);
    std::fs::remove_file(tree.path(&Digest::sha256_of(b"config gone"))).unwrap();

    let data = tempfile::tempdir().unwrap();
    let reg = registry(data.path());
    let located = DistributionTree::locate(src.path()).unwrap();
    let linking = ImportOptions { hard_link: true };
    let report = import(&reg, &located, linking, &Counted::default())
        .await
        .unwrap();

    assert_eq!(digest_of(&reg, "good", "v1").await, Some(good));
    // The corrupt blob's link was removed again, the tree's file left alone.
    assert_eq!(
        std::fs::read_dir(data.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(std::fs::read(tree.path(&bad_layer)).unwrap(), b"layer BAD");
    assert_eq!(digest_of(&reg, "bad", "v1").await, None);
    assert_eq!(digest_of(&reg, "bad", "multi").await, None);
    assert_eq!(digest_of(&reg, "gone", "v1").await, None);
    let bad_repo: RepositoryName = "bad".parse().unwrap();
    assert!(reg.blob(&bad_repo, &bad_layer, None, false).await.is_err());
    let skipped: Vec<String> = report.skipped.iter().map(|s| s.to_string()).collect();
    let has = |needle: &str| skipped.iter().any(|s| s.contains(needle));
    assert!(
        has(&format!("bad: blob {bad_layer}: corrupt")),
        "{skipped:#?}"
    );
    assert!(has(&format!("bad: manifest {bad}: needs blob {bad_layer}")));
    assert!(has(&format!("bad: manifest {index}: needs manifest {bad}")));
    assert!(has("bad: tag v1: points at"));
    assert!(has("gone: blob sha256:"));
    assert!(has("missing"));
    assert_eq!(report.repositories, 1);
    assert!(!report.is_complete());
}

#[tokio::test]
async fn a_corrupt_manifest_is_reported_with_what_it_hashes_to() {
    let src = tempfile::tempdir().unwrap();
    let tree = Tree::new(src.path());
    let m = tree.image("r", b"c", b"l");
    tree.tag("r", "t", &m);
    std::fs::write(tree.path(&m), b"{\"schemaVersion\":2}").unwrap();
    let data = tempfile::tempdir().unwrap();
    let reg = registry(data.path());
    let located = DistributionTree::locate(src.path()).unwrap();
    let report = import(
        &reg,
        &located,
        ImportOptions::default(),
        &Counted::default(),
    )
    .await
    .unwrap();
    let skipped: Vec<String> = report.skipped.iter().map(|s| s.to_string()).collect();
    assert!(
        skipped
            .iter()
            .any(|s| s.starts_with(&format!("r: manifest {m}: corrupt"))),
        "{skipped:#?}"
    );
    assert_eq!(report.manifests, 0);
}

#[tokio::test]
async fn without_hard_links_blobs_are_copied_into_files_of_their_own() {
    let src = tempfile::tempdir().unwrap();
    let tree = Tree::new(src.path());
    let m = tree.image("r", b"config", b"layer");
    tree.tag("r", "t", &m);
    let reg = registry(src.path());
    let located = DistributionTree::locate(src.path()).unwrap();
    let report = import(
        &reg,
        &located,
        ImportOptions::default(),
        &Counted::default(),
    )
    .await
    .unwrap();
    assert!(report.is_complete(), "{:?}", report.skipped);
    assert_eq!((report.blobs, report.blobs_linked), (2, 0));
    let layer = Digest::sha256_of(b"layer");
    let berth_file = src
        .path()
        .join("blobs/sha256")
        .join(&layer.hex()[..2])
        .join(layer.hex());
    use std::os::unix::fs::MetadataExt;
    let berth_meta = std::fs::metadata(&berth_file).unwrap();
    assert_ne!(
        berth_meta.ino(),
        std::fs::metadata(tree.path(&layer)).unwrap().ino()
    );
    assert_eq!(berth_meta.nlink(), 1);
}

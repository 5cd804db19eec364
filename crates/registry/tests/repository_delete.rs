//! Deleting a whole repository through the registry, in-process over the
//! real filesystem and SQLite stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{Error, Registry, RegistryOptions, RepositoryDeleted};
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

async fn push_blob(reg: &Registry, name: &RepositoryName, bytes: &'static [u8]) -> Digest {
    let digest = Digest::sha256_of(bytes);
    let body = stream::iter(vec![Ok(Bytes::from_static(bytes))]).boxed();
    reg.push_blob(name, &digest, body, None).await.unwrap();
    digest
}

/// An image of config `{}`, the shared layer `hello` and a layer of its
/// own, tagged `tag`.
async fn push_image(
    reg: &Registry,
    name: &RepositoryName,
    tag: &str,
    own: &'static [u8],
) -> Digest {
    let config = push_blob(reg, name, b"{}").await;
    let shared = push_blob(reg, name, b"hello").await;
    let own_digest = push_blob(reg, name, own).await;
    let layer = |d: &Digest, size: usize| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{size}}}"#
        )
    };
    let json = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{},{}]}}"#,
        layer(&shared, 5),
        layer(&own_digest, own.len())
    );
    reg.put_manifest(name, &tag.parse().unwrap(), None, Bytes::from(json))
        .await
        .unwrap()
        .digest
}

async fn pull_blob(reg: &Registry, name: &RepositoryName, digest: &Digest) -> Vec<u8> {
    let blob = reg.blob(name, digest, None, true).await.unwrap();
    let chunks: Vec<Bytes> = blob
        .content
        .unwrap()
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

#[tokio::test]
async fn a_deleted_repository_is_gone_and_its_neighbour_still_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let (gone, kept) = (repo("team/gone"), repo("team/kept"));
    let digest = push_image(&reg, &gone, "v1", b"gone's own").await;
    push_image(&reg, &gone, "v2", b"gone's own").await;
    push_image(&reg, &kept, "v1", b"kept's own").await;
    // Served once, so the manifest cache holds its bytes.
    let by_digest = Reference::Digest(digest.clone());
    reg.manifest(&gone, &by_digest, &[], true).await.unwrap();

    let deleted = reg.delete_repository(&gone).await.unwrap();
    assert_eq!(
        deleted,
        RepositoryDeleted {
            tags: 2,
            manifests: 1
        }
    );
    for reference in [by_digest, "v1".parse().unwrap()] {
        let err = reg
            .manifest(&gone, &reference, &[], true)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ManifestUnknown(_)), "{err}");
    }
    assert!(matches!(
        reg.tags(&gone, None, None).await,
        Err(Error::NameUnknown(_))
    ));
    assert!(matches!(
        reg.blob(&gone, &Digest::sha256_of(b"hello"), None, false)
            .await,
        Err(Error::BlobUnknown(_))
    ));
    assert_eq!(
        reg.catalog(None, None).await.unwrap().items,
        vec!["team/kept"]
    );

    let shared = Digest::sha256_of(b"hello");
    assert_eq!(pull_blob(&reg, &kept, &shared).await, b"hello");
    assert!(reg
        .manifest(&kept, &"v1".parse().unwrap(), &[], true)
        .await
        .is_ok());
}

#[tokio::test]
async fn deleting_an_unknown_repository_is_name_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let err = reg.delete_repository(&repo("never")).await.unwrap_err();
    assert!(matches!(err, Error::NameUnknown(_)), "{err}");
    push_image(&reg, &repo("once"), "v1", b"own").await;
    reg.delete_repository(&repo("once")).await.unwrap();
    let err = reg.delete_repository(&repo("once")).await.unwrap_err();
    assert!(matches!(err, Error::NameUnknown(_)), "a second time: {err}");
}

#[tokio::test]
async fn repository_deletes_are_refused_when_deletes_are_off() {
    let dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        delete_enabled: false,
        ..Default::default()
    };
    let reg = open(dir.path(), options);
    let name = repo("kept");
    push_image(&reg, &name, "v1", b"own").await;
    let err = reg.delete_repository(&name).await.unwrap_err();
    assert!(matches!(err, Error::DeleteDisabled), "{err}");
    assert_eq!(reg.tags(&name, None, None).await.unwrap().items, vec!["v1"]);
}

#[tokio::test]
async fn gc_after_a_repository_delete_takes_only_what_no_other_repository_holds() {
    use berth_registry::gc::{GcRequest, RemovalKind};
    let dir = tempfile::tempdir().unwrap();
    let reg = open(dir.path(), RegistryOptions::default());
    let (gone, kept) = (repo("team/gone"), repo("team/kept"));
    let gone_manifest = push_image(&reg, &gone, "v1", b"gone's own").await;
    push_image(&reg, &kept, "v1", b"kept's own").await;
    reg.delete_repository(&gone).await.unwrap();
    // Within the grace period nothing goes, whatever the pass's grace.
    let request = GcRequest {
        dry_run: false,
        grace: Some(std::time::Duration::from_secs(60)),
    };
    let report = reg.collect_garbage(&request, &()).await.unwrap();
    assert_eq!(report.blobs_removed, 0, "{report:?}");
    // Once it has passed: the deleted repository's own layer and manifest.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let request = GcRequest {
        dry_run: false,
        grace: Some(std::time::Duration::ZERO),
    };
    let report = reg.collect_garbage(&request, &()).await.unwrap();
    let mut removed: Vec<String> = report
        .removed
        .iter()
        .filter(|r| r.kind == RemovalKind::Blob)
        .map(|r| r.name.clone())
        .collect();
    removed.sort();
    let mut expected = vec![
        Digest::sha256_of(b"gone's own").to_string(),
        gone_manifest.to_string(),
    ];
    expected.sort();
    assert_eq!(removed, expected, "{report:?}");
    assert_eq!(
        pull_blob(&reg, &kept, &Digest::sha256_of(b"hello")).await,
        b"hello"
    );
    assert_eq!(
        pull_blob(&reg, &kept, &Digest::sha256_of(b"{}")).await,
        b"{}"
    );
}

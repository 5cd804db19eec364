//! `berth repo delete` as an operator runs it: the real binary over a data
//! folder the registry filled, by itself when no server holds the folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod support;

use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{Registry, RegistryOptions};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use support::{berth, Server};

const SHARED: &[u8] = b"a layer both repositories hold";

fn open(dir: &Path) -> Registry {
    Registry::new(
        Arc::new(FsBlobStore::open(dir).unwrap()),
        Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
        RegistryOptions::default(),
    )
}

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

/// `team/app` (tags v1, v2) and `team/other` (v1), sharing a layer.
async fn fill(dir: &Path) {
    let reg = open(dir);
    for (name, tags) in [("team/app", &["v1", "v2"][..]), ("team/other", &["v1"])] {
        let name = repo(name);
        let mut digests = Vec::new();
        for bytes in [&b"{}"[..], SHARED] {
            let digest = Digest::sha256_of(bytes);
            let body = stream::iter(vec![Ok(Bytes::copy_from_slice(bytes))]).boxed();
            reg.push_blob(&name, &digest, body, None).await.unwrap();
            digests.push(digest);
        }
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            digests[0],
            digests[1],
            SHARED.len()
        );
        for tag in tags {
            let tag: Reference = tag.parse().unwrap();
            reg.put_manifest(&name, &tag, None, Bytes::from(manifest.clone()))
                .await
                .unwrap();
        }
    }
}

fn repo_delete(dir: &Path, name: &str) -> Output {
    berth()
        .args(["repo", "delete", name, "--data-dir"])
        .arg(dir)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn offline_it_deletes_the_repository_and_says_what_went() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;

    let out = repo_delete(dir.path(), "team/app");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("deleted repository team/app: 2 tag(s), 1 manifest(s)"),
        "{said}"
    );
    assert!(said.contains("next GC pass"), "{said}");

    let reg = open(dir.path());
    assert_eq!(reg.catalog(None, None).await.unwrap().items, ["team/other"]);
    let layer = Digest::sha256_of(SHARED);
    let blob = reg.blob(&repo("team/other"), &layer, None, true).await;
    let chunks: Vec<Bytes> = match blob {
        Ok(blob) => blob
            .content
            .unwrap()
            .into_stream()
            .try_collect()
            .await
            .unwrap(),
        Err(e) => panic!("the shared layer: {e}"),
    };
    assert_eq!(chunks.concat(), SHARED);
    drop(reg);
    let fsck = berth()
        .args(["fsck", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        fsck.status.code(),
        Some(0),
        "the folder is consistent afterwards: {}",
        stdout(&fsck)
    );

    let again = repo_delete(dir.path(), "team/app");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("no repository team/app"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test]
async fn refusals_change_nothing_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;

    let disabled = berth()
        .args(["repo", "delete", "team/app", "--data-dir"])
        .arg(dir.path())
        .env("BERTH_DELETE_ENABLED", "false")
        .output()
        .unwrap();
    assert_eq!(disabled.status.code(), Some(1));
    assert!(
        stderr(&disabled).contains("delete_enabled"),
        "{}",
        stderr(&disabled)
    );

    let bad = repo_delete(dir.path(), "Team/App");
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    let elsewhere = tempfile::tempdir().unwrap();
    let empty = repo_delete(&elsewhere.path().join("typo"), "team/app");
    assert_eq!(empty.status.code(), Some(2));
    assert!(
        stderr(&empty).contains("not a berth data folder"),
        "{}",
        stderr(&empty)
    );
    assert!(
        !elsewhere.path().join("typo").exists(),
        "no data folder is made"
    );

    let reg = open(dir.path());
    assert_eq!(
        reg.catalog(None, None).await.unwrap().items,
        ["team/app", "team/other"]
    );
}

async fn get(server: &Server, path: &str) -> reqwest::Response {
    reqwest::get(format!("http://{}{path}", server.addr))
        .await
        .unwrap()
}

#[tokio::test]
async fn beside_a_running_server_the_server_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;
    let server = Server::start(dir.path());
    // Served once: the server has the manifest in its cache.
    assert_eq!(
        get(&server, "/v2/team/app/manifests/v1").await.status(),
        200
    );

    let out = repo_delete(dir.path(), "team/app");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("deleted repository team/app: 2 tag(s), 1 manifest(s)"),
        "{}",
        stdout(&out)
    );
    let catalog = get(&server, "/v2/_catalog").await.bytes().await.unwrap();
    let catalog: serde_json::Value = serde_json::from_slice(&catalog).unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["team/other"]));
    assert_eq!(
        get(&server, "/v2/team/app/manifests/v1").await.status(),
        404
    );
    let layer = Digest::sha256_of(SHARED);
    let shared = get(&server, &format!("/v2/team/other/blobs/{layer}")).await;
    assert_eq!(shared.status(), 200);
    assert_eq!(shared.bytes().await.unwrap().as_ref(), SHARED);

    let again = repo_delete(dir.path(), "team/app");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("no repository team/app"),
        "{}",
        stderr(&again)
    );
}

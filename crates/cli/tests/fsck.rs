//! `berth fsck` as an operator runs it: the real binary over a data folder
//! the registry filled, clean, damaged, repaired, and beside a running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{Registry, RegistryOptions};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pushes an image tagged `v1` into a registry over `dir`; returns the layer's digest.
async fn fill(dir: &Path) -> Digest {
    let reg = Registry::new(
        Arc::new(FsBlobStore::open(dir).unwrap()),
        Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
        RegistryOptions::default(),
    );
    let name: RepositoryName = "team/app".parse().unwrap();
    let mut digests = Vec::new();
    for bytes in [&b"{}"[..], b"layer bytes"] {
        let digest = Digest::sha256_of(bytes);
        let body = stream::iter(vec![Ok(Bytes::copy_from_slice(bytes))]).boxed();
        reg.push_blob(&name, &digest, body).await.unwrap();
        digests.push(digest);
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":11}}]}}"#,
        digests[0], digests[1]
    );
    let tag: Reference = "v1".parse().unwrap();
    reg.put_manifest(&name, &tag, None, Bytes::from(manifest))
        .await
        .unwrap();
    digests.pop().unwrap()
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

fn berth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .env_remove("BERTH_DATA_DIR")
        .env_remove("BERTH_CONFIG");
    command
}

fn fsck(dir: &Path, extra: &[&str]) -> Output {
    berth()
        .arg("fsck")
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
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
async fn clean_exits_0_damaged_exits_1_and_repair_makes_it_clean() {
    let dir = tempfile::tempdir().unwrap();
    let layer = fill(dir.path()).await;

    let clean = fsck(dir.path(), &[]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("clean"));

    let path = blob_path(dir.path(), &layer);
    std::fs::write(&path, b"layer bytez").unwrap();
    std::fs::write(dir.path().join("uploads/mono-dead"), b"half").unwrap();
    let damaged = fsck(dir.path(), &[]);
    let text = stdout(&damaged);
    assert_eq!(damaged.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("corrupt blob blobs/sha256/{}", &layer.hex()[..2])));
    assert!(text.contains("leftover upload file uploads/mono-dead"));
    assert!(text.contains("tag team/app:v1"));
    assert!(path.exists(), "a check without --repair changes nothing");

    let repair = fsck(dir.path(), &["--repair"]);
    let text = stdout(&repair);
    assert_eq!(repair.status.code(), Some(0), "{text}");
    assert!(text.contains("moved blobs/sha256/"), "{text}");
    assert!(text.contains("moved uploads/mono-dead"), "{text}");
    assert!(!path.exists());
    let quarantine: Vec<_> = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(quarantine.len(), 1);

    let after = fsck(dir.path(), &[]);
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
}

#[test]
fn the_data_folder_comes_from_the_environment_or_config_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = berth()
        .arg("fsck")
        .env("BERTH_DATA_DIR", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nothing-here is not a berth data folder"));

    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", missing.join("from-file")),
    )
    .unwrap();
    let out = berth()
        .arg("fsck")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("from-file is not a berth data folder"));
}

/// A running `berth serve` on `dir`, stopped by its PID when dropped.
struct Server(std::process::Child);

impl Server {
    fn start(dir: &Path) -> Server {
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let child = berth()
            .args(["serve", "--addr", &addr.to_string(), "--data-dir"])
            .arg(dir)
            .env("BERTH_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "berth serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn beside_a_running_server_it_checks_read_only_and_refuses_to_repair() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;
    let _server = Server::start(dir.path());

    let check = fsck(dir.path(), &[]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    assert!(
        stderr(&check).contains("checking read-only"),
        "{}",
        stderr(&check)
    );

    std::fs::write(dir.path().join("blobs/sha256/stray"), b"?").unwrap();
    let repair = fsck(dir.path(), &["--repair"]);
    assert_eq!(repair.status.code(), Some(2));
    assert!(
        stderr(&repair).contains("stop it before --repair"),
        "{}",
        stderr(&repair)
    );
    assert!(dir.path().join("blobs/sha256/stray").exists());
    assert!(!dir.path().join("quarantine").exists());
}

//! `berth fsck` as an operator runs it: the real binary over a data folder
//! the registry filled, clean, damaged, repaired, and beside a running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod support;

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
use support::{berth, Server};

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
        reg.push_blob(&name, &digest, body, None).await.unwrap();
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
    // stderr is not a terminal here: no progress bar is drawn into it.
    assert_eq!(stderr(&clean), "");

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

/// A monolithic push of `bytes` to `team/app`; returns the digest.
async fn push(client: &reqwest::Client, server: &Server, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256_of(bytes);
    let url = server.url(&format!("team/app/blobs/uploads/?digest={digest}"));
    let resp = client.post(url).body(bytes.to_vec()).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    digest
}

#[tokio::test]
async fn after_a_kill_mid_push_only_leftovers_are_found_and_what_got_201_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = Server::start(dir.path());
    let config = push(&client, &server, b"{}").await;
    let layer_bytes = b"layer that got its 201".repeat(1000);
    let layer = push(&client, &server, &layer_bytes).await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
        layer_bytes.len()
    );
    let resp = client
        .put(server.url("team/app/manifests/v1"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // A push that never ends: 64 KiB every 10 ms until the server dies.
    let never = Digest::sha256_of(b"never finished");
    let body = stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 64 << 10])),
            (),
        ))
    });
    let url = server.url(&format!("team/app/blobs/uploads/?digest={never}"));
    let in_flight = tokio::spawn(
        client
            .post(url)
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    let uploads = dir.path().join("uploads");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let written: u64 = std::fs::read_dir(&uploads)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        if written > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the push never reached the disk");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop();
    let _ = in_flight.await;

    let check = fsck(dir.path(), &[]);
    let text = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{text}");
    let problems: Vec<_> = text.lines().filter(|l| l.starts_with("problem:")).collect();
    assert!(!problems.is_empty());
    for line in &problems {
        assert!(
            line.contains("leftover upload file uploads/mono-"),
            "{text}"
        );
    }
    let repair = fsck(dir.path(), &["--repair"]);
    assert_eq!(repair.status.code(), Some(0), "{}", stdout(&repair));
    let after = fsck(dir.path(), &[]);
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));

    // What got its 201 is served whole by the next server.
    let server = Server::start(dir.path());
    let pulled = client
        .get(server.url(&format!("team/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);
    assert_eq!(pulled.bytes().await.unwrap(), layer_bytes);
    let tagged = client
        .get(server.url("team/app/manifests/v1"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_beside_a_server_under_pushes_finds_nothing_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = reqwest::Client::new();
    let pushing = {
        let (client, base) = (client.clone(), server.url(""));
        tokio::spawn(async move {
            for i in 0..60u32 {
                let layer = format!("layer {i} ").repeat(2000).into_bytes();
                let mut descriptors = Vec::new();
                for bytes in [format!("{{\"n\":{i}}}").into_bytes(), layer] {
                    let digest = Digest::sha256_of(&bytes);
                    let url = format!("{base}team/app/blobs/uploads/?digest={digest}");
                    let size = bytes.len();
                    let resp = client.post(url).body(bytes).send().await.unwrap();
                    assert_eq!(resp.status(), 201);
                    descriptors.push((digest, size));
                }
                let manifest = format!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
                    descriptors[0].0, descriptors[0].1, descriptors[1].0, descriptors[1].1
                );
                let resp = client
                    .put(format!("{base}team/app/manifests/t{i}"))
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .body(manifest)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
            }
        })
    };
    // Wait for the first push so the database exists, then check while pushes go on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.path().join("meta.db").exists() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut checks = 0;
    while !pushing.is_finished() || checks == 0 {
        let path = dir.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || fsck(&path, &[]))
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        checks += 1;
    }
    pushing.await.unwrap();
    server.stop();
    let after = fsck(dir.path(), &[]);
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
    // 60 configs, layers and manifests, all pushed while fsck ran beside them.
    assert!(
        stdout(&after).contains(": 180 blob(s)"),
        "{}",
        stdout(&after)
    );
    assert!(checks >= 2, "only {checks} check(s) overlapped the pushes");
}

/// A tmpfs of a fixed size: a disk that fills up. Unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk(at.to_path_buf())
    }

    /// Space freed, as an operator would before repairing.
    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn after_a_full_disk_only_leftovers_are_found_and_what_got_201_is_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let disk = SmallDisk::mount(&data, "6m");
    let server = Server::start(&data);
    let client = reqwest::Client::new();

    // Blobs until the disk refuses one; then manifests and an upload on the full disk.
    let mut stored = Vec::new();
    let mut refused = false;
    for i in 0..40u8 {
        let bytes = vec![i; 512 << 10];
        let digest = Digest::sha256_of(&bytes);
        let url = server.url(&format!("team/app/blobs/uploads/?digest={digest}"));
        let resp = client.post(url).body(bytes.clone()).send().await.unwrap();
        if resp.status() == 201 {
            stored.push((digest, bytes));
        } else {
            assert!(resp.status().is_server_error(), "{}", resp.status());
            refused = true;
            break;
        }
    }
    assert!(refused, "6 MiB never filled up");
    assert!(!stored.is_empty());
    let (first, first_bytes) = &stored[0];
    for tag in ["a", "b", "c"] {
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{first}","size":{}}},"layers":[],"annotations":{{"pad":"{}"}}}}"#,
            first_bytes.len(),
            "x".repeat(200_000)
        );
        let _ = client
            .put(server.url(&format!("team/app/manifests/{tag}")))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send()
            .await
            .unwrap();
    }
    server.stop();

    let check = fsck(&data, &[]);
    let text = stdout(&check);
    assert!(
        check.status.code() == Some(0) || check.status.code() == Some(1),
        "{text}"
    );
    for line in text.lines().filter(|l| l.starts_with("problem:")) {
        assert!(line.contains("leftover upload file uploads/"), "{text}");
    }
    disk.grow("16m");
    let repair = fsck(&data, &["--repair"]);
    assert_eq!(repair.status.code(), Some(0), "{}", stdout(&repair));
    let after = fsck(&data, &[]);
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));

    let server = Server::start(&data);
    for (digest, bytes) in &stored {
        let resp = client
            .get(server.url(&format!("team/app/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap(), &bytes[..]);
    }
    server.stop();
}

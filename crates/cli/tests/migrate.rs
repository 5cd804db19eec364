//! `berth migrate` as an operator runs it: a registry filled through a real
//! `berth serve`, copied into other stores by the real binary, killed
//! (SIGKILL) partway and run again, then checked blob by blob and tag by
//! tag through the destination's own `berth serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod support;

use berth_registry::storage::postgres::PostgresMetaStore;
use berth_registry::testing::engines::{TempGarage, TempPostgres};
use berth_registry::MetaStore;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{berth, check, fill, Server};

/// A config file naming the embedded stores in `dir`.
fn fs_config(root: &Path, name: &str) -> (PathBuf, PathBuf) {
    let data = root.join(name);
    let config = root.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", data.display().to_string()),
    )
    .unwrap();
    (config, data)
}

fn migrate(from: &Path, to: &Path, extra: &[&str]) -> std::process::Output {
    berth()
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .args(extra)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Blob files under a data folder.
fn blob_files(dir: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    walk(&dir.join("blobs"))
}

/// Starts a migration and SIGKILLs it once the destination holds
/// `at_least` blob files; panics if it finished first.
fn migrate_killed_partway(from: &Path, to: &Path, to_data: &Path, at_least: usize) {
    let mut child = berth()
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while blob_files(to_data) < at_least {
        assert!(
            child.try_wait().unwrap().is_none(),
            "migrate finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "migrate made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "migrate finished before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_registry_moves_killed_partway_resumes_and_moves_back_identical() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let (a_config, a_data) = fs_config(root.path(), "a");
    let (b_config, b_data) = fs_config(root.path(), "b");
    let (c_config, c_data) = fs_config(root.path(), "c");

    let server = Server::start(&a_data);
    let model = fill(&server, 40).await;
    server.stop();
    eprintln!("filled in {:.1} s", started.elapsed().as_secs_f64());
    assert!(model.blob_count() > 300, "{} blobs", model.blob_count());

    let dry = migrate(&a_config, &b_config, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("source: 40 repositories, 200 manifests, 160 tags"),
        "{}",
        text(&dry.stdout)
    );
    assert!(
        !b_data.join("meta.db").exists(),
        "a dry run wrote the destination"
    );

    migrate_killed_partway(&a_config, &b_config, &b_data, 60);
    let resumed = migrate(&a_config, &b_config, &[]);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}\n{}",
        text(&resumed.stdout),
        text(&resumed.stderr)
    );
    let summary = text(&resumed.stdout);
    assert!(summary.contains("already there"), "{summary}");
    assert!(
        !summary.contains(" 0 linked, 0 already there"),
        "the rerun redid everything: {summary}"
    );

    eprintln!(
        "migrated (killed, resumed) at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let server = Server::start(&b_data);
    check(&server, &model).await;
    eprintln!("checked at {:.1} s", started.elapsed().as_secs_f64());
    server.stop();

    // A third run finds everything there and copies nothing.
    let again = migrate(&a_config, &b_config, &[]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text(&again.stdout).contains(": 0 blobs copied (0 B), 0 linked"),
        "{}",
        text(&again.stdout)
    );
    assert!(
        text(&again.stdout).contains("0 manifests copied"),
        "{}",
        text(&again.stdout)
    );

    eprintln!("third run at {:.1} s", started.elapsed().as_secs_f64());
    let back = migrate(&b_config, &c_config, &[]);
    eprintln!(
        "back at {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        text(&back.stdout)
    );
    assert_eq!(back.status.code(), Some(0), "{}", text(&back.stderr));
    let server = Server::start(&c_data);
    check(&server, &model).await;
    server.stop();
    eprintln!("migrate test took {:.1} s", started.elapsed().as_secs_f64());
}

/// A config file naming Garage's bucket (under `prefix`) and a PostgreSQL
/// database; its data folder holds only the lock and admin socket.
fn s3_pg_config(
    root: &Path,
    name: &str,
    garage: &TempGarage,
    postgres: &TempPostgres,
) -> (PathBuf, PathBuf) {
    let data = root.join(name);
    let s3 = garage.settings();
    let config = root.join(format!("{name}.toml"));
    let text = format!(
        "data_dir = {data:?}\n\
         [storage]\nbackend = \"s3\"\n\
         [storage.s3]\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nregion = {region:?}\n\
         access_key = {access:?}\nsecret_key = {secret:?}\nforce_path_style = true\nroot = {name:?}\n\
         [metadata]\nurl = {url:?}\n",
        data = data.display().to_string(),
        endpoint = s3.endpoint.unwrap(),
        bucket = s3.bucket,
        region = s3.region,
        access = s3.access_key,
        secret = s3.secret_key,
        url = postgres.url(),
    );
    std::fs::write(&config, text).unwrap();
    (config, data)
}

/// Starts a migration into PostgreSQL and SIGKILLs it once the database
/// links `at_least` blobs; panics if it finished first.
async fn migrate_to_pg_killed_partway(from: &Path, to: &Path, url: &str, at_least: u64) {
    let mut child = berth()
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let finished_early = |child: &mut std::process::Child| {
        if child.try_wait().unwrap().is_some() {
            let mut why = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut why).unwrap();
            panic!("migrate finished before it could be killed: {why}");
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut meta = None;
    loop {
        finished_early(&mut child);
        assert!(Instant::now() < deadline, "migrate made no progress");
        // The schema exists once migrate opened the database.
        if meta.is_none() {
            meta = PostgresMetaStore::connect(url, None).await.ok();
        }
        if let Some(meta) = &meta {
            if meta.stats().await.is_ok_and(|s| s.blobs >= at_least) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    finished_early(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_registry_moves_to_s3_and_postgresql_killed_partway_and_back() {
    let started = Instant::now();
    let Some(garage) = TempGarage::start() else {
        return;
    };
    let Some(postgres) = TempPostgres::start() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (a_config, a_data) = fs_config(root.path(), "a");
    let (s_config, s_data) = s3_pg_config(root.path(), "s", &garage, &postgres);
    let (c_config, c_data) = fs_config(root.path(), "c");

    let server = Server::start(&a_data);
    let model = fill(&server, 40).await;
    server.stop();

    migrate_to_pg_killed_partway(&a_config, &s_config, &postgres.url(), 60).await;
    let resumed = migrate(&a_config, &s_config, &[]);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}\n{}",
        text(&resumed.stdout),
        text(&resumed.stderr)
    );
    let summary = text(&resumed.stdout);
    assert!(
        !summary.contains(" 0 linked, 0 already there"),
        "the rerun redid everything: {summary}"
    );
    eprintln!(
        "fs -> S3+PG (killed, resumed) at {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let server = Server::start_with(&s_data, Some(&s_config));
    check(&server, &model).await;
    server.stop();

    // And back, interrupted the same way.
    migrate_killed_partway(&s_config, &c_config, &c_data, 60);
    let back = migrate(&s_config, &c_config, &[]);
    assert_eq!(
        back.status.code(),
        Some(0),
        "{}\n{}",
        text(&back.stdout),
        text(&back.stderr)
    );
    let server = Server::start(&c_data);
    check(&server, &model).await;
    server.stop();
    eprintln!(
        "S3+PG migrate test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_same_stores_on_both_sides_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (a_config, a_data) = fs_config(root.path(), "a");
    std::fs::create_dir_all(&a_data).unwrap();
    let other = root.path().join("again.toml");
    std::fs::write(
        &other,
        format!("data_dir = {:?}\n", format!("{}/../a", a_data.display())),
    )
    .unwrap();
    let out = migrate(&a_config, &other, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("same stores"),
        "{}",
        text(&out.stderr)
    );
}

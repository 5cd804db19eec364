//! `berth serve` refusing to start on a data folder it cannot use: one the
//! (non-root) user cannot write, and one holding registry:2 data not yet
//! imported; and the warning when it is told to serve beyond loopback
//! without auth. Each runs the real binary and reads its exit code and message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// The uid/gid a distroless image runs as; owns nothing on this machine.
const NONROOT: u32 = 65532;

/// Waits for a process we started, killing it (by its own PID) if it outlives `limit`.
fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "berth kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn serve(cmd: &mut Command, data: &Path) -> Output {
    serve_subcommand(cmd.arg("serve"), data)
}

/// `cmd`, already `... serve [FLAGS]`, on a free loopback port.
fn serve_subcommand(cmd: &mut Command, data: &Path) -> Output {
    let child = cmd
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("BERTH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_limit(child, Duration::from_secs(20))
}

/// A temp folder others may enter (tempfile makes them 0700).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// As root, runs berth as uid/gid 65532 with no extra groups (`setpriv`);
/// as anyone else, runs it as is against a folder made read-only to its owner.
fn non_root_berth() -> (Command, u32) {
    if rustix::process::geteuid().is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            format!("--reuid={NONROOT}"),
            format!("--regid={NONROOT}"),
            "--clear-groups".into(),
            BERTH.into(),
        ]);
        (cmd, NONROOT)
    } else {
        (Command::new(BERTH), rustix::process::geteuid().as_raw())
    }
}

#[test]
fn a_data_folder_the_user_cannot_write_is_refused_with_how_to_fix_it() {
    let root = open_tempdir();
    let data = root.path().join("registry data");
    std::fs::create_dir(&data).unwrap();
    // Root-owned when root runs the test; read-only to its owner otherwise.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    let (mut cmd, uid) = non_root_berth();
    let out = serve(&mut cmd, &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let owner = std::fs::metadata(&data).unwrap();
    use std::os::unix::fs::MetadataExt;
    for needle in [
        data.display().to_string(),
        format!("runs as uid {uid} gid {uid}"),
        format!("owned by uid {} gid {}", owner.uid(), owner.gid()),
        format!("chown -R {uid}:{uid} {}", data.display()),
        "docker run --user".into(),
    ] {
        assert!(stderr.contains(&needle), "{needle:?} not in: {stderr}");
    }
    // Nothing was created in the folder on the way out.
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}

#[test]
fn a_data_folder_that_does_not_exist_under_an_unwritable_parent_is_refused() {
    let root = open_tempdir();
    let parent = root.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).unwrap();
    let (mut cmd, uid) = non_root_berth();
    let out = serve(&mut cmd, &parent.join("data"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("chown -R {uid}:{uid} {}", parent.display())),
        "{stderr}"
    );
}

#[test]
fn registry2_data_not_yet_imported_is_refused_and_names_the_command() {
    let data = tempfile::tempdir().unwrap();
    let repo = data
        .path()
        .join("docker/registry/v2/repositories/library/busybox");
    std::fs::create_dir_all(repo.join("_manifests/tags")).unwrap();
    let out = serve(&mut Command::new(BERTH), data.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let command = format!("berth import-distribution {}", data.path().display());
    assert!(stderr.contains(&command), "{stderr}");

    // After the import (nothing to copy here: the repository has no
    // manifests) serve starts; it is stopped by its own PID.
    let import = Command::new(BERTH)
        .arg("import-distribution")
        .arg(data.path())
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let mut child = Command::new(BERTH)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let listening = lines.any(|l| l.unwrap().contains("berth listening"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(listening);
}

/// `berth serve` on a free loopback port with extra flags.
fn serve_with_flags(data: &Path, flags: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(BERTH);
    cmd.arg("serve").args(flags);
    serve_subcommand(&mut cmd, data)
}

#[test]
fn a_certificate_without_its_key_or_a_broken_pair_stops_start_up() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let made = Command::new(BERTH)
        .args(["cert", "--out"])
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let cert = certs.path().join("server.crt");
    let key = certs.path().join("server.key");

    let out = serve_with_flags(data.path(), &["--tls-cert".as_ref(), cert.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("only the certificate is set"), "{stderr}");

    std::fs::write(&key, "not a key\n").unwrap();
    let flags = [
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ];
    let out = serve_with_flags(data.path(), &flags);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("server.key"), "{stderr}");
    assert!(
        !stderr.contains("berth listening"),
        "refused before listening: {stderr}"
    );
}

/// Serving beyond loopback without auth is warned about. The address is
/// TEST-NET-1 (192.0.2.1), on no interface: the warning comes before the
/// bind, which then fails, so the test listens nowhere beyond loopback.
#[test]
fn serving_beyond_loopback_without_auth_logs_a_warning_first() {
    let data = tempfile::tempdir().unwrap();
    let child = Command::new(BERTH)
        .args(["serve", "--addr", "192.0.2.1:5000", "--data-dir"])
        .arg(data.path())
        .env("BERTH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_limit(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "192.0.2.1 is on no interface: {stderr}"
    );
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr
            .contains("WITHOUT AUTH: anyone who can reach this address can push, pull and delete"),
        "{stderr}"
    );
    // On loopback it says nothing of the kind: conformance's
    // `auth::loopback_without_auth_logs_no_warning`.
}

/// A policy rule that would do nothing, or whose value does not parse,
/// stops start-up with a message naming the rule and the key.
#[test]
fn a_policy_rule_that_would_do_nothing_or_does_not_parse_stops_start_up() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("berth.toml");
    for (toml, says) in [
        (
            "[[retention]]\nrepositories = \"ci/*\"\nkeep_tags = [\"latest\"]\n",
            "[[retention]] rule 1 (\"ci/*\") deletes nothing: set keep_last or older_than",
        ),
        (
            "[[quota]]\nrepositories = \"*\"\n",
            "[[quota]] rule 1 (\"*\") limits nothing",
        ),
        (
            "[[quota]]\nrepositories = \"*\"\nmax_bytes = \"10 gigs\"\n",
            "[[quota]] rule 1, max_bytes: \"10 gigs\" is not a size",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        let out = serve_with_flags(
            &data.path().join("data"),
            &["--config".as_ref(), config.as_os_str()],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {stderr}");
        assert!(stderr.contains(says), "{toml}: {stderr}");
        assert!(!stderr.contains("berth listening"), "{stderr}");
    }
}

/// An upstream that would route wrongly, or whose password cannot be
/// read, stops start-up with a message naming the key; no secret in it.
#[test]
fn a_pull_through_setting_that_would_route_wrongly_stops_start_up() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("berth.toml");
    for (toml, says) in [
        (
            "[[upstream]]\nname = \"ghcr.io\"\n[[upstream]]\nname = \"ghcr.example\"\nprefix = \"ghcr.io\"\n",
            "[[upstream]] 2 (\"ghcr.example\") prefix: \"ghcr.io\" is already the prefix of [[upstream]] 1",
        ),
        (
            "[[upstream]]\nname = \"localhost:5001\"\n",
            "[[upstream]] 1 (\"localhost:5001\") prefix:",
        ),
        (
            "[[upstream]]\nname = \"x.io\"\nusername = \"me\"\npassword = \"hunter2\"\npassword_file = \"/run/pw\"\n",
            "[[upstream]] 1 (\"x.io\") password_file: give password or password_file, not both",
        ),
        (
            "[[upstream]]\nname = \"x.io\"\nusername = \"me\"\npassword_file = \"/nonexistent/berth-pw\"\n",
            "upstream \"x.io\": cannot read password_file /nonexistent/berth-pw",
        ),
        (
            "[proxy]\nusername = \"me\"\npassword = \"hunter2\"\n",
            "[proxy] remoteurl: is missing (REGISTRY_PROXY_REMOTEURL)",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        let out = serve_with_flags(
            &data.path().join("data"),
            &["--config".as_ref(), config.as_os_str()],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{toml}: {stderr}");
        assert!(stderr.contains(says), "{toml}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(!stderr.contains("berth listening"), "{stderr}");
    }
}

#[test]
fn a_metadata_url_password_never_reaches_the_log() {
    let data = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the connection fails, and says where to.
    let out = serve_subcommand(
        Command::new(BERTH).args([
            "serve",
            "--metadata-url",
            "postgres://berth:hunter2@127.0.0.1:1/berth",
        ]),
        data.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("postgres://berth:***@127.0.0.1:1/berth"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn bad_storage_settings_stop_start_up_naming_the_setting() {
    let data = tempfile::tempdir().unwrap();
    let out = serve(
        Command::new(BERTH)
            .env("REGISTRY_STORAGE", "s3")
            .env("REGISTRY_STORAGE_S3_SECRETKEY", "not-for-logs"),
        data.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("storage.s3.bucket"), "{stderr}");
    assert!(!stderr.contains("not-for-logs"), "{stderr}");
}

#[test]
fn a_data_folder_whose_blobs_belong_to_another_metadata_store_is_refused() {
    let data = tempfile::tempdir().unwrap();
    // A first start binds the folder's blobs to its meta.db...
    let first = Command::new(BERTH)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let marker = data.path().join("berth-store.json");
    let started = Instant::now();
    while !marker.exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut first = first;
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(marker.exists(), "the first start wrote no marker");
    // ...then meta.db is replaced by another registry's (here: a new one):
    // its garbage collector would take every blob here for garbage.
    for name in ["meta.db", "meta.db-wal", "meta.db-shm"] {
        let _ = std::fs::remove_file(data.path().join(name));
    }
    let out = serve(&mut Command::new(BERTH), data.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("belongs to another registry"), "{stderr}");
}

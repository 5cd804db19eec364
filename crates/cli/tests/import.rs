//! `berth import-distribution` as a binary, as a non-root user: a data folder
//! it cannot write is refused, and blob files it may not hard-link (owned by
//! root, with the kernel's protected_hardlinks) are copied instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const NONROOT: u32 = 65532;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A registry:2 tree with one repository `app` tagged `v1`: config, layer, manifest.
fn registry2_tree(root: &Path) {
    let v2 = root.join("docker/registry/v2");
    let blob = |content: &[u8]| {
        let hex = sha256_hex(content);
        let dir = v2.join("blobs/sha256").join(&hex[..2]).join(&hex);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data"), content).unwrap();
        hex
    };
    let link = |sub: String, hex: &str| {
        let dir = v2.join("repositories/app").join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("link"), format!("sha256:{hex}")).unwrap();
    };
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"not really a tar, registry:2 does not care";
    let (c, l) = (blob(config), blob(layer));
    link(format!("_layers/sha256/{c}"), &c);
    link(format!("_layers/sha256/{l}"), &l);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{l}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let m = blob(manifest.as_bytes());
    link(format!("_manifests/revisions/sha256/{m}"), &m);
    link("_manifests/tags/v1/current".into(), &m);
}

/// Makes `dir` and everything in it readable (not writable) by others.
fn open_to_all(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            open_to_all(&path);
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// berth as uid/gid 65532 when root runs the tests, else as the current user.
fn berth_non_root() -> Command {
    if as_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            format!("--reuid={NONROOT}"),
            format!("--regid={NONROOT}"),
            "--clear-groups".into(),
            BERTH.into(),
        ]);
        cmd
    } else {
        Command::new(BERTH)
    }
}

fn import(mut cmd: Command, src: &Path, data: &Path) -> Output {
    cmd.arg("import-distribution")
        .arg(src)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("registry");
    registry2_tree(&src);
    open_to_all(root.path());
    let data = root.path().join("data");
    (root, src, data)
}

#[test]
fn a_data_folder_the_user_cannot_write_is_refused_before_anything_is_read() {
    let (_root, src, data) = setup();
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = import(berth_non_root(), &src, &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chown -R"), "{stderr}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}

#[test]
fn files_the_user_may_not_hard_link_are_copied_and_the_import_completes() {
    let (_root, src, data) = setup();
    std::fs::create_dir(&data).unwrap();
    if as_root() {
        std::os::unix::fs::chown(&data, Some(NONROOT), Some(NONROOT)).unwrap();
    }
    let out = import(berth_non_root(), &src, &data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Root-owned files under protected_hardlinks may not be linked by
    // 65532; a user's own files may.
    let protected =
        std::fs::read_to_string("/proc/sys/fs/protected_hardlinks").is_ok_and(|v| v.trim() == "1");
    let expected = if as_root() && protected {
        "0 hard-linked, 2 copied"
    } else {
        "2 hard-linked, 0 copied"
    };
    assert!(stdout.contains(expected), "{expected:?} not in: {stdout}");
    assert!(stdout.contains("1 tags, 1 manifests, 2 blobs"), "{stdout}");
    let fsck = Command::new(BERTH)
        .args(["fsck", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

//! crashfs mounted for real: std::fs and SQLite through the kernel, then a crash.
#![cfg(target_os = "linux")] // crashfs is FUSE on Linux
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crashfs::{fuse_available, CrashFs};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// A mounted crashfs, or `None` (a skip) where FUSE is missing; with
/// `CI=true` a missing FUSE fails the test.
fn mount(dir: &Path, capacity: u64) -> Option<CrashFs> {
    if let Err(why) = fuse_available() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(CrashFs::mount(dir, capacity).expect("mount crashfs"))
}

fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

#[test]
fn only_what_was_fsynced_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(dir.path(), 16 * MIB) else {
        return;
    };
    let root = fs.path().to_path_buf();
    fs::create_dir_all(root.join("blobs/ab")).unwrap();
    sync_dir(&root.join("blobs"));
    sync_dir(&root);

    // Published the durable way: fsync the file, rename, fsync the folder.
    let mut tmp = File::create(root.join("tmp-1")).unwrap();
    tmp.write_all(b"durable").unwrap();
    tmp.sync_all().unwrap();
    fs::rename(root.join("tmp-1"), root.join("blobs/ab/durable")).unwrap();
    sync_dir(&root.join("blobs/ab"));
    // The fan-out folder's own name was made durable above; this one's not.
    fs::create_dir(root.join("blobs/cd")).unwrap();
    let mut f = File::create(root.join("blobs/cd/lost")).unwrap();
    f.write_all(b"lost").unwrap();
    f.sync_all().unwrap();
    sync_dir(&root.join("blobs/cd"));
    // Written, never fsynced, under a durable name.
    fs::write(root.join("blobs/ab/durable"), b"overwritten").unwrap();
    drop((tmp, f));

    fs.crash().unwrap();
    assert_eq!(fs::read(root.join("blobs/ab/durable")).unwrap(), b"durable");
    assert!(!root.join("blobs/cd").exists());
    assert!(!root.join("tmp-1").exists());
    let names: Vec<_> = fs::read_dir(root.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ab"]);
}

#[test]
fn sqlite_in_wal_mode_works_and_keeps_committed_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount(dir.path(), 64 * MIB) else {
        return;
    };
    let db_path = fs.path().join("meta.db");
    {
        let db = rusqlite::Connection::open(&db_path).unwrap();
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
        for k in 0..50 {
            db.execute("INSERT INTO t VALUES (?1, zeroblob(10000))", [k])
                .unwrap();
        }
        assert!(fs.path().join("meta.db-wal").exists());
        assert!(fs.path().join("meta.db-shm").exists());
        // Closed, not leaked: a descriptor this process still held on the
        // mount would make the unmount fail (and its exit wait on itself).
    }
    fs.crash().unwrap();
    let db = rusqlite::Connection::open(&db_path).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 50);
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn writes_past_capacity_fail_with_enospc_and_statfs_tells() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = mount(dir.path(), 4 * MIB) else {
        return;
    };
    let path = fs.path().join("big");
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all_at(&vec![7u8; 3 * MIB as usize], 0).unwrap();
    let err = f
        .write_all_at(&vec![7u8; 2 * MIB as usize], 3 * MIB)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    let stat = capacity_and_free(fs.path());
    assert_eq!(stat.0, 4 * MIB);
    assert!(stat.1 <= MIB, "free {}", stat.1);
    drop(f);
    fs::remove_file(&path).unwrap();
    assert_eq!(fs.used(), 0);
}

/// (capacity, free) in bytes as `df` would show them.
fn capacity_and_free(path: &Path) -> (u64, u64) {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%S %b %a"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let n: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (n[0] * n[1], n[0] * n[2])
}

//! `berth backup DIR`: a consistent copy of an embedded registry (data
//! folder with meta.db) while its server keeps running.
//!
//! The metadata is copied first with SQLite's online backup API, in one
//! step, so the copy is the database as of one instant (WAL readers do not
//! block the server's writer). Then every blob that copy names is brought
//! over (hard-linked when on the same filesystem, else copied and fsynced),
//! each verified against its digest. Blobs pushed after that instant are not
//! named, so not needed. The folder lock (`berth.lock`) is not taken: the
//! server holds it, and nothing here writes the source folder.

use crate::config::{Config, MetadataConfig, StorageConfig};
use crate::progress::{human_bytes, Bar};
use berth_oci::Digest;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Exit code when the backup failed (DIR holds a partial copy).
const FAILED: u8 = 1;
/// Exit code when it could not start (refused DIR, no registry).
const CANNOT_RUN: u8 = 2;

/// Small files of the data folder copied as they are, when present: the
/// token-signing key (tokens stay valid on a restored server) and the
/// default htpasswd.
const SMALL_FILES: [&str; 2] = ["auth/token-key.pem", "htpasswd"];

/// Bytes read at a time from a blob file.
const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error("metadata: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("blob {0} is named by the snapshot but missing from the data folder")]
    Missing(Digest),
    #[error("blob {expected} is damaged in the data folder: its bytes hash to {actual}")]
    Corrupt { expected: Digest, actual: Digest },
    #[error("the snapshot names a malformed digest {0:?}")]
    BadDigest(String),
}

impl BackupError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
        move |source| BackupError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A blob the snapshot names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub digest: Digest,
    pub size: u64,
    /// Named by a link or a manifest (not only a `blobs` row): its absence
    /// is a failure, not a collection that ran meanwhile.
    pub referenced: bool,
}

/// What a backup did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    pub blobs: u64,
    pub linked: u64,
    pub bytes: u64,
    /// Unreferenced blobs collected by the server after the snapshot.
    pub collected: u64,
}

/// Refuses a registry on S3 or PostgreSQL: their engines have backups of
/// their own, and `berth migrate` copies such a registry into a folder.
fn embedded(config: &Config) -> Result<(), String> {
    match (&config.storage, &config.metadata) {
        (StorageConfig::Filesystem, MetadataConfig::Sqlite) => Ok(()),
        _ => Err(
            "berth backup copies an embedded registry (filesystem and SQLite); \
                  for S3 or PostgreSQL use their own backups, or `berth migrate` into a folder"
                .into(),
        ),
    }
}

/// Backs up the data folder of `config` into `target`.
pub fn run(target: &Path, config: &Config) -> ExitCode {
    if let Err(why) = embedded(config) {
        eprintln!("berth backup: {why}");
        return ExitCode::from(CANNOT_RUN);
    }
    let started = Instant::now();
    let bar = Bar::bytes("backup");
    match backup(&config.data_dir, target, &bar) {
        Ok(report) => {
            bar.finish();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "backed up {} into {}: {} blobs ({} hard-linked), {} in {secs:.1} s",
                config.data_dir.display(),
                target.display(),
                report.blobs,
                report.linked,
                human_bytes(report.bytes),
            );
            ExitCode::SUCCESS
        }
        Err(BackupError::Refused(why)) => {
            eprintln!("berth backup: {why}");
            ExitCode::from(CANNOT_RUN)
        }
        Err(e) => {
            bar.finish();
            eprintln!(
                "berth backup: {e}; {} holds an incomplete copy: remove it",
                target.display()
            );
            ExitCode::from(FAILED)
        }
    }
}

/// The whole backup of `source` into `target`.
pub fn backup(source: &Path, target: &Path, bar: &Bar) -> Result<BackupReport, BackupError> {
    let source_db = source.join("meta.db");
    if !source_db.is_file() {
        return Err(BackupError::Refused(format!(
            "{} holds no berth registry (no meta.db)",
            source.display()
        )));
    }
    prepare_target(target)?;
    let target_db = target.join("meta.db");
    bar.set_message("metadata".into());
    snapshot(&source_db, &target_db)?;
    let wanted = settle_snapshot(&target_db)?;
    let total: u64 = wanted.iter().map(|w| w.size).sum();
    eprintln!(
        "backup: metadata copied; {} blobs ({}) to copy",
        wanted.len(),
        human_bytes(total)
    );
    bar.phase("blobs", total);
    let mut report = BackupReport::default();
    let mut vanished = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (i, blob) in wanted.iter().enumerate() {
        bar.set_message(format!("blob {}/{}", i + 1, wanted.len()));
        match copy_blob(source, target, &blob.digest, bar)? {
            Some(linked) => {
                report.blobs += 1;
                report.linked += u64::from(linked);
                report.bytes += blob.size;
                if let Some(dir) = blob_path(target, &blob.digest).parent() {
                    dirs.insert(dir.to_path_buf());
                }
            }
            None if blob.referenced => return Err(BackupError::Missing(blob.digest.clone())),
            None => vanished.push(blob.digest.clone()),
        }
    }
    forget_blobs(&target_db, &vanished)?;
    report.collected = vanished.len() as u64;
    for name in SMALL_FILES {
        copy_small_file(&source.join(name), &target.join(name))?;
    }
    // Directory entries last, deepest first: every file above is durable
    // under its name before the backup says it is done.
    let mut parents: Vec<PathBuf> = dirs.into_iter().collect();
    for dir in parents.clone() {
        parents.extend(dir.ancestors().skip(1).take(2).map(Path::to_path_buf));
    }
    parents.sort();
    parents.dedup();
    for dir in parents.iter().rev() {
        sync_dir(dir)?;
    }
    sync_dir(target)?;
    Ok(report)
}

/// Creates `target`, or accepts it empty; anything in it is refused, so a
/// backup never mixes with another's files.
fn prepare_target(target: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Refused(format!(
                    "{} is not empty: back up into a new or empty folder",
                    target.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(target).map_err(BackupError::io(target))
        }
        Err(e) => Err(BackupError::io(target)(e)),
    }
}

/// Copies the database at `source` into a new file `target` as of one
/// instant: the whole copy is one backup step, inside one read transaction.
pub fn snapshot(source: &Path, target: &Path) -> Result<(), BackupError> {
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    from.busy_timeout(Duration::from_secs(5))?;
    let mut to = Connection::open(target)?;
    {
        let backup = Backup::new(&from, &mut to)?;
        let mut waits = 0;
        loop {
            // -1: every page in this step, so no write of the server's
            // can land between two steps and restart the copy.
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    waits += 1;
                    if waits > 200 {
                        return Err(BackupError::Refused(
                            "the metadata stayed locked for 10 s; try again".into(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {}
            }
        }
    }
    // The copy holds everything in its main file: no WAL to carry along.
    to.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(to);
    File::open(target)
        .and_then(|f| f.sync_all())
        .map_err(BackupError::io(target))
}

/// Drops from the copied database what only the live server's process
/// meant (upload sessions whose bytes stay behind, publish claims, its
/// GC lease, tombstones of a collection under way) and lists the blobs it names.
pub fn settle_snapshot(db: &Path) -> Result<Vec<Wanted>, BackupError> {
    let conn = Connection::open(db)?;
    conn.execute_batch(
        "BEGIN;
         DELETE FROM uploads;
         DELETE FROM blob_claims;
         DELETE FROM leases;
         DELETE FROM blobs WHERE deleting_since IS NOT NULL;
         COMMIT;",
    )?;
    let mut statement = conn.prepare(
        "SELECT digest, max(size), max(referenced) FROM (
             SELECT digest, size, 0 AS referenced FROM blobs
             UNION ALL SELECT digest, size, 1 FROM repo_blobs
             UNION ALL SELECT digest, size, 1 FROM manifests
         ) GROUP BY digest ORDER BY digest",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    let mut wanted = Vec::new();
    for row in rows {
        let (digest, size, referenced) = row?;
        let digest: Digest = digest
            .parse()
            .map_err(|_| BackupError::BadDigest(digest.clone()))?;
        wanted.push(Wanted {
            digest,
            size: u64::try_from(size).unwrap_or(0),
            referenced: referenced != 0,
        });
    }
    Ok(wanted)
}

/// Removes the rows of unreferenced blobs the server collected before
/// their bytes could be copied.
fn forget_blobs(db: &Path, digests: &[Digest]) -> Result<(), BackupError> {
    if digests.is_empty() {
        return Ok(());
    }
    let mut conn = Connection::open(db)?;
    let tx = conn.transaction()?;
    for digest in digests {
        tx.execute("DELETE FROM blobs WHERE digest = ?1", [digest.to_string()])?;
    }
    tx.commit()?;
    Ok(())
}

/// Where the filesystem store keeps `digest` under `root`.
fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    root.join("blobs")
        .join(digest.algorithm().as_str())
        .join(&hex[..2.min(hex.len())])
        .join(hex)
}

/// Brings blob `digest` from `source` into `target`, verified: `Some(true)`
/// hard-linked, `Some(false)` copied, `None` absent from `source`.
fn copy_blob(
    source: &Path,
    target: &Path,
    digest: &Digest,
    bar: &Bar,
) -> Result<Option<bool>, BackupError> {
    let from = blob_path(source, digest);
    let to = blob_path(target, digest);
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(BackupError::io(dir))?;
    }
    match std::fs::hard_link(&from, &to) {
        Ok(()) => {
            // Shared bytes are still read once: a damaged source must not
            // make a backup that only looks whole.
            let file = File::open(&to).map_err(BackupError::io(&to))?;
            let actual = hash_into(file, None, digest, bar).map_err(BackupError::io(&to))?;
            if actual != *digest {
                let _ = std::fs::remove_file(&to);
                return Err(BackupError::Corrupt {
                    expected: digest.clone(),
                    actual,
                });
            }
            return Ok(Some(true));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // Another filesystem (EXDEV), or links not allowed: copy instead.
        Err(_) => {}
    }
    let file = match File::open(&from) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BackupError::io(&from)(e)),
    };
    let partial = to.with_extension("partial");
    let mut out = File::create(&partial).map_err(BackupError::io(&partial))?;
    let actual = hash_into(file, Some(&mut out), digest, bar).map_err(BackupError::io(&from))?;
    out.sync_all().map_err(BackupError::io(&partial))?;
    if actual != *digest {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::Corrupt {
            expected: digest.clone(),
            actual,
        });
    }
    std::fs::rename(&partial, &to).map_err(BackupError::io(&to))?;
    Ok(Some(false))
}

/// Hashes `file` with `digest`'s algorithm, writing it to `out` if given.
fn hash_into(
    mut file: File,
    mut out: Option<&mut File>,
    digest: &Digest,
    bar: &Bar,
) -> io::Result<Digest> {
    let mut hasher = digest.algorithm().hasher();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        if let Some(out) = out.as_mut() {
            out.write_all(chunk)?;
        }
        bar.advance(n as u64);
    }
    Ok(hasher.finish())
}

fn copy_small_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    if !from.is_file() {
        return Ok(());
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(BackupError::io(dir))?;
    }
    std::fs::copy(from, to).map_err(BackupError::io(from))?;
    File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(BackupError::io(to))?;
    if let Some(dir) = to.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(BackupError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_empty_target_is_refused_and_a_missing_one_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("new/backup");
        prepare_target(&target).unwrap();
        assert!(target.is_dir());
        prepare_target(&target).unwrap();
        std::fs::write(target.join("x"), "").unwrap();
        assert!(matches!(
            prepare_target(&target),
            Err(BackupError::Refused(_))
        ));
    }

    #[test]
    fn a_damaged_blob_is_refused_and_not_left_in_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("s"), dir.path().join("t"));
        let digest = Digest::sha256_of(b"hello");
        let path = blob_path(&source, &digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"hellO").unwrap();
        let bar = Bar::bytes("test");
        assert!(matches!(
            copy_blob(&source, &target, &digest, &bar),
            Err(BackupError::Corrupt { .. })
        ));
        assert!(!blob_path(&target, &digest).exists());
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(
            copy_blob(&source, &target, &digest, &bar).unwrap(),
            Some(true)
        );
        let absent = Digest::sha256_of(b"gone");
        assert_eq!(copy_blob(&source, &target, &absent, &bar).unwrap(), None);
    }
}

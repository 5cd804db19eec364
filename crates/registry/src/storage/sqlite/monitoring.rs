//! What probes and metrics ask of the database: is it the file berth
//! opened and does it answer, and how much does it hold.

use super::storage_err;
use crate::error::{Error, Result};
use crate::storage::StoreStats;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// The database file berth opened. Open connections keep reading a file
/// that was moved or deleted, and writes to it would be lost at the next
/// start, so readiness also asks whether its path still names that file.
pub(super) struct OpenedFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl OpenedFile {
    pub fn of(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(storage_err)?;
        Ok(OpenedFile {
            path: path.to_path_buf(),
            identity: identity(&meta),
        })
    }

    /// Fails when nothing, or another file, is at the path now.
    pub fn check(&self) -> Result<()> {
        let path = self.path.display();
        let meta = std::fs::metadata(&self.path).map_err(|e| {
            Error::storage(format!(
                "database file {path}: {e} (moved or deleted while berth runs)"
            ))
        })?;
        if identity(&meta) != self.identity {
            return Err(Error::storage(format!(
                "database file {path} is not the file berth opened (replaced while berth runs)"
            )));
        }
        Ok(())
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

/// Elsewhere only the file's presence is checked.
#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// A query that reads the schema page, so a connection that cannot read
/// the file fails it.
pub(super) fn answers(c: &Connection) -> rusqlite::Result<()> {
    c.prepare_cached("SELECT count(*) FROM sqlite_master")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|_| ())
}

/// Totals over every table; each a full scan of one table or index.
pub(super) fn stats(c: &Connection) -> rusqlite::Result<StoreStats> {
    let count = |sql: &str| {
        c.prepare_cached(sql)?
            .query_row([], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    let repositories = count(
        "SELECT count(*) FROM repositories r
         WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)",
    )?;
    let manifests = count("SELECT count(*) FROM manifests")?;
    let uploads = count("SELECT count(*) FROM uploads")?;
    let (blobs, blob_bytes) = c
        .prepare_cached(
            "SELECT count(*), coalesce(sum(size), 0)
             FROM (SELECT max(size) AS size FROM repo_blobs GROUP BY digest)",
        )?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    Ok(StoreStats {
        repositories,
        manifests,
        blobs: u64::try_from(blobs).unwrap_or(0),
        blob_bytes: u64::try_from(blob_bytes).unwrap_or(0),
        uploads,
    })
}

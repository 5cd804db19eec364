//! Queries on which repository may read which blob.

use super::{ensure_repo, refuse_if_referenced, storage_err, REPO_ID};
use crate::error::Result;
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn link(tx: &Connection, repo: &str, digest: &str, size: u64) -> Result<()> {
    let id = ensure_repo(tx, repo)?;
    tx.execute(
        "INSERT OR IGNORE INTO repo_blobs (repo_id, digest, size) VALUES (?1, ?2, ?3)",
        params![id, digest, size as i64],
    )
    .map_err(storage_err)?;
    Ok(())
}

pub(super) fn size(c: &Connection, repo: &str, digest: &str) -> rusqlite::Result<Option<u64>> {
    let size: Option<i64> = c
        .prepare_cached(&format!(
            "SELECT size FROM repo_blobs WHERE repo_id = {REPO_ID} AND digest = ?2"
        ))?
        .query_row(params![repo, digest], |r| r.get(0))
        .optional()?;
    Ok(size.map(|s| s as u64))
}

/// Unlinks a blob no manifest of `repo` refers to; whether it was linked.
pub(super) fn unlink(tx: &Connection, repo: &str, digest: &str) -> Result<bool> {
    refuse_if_referenced(tx, repo, digest)?;
    tx.execute(
        &format!("DELETE FROM repo_blobs WHERE repo_id = {REPO_ID} AND digest = ?2"),
        [repo, digest],
    )
    .map(|n| n > 0)
    .map_err(storage_err)
}

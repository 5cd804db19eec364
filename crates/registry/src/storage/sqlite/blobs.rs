//! Queries on which repository may read which blob.

use super::{ensure_repo, now, refuse_if_referenced, storage_err, REPO_ID};
use crate::error::Result;
use rusqlite::{params, Connection, OptionalExtension};

/// Links a blob to `repo` and touches both. With `claim` (a publish that
/// has just written the bytes) the blob's row is created or refreshed and
/// the claim released; without (a mount) the blob must be known already.
/// Nothing is linked to a tombstoned blob. Whether it linked.
pub(super) fn link(
    tx: &Connection,
    repo: &str,
    digest: &str,
    size: u64,
    claim: Option<&str>,
) -> Result<bool> {
    let now = now();
    let state: Option<Option<i64>> = tx
        .prepare_cached("SELECT deleting_since FROM blobs WHERE digest = ?1")
        .and_then(|mut q| q.query_row([digest], |r| r.get(0)).optional())
        .map_err(storage_err)?;
    match (state, claim) {
        (Some(Some(_)), _) => return Ok(false), // being deleted
        (None, None) => return Ok(false),       // a mount of bytes that are gone
        _ => {}
    }
    if claim.is_some() {
        tx.prepare_cached(
            "INSERT INTO blobs (digest, size, touched_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (digest) DO UPDATE
               SET size = excluded.size, touched_at = max(touched_at, excluded.touched_at)",
        )
        .and_then(|mut q| q.execute(params![digest, size as i64, now]))
        .map_err(storage_err)?;
    } else {
        tx.prepare_cached("UPDATE blobs SET touched_at = max(touched_at, ?2) WHERE digest = ?1")
            .and_then(|mut q| q.execute(params![digest, now]))
            .map_err(storage_err)?;
    }
    let id = ensure_repo(tx, repo)?;
    tx.prepare_cached(
        "INSERT INTO repo_blobs (repo_id, digest, size, touched_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (repo_id, digest) DO UPDATE
           SET touched_at = max(touched_at, excluded.touched_at)",
    )
    .and_then(|mut q| q.execute(params![id, digest, size as i64, now]))
    .map_err(storage_err)?;
    if let Some(claim) = claim {
        super::gc::release_claim(tx, claim)?;
    }
    Ok(true)
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

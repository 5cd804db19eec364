//! Leases, shared secrets and the whole-repository listings that
//! `berth migrate` walks.

use super::{now, parse_digest, storage_err, REPO_ID};
use crate::error::Result;
use crate::storage::ManifestRow;
use rusqlite::{params, Connection};

/// Takes or renews `name` for `holder` until `until`, unless another
/// holder's lease is still running; whether `holder` has it now.
pub(super) fn try_lease(tx: &Connection, name: &str, holder: &str, until: i64) -> Result<bool> {
    let taken = tx
        .execute(
            "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE leases.holder = excluded.holder OR leases.until < ?4",
            params![name, holder, until, now()],
        )
        .map_err(storage_err)?;
    Ok(taken > 0)
}

pub(super) fn release_lease(tx: &Connection, name: &str, holder: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
        params![name, holder],
    )
    .map_err(storage_err)?;
    Ok(())
}

/// The value under `name`, storing `candidate` first if there is none.
pub(super) fn shared_secret(tx: &Connection, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
    tx.execute(
        "INSERT INTO shared_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![name, candidate],
    )
    .map_err(storage_err)?;
    tx.query_row(
        "SELECT value FROM shared_secrets WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .map_err(storage_err)
}

pub(super) fn links(
    c: &Connection,
    repo: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<(berth_oci::Digest, u64)>> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT digest, size FROM repo_blobs WHERE repo_id = {REPO_ID} AND digest > ?2
             ORDER BY digest LIMIT ?3"
        ))
        .and_then(|mut q| {
            q.query_map(params![repo, after, limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(storage_err)?;
    rows.into_iter()
        .map(|(digest, size)| Ok((parse_digest(digest)?, size as u64)))
        .collect()
}

pub(super) fn manifests(
    c: &Connection,
    repo: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<ManifestRow>> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT digest, media_type, size FROM manifests WHERE repo_id = {REPO_ID}
               AND digest > ?2 ORDER BY digest LIMIT ?3"
        ))
        .and_then(|mut q| {
            q.query_map(params![repo, after, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(storage_err)?;
    rows.into_iter()
        .map(|(digest, media_type, size)| {
            Ok(ManifestRow {
                digest: parse_digest(digest)?,
                media_type,
                size: size as u64,
            })
        })
        .collect()
}

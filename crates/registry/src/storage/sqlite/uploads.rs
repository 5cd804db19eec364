//! Queries on upload sessions.

use super::storage_err;
use crate::error::{Error, Result};
use crate::storage::{UploadLimits, UploadProgress, UploadSession};
use rusqlite::{params, Connection, OptionalExtension};

fn count(tx: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<usize> {
    tx.prepare_cached(sql)
        .and_then(|mut q| q.query_row(args, |r| r.get::<_, i64>(0)))
        .map(|n| n as usize)
        .map_err(storage_err)
}

pub(super) fn create(tx: &Connection, s: &UploadSession, limits: UploadLimits) -> Result<()> {
    if count(tx, "SELECT count(*) FROM uploads", [])? >= limits.total {
        return Err(Error::TooManyUploads {
            limit: limits.total,
            per_client: false,
        });
    }
    let client = s.client.map(|c| c.to_string());
    if let Some(client) = &client {
        let sql = "SELECT count(*) FROM uploads WHERE client = ?1";
        if count(tx, sql, [client])? >= limits.per_client {
            return Err(Error::TooManyUploads {
                limit: limits.per_client,
                per_client: true,
            });
        }
    }
    tx.execute(
        "INSERT INTO uploads (id, repository, bytes, updated_at, client, hash_state, store_state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.id,
            s.repository.as_str(),
            s.offset as i64,
            s.updated_at,
            client,
            s.hash_state,
            s.store_state,
        ],
    )
    .map_err(storage_err)?;
    Ok(())
}

pub(super) fn get(c: &Connection, id: &str) -> Result<Option<UploadSession>> {
    let row = c
        .prepare_cached(
            "SELECT repository, bytes, updated_at, client, hash_state, store_state
             FROM uploads WHERE id = ?1",
        )
        .and_then(|mut q| {
            q.query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })
            .optional()
        })
        .map_err(storage_err)?;
    row.map(
        |(repo, offset, updated_at, client, hash_state, store_state)| {
            Ok(UploadSession {
                id: id.to_string(),
                repository: repo.parse().map_err(storage_err)?,
                offset: offset as u64,
                updated_at,
                client: client.and_then(|c| c.parse().ok()),
                hash_state,
                store_state,
            })
        },
    )
    .transpose()
}

/// Moves a session from `from` bytes to `to`, if it still holds `from`
/// bytes. `None` if there is no such session.
pub(super) fn advance(
    tx: &Connection,
    id: &str,
    from: u64,
    to: &UploadProgress,
    updated_at: i64,
) -> Result<Option<bool>> {
    let moved = tx
        .execute(
            "UPDATE uploads SET bytes = ?3, hash_state = ?4, store_state = ?5, updated_at = ?6
             WHERE id = ?1 AND bytes = ?2",
            params![
                id,
                from as i64,
                to.offset as i64,
                to.hash_state,
                to.store_state,
                updated_at
            ],
        )
        .map_err(storage_err)?;
    if moved > 0 {
        return Ok(Some(true));
    }
    let exists = tx
        .prepare_cached("SELECT 1 FROM uploads WHERE id = ?1")
        .and_then(|mut q| q.exists([id]))
        .map_err(storage_err)?;
    Ok(exists.then_some(false))
}

pub(super) fn delete(tx: &Connection, id: &str) -> Result<()> {
    tx.execute("DELETE FROM uploads WHERE id = ?1", [id])
        .map_err(storage_err)?;
    Ok(())
}

pub(super) fn stale(c: &Connection, cutoff: i64) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached("SELECT id FROM uploads WHERE updated_at < ?1")?
        .query_map([cutoff], |r| r.get(0))?
        .collect()
}

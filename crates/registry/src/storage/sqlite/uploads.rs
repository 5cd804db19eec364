//! Queries on upload sessions.

use super::storage_err;
use crate::error::Result;
use crate::storage::UploadSession;
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn create(tx: &Connection, s: &UploadSession) -> Result<()> {
    tx.execute(
        "INSERT INTO uploads (id, repository, bytes, updated_at) VALUES (?1, ?2, ?3, ?4)",
        params![s.id, s.repository.as_str(), s.offset as i64, s.updated_at],
    )
    .map_err(storage_err)?;
    Ok(())
}

pub(super) fn get(c: &Connection, id: &str) -> Result<Option<UploadSession>> {
    let row = c
        .prepare_cached("SELECT repository, bytes, updated_at FROM uploads WHERE id = ?1")
        .and_then(|mut q| {
            q.query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
        })
        .map_err(storage_err)?;
    row.map(|(repo, offset, updated_at)| {
        Ok(UploadSession {
            id: id.to_string(),
            repository: repo.parse().map_err(storage_err)?,
            offset: offset as u64,
            updated_at,
        })
    })
    .transpose()
}

/// Moves a session's offset; whether the session exists.
pub(super) fn set_offset(tx: &Connection, id: &str, offset: u64, updated_at: i64) -> Result<bool> {
    tx.execute(
        "UPDATE uploads SET bytes = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, offset as i64, updated_at],
    )
    .map(|n| n > 0)
    .map_err(storage_err)
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

//! Deleting a whole repository: its tags, manifests, references, links and
//! its own row, in the one transaction the caller runs this in.

use super::storage_err;
use crate::error::Result;
use crate::storage::RepositoryDeleted;
use rusqlite::{Connection, OptionalExtension};

/// Deletes repository `name` and everything it holds; `None` if there is
/// no such repository. Blobs stay in the store for GC, which decides after
/// the grace period whether another repository still wants them.
pub(super) fn delete(tx: &Connection, name: &str) -> Result<Option<RepositoryDeleted>> {
    let id: Option<i64> = tx
        .query_row("SELECT id FROM repositories WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
        .map_err(storage_err)?;
    let Some(id) = id else { return Ok(None) };
    let remove = |table: &str| {
        tx.execute(&format!("DELETE FROM {table} WHERE repo_id = ?1"), [id])
            .map(|n| n as u64)
            .map_err(storage_err)
    };
    let tags = remove("tags")?;
    remove("manifest_refs")?;
    let manifests = remove("manifests")?;
    remove("repo_blobs")?;
    tx.execute("DELETE FROM repositories WHERE id = ?1", [id])
        .map_err(storage_err)?;
    Ok(Some(RepositoryDeleted { tags, manifests }))
}

//! Deleting a whole repository: its tags, manifests, references, links and
//! its own row, in the one transaction the caller runs this in.

use super::db::{exec, opt, Sql};
use super::now;
use crate::storage::RepositoryDeleted;
use deadpool_postgres::Transaction;

/// Deletes repository `name` and everything it holds; `None` if there is
/// no such repository. Blobs stay in the store for GC, which decides after
/// the grace period whether another repository still wants them.
pub(super) async fn delete(tx: &Transaction<'_>, name: &str) -> Sql<Option<RepositoryDeleted>> {
    let row = opt(tx, "SELECT id FROM repositories WHERE name = $1", &[&name]).await?;
    let Some(id) = row.map(|r| r.get::<_, i64>(0)) else {
        return Ok(None);
    };
    // Restarts the grace period of every blob the repository links or
    // holds as a manifest: once it is gone they may be unreferenced, and
    // GC must wait the whole grace before removing them.
    exec(
        tx,
        "UPDATE blobs SET touched_at = GREATEST(touched_at, $2)
         WHERE digest IN (SELECT digest FROM repo_blobs WHERE repo_id = $1
                          UNION SELECT digest FROM manifests WHERE repo_id = $1)",
        &[&id, &now()],
    )
    .await?;
    let remove = |table: &str| format!("DELETE FROM {table} WHERE repo_id = $1");
    let tags = exec(tx, &remove("tags"), &[&id]).await?;
    exec(tx, &remove("manifest_refs"), &[&id]).await?;
    let manifests = exec(tx, &remove("manifests"), &[&id]).await?;
    exec(tx, &remove("repo_blobs"), &[&id]).await?;
    exec(tx, &remove("cached_tags"), &[&id]).await?;
    exec(tx, &remove("cached_repositories"), &[&id]).await?;
    exec(tx, "DELETE FROM repositories WHERE id = $1", &[&id]).await?;
    Ok(Some(RepositoryDeleted { tags, manifests }))
}

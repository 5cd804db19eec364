//! Queries on which repository may read which blob.

use super::db::{exec, opt, unsigned, Sql};
use super::{ensure_repo, now, refuse_if_referenced, REPO_ID};
use deadpool_postgres::{Client, Transaction};

/// Links a blob to `repo` and touches both. With `claim` (a publish that
/// has just written the bytes) the blob's row is created or refreshed and
/// the claim released; without (a mount) the blob must be known already.
/// Nothing is linked to a tombstoned blob, nor under a claim whose lease
/// ended. Whether it linked.
pub(super) async fn link(
    tx: &Transaction<'_>,
    repo: &str,
    digest: &str,
    size: u64,
    claim: Option<&str>,
) -> Sql<bool> {
    let now = now();
    let size = size as i64;
    let state = opt(
        tx,
        "SELECT deleting_since FROM blobs WHERE digest = $1",
        &[&digest],
    )
    .await?;
    let state: Option<Option<i64>> = state.map(|r| r.get(0));
    match (state, claim) {
        (Some(Some(_)), _) => return Ok(false), // being deleted
        (None, None) => return Ok(false),       // a mount of bytes that are gone
        _ => {}
    }
    if let Some(claim) = claim {
        if !super::gc::claim_holds(tx, claim, now).await? {
            return Ok(false); // its lease ended: the bytes may have been collected
        }
        exec(
            tx,
            "INSERT INTO blobs (digest, size, touched_at) VALUES ($1, $2, $3)
             ON CONFLICT (digest) DO UPDATE
               SET size = excluded.size,
                   touched_at = GREATEST(blobs.touched_at, excluded.touched_at)",
            &[&digest, &size, &now],
        )
        .await?;
    } else {
        exec(
            tx,
            "UPDATE blobs SET touched_at = GREATEST(touched_at, $2) WHERE digest = $1",
            &[&digest, &now],
        )
        .await?;
    }
    let id = ensure_repo(tx, repo).await?;
    exec(
        tx,
        "INSERT INTO repo_blobs (repo_id, digest, size, touched_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repo_id, digest) DO UPDATE
           SET touched_at = GREATEST(repo_blobs.touched_at, excluded.touched_at)",
        &[&id, &digest, &size, &now],
    )
    .await?;
    if let Some(claim) = claim {
        super::gc::release_claim(tx, claim).await?;
    }
    Ok(true)
}

/// A blob's size in (repository, digest). Hot (every blob HEAD and GET):
/// one constant statement over primary keys, prepared once per connection.
pub(super) const SIZE: &str = "SELECT b.size FROM repo_blobs b
     JOIN repositories r ON r.id = b.repo_id
     WHERE r.name = $1 AND b.digest = $2";

pub(super) async fn size(c: &Client, repo: &str, digest: &str) -> Sql<Option<u64>> {
    let row = opt(c, SIZE, &[&repo, &digest]).await?;
    Ok(row.map(|r| unsigned(r.get(0))))
}

/// Unlinks a blob no manifest of `repo` refers to; whether it was linked.
pub(super) async fn unlink(tx: &Transaction<'_>, repo: &str, digest: &str) -> Sql<bool> {
    refuse_if_referenced(tx, repo, digest).await?;
    let sql = format!("DELETE FROM repo_blobs WHERE repo_id = {REPO_ID} AND digest = $2");
    Ok(exec(tx, &sql, &[&repo, &digest]).await? > 0)
}

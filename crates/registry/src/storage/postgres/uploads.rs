//! Queries on upload sessions.

use super::db::{all, exec, one, opt, unsigned, Sql};
use crate::error::Error;
use crate::storage::{UploadLimits, UploadProgress, UploadSession};
use deadpool_postgres::{Client, Transaction};

async fn count(tx: &Transaction<'_>, sql: &str, args: super::db::Params<'_>) -> Sql<usize> {
    let n: i64 = one(tx, sql, args).await?.get(0);
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Records `s` unless that takes the open sessions past `limits`. The
/// counts and the insert are one serializable transaction, so two replicas
/// creating the last allowed session at once cannot both succeed.
pub(super) async fn create(
    tx: &Transaction<'_>,
    s: &UploadSession,
    limits: UploadLimits,
) -> Sql<()> {
    if count(tx, "SELECT count(*) FROM uploads", &[]).await? >= limits.total {
        return Err(Error::TooManyUploads {
            limit: limits.total,
            per_client: false,
        }
        .into());
    }
    let client = s.client.map(|c| c.to_string());
    if let Some(client) = &client {
        let sql = "SELECT count(*) FROM uploads WHERE client = $1";
        if count(tx, sql, &[client]).await? >= limits.per_client {
            return Err(Error::TooManyUploads {
                limit: limits.per_client,
                per_client: true,
            }
            .into());
        }
    }
    exec(
        tx,
        "INSERT INTO uploads (id, repository, bytes, updated_at, client, hash_state, store_state)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &s.id,
            &s.repository.as_str(),
            &(s.offset as i64),
            &s.updated_at,
            &client,
            &s.hash_state,
            &s.store_state,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn get(c: &Client, id: &str) -> Sql<Option<UploadSession>> {
    let row = opt(
        c,
        "SELECT repository, bytes, updated_at, client, hash_state, store_state
         FROM uploads WHERE id = $1",
        &[&id],
    )
    .await?;
    row.map(|r| {
        let repository: String = r.get(0);
        let client: Option<String> = r.get(3);
        Ok(UploadSession {
            id: id.to_string(),
            repository: repository.parse().map_err(Error::storage)?,
            offset: unsigned(r.get(1)),
            updated_at: r.get(2),
            client: client.and_then(|c| c.parse().ok()),
            hash_state: r.get(4),
            store_state: r.get(5),
        })
    })
    .transpose()
}

/// Moves a session from `from` bytes to `to`, if it still holds `from`
/// bytes; `None` if there is no such session. Two replicas advancing from
/// the same offset update the same row: the second waits for the first,
/// then fails to serialize, and its retry finds the offset moved.
pub(super) async fn advance(
    tx: &Transaction<'_>,
    id: &str,
    from: u64,
    to: &UploadProgress,
    updated_at: i64,
) -> Sql<Option<bool>> {
    let moved = exec(
        tx,
        "UPDATE uploads SET bytes = $3, hash_state = $4, store_state = $5, updated_at = $6
         WHERE id = $1 AND bytes = $2",
        &[
            &id,
            &(from as i64),
            &(to.offset as i64),
            &to.hash_state,
            &to.store_state,
            &updated_at,
        ],
    )
    .await?;
    if moved > 0 {
        return Ok(Some(true));
    }
    let exists = super::db::exists(tx, "SELECT 1 FROM uploads WHERE id = $1", &[&id]).await?;
    Ok(exists.then_some(false))
}

pub(super) async fn delete(tx: &Transaction<'_>, id: &str) -> Sql<()> {
    exec(tx, "DELETE FROM uploads WHERE id = $1", &[&id]).await?;
    Ok(())
}

pub(super) async fn stale(c: &Client, cutoff: i64) -> Sql<Vec<String>> {
    let rows = all(
        c,
        "SELECT id FROM uploads WHERE updated_at < $1",
        &[&cutoff],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

//! What probes and metrics ask of the database: does it answer with the
//! schema berth migrated, and how much does it hold.

use super::db::{one, unsigned, Sql};
use crate::storage::StoreStats;
use deadpool_postgres::GenericClient;

/// Reads the schema version: fails when the server does not answer, or the
/// database no longer holds berth's tables (dropped, or another one).
pub(super) async fn answers(c: &impl GenericClient) -> Sql<()> {
    one(c, "SELECT version FROM berth_schema", &[]).await?;
    Ok(())
}

/// Totals over every table; each a full scan of one table or index.
pub(super) async fn stats(c: &impl GenericClient) -> Sql<StoreStats> {
    let row = one(
        c,
        "SELECT
           (SELECT count(*) FROM repositories r
            WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)),
           (SELECT count(*) FROM manifests),
           (SELECT count(*) FROM uploads),
           (SELECT count(*) FROM (SELECT 1 FROM repo_blobs GROUP BY digest) AS d),
           (SELECT coalesce(sum(size), 0)::bigint
            FROM (SELECT max(size) AS size FROM repo_blobs GROUP BY digest) AS s)",
        &[],
    )
    .await?;
    Ok(StoreStats {
        repositories: unsigned(row.get(0)),
        manifests: unsigned(row.get(1)),
        uploads: unsigned(row.get(2)),
        blobs: unsigned(row.get(3)),
        blob_bytes: unsigned(row.get(4)),
    })
}

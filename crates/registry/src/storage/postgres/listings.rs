//! Queries that list: tags, repositories, referrers.

use super::db::{all, exists, unsigned, Sql};
use super::{parse_digest, REPO_ID};
use crate::storage::{ManifestRow, ReferrerRecord};
use berth_oci::Digest;
use deadpool_postgres::GenericClient;

/// Whether `repo` holds a manifest: a repository without one is unknown.
pub(super) async fn holds_manifests(c: &impl GenericClient, repo: &str) -> Sql<bool> {
    let sql = format!("SELECT 1 FROM manifests WHERE repo_id = {REPO_ID} LIMIT 1");
    exists(c, &sql, &[&repo]).await
}

/// Up to `limit` tags after `last`; `None` if `repo` holds no manifest.
pub(super) async fn tags(
    c: &impl GenericClient,
    repo: &str,
    last: &str,
    limit: usize,
) -> Sql<Option<Vec<String>>> {
    if !holds_manifests(c, repo).await? {
        return Ok(None);
    }
    let sql = format!(
        "SELECT name FROM tags WHERE repo_id = {REPO_ID} AND name > $2
         ORDER BY name LIMIT $3"
    );
    let rows = all(c, &sql, &[&repo, &last, &(limit as i64)]).await?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

pub(super) async fn repositories(
    c: &impl GenericClient,
    last: &str,
    limit: usize,
) -> Sql<Vec<String>> {
    let rows = all(
        c,
        "SELECT name FROM repositories r WHERE name > $1
           AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
         ORDER BY name LIMIT $2",
        &[&last, &(limit as i64)],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn referrers(
    c: &impl GenericClient,
    repo: &str,
    subject: &str,
    artifact_type: Option<&str>,
    last: &str,
    limit: usize,
) -> Sql<Vec<ReferrerRecord>> {
    let sql = format!(
        "SELECT digest, media_type, size, artifact_type, annotations FROM manifests
         WHERE repo_id = {REPO_ID} AND subject = $2
           AND ($3::text IS NULL OR artifact_type = $3) AND digest > $4
         ORDER BY digest LIMIT $5"
    );
    let rows = all(
        c,
        &sql,
        &[&repo, &subject, &artifact_type, &last, &(limit as i64)],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReferrerRecord {
                digest: parse_digest(r.get(0))?,
                media_type: r.get(1),
                size: unsigned(r.get(2)),
                artifact_type: r.get(3),
                annotations: r.get(4),
            })
        })
        .collect()
}

/// Up to `limit` blobs linked to `repo` after digest `after`, by digest.
pub(super) async fn links(
    c: &impl GenericClient,
    repo: &str,
    after: &str,
    limit: usize,
) -> Sql<Vec<(Digest, u64)>> {
    let sql = format!(
        "SELECT digest, size FROM repo_blobs WHERE repo_id = {REPO_ID} AND digest > $2
         ORDER BY digest LIMIT $3"
    );
    let rows = all(c, &sql, &[&repo, &after, &(limit as i64)]).await?;
    rows.iter()
        .map(|r| Ok((parse_digest(r.get(0))?, unsigned(r.get(1)))))
        .collect()
}

/// Up to `limit` manifests of `repo` after digest `after`, by digest.
pub(super) async fn manifests(
    c: &impl GenericClient,
    repo: &str,
    after: &str,
    limit: usize,
) -> Sql<Vec<ManifestRow>> {
    let sql = format!(
        "SELECT digest, media_type, size FROM manifests WHERE repo_id = {REPO_ID}
           AND digest > $2 ORDER BY digest LIMIT $3"
    );
    let rows = all(c, &sql, &[&repo, &after, &(limit as i64)]).await?;
    rows.iter()
        .map(|r| {
            Ok(ManifestRow {
                digest: parse_digest(r.get(0))?,
                media_type: r.get(1),
                size: unsigned(r.get(2)),
            })
        })
        .collect()
}

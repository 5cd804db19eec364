//! Queries behind browsing: repository summaries, tag details, manifest
//! facts and the overview. Each answers a whole page in one statement;
//! per-row numbers are correlated subqueries over primary-key indexes.

use super::db::{all, one, opt, unsigned, Sql};
use super::listings::holds_manifests;
use super::{parse_digest, REPO_ID};
use crate::storage::{CacheOrigin, ManifestFacts, Overview, RepositorySummary, TagCursor, TagRow};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

/// Summaries of the repositories `filter` selects (`WHERE` conditions on
/// `r`), by name; each number a correlated subquery over a primary-key
/// index, so a page is one statement whatever its size.
fn summaries_sql(filter: &str) -> String {
    format!(
        "SELECT r.name,
           (SELECT count(*) FROM tags t WHERE t.repo_id = r.id),
           (SELECT count(*) FROM manifests m WHERE m.repo_id = r.id),
           (SELECT coalesce(sum(b.size), 0)::bigint FROM repo_blobs b WHERE b.repo_id = r.id),
           GREATEST((SELECT max(m.pushed_at) FROM manifests m WHERE m.repo_id = r.id),
                    coalesce((SELECT max(t.updated_at) FROM tags t WHERE t.repo_id = r.id), 0)),
           c.upstream, c.remote, c.checked_at
         FROM repositories r
         LEFT JOIN cached_repositories c ON c.repo_id = r.id
         WHERE {filter} AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
         ORDER BY r.name"
    )
}

fn summary(r: &Row) -> RepositorySummary {
    RepositorySummary {
        name: r.get(0),
        tag_count: unsigned(r.get(1)),
        manifest_count: unsigned(r.get(2)),
        size_bytes: unsigned(r.get(3)),
        last_push: r.get(4),
        cached_from: match (r.get(5), r.get(6)) {
            (Some(upstream), Some(remote)) => Some(CacheOrigin {
                upstream,
                remote,
                checked_at: r.get(7),
            }),
            _ => None,
        },
    }
}

/// The summary of `name`, if it holds manifests.
pub(super) async fn repository_summary(
    c: &impl GenericClient,
    name: &str,
) -> Sql<Option<RepositorySummary>> {
    let row = opt(c, &summaries_sql("r.name = $1"), &[&name]).await?;
    Ok(row.as_ref().map(summary))
}

pub(super) async fn repository_summaries(
    c: &impl GenericClient,
    filter: Option<&str>,
    last: &str,
    limit: usize,
) -> Sql<Vec<RepositorySummary>> {
    let sql =
        summaries_sql("r.name > $1 AND ($2::text IS NULL OR strpos(r.name, $2) > 0)") + " LIMIT $3";
    let rows = all(c, &sql, &[&last, &filter, &(limit as i64)]).await?;
    Ok(rows.iter().map(summary).collect())
}

/// Sizes of the manifest `t.digest`, of the distinct blobs it and its
/// children name, and of its child manifests, inside a query over `tags t`.
const TAG_SIZE: &str = "m.size
    + (SELECT coalesce(sum(b.size), 0) FROM repo_blobs b
       WHERE b.repo_id = t.repo_id AND b.digest IN (
         SELECT r.child FROM manifest_refs r
         WHERE r.repo_id = t.repo_id AND r.manifest = t.digest
         UNION
         SELECT r2.child FROM manifest_refs r1
         JOIN manifest_refs r2 ON r2.repo_id = r1.repo_id AND r2.manifest = r1.child
         WHERE r1.repo_id = t.repo_id AND r1.manifest = t.digest))
    + (SELECT coalesce(sum(c.size), 0) FROM manifests c
       WHERE c.repo_id = t.repo_id AND c.digest IN (
         SELECT r.child FROM manifest_refs r
         WHERE r.repo_id = t.repo_id AND r.manifest = t.digest))";

/// Up to `limit` tags of `repo` newest first, then by name, after `after`;
/// `None` if `repo` holds no manifest.
pub(super) async fn tag_details(
    c: &impl GenericClient,
    repo: &str,
    after: Option<&TagCursor>,
    limit: usize,
) -> Sql<Option<Vec<TagRow>>> {
    if !holds_manifests(c, repo).await? {
        return Ok(None);
    }
    // No cursor is a cursor after every tag: one statement, which the
    // (repo_id, updated_at DESC, name) index seeks to.
    let (time, name) = match after {
        Some(a) => (a.pushed_at, a.name.as_str()),
        None => (i64::MAX, ""),
    };
    let sql = format!(
        "SELECT t.name, t.digest, m.media_type, m.artifact_type, ({TAG_SIZE})::bigint, t.updated_at
         FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
         WHERE t.repo_id = {REPO_ID}
           AND t.updated_at <= $2 AND (t.updated_at < $2 OR t.name > $3)
         ORDER BY t.updated_at DESC, t.name LIMIT $4"
    );
    let rows = all(c, &sql, &[&repo, &time, &name, &(limit as i64)]).await?;
    rows.iter()
        .map(|r| {
            Ok(TagRow {
                tag: r.get(0),
                digest: parse_digest(r.get(1))?,
                media_type: r.get(2),
                artifact_type: r.get(3),
                size_bytes: unsigned(r.get(4)),
                pushed_at: r.get(5),
            })
        })
        .collect::<Sql<Vec<_>>>()
        .map(Some)
}

pub(super) async fn manifest_facts(
    c: &impl GenericClient,
    repo: &str,
    digest: &str,
) -> Sql<Option<ManifestFacts>> {
    let sql = format!(
        "SELECT pushed_at, artifact_type FROM manifests WHERE repo_id = {REPO_ID} AND digest = $2"
    );
    let Some(found) = opt(c, &sql, &[&repo, &digest]).await? else {
        return Ok(None);
    };
    let sql =
        format!("SELECT name FROM tags WHERE repo_id = {REPO_ID} AND digest = $2 ORDER BY name");
    let tags = all(c, &sql, &[&repo, &digest]).await?;
    Ok(Some(ManifestFacts {
        pushed_at: found.get(0),
        artifact_type: found.get(1),
        tags: tags.iter().map(|r| r.get(0)).collect(),
    }))
}

/// Totals; each a scan of one table or index.
pub(super) async fn overview(c: &impl GenericClient) -> Sql<Overview> {
    let count = |row: Row| unsigned(row.get(0));
    let repositories = count(
        one(
            c,
            "SELECT count(*) FROM repositories r
             WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)",
            &[],
        )
        .await?,
    );
    let tags = count(one(c, "SELECT count(*) FROM tags", &[]).await?);
    let manifests = count(one(c, "SELECT count(*) FROM manifests", &[]).await?);
    // Each image counted whole, as pulling every image one by one would
    // fetch it; against it, what those blobs take stored, each digest once.
    let referenced = one(
        c,
        "SELECT coalesce(sum(size), 0)::bigint, coalesce(sum(once), 0)::bigint
         FROM (SELECT b.size AS size,
                      CASE WHEN row_number() OVER (PARTITION BY r.child) = 1
                           THEN b.size ELSE 0 END AS once
               FROM manifest_refs r
               JOIN repo_blobs b ON b.repo_id = r.repo_id AND b.digest = r.child) AS named",
        &[],
    )
    .await?;
    let (referenced_bytes, referenced_stored) =
        (unsigned(referenced.get(0)), unsigned(referenced.get(1)));
    let stored = one(
        c,
        "SELECT count(*), coalesce(sum(size), 0)::bigint
         FROM (SELECT max(size) AS size FROM repo_blobs GROUP BY digest) AS distinct_blobs",
        &[],
    )
    .await?;
    Ok(Overview {
        repositories,
        tags,
        manifests,
        blobs: unsigned(stored.get(0)),
        stored_bytes: unsigned(stored.get(1)),
        referenced_bytes,
        shared_savings_bytes: referenced_bytes.saturating_sub(referenced_stored),
    })
}

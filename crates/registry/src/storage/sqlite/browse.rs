//! Queries behind browsing: repository summaries, tag details, manifest
//! facts and the overview. Each answers a whole page in one statement;
//! per-row numbers are correlated subqueries over primary-key indexes.

use super::listings::holds_manifests;
use super::REPO_ID;
use crate::storage::{CacheOrigin, ManifestFacts, Overview, RepositorySummary, TagCursor};
use rusqlite::{params, Connection, OptionalExtension};

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Summaries of the repositories `filter` selects (`WHERE` conditions on
/// `r`), by name; each number a correlated subquery over a primary-key
/// index, so a page is one statement whatever its size.
fn summaries_sql(filter: &str) -> String {
    format!(
        "SELECT r.name,
           (SELECT count(*) FROM tags t WHERE t.repo_id = r.id),
           (SELECT count(*) FROM manifests m WHERE m.repo_id = r.id),
           (SELECT coalesce(sum(b.size), 0) FROM repo_blobs b WHERE b.repo_id = r.id),
           max((SELECT max(m.pushed_at) FROM manifests m WHERE m.repo_id = r.id),
               coalesce((SELECT max(t.updated_at) FROM tags t WHERE t.repo_id = r.id), 0)),
           c.upstream, c.remote, c.checked_at
         FROM repositories r
         LEFT JOIN cached_repositories c ON c.repo_id = r.id
         WHERE {filter} AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
         ORDER BY r.name"
    )
}

/// A page: after `?1`, names containing `?2` (unless NULL), `?3` rows.
fn summary_page_sql() -> String {
    summaries_sql("r.name > ?1 AND (?2 IS NULL OR instr(r.name, ?2) > 0)") + " LIMIT ?3"
}

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<RepositorySummary> {
    Ok(RepositorySummary {
        name: r.get(0)?,
        tag_count: count(r.get(1)?),
        manifest_count: count(r.get(2)?),
        size_bytes: count(r.get(3)?),
        last_push: r.get(4)?,
        cached_from: match (r.get(5)?, r.get(6)?) {
            (Some(upstream), Some(remote)) => Some(CacheOrigin {
                upstream,
                remote,
                checked_at: r.get(7)?,
            }),
            _ => None,
        },
    })
}

/// The summary of `name`, if it holds manifests.
pub(super) fn repository_summary(
    c: &Connection,
    name: &str,
) -> rusqlite::Result<Option<RepositorySummary>> {
    c.prepare_cached(&summaries_sql("r.name = ?1"))?
        .query_row([name], summary)
        .optional()
}

pub(super) fn repository_summaries(
    c: &Connection,
    filter: Option<&str>,
    last: &str,
    limit: usize,
) -> rusqlite::Result<Vec<RepositorySummary>> {
    c.prepare_cached(&summary_page_sql())?
        .query_map(params![last, filter, limit as i64], summary)?
        .collect()
}

/// Columns of a [`crate::storage::TagRow`], before the digest is parsed:
/// tag, digest, media type, artifact type, size, pushed at.
pub(super) type RawTag = (String, String, String, Option<String>, i64, i64);

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

/// A page of tags: `?1` repository, after (`?2` time, `?3` name), `?4` rows.
fn tag_page_sql() -> String {
    format!(
        "SELECT t.name, t.digest, m.media_type, m.artifact_type, {TAG_SIZE}, t.updated_at
         FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
         WHERE t.repo_id = {REPO_ID}
           AND t.updated_at <= ?2 AND (t.updated_at < ?2 OR t.name > ?3)
         ORDER BY t.updated_at DESC, t.name LIMIT ?4"
    )
}

/// Up to `limit` tags of `repo` newest first, then by name, after `after`;
/// `None` if `repo` holds no manifest.
pub(super) fn tag_details(
    c: &Connection,
    repo: &str,
    after: Option<&TagCursor>,
    limit: usize,
) -> rusqlite::Result<Option<Vec<RawTag>>> {
    if !holds_manifests(c, repo)? {
        return Ok(None);
    }
    // No cursor is a cursor after every tag: one statement, whose
    // `updated_at <= ?2` lets the index seek to the page (an `?2 IS NULL OR`
    // would make SQLite walk from the newest tag).
    let (time, name) = match after {
        Some(a) => (a.pushed_at, a.name.as_str()),
        None => (i64::MAX, ""),
    };
    let rows = c
        .prepare_cached(&tag_page_sql())?
        .query_map(params![repo, time, name, limit as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<RawTag>>>()?;
    Ok(Some(rows))
}

pub(super) fn manifest_facts(
    c: &Connection,
    repo: &str,
    digest: &str,
) -> rusqlite::Result<Option<ManifestFacts>> {
    let found: Option<(i64, Option<String>)> = c
        .prepare_cached(&format!(
            "SELECT pushed_at, artifact_type FROM manifests
             WHERE repo_id = {REPO_ID} AND digest = ?2"
        ))?
        .query_row([repo, digest], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((pushed_at, artifact_type)) = found else {
        return Ok(None);
    };
    let tags = c
        .prepare_cached(&format!(
            "SELECT name FROM tags WHERE repo_id = {REPO_ID} AND digest = ?2 ORDER BY name"
        ))?
        .query_map([repo, digest], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Some(ManifestFacts {
        pushed_at,
        artifact_type,
        tags,
    }))
}

/// Totals; each a scan of one table or index.
pub(super) fn overview(c: &Connection) -> rusqlite::Result<Overview> {
    let one = |sql: &str| {
        c.prepare_cached(sql)?
            .query_row([], |r| r.get::<_, i64>(0))
            .map(count)
    };
    let repositories = one("SELECT count(*) FROM repositories r
         WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)")?;
    let tags = one("SELECT count(*) FROM tags")?;
    let manifests = one("SELECT count(*) FROM manifests")?;
    // Each image counted whole, as pulling every image one by one would
    // fetch it; against it, what those blobs take on disk, each digest once.
    let (referenced_bytes, referenced_stored) = c
        .prepare_cached(
            "SELECT coalesce(sum(size), 0), coalesce(sum(once), 0)
             FROM (SELECT b.size AS size,
                          CASE WHEN row_number() OVER (PARTITION BY r.child) = 1
                               THEN b.size ELSE 0 END AS once
                   FROM manifest_refs r
                   JOIN repo_blobs b ON b.repo_id = r.repo_id AND b.digest = r.child)",
        )?
        .query_row([], |r| Ok((count(r.get(0)?), count(r.get(1)?))))?;
    let (blobs, stored_bytes) = c
        .prepare_cached(
            "SELECT count(*), coalesce(sum(size), 0)
             FROM (SELECT max(size) AS size FROM repo_blobs GROUP BY digest)",
        )?
        .query_row([], |r| Ok((count(r.get(0)?), count(r.get(1)?))))?;
    Ok(Overview {
        repositories,
        tags,
        manifests,
        blobs,
        stored_bytes,
        referenced_bytes,
        shared_savings_bytes: referenced_bytes.saturating_sub(referenced_stored),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sql: &str, args: &[&dyn rusqlite::ToSql]) -> String {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let mut q = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = q.query_map(args, |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn a_summary_page_seeks_the_name_index_to_its_cursor() {
        let plan = plan(&summary_page_sql(), params!["a", "b", 1i64]);
        assert!(
            plan.contains("sqlite_autoindex_repositories_1 (name>?)"),
            "{plan}"
        );
        assert!(!plan.contains("FOR ORDER BY"), "no sort: {plan}");
        assert!(!plan.contains("SCAN"), "no table scan: {plan}");
    }

    #[test]
    fn a_tag_page_seeks_the_time_index_to_its_cursor() {
        let plan = plan(&tag_page_sql(), params!["r", 0i64, "", 1i64]);
        assert!(
            plan.contains("tags_by_time (repo_id=? AND updated_at<?)"),
            "{plan}"
        );
        assert!(!plan.contains("FOR ORDER BY"), "no sort: {plan}");
    }
}

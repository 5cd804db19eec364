//! Queries of the pull-through cache: which repositories mirror an
//! upstream, tag check times, the bytes cached and what eviction may take.

use super::db::{all, exec, one, opt, unsigned, Sql};
use super::{ensure_repo, parse_digest, REPO_ID};
use crate::error::Error;
use crate::storage::{CacheOrigin, CacheSource, EvictionCandidate, RepositoryOrigin};
use deadpool_postgres::{GenericClient, Transaction};

/// Marks repository `repo_id` as a cache of `source`'s upstream. The
/// repository's check time only moves forward.
pub(super) async fn mark(
    tx: &Transaction<'_>,
    repo_id: i64,
    source: &CacheSource,
    checked: bool,
) -> Sql<()> {
    let checked_at = checked.then_some(source.checked_at);
    exec(
        tx,
        "INSERT INTO cached_repositories (repo_id, upstream, remote, checked_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (repo_id) DO UPDATE SET
           upstream = excluded.upstream, remote = excluded.remote,
           checked_at = CASE WHEN excluded.checked_at IS NULL THEN cached_repositories.checked_at
                             ELSE GREATEST(COALESCE(cached_repositories.checked_at, 0),
                                           excluded.checked_at) END",
        &[&repo_id, &source.upstream, &source.remote, &checked_at],
    )
    .await?;
    Ok(())
}

/// [`mark`] by name, creating the repository row.
pub(super) async fn mark_by_name(
    tx: &Transaction<'_>,
    repo: &str,
    source: &CacheSource,
) -> Sql<()> {
    let id = ensure_repo(tx, repo).await?;
    mark(tx, id, source, false).await
}

/// Records a check of `tag` in repository `repo_id` at `at`.
pub(super) async fn tag_checked(tx: &Transaction<'_>, repo_id: i64, tag: &str, at: i64) -> Sql<()> {
    exec(
        tx,
        "INSERT INTO cached_tags (repo_id, tag, checked_at) VALUES ($1, $2, $3)
         ON CONFLICT (repo_id, tag) DO UPDATE
           SET checked_at = GREATEST(cached_tags.checked_at, excluded.checked_at)",
        &[&repo_id, &tag, &at],
    )
    .await?;
    exec(
        tx,
        "UPDATE cached_repositories SET checked_at = GREATEST(COALESCE(checked_at, 0), $2)
         WHERE repo_id = $1",
        &[&repo_id, &at],
    )
    .await?;
    Ok(())
}

/// [`tag_checked`] by name; nothing for a repository that is not cached.
pub(super) async fn set_tag_checked(
    tx: &Transaction<'_>,
    repo: &str,
    tag: &str,
    at: i64,
) -> Sql<()> {
    let row = opt(
        tx,
        "SELECT c.repo_id FROM cached_repositories c
         JOIN repositories r ON r.id = c.repo_id WHERE r.name = $1",
        &[&repo],
    )
    .await?;
    match row {
        Some(row) => tag_checked(tx, row.get(0), tag, at).await,
        None => Ok(()),
    }
}

pub(super) async fn tag_checked_at(
    c: &impl GenericClient,
    repo: &str,
    tag: &str,
) -> Sql<Option<i64>> {
    let sql = format!("SELECT checked_at FROM cached_tags WHERE repo_id = {REPO_ID} AND tag = $2");
    Ok(opt(c, &sql, &[&repo, &tag]).await?.map(|r| r.get(0)))
}

/// Forgets the check times of tags of `repo` that no longer exist.
pub(super) async fn forget_gone_tags(tx: &Transaction<'_>, repo: &str) -> Sql<()> {
    let sql = format!(
        "DELETE FROM cached_tags WHERE repo_id = {REPO_ID}
           AND NOT EXISTS (SELECT 1 FROM tags t
                           WHERE t.repo_id = cached_tags.repo_id AND t.name = cached_tags.tag)"
    );
    exec(tx, &sql, &[&repo]).await?;
    Ok(())
}

pub(super) async fn origin(c: &impl GenericClient, repo: &str) -> Sql<RepositoryOrigin> {
    let row = opt(
        c,
        "SELECT r.id, c.upstream, c.remote, c.checked_at,
                EXISTS (SELECT 1 FROM manifests WHERE repo_id = r.id)
                  OR EXISTS (SELECT 1 FROM repo_blobs WHERE repo_id = r.id)
         FROM repositories r
         LEFT JOIN cached_repositories c ON c.repo_id = r.id WHERE r.name = $1",
        &[&repo],
    )
    .await?;
    let Some(row) = row else {
        return Ok(RepositoryOrigin::Absent);
    };
    let (upstream, remote): (Option<String>, Option<String>) = (row.get(1), row.get(2));
    if let (Some(upstream), Some(remote)) = (upstream, remote) {
        return Ok(RepositoryOrigin::Cached(CacheOrigin {
            upstream,
            remote,
            checked_at: row.get(3),
        }));
    }
    Ok(if row.get::<_, bool>(4) {
        RepositoryOrigin::Local
    } else {
        RepositoryOrigin::Absent
    })
}

/// Distinct present blobs named by manifests of cached repositories, plus
/// those manifests' own bytes; each digest once.
pub(super) async fn cached_bytes(c: &impl GenericClient) -> Sql<u64> {
    let row = one(
        c,
        "SELECT COALESCE(SUM(b.size), 0)::bigint FROM blobs b
         WHERE b.deleting_since IS NULL AND b.digest IN (
           SELECT f.child FROM manifest_refs f
             JOIN cached_repositories c ON c.repo_id = f.repo_id
           UNION
           SELECT m.digest FROM manifests m
             JOIN cached_repositories c ON c.repo_id = m.repo_id)",
        &[],
    )
    .await?;
    Ok(unsigned(row.get(0)))
}

/// Top-level manifests of cached repositories by last pull (a pull by tag
/// or by digest, else the time it was cached), oldest first.
pub(super) async fn eviction_candidates(
    c: &impl GenericClient,
    limit: usize,
) -> Sql<Vec<EvictionCandidate>> {
    let rows = all(
        c,
        "SELECT r.name, m.digest,
                GREATEST(m.pushed_at, COALESCE(m.pulled_at, 0),
                         COALESCE((SELECT max(t.pulled_at) FROM tags t
                                   WHERE t.repo_id = m.repo_id AND t.digest = m.digest), 0))
                  AS last_pulled
         FROM manifests m
         JOIN cached_repositories c ON c.repo_id = m.repo_id
         JOIN repositories r ON r.id = m.repo_id
         WHERE NOT EXISTS (SELECT 1 FROM manifest_refs f
                           WHERE f.repo_id = m.repo_id AND f.child = m.digest)
         ORDER BY last_pulled, r.name, m.digest
         LIMIT $1",
        &[&(limit as i64)],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let repository: String = r.get(0);
            Ok(EvictionCandidate {
                repository: repository.parse().map_err(Error::storage)?,
                digest: parse_digest(r.get(1))?,
                last_pulled: r.get(2),
            })
        })
        .collect()
}

//! Queries of the pull-through cache: which repositories mirror an
//! upstream, tag check times, the bytes cached and what eviction may take.

use super::{ensure_repo, parse_digest, storage_err, REPO_ID};
use crate::error::Result;
use crate::storage::{CacheOrigin, CacheSource, EvictionCandidate, RepositoryOrigin};
use rusqlite::{params, Connection, OptionalExtension};

/// Marks repository `repo_id` as a cache of `source`'s upstream. The
/// repository's check time only moves forward.
pub(super) fn mark(
    tx: &Connection,
    repo_id: i64,
    source: &CacheSource,
    checked: bool,
) -> Result<()> {
    let checked_at = checked.then_some(source.checked_at);
    tx.prepare_cached(
        "INSERT INTO cached_repositories (repo_id, upstream, remote, checked_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (repo_id) DO UPDATE SET
           upstream = excluded.upstream, remote = excluded.remote,
           checked_at = CASE WHEN excluded.checked_at IS NULL THEN checked_at
                             ELSE max(COALESCE(checked_at, 0), excluded.checked_at) END",
    )
    .and_then(|mut q| q.execute(params![repo_id, source.upstream, source.remote, checked_at]))
    .map_err(storage_err)?;
    Ok(())
}

/// [`mark`] by name, creating the repository row.
pub(super) fn mark_by_name(tx: &Connection, repo: &str, source: &CacheSource) -> Result<()> {
    let id = ensure_repo(tx, repo)?;
    mark(tx, id, source, false)
}

/// Records a check of `tag` in repository `repo_id` at `at`.
pub(super) fn tag_checked(tx: &Connection, repo_id: i64, tag: &str, at: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO cached_tags (repo_id, tag, checked_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (repo_id, tag) DO UPDATE SET checked_at = max(checked_at, excluded.checked_at)",
    )
    .and_then(|mut q| q.execute(params![repo_id, tag, at]))
    .map_err(storage_err)?;
    tx.prepare_cached(
        "UPDATE cached_repositories SET checked_at = max(COALESCE(checked_at, 0), ?2)
         WHERE repo_id = ?1",
    )
    .and_then(|mut q| q.execute(params![repo_id, at]))
    .map_err(storage_err)?;
    Ok(())
}

/// [`tag_checked`] by name; nothing for a repository that is not cached.
pub(super) fn set_tag_checked(tx: &Connection, repo: &str, tag: &str, at: i64) -> Result<()> {
    let id: Option<i64> = tx
        .prepare_cached(
            "SELECT c.repo_id FROM cached_repositories c
             JOIN repositories r ON r.id = c.repo_id WHERE r.name = ?1",
        )
        .and_then(|mut q| q.query_row([repo], |r| r.get(0)).optional())
        .map_err(storage_err)?;
    match id {
        Some(id) => tag_checked(tx, id, tag, at),
        None => Ok(()),
    }
}

pub(super) fn tag_checked_at(c: &Connection, repo: &str, tag: &str) -> Result<Option<i64>> {
    c.prepare_cached(&format!(
        "SELECT checked_at FROM cached_tags WHERE repo_id = {REPO_ID} AND tag = ?2"
    ))
    .and_then(|mut q| q.query_row([repo, tag], |r| r.get(0)).optional())
    .map_err(storage_err)
}

/// Forgets the check times of tags of `repo_id` that no longer exist.
pub(super) fn forget_gone_tags(tx: &Connection, repo_id_sql: &str, args: &[&str]) -> Result<()> {
    tx.execute(
        &format!(
            "DELETE FROM cached_tags WHERE repo_id = {repo_id_sql}
               AND NOT EXISTS (SELECT 1 FROM tags t
                               WHERE t.repo_id = cached_tags.repo_id AND t.name = cached_tags.tag)"
        ),
        rusqlite::params_from_iter(args),
    )
    .map_err(storage_err)?;
    Ok(())
}

/// A repository's id and, if cached, its upstream, remote name and check time.
type OriginRow = (i64, Option<String>, Option<String>, Option<i64>);

pub(super) fn origin(c: &Connection, repo: &str) -> Result<RepositoryOrigin> {
    let row: Option<OriginRow> = c
        .prepare_cached(
            "SELECT r.id, c.upstream, c.remote, c.checked_at FROM repositories r
             LEFT JOIN cached_repositories c ON c.repo_id = r.id WHERE r.name = ?1",
        )
        .and_then(|mut q| {
            q.query_row([repo], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })
        .map_err(storage_err)?;
    let Some((id, upstream, remote, checked_at)) = row else {
        return Ok(RepositoryOrigin::Absent);
    };
    if let (Some(upstream), Some(remote)) = (upstream, remote) {
        return Ok(RepositoryOrigin::Cached(CacheOrigin {
            upstream,
            remote,
            checked_at,
        }));
    }
    let holds: bool = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM manifests WHERE repo_id = ?1)
                 OR EXISTS (SELECT 1 FROM repo_blobs WHERE repo_id = ?1)",
        )
        .and_then(|mut q| q.query_row([id], |r| r.get(0)))
        .map_err(storage_err)?;
    Ok(if holds {
        RepositoryOrigin::Local
    } else {
        RepositoryOrigin::Absent
    })
}

/// Distinct present blobs named by manifests of cached repositories, plus
/// those manifests' own bytes; each digest once.
pub(super) fn cached_bytes(c: &Connection) -> Result<u64> {
    c.prepare_cached(
        "SELECT COALESCE(SUM(b.size), 0) FROM blobs b
         WHERE b.deleting_since IS NULL AND b.digest IN (
           SELECT f.child FROM manifest_refs f
             JOIN cached_repositories c ON c.repo_id = f.repo_id
           UNION
           SELECT m.digest FROM manifests m
             JOIN cached_repositories c ON c.repo_id = m.repo_id)",
    )
    .and_then(|mut q| q.query_row([], |r| r.get::<_, i64>(0)))
    .map(|n| u64::try_from(n).unwrap_or(0))
    .map_err(storage_err)
}

/// Top-level manifests of cached repositories by last pull (a pull by tag
/// or by digest, else the time it was cached), oldest first.
pub(super) fn eviction_candidates(c: &Connection, limit: usize) -> Result<Vec<EvictionCandidate>> {
    let rows = c
        .prepare_cached(
            "SELECT r.name, m.digest,
                    max(m.pushed_at, COALESCE(m.pulled_at, 0),
                        COALESCE((SELECT max(t.pulled_at) FROM tags t
                                  WHERE t.repo_id = m.repo_id AND t.digest = m.digest), 0)) AS last
             FROM manifests m
             JOIN cached_repositories c ON c.repo_id = m.repo_id
             JOIN repositories r ON r.id = m.repo_id
             WHERE NOT EXISTS (SELECT 1 FROM manifest_refs f
                               WHERE f.repo_id = m.repo_id AND f.child = m.digest)
             ORDER BY last, r.name, m.digest
             LIMIT ?1",
        )
        .and_then(|mut q| {
            q.query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(storage_err)?;
    rows.into_iter()
        .map(|(repo, digest, last_pulled)| {
            Ok(EvictionCandidate {
                repository: repo.parse().map_err(storage_err)?,
                digest: parse_digest(digest)?,
                last_pulled,
            })
        })
        .collect()
}

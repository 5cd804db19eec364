//! Queries behind the policies: immutable tags and quotas checked inside
//! the manifest PUT's transaction, last-pull times, the tags retention
//! reads and the conditional delete it writes with.

use super::{parse_digest, storage_err, REPO_ID};
use crate::error::{Error, QuotaResource, Result};
use crate::policy::TagState;
use crate::storage::Quota;
use crate::storage::{PullRecord, PulledBy, RepositoryUsage};
use berth_oci::Digest;
use rusqlite::{params, Connection, OptionalExtension};

/// What a PUT found before writing, to decide afterwards whether it grew
/// the repository.
pub(super) struct BeforePut {
    manifest_is_new: bool,
    tag_is_new: bool,
}

/// Before a PUT of `digest` tagged `tag` into repository `repo_id` writes:
/// refuses moving an immutable tag, and notes what the PUT adds.
pub(super) fn before_put(
    tx: &Connection,
    repo: &str,
    repo_id: i64,
    digest: &Digest,
    tag: Option<&str>,
    immutable_tag: bool,
) -> Result<BeforePut> {
    let digest_text = digest.to_string();
    let current: Option<String> = match tag {
        None => None,
        Some(tag) => tx
            .prepare_cached("SELECT digest FROM tags WHERE repo_id = ?1 AND name = ?2")
            .and_then(|mut q| q.query_row(params![repo_id, tag], |r| r.get(0)).optional())
            .map_err(storage_err)?,
    };
    if let (true, Some(tag), Some(current)) = (immutable_tag, tag, &current) {
        if *current != digest_text {
            return Err(Error::TagImmutable {
                repository: repo.to_string(),
                tag: tag.to_string(),
                current: parse_digest(current.clone())?,
            });
        }
    }
    let manifest_exists: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2)",
        )
        .and_then(|mut q| q.query_row(params![repo_id, digest_text], |r| r.get(0)))
        .map_err(storage_err)?;
    Ok(BeforePut {
        manifest_is_new: !manifest_exists,
        tag_is_new: tag.is_some() && current.is_none(),
    })
}

/// After the PUT's writes, in its transaction: refuses (so the whole PUT
/// rolls back) when it took the repository over `quota`. Only what the PUT
/// added is judged: re-pushing what is there, or moving a tag, passes even
/// in a repository already over a quota lowered since.
pub(super) fn after_put(
    tx: &Connection,
    repo: &str,
    repo_id: i64,
    before: BeforePut,
    quota: Option<&Quota>,
) -> Result<()> {
    let Some(quota) = quota else { return Ok(()) };
    let checks_bytes = before.manifest_is_new && quota.max_bytes.is_some();
    let checks_tags = before.tag_is_new && quota.max_tags.is_some();
    if !checks_bytes && !checks_tags {
        return Ok(());
    }
    let over = |resource, used: u64, limit: u64| {
        if used > limit {
            Err(Error::QuotaExceeded {
                repository: repo.to_string(),
                resource,
                used,
                limit,
            })
        } else {
            Ok(())
        }
    };
    if let (true, Some(limit)) = (checks_bytes, quota.max_bytes) {
        // Every linked blob counted is an upper bound, a third of the
        // exact count's cost: most PUTs are far enough under to stop there.
        if bytes_bound(tx, repo_id).map_err(storage_err)? > limit {
            let used = stored_bytes(tx, repo_id).map_err(storage_err)?;
            over(QuotaResource::Bytes, used, limit)?;
        }
    }
    if let (true, Some(limit)) = (checks_tags, quota.max_tags) {
        over(
            QuotaResource::Tags,
            tag_count(tx, repo_id).map_err(storage_err)?,
            limit,
        )?;
    }
    Ok(())
}

/// The repository's manifests plus every blob linked to it, named by a
/// manifest or not: never less than [`stored_bytes`].
fn bytes_bound(c: &Connection, repo_id: i64) -> rusqlite::Result<u64> {
    c.prepare_cached(
        "SELECT (SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repo_id = ?1)
              + (SELECT COALESCE(SUM(size), 0) FROM repo_blobs WHERE repo_id = ?1)",
    )?
    .query_row([repo_id], |r| r.get::<_, i64>(0))
    .map(|n| u64::try_from(n).unwrap_or(0))
}

/// Manifests' own bytes, plus each blob a manifest names counted once (an
/// index's children are manifests, counted as such).
fn stored_bytes(c: &Connection, repo_id: i64) -> rusqlite::Result<u64> {
    c.prepare_cached(
        "SELECT
           (SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repo_id = ?1)
           + (SELECT COALESCE(SUM(b.size), 0) FROM repo_blobs b
              WHERE b.repo_id = ?1
                AND EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo_id = ?1 AND r.child = b.digest)
                AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = ?1 AND m.digest = b.digest))",
    )?
    .query_row([repo_id], |r| r.get::<_, i64>(0))
    .map(|n| u64::try_from(n).unwrap_or(0))
}

fn tag_count(c: &Connection, repo_id: i64) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT count(*) FROM tags WHERE repo_id = ?1")?
        .query_row([repo_id], |r| r.get::<_, i64>(0))
        .map(|n| u64::try_from(n).unwrap_or(0))
}

/// Usage of repository `repo_id`.
fn usage_of(c: &Connection, repo_id: i64) -> rusqlite::Result<RepositoryUsage> {
    Ok(RepositoryUsage {
        stored_bytes: stored_bytes(c, repo_id)?,
        tags: tag_count(c, repo_id)?,
    })
}

/// Usage of the repository named `repo`; zero if it does not exist.
pub(super) fn usage(c: &Connection, repo: &str) -> rusqlite::Result<RepositoryUsage> {
    let id: Option<i64> = c
        .prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([repo], |r| r.get(0))
        .optional()?;
    match id {
        Some(id) => usage_of(c, id),
        None => Ok(RepositoryUsage::default()),
    }
}

/// Moves last-pull times forward (never back: records may arrive late).
/// Pulls of tags or manifests deleted since are ignored.
pub(super) fn record_pulls(tx: &Connection, pulls: &[PullRecord]) -> Result<()> {
    let mut by_tag = tx
        .prepare_cached(&format!(
            "UPDATE tags SET pulled_at = max(COALESCE(pulled_at, 0), ?3)
             WHERE repo_id = {REPO_ID} AND name = ?2"
        ))
        .map_err(storage_err)?;
    let mut by_digest = tx
        .prepare_cached(&format!(
            "UPDATE manifests SET pulled_at = max(COALESCE(pulled_at, 0), ?3)
             WHERE repo_id = {REPO_ID} AND digest = ?2"
        ))
        .map_err(storage_err)?;
    for pull in pulls {
        let repo = pull.repository.as_str();
        match &pull.by {
            PulledBy::Tag(tag) => by_tag.execute(params![repo, tag.as_str(), pull.at]),
            PulledBy::Digest(digest) => {
                by_digest.execute(params![repo, digest.to_string(), pull.at])
            }
        }
        .map_err(storage_err)?;
    }
    Ok(())
}

/// Every tag of `repo` with its push time and its last pull (by tag, or of
/// its manifest by digest, whichever is later).
pub(super) fn tag_states(c: &Connection, repo: &str) -> rusqlite::Result<Vec<TagState>> {
    let mut q = c.prepare_cached(&format!(
        "SELECT t.name, t.digest, t.updated_at,
                CASE WHEN t.pulled_at IS NULL THEN m.pulled_at
                     WHEN m.pulled_at IS NULL THEN t.pulled_at
                     ELSE max(t.pulled_at, m.pulled_at) END
         FROM tags t
         LEFT JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
         WHERE t.repo_id = {REPO_ID}
         ORDER BY t.name"
    ))?;
    let rows = q.query_map([repo], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    let mut states = Vec::new();
    for row in rows {
        let (tag, digest, pushed_at, pulled_at) = row?;
        let digest = digest.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })?;
        states.push(TagState {
            tag,
            digest,
            pushed_at,
            pulled_at,
        });
    }
    Ok(states)
}

/// Deletes `tag` only if it still points at `digest` and was last pushed
/// at `updated_at`: a tag pushed again since retention looked survives.
pub(super) fn delete_tag_if(
    tx: &Connection,
    repo: &str,
    tag: &str,
    digest: &str,
    updated_at: i64,
) -> Result<bool> {
    let deleted = tx
        .execute(
            &format!(
                "DELETE FROM tags WHERE repo_id = {REPO_ID} AND name = ?2 AND digest = ?3 AND updated_at = ?4"
            ),
            params![repo, tag, digest, updated_at],
        )
        .map_err(storage_err)?;
    if deleted > 0 {
        tx.execute(
            &format!("DELETE FROM cached_tags WHERE repo_id = {REPO_ID} AND tag = ?2"),
            params![repo, tag],
        )
        .map_err(storage_err)?;
    }
    Ok(deleted > 0)
}

//! Queries of online garbage collection: claims, touches, candidates, and
//! the steps that remove them. Every removing step re-checks its condition
//! inside its own transaction, so anything that wanted the row in the
//! meantime (a push, a mount, a manifest PUT, a read) wins.

use super::{manifests, now, parse_digest, storage_err, REPO_ID};
use crate::error::Result;
use crate::storage::{BlobClaim, Reclaimable};
use berth_oci::{Digest, RepositoryName};
use rusqlite::{params, Connection, OptionalExtension};

/// Nothing references `b.digest`: no manifest names it, in any repository,
/// and it is not itself a manifest anywhere.
const UNREFERENCED: &str = "NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.child = b.digest)
     AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)";

/// Manifest `m` may go as untagged, pushed (and last written) before `?1`:
/// no tag on it, no manifest of its repository holding it as a child, no
/// subject of it present in its repository.
const UNTAGGED_ORPHAN: &str = "m.pushed_at < ?1
     AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
     AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                     WHERE f.repo_id = m.repo_id AND f.child = m.digest)
     AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s
                     WHERE s.repo_id = m.repo_id AND s.digest = m.subject))
     AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = m.digest AND b.touched_at >= ?1)";

fn tombstoned(tx: &Connection, digest: &str) -> Result<bool> {
    let state: Option<Option<i64>> = tx
        .prepare_cached("SELECT deleting_since FROM blobs WHERE digest = ?1")
        .and_then(|mut q| q.query_row([digest], |r| r.get(0)).optional())
        .map_err(storage_err)?;
    Ok(matches!(state, Some(Some(_))))
}

fn live_claim(tx: &Connection, digest: &str, now: i64) -> Result<bool> {
    tx.prepare_cached("SELECT 1 FROM blob_claims WHERE digest = ?1 AND expires_at > ?2 LIMIT 1")
        .and_then(|mut q| q.exists(params![digest, now]))
        .map_err(storage_err)
}

pub(super) fn claim(
    tx: &Connection,
    digest: &Digest,
    lease_secs: i64,
) -> Result<Option<BlobClaim>> {
    let text = digest.to_string();
    if tombstoned(tx, &text)? {
        return Ok(None);
    }
    let id = uuid::Uuid::new_v4().to_string();
    tx.prepare_cached("INSERT INTO blob_claims (id, digest, expires_at) VALUES (?1, ?2, ?3)")
        .and_then(|mut q| q.execute(params![id, text, now().saturating_add(lease_secs)]))
        .map_err(storage_err)?;
    Ok(Some(BlobClaim {
        id,
        digest: digest.clone(),
    }))
}

pub(super) fn release_claim(tx: &Connection, id: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM blob_claims WHERE id = ?1")
        .and_then(|mut q| q.execute([id]))
        .map_err(storage_err)?;
    Ok(())
}

pub(super) fn expire_claims(tx: &Connection, now: i64) -> Result<u64> {
    tx.prepare_cached("DELETE FROM blob_claims WHERE expires_at <= ?1")
        .and_then(|mut q| q.execute([now]))
        .map(|n| n as u64)
        .map_err(storage_err)
}

pub(super) fn touch(tx: &Connection, touches: &[(String, String)], at: i64) -> Result<()> {
    let mut link = tx
        .prepare_cached(&format!(
            "UPDATE repo_blobs SET touched_at = max(touched_at, ?3)
             WHERE repo_id = {REPO_ID} AND digest = ?2"
        ))
        .map_err(storage_err)?;
    let mut blob = tx
        .prepare_cached("UPDATE blobs SET touched_at = max(touched_at, ?2) WHERE digest = ?1")
        .map_err(storage_err)?;
    for (repo, digest) in touches {
        link.execute(params![repo, digest, at])
            .map_err(storage_err)?;
        blob.execute(params![digest, at]).map_err(storage_err)?;
    }
    Ok(())
}

fn parse_repo(name: String) -> Result<RepositoryName> {
    name.parse().map_err(storage_err)
}

pub(super) fn untagged_manifests(
    c: &Connection,
    pushed_before: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(String, String)>> {
    c.prepare_cached(&format!(
        "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE {UNTAGGED_ORPHAN} ORDER BY r.name, m.digest LIMIT ?2"
    ))?
    .query_map(params![pushed_before, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?
    .collect()
}

pub(super) fn into_manifest_pairs(
    rows: Vec<(String, String)>,
) -> Result<Vec<(RepositoryName, Digest)>> {
    rows.into_iter()
        .map(|(repo, digest)| Ok((parse_repo(repo)?, parse_digest(digest)?)))
        .collect()
}

pub(super) fn delete_untagged_manifest(
    tx: &Connection,
    repo: &str,
    digest: &str,
    pushed_before: i64,
) -> Result<bool> {
    let still: bool = tx
        .prepare_cached(&format!(
            "SELECT 1 FROM manifests m
             WHERE m.repo_id = (SELECT id FROM repositories WHERE name = ?3)
               AND m.digest = ?4 AND {UNTAGGED_ORPHAN}"
        ))
        .and_then(|mut q| q.exists(params![pushed_before, 0, repo, digest]))
        .map_err(storage_err)?;
    if !still {
        return Ok(false);
    }
    manifests::delete(tx, repo, digest)
}

pub(super) fn dangling_links(
    c: &Connection,
    touched_before: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(String, String, i64)>> {
    c.prepare_cached(
        "SELECT r.name, l.digest, l.size FROM repo_blobs l JOIN repositories r ON r.id = l.repo_id
         WHERE l.touched_at < ?1
           AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                           WHERE f.repo_id = l.repo_id AND f.child = l.digest)
         ORDER BY r.name, l.digest LIMIT ?2",
    )?
    .query_map(params![touched_before, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .collect()
}

pub(super) fn into_links(
    rows: Vec<(String, String, i64)>,
) -> Result<Vec<(RepositoryName, Digest, u64)>> {
    rows.into_iter()
        .map(|(repo, digest, size)| {
            Ok((
                parse_repo(repo)?,
                parse_digest(digest)?,
                u64::try_from(size).unwrap_or(0),
            ))
        })
        .collect()
}

pub(super) fn unlink_dangling(
    tx: &Connection,
    repo: &str,
    digest: &str,
    touched_before: i64,
) -> Result<bool> {
    tx.prepare_cached(&format!(
        "DELETE FROM repo_blobs
         WHERE repo_id = {REPO_ID} AND digest = ?2 AND touched_at < ?3
           AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                           WHERE f.repo_id = repo_blobs.repo_id AND f.child = ?2)"
    ))
    .and_then(|mut q| q.execute(params![repo, digest, touched_before]))
    .map(|n| n > 0)
    .map_err(storage_err)
}

pub(super) fn blob_candidates(
    c: &Connection,
    touched_before: i64,
    after: &str,
    limit: usize,
) -> rusqlite::Result<Vec<(String, i64)>> {
    c.prepare_cached(&format!(
        "SELECT b.digest, b.size FROM blobs b
         WHERE b.digest > ?2 AND b.deleting_since IS NULL AND b.touched_at < ?1
           AND {UNREFERENCED}
         ORDER BY b.digest LIMIT ?3"
    ))?
    .query_map(params![touched_before, after, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?
    .collect()
}

pub(super) fn into_sized(rows: Vec<(String, i64)>) -> Result<Vec<(Digest, u64)>> {
    rows.into_iter()
        .map(|(digest, size)| Ok((parse_digest(digest)?, u64::try_from(size).unwrap_or(0))))
        .collect()
}

pub(super) fn tombstone(tx: &Connection, digest: &str, touched_before: i64) -> Result<Option<u64>> {
    let now = now();
    let size: Option<i64> = tx
        .prepare_cached(&format!(
            "SELECT b.size FROM blobs b
             WHERE b.digest = ?1 AND b.deleting_since IS NULL AND b.touched_at < ?2
               AND {UNREFERENCED}
               AND NOT EXISTS (SELECT 1 FROM blob_claims c
                               WHERE c.digest = b.digest AND c.expires_at > ?3)"
        ))
        .and_then(|mut q| {
            q.query_row(params![digest, touched_before, now], |r| r.get(0))
                .optional()
        })
        .map_err(storage_err)?;
    let Some(size) = size else {
        return Ok(None);
    };
    tx.prepare_cached("UPDATE blobs SET deleting_since = ?2 WHERE digest = ?1")
        .and_then(|mut q| q.execute(params![digest, now]))
        .map_err(storage_err)?;
    tx.prepare_cached("DELETE FROM repo_blobs WHERE digest = ?1")
        .and_then(|mut q| q.execute([digest]))
        .map_err(storage_err)?;
    Ok(Some(u64::try_from(size).unwrap_or(0)))
}

pub(super) fn drop_tombstone(tx: &Connection, digest: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM blobs WHERE digest = ?1 AND deleting_since IS NOT NULL")
        .and_then(|mut q| q.execute([digest]))
        .map_err(storage_err)?;
    Ok(())
}

pub(super) fn tombstones(c: &Connection) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached("SELECT digest FROM blobs WHERE deleting_since IS NOT NULL ORDER BY digest")?
        .query_map([], |r| r.get(0))?
        .collect()
}

pub(super) fn tombstone_orphan(tx: &Connection, digest: &str) -> Result<bool> {
    let now = now();
    if known(tx, digest).map_err(storage_err)? || live_claim(tx, digest, now)? {
        return Ok(false);
    }
    if named(tx, digest)? {
        // Linked or referenced but without a row (a link an older repair
        // added): not an orphan. Adopted, so that it is judged like any blob.
        tx.prepare_cached(
            "INSERT INTO blobs (digest, size, touched_at)
             SELECT ?1, coalesce((SELECT max(size) FROM repo_blobs WHERE digest = ?1),
                                 (SELECT max(size) FROM manifests WHERE digest = ?1), 0), ?2",
        )
        .and_then(|mut q| q.execute(params![digest, now]))
        .map_err(storage_err)?;
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO blobs (digest, size, touched_at, deleting_since) VALUES (?1, 0, ?2, ?2)",
    )
    .and_then(|mut q| q.execute(params![digest, now]))
    .map_err(storage_err)?;
    Ok(true)
}

/// Whether any link, manifest or reference names `digest`.
fn named(tx: &Connection, digest: &str) -> Result<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = ?1)
             OR EXISTS (SELECT 1 FROM manifest_refs WHERE child = ?1)
             OR EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)",
    )
    .and_then(|mut q| q.query_row([digest], |r| r.get(0)))
    .map_err(storage_err)
}

pub(super) fn known(c: &Connection, digest: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM blobs WHERE digest = ?1")?
        .exists([digest])
}

pub(super) fn reclaimable(c: &Connection) -> rusqlite::Result<Reclaimable> {
    c.prepare_cached(&format!(
        "SELECT count(*), coalesce(sum(b.size), 0) FROM blobs b
         WHERE b.deleting_since IS NULL AND {UNREFERENCED}"
    ))?
    .query_row([], |r| {
        Ok(Reclaimable {
            blobs: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            bytes: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        })
    })
}

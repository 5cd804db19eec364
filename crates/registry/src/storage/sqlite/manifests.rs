//! Queries on manifests, their references and their tags.

use super::{ensure_repo, now, parse_digest, refuse_if_referenced, storage_err, REPO_ID};
use crate::error::{Error, Result};
use crate::storage::{ManifestRecord, ManifestRow, PutOptions};
use berth_oci::Digest;
use rusqlite::{params, Connection, OptionalExtension};

/// Checks that each `(digest, size)` is in repository `repo_id` with that size;
/// `sql` selects the stored size for `(?1 = repo_id, ?2 = digest)`.
fn check_sizes(tx: &Connection, sql: &str, repo_id: i64, refs: &[(Digest, u64)]) -> Result<()> {
    let mut stored_size = tx.prepare_cached(sql).map_err(storage_err)?;
    for (digest, declared) in refs {
        let stored: Option<i64> = stored_size
            .query_row(params![repo_id, digest.to_string()], |r| r.get(0))
            .optional()
            .map_err(storage_err)?;
        match stored {
            None => return Err(Error::ManifestBlobUnknown(digest.clone())),
            Some(stored) if stored as u64 != *declared => {
                return Err(Error::ManifestSizeMismatch {
                    digest: digest.clone(),
                    declared: *declared,
                    stored: stored as u64,
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Stores `m` in `repo` (tagged `tag`) if everything it refers to is there,
/// records its own bytes as a touched blob and releases `options.claim`.
/// Refuses moving an immutable tag, and anything that takes the repository
/// over its quota, in the same transaction (so nothing of it stays).
pub(super) fn put(
    tx: &Connection,
    repo: &str,
    m: &ManifestRecord,
    tag: Option<&str>,
    options: &PutOptions,
) -> Result<()> {
    let id = ensure_repo(tx, repo)?;
    let digest = m.digest.to_string();
    let before = super::policies::before_put(tx, repo, id, &m.digest, tag, options.immutable_tag)?;
    record_manifest_bytes(tx, &m.digest, m.size)?;
    if let Some(claim) = &options.claim {
        if !super::gc::claim_holds(tx, &claim.id, now())? {
            return Err(Error::Storage(format!(
                "the claim on manifest {digest} ended before it was recorded; push it again"
            )));
        }
        super::gc::release_claim(tx, &claim.id)?;
    }
    // A cached manifest's references are lazy: fetched when pulled.
    if options.cached.is_none() {
        check_sizes(
            tx,
            "SELECT size FROM repo_blobs WHERE repo_id = ?1 AND digest = ?2",
            id,
            &m.blobs,
        )?;
        check_sizes(
            tx,
            "SELECT size FROM manifests WHERE repo_id = ?1 AND digest = ?2",
            id,
            &m.manifests,
        )?;
    }
    tx.execute(
        "INSERT INTO manifests
           (repo_id, digest, media_type, size, artifact_type, subject, annotations, pushed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (repo_id, digest) DO UPDATE SET media_type = excluded.media_type",
        params![
            id,
            digest,
            m.media_type,
            m.size as i64,
            m.artifact_type,
            m.subject.as_ref().map(|s| s.to_string()),
            m.annotations,
            now()
        ],
    )
    .map_err(storage_err)?;
    let mut insert_ref = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO manifest_refs (repo_id, manifest, child) VALUES (?1, ?2, ?3)",
        )
        .map_err(storage_err)?;
    for (child, _) in m.blobs.iter().chain(&m.manifests) {
        insert_ref
            .execute(params![id, digest, child.to_string()])
            .map_err(storage_err)?;
    }
    if let Some(tag) = tag {
        tx.execute(
            "INSERT INTO tags (repo_id, name, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (repo_id, name) DO UPDATE
               SET digest = excluded.digest, updated_at = excluded.updated_at",
            params![id, tag, digest, now()],
        )
        .map_err(storage_err)?;
    }
    if let Some(source) = &options.cached {
        super::cache::mark(tx, id, source, tag.is_some())?;
        if let Some(tag) = tag {
            super::cache::tag_checked(tx, id, tag, source.checked_at)?;
        }
    }
    super::policies::after_put(tx, repo, id, before, options.quota.as_ref())
}

/// Upserts the `blobs` row of a manifest's own bytes, touched now. Refused
/// while the collector is deleting them: a caller that claimed the digest
/// first (as the registry does) never meets that.
fn record_manifest_bytes(tx: &Connection, digest: &Digest, size: u64) -> Result<()> {
    let tombstoned: Option<Option<i64>> = tx
        .prepare_cached("SELECT deleting_since FROM blobs WHERE digest = ?1")
        .and_then(|mut q| q.query_row([digest.to_string()], |r| r.get(0)).optional())
        .map_err(storage_err)?;
    if matches!(tombstoned, Some(Some(_))) {
        return Err(Error::Storage(format!(
            "manifest {digest} is being deleted by garbage collection; retry"
        )));
    }
    tx.prepare_cached(
        "INSERT INTO blobs (digest, size, touched_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (digest) DO UPDATE SET touched_at = max(touched_at, excluded.touched_at)",
    )
    .and_then(|mut q| q.execute(params![digest.to_string(), size as i64, now()]))
    .map_err(storage_err)?;
    Ok(())
}

/// Columns of a [`ManifestRow`], before the digest is parsed.
type RawRow = (String, String, i64);

fn into_row((digest, media_type, size): RawRow) -> Result<ManifestRow> {
    Ok(ManifestRow {
        digest: parse_digest(digest)?,
        media_type,
        size: size as u64,
    })
}

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

pub(super) fn by_tag(c: &Connection, repo: &str, tag: &str) -> Result<Option<ManifestRow>> {
    c.prepare_cached(&format!(
        "SELECT m.digest, m.media_type, m.size FROM tags t
         JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
         WHERE t.repo_id = {REPO_ID} AND t.name = ?2"
    ))
    .and_then(|mut q| q.query_row(params![repo, tag], raw_row).optional())
    .map_err(storage_err)?
    .map(into_row)
    .transpose()
}

pub(super) fn by_digest(c: &Connection, repo: &str, digest: &str) -> Result<Option<ManifestRow>> {
    c.prepare_cached(&format!(
        "SELECT digest, media_type, size FROM manifests
         WHERE repo_id = {REPO_ID} AND digest = ?2"
    ))
    .and_then(|mut q| q.query_row(params![repo, digest], raw_row).optional())
    .map_err(storage_err)?
    .map(into_row)
    .transpose()
}

/// Deletes a manifest no index of `repo` refers to, with its tags and
/// references; whether it existed. Referrers (`subject`) do not hold it.
pub(super) fn delete(tx: &Connection, repo: &str, digest: &str) -> Result<bool> {
    refuse_if_referenced(tx, repo, digest)?;
    touch_what_it_names(tx, repo, digest)?;
    let args = [repo, digest];
    let sql = |table: &str, column: &str| {
        format!("DELETE FROM {table} WHERE repo_id = {REPO_ID} AND {column} = ?2")
    };
    tx.execute(&sql("tags", "digest"), args)
        .map_err(storage_err)?;
    tx.execute(&sql("manifest_refs", "manifest"), args)
        .map_err(storage_err)?;
    let n = tx
        .execute(&sql("manifests", "digest"), args)
        .map_err(storage_err)?;
    super::cache::forget_gone_tags(tx, REPO_ID, &[repo])?;
    Ok(n > 0)
}

/// Starts a fresh grace delay for a manifest's bytes and for every blob it
/// names (and their links in `repo`): deleting an image must not make its
/// layers immediately collectable by a pass already running. Children that
/// are manifests of `repo` are left alone: they are kept while they exist,
/// their own delete touches them, and the untagged-manifest phase must see
/// an index's children as old as they are.
fn touch_what_it_names(tx: &Connection, repo: &str, digest: &str) -> Result<()> {
    let now = now();
    let children = format!(
        "SELECT f.child FROM manifest_refs f
         WHERE f.repo_id = {REPO_ID} AND f.manifest = ?2
           AND NOT EXISTS (SELECT 1 FROM manifests m
                           WHERE m.repo_id = f.repo_id AND m.digest = f.child)"
    );
    tx.prepare_cached(&format!(
        "UPDATE blobs SET touched_at = max(touched_at, ?3)
         WHERE digest = ?2 OR digest IN ({children})"
    ))
    .and_then(|mut q| q.execute(params![repo, digest, now]))
    .map_err(storage_err)?;
    tx.prepare_cached(&format!(
        "UPDATE repo_blobs SET touched_at = max(touched_at, ?3)
         WHERE repo_id = {REPO_ID} AND digest IN ({children})"
    ))
    .and_then(|mut q| q.execute(params![repo, digest, now]))
    .map_err(storage_err)?;
    Ok(())
}

pub(super) fn delete_tag(tx: &Connection, repo: &str, tag: &str) -> Result<bool> {
    tx.execute(
        &format!("DELETE FROM cached_tags WHERE repo_id = {REPO_ID} AND tag = ?2"),
        [repo, tag],
    )
    .map_err(storage_err)?;
    tx.execute(
        &format!("DELETE FROM tags WHERE repo_id = {REPO_ID} AND name = ?2"),
        [repo, tag],
    )
    .map(|n| n > 0)
    .map_err(storage_err)
}

//! Queries that list: tags, repositories, referrers.

use super::{parse_digest, REPO_ID};
use crate::error::Result;
use crate::storage::ReferrerRecord;
use rusqlite::{params, Connection};

/// Whether `repo` holds a manifest: a repository without one is unknown.
pub(super) fn holds_manifests(c: &Connection, repo: &str) -> rusqlite::Result<bool> {
    c.prepare_cached(&format!(
        "SELECT 1 FROM manifests WHERE repo_id = {REPO_ID} LIMIT 1"
    ))?
    .exists([repo])
}

/// Up to `limit` tags after `last`; `None` if `repo` holds no manifest.
pub(super) fn tags(
    c: &Connection,
    repo: &str,
    last: &str,
    limit: usize,
) -> rusqlite::Result<Option<Vec<String>>> {
    if !holds_manifests(c, repo)? {
        return Ok(None);
    }
    let tags = c
        .prepare_cached(&format!(
            "SELECT name FROM tags WHERE repo_id = {REPO_ID} AND name > ?2
             ORDER BY name LIMIT ?3"
        ))?
        .query_map(params![repo, last, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Some(tags))
}

pub(super) fn repositories(
    c: &Connection,
    last: &str,
    limit: usize,
) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached(
        "SELECT name FROM repositories r WHERE name > ?1
           AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
         ORDER BY name LIMIT ?2",
    )?
    .query_map(params![last, limit as i64], |r| r.get(0))?
    .collect()
}

/// A keyset page: rows after `last`, at most `limit` of them.
pub(super) struct Page {
    pub last: String,
    pub limit: usize,
}

/// Columns of a [`ReferrerRecord`], before the digest is parsed.
pub(super) type RawReferrer = (String, String, i64, Option<String>, Option<String>);

pub(super) fn referrers(
    c: &Connection,
    repo: &str,
    subject: &str,
    artifact_type: Option<&str>,
    page: &Page,
) -> rusqlite::Result<Vec<RawReferrer>> {
    c.prepare_cached(&format!(
        "SELECT digest, media_type, size, artifact_type, annotations FROM manifests
         WHERE repo_id = {REPO_ID} AND subject = ?2
           AND (?3 IS NULL OR artifact_type = ?3) AND digest > ?4
         ORDER BY digest LIMIT ?5"
    ))?
    .query_map(
        params![repo, subject, artifact_type, page.last, page.limit as i64],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?
    .collect()
}

pub(super) fn into_referrer(
    (digest, media_type, size, artifact_type, annotations): RawReferrer,
) -> Result<ReferrerRecord> {
    Ok(ReferrerRecord {
        digest: parse_digest(digest)?,
        media_type,
        size: size as u64,
        artifact_type,
        annotations,
    })
}

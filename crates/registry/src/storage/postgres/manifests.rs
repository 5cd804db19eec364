//! Queries on manifests, their references and their tags.

use super::db::{exec, opt, unsigned, Sql};
use super::{ensure_repo, now, parse_digest, refuse_if_referenced, REPO_ID};
use crate::error::Error;
use crate::storage::{ManifestRecord, ManifestRow, PutOptions};
use berth_oci::Digest;
use deadpool_postgres::{Client, GenericClient, Transaction};
use tokio_postgres::Row;

/// Checks that each `(digest, size)` is in repository `repo_id` with that size;
/// `sql` selects the stored size for `($1 = repo_id, $2 = digest)`.
async fn check_sizes(
    tx: &Transaction<'_>,
    sql: &str,
    repo_id: i64,
    refs: &[(Digest, u64)],
) -> Sql<()> {
    for (digest, declared) in refs {
        let row = opt(tx, sql, &[&repo_id, &digest.to_string()]).await?;
        match row.map(|r| unsigned(r.get(0))) {
            None => return Err(Error::ManifestBlobUnknown(digest.clone()).into()),
            Some(stored) if stored != *declared => {
                return Err(Error::ManifestSizeMismatch {
                    digest: digest.clone(),
                    declared: *declared,
                    stored,
                }
                .into())
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
pub(super) async fn put(
    tx: &Transaction<'_>,
    repo: &str,
    m: &ManifestRecord,
    tag: Option<&str>,
    options: &PutOptions,
) -> Sql<()> {
    let id = ensure_repo(tx, repo).await?;
    let digest = m.digest.to_string();
    let before =
        super::policies::before_put(tx, repo, id, &m.digest, tag, options.immutable_tag).await?;
    record_manifest_bytes(tx, &m.digest, m.size).await?;
    if let Some(claim) = &options.claim {
        if !super::gc::claim_holds(tx, &claim.id, now()).await? {
            return Err(Error::Storage(format!(
                "the claim on manifest {digest} ended before it was recorded; push it again"
            ))
            .into());
        }
        super::gc::release_claim(tx, &claim.id).await?;
    }
    // A cached manifest's references are lazy: fetched when pulled.
    if options.cached.is_none() {
        check_sizes(
            tx,
            "SELECT size FROM repo_blobs WHERE repo_id = $1 AND digest = $2",
            id,
            &m.blobs,
        )
        .await?;
        check_sizes(
            tx,
            "SELECT size FROM manifests WHERE repo_id = $1 AND digest = $2",
            id,
            &m.manifests,
        )
        .await?;
    }
    exec(
        tx,
        "INSERT INTO manifests
           (repo_id, digest, media_type, size, artifact_type, subject, annotations, pushed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (repo_id, digest) DO UPDATE SET media_type = excluded.media_type",
        &[
            &id,
            &digest,
            &m.media_type,
            &(m.size as i64),
            &m.artifact_type,
            &m.subject.as_ref().map(|s| s.to_string()),
            &m.annotations,
            &now(),
        ],
    )
    .await?;
    for (child, _) in m.blobs.iter().chain(&m.manifests) {
        exec(
            tx,
            "INSERT INTO manifest_refs (repo_id, manifest, child) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&id, &digest, &child.to_string()],
        )
        .await?;
    }
    if let Some(tag) = tag {
        exec(
            tx,
            "INSERT INTO tags (repo_id, name, digest, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repo_id, name) DO UPDATE
               SET digest = excluded.digest, updated_at = excluded.updated_at",
            &[&id, &tag, &digest, &now()],
        )
        .await?;
    }
    if let Some(source) = &options.cached {
        super::cache::mark(tx, id, source, tag.is_some()).await?;
        if let Some(tag) = tag {
            super::cache::tag_checked(tx, id, tag, source.checked_at).await?;
        }
    }
    super::policies::after_put(tx, repo, id, before, options.quota.as_ref()).await
}

/// Upserts the `blobs` row of a manifest's own bytes, touched now. Refused
/// while the collector is deleting them: a caller that claimed the digest
/// first (as the registry does) never meets that.
async fn record_manifest_bytes(tx: &Transaction<'_>, digest: &Digest, size: u64) -> Sql<()> {
    let text = digest.to_string();
    let state = opt(
        tx,
        "SELECT deleting_since FROM blobs WHERE digest = $1",
        &[&text],
    )
    .await?;
    if let Some(Some(_)) = state.map(|r| r.get::<_, Option<i64>>(0)) {
        return Err(Error::Storage(format!(
            "manifest {digest} is being deleted by garbage collection; retry"
        ))
        .into());
    }
    exec(
        tx,
        "INSERT INTO blobs (digest, size, touched_at) VALUES ($1, $2, $3)
         ON CONFLICT (digest) DO UPDATE
           SET touched_at = GREATEST(blobs.touched_at, excluded.touched_at)",
        &[&text, &(size as i64), &now()],
    )
    .await?;
    Ok(())
}

fn into_row(r: &Row) -> Sql<ManifestRow> {
    Ok(ManifestRow {
        digest: parse_digest(r.get(0))?,
        media_type: r.get(1),
        size: unsigned(r.get(2)),
    })
}

/// A manifest by (repository, tag). Hot (every pull by tag): one constant
/// statement over primary keys.
pub(super) const BY_TAG: &str = "SELECT m.digest, m.media_type, m.size
     FROM repositories r
     JOIN tags t ON t.repo_id = r.id
     JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
     WHERE r.name = $1 AND t.name = $2";

pub(super) async fn by_tag(c: &Client, repo: &str, tag: &str) -> Sql<Option<ManifestRow>> {
    let row = opt(c, BY_TAG, &[&repo, &tag]).await?;
    row.as_ref().map(into_row).transpose()
}

pub(super) async fn by_digest(c: &Client, repo: &str, digest: &str) -> Sql<Option<ManifestRow>> {
    let row = opt(
        c,
        "SELECT m.digest, m.media_type, m.size
         FROM repositories r JOIN manifests m ON m.repo_id = r.id
         WHERE r.name = $1 AND m.digest = $2",
        &[&repo, &digest],
    )
    .await?;
    row.as_ref().map(into_row).transpose()
}

/// Deletes a manifest no index of `repo` refers to, with its tags and
/// references; whether it existed. Referrers (`subject`) do not hold it.
pub(super) async fn delete(tx: &Transaction<'_>, repo: &str, digest: &str) -> Sql<bool> {
    refuse_if_referenced(tx, repo, digest).await?;
    touch_what_it_names(tx, repo, digest).await?;
    let sql = |table: &str, column: &str| {
        format!("DELETE FROM {table} WHERE repo_id = {REPO_ID} AND {column} = $2")
    };
    exec(tx, &sql("tags", "digest"), &[&repo, &digest]).await?;
    exec(tx, &sql("manifest_refs", "manifest"), &[&repo, &digest]).await?;
    let n = exec(tx, &sql("manifests", "digest"), &[&repo, &digest]).await?;
    super::cache::forget_gone_tags(tx, repo).await?;
    Ok(n > 0)
}

/// Starts a fresh grace delay for a manifest's bytes and for every blob it
/// names (and their links in `repo`): deleting an image must not make its
/// layers immediately collectable by a pass already running. Children that
/// are manifests of `repo` are left alone: they are kept while they exist,
/// their own delete touches them, and the untagged-manifest phase must see
/// an index's children as old as they are.
async fn touch_what_it_names(c: &impl GenericClient, repo: &str, digest: &str) -> Sql<()> {
    let now = now();
    let children = format!(
        "SELECT f.child FROM manifest_refs f
         WHERE f.repo_id = {REPO_ID} AND f.manifest = $2
           AND NOT EXISTS (SELECT 1 FROM manifests m
                           WHERE m.repo_id = f.repo_id AND m.digest = f.child)"
    );
    let blobs = format!(
        "UPDATE blobs SET touched_at = GREATEST(touched_at, $3)
         WHERE digest = $2 OR digest IN ({children})"
    );
    exec(c, &blobs, &[&repo, &digest, &now]).await?;
    let links = format!(
        "UPDATE repo_blobs SET touched_at = GREATEST(touched_at, $3)
         WHERE repo_id = {REPO_ID} AND digest IN ({children})"
    );
    exec(c, &links, &[&repo, &digest, &now]).await?;
    Ok(())
}

pub(super) async fn delete_tag(tx: &Transaction<'_>, repo: &str, tag: &str) -> Sql<bool> {
    let cached = format!("DELETE FROM cached_tags WHERE repo_id = {REPO_ID} AND tag = $2");
    exec(tx, &cached, &[&repo, &tag]).await?;
    let tags = format!("DELETE FROM tags WHERE repo_id = {REPO_ID} AND name = $2");
    Ok(exec(tx, &tags, &[&repo, &tag]).await? > 0)
}

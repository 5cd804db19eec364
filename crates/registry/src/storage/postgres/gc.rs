//! Queries of online garbage collection: claims, touches, candidates, and
//! the steps that remove them. Every removing step re-checks its condition
//! inside its own (serializable) transaction, so anything that wanted the
//! row in the meantime (a push, a mount, a manifest PUT, a read) wins or
//! makes the step retry.

use super::db::{all, exec, exists, one, opt, unsigned, Sql};
use super::{manifests, now, parse_digest, REPO_ID};
use crate::error::Error;
use crate::storage::{BlobClaim, Reclaimable};
use berth_oci::{Digest, RepositoryName};
use deadpool_postgres::{GenericClient, Transaction};

/// Nothing references `b.digest`: no manifest names it, in any repository,
/// and it is not itself a manifest anywhere.
const UNREFERENCED: &str = "NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.child = b.digest)
     AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)";

/// Manifest `m` may go as untagged, pushed (and last written) before `$1`:
/// no tag on it, no manifest of its repository holding it as a child, no
/// subject of it present in its repository.
const UNTAGGED_ORPHAN: &str = "m.pushed_at < $1
     AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
     AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                     WHERE f.repo_id = m.repo_id AND f.child = m.digest)
     AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s
                     WHERE s.repo_id = m.repo_id AND s.digest = m.subject))
     AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = m.digest AND b.touched_at >= $1)";

async fn tombstoned(tx: &Transaction<'_>, digest: &str) -> Sql<bool> {
    let row = opt(
        tx,
        "SELECT deleting_since FROM blobs WHERE digest = $1",
        &[&digest],
    )
    .await?;
    Ok(matches!(
        row.map(|r| r.get::<_, Option<i64>>(0)),
        Some(Some(_))
    ))
}

async fn live_claim(tx: &Transaction<'_>, digest: &str, now: i64) -> Sql<bool> {
    exists(
        tx,
        "SELECT 1 FROM blob_claims WHERE digest = $1 AND expires_at > $2 LIMIT 1",
        &[&digest, &now],
    )
    .await
}

pub(super) async fn claim(
    tx: &Transaction<'_>,
    digest: &Digest,
    lease_secs: i64,
) -> Sql<Option<BlobClaim>> {
    let text = digest.to_string();
    if tombstoned(tx, &text).await? {
        return Ok(None);
    }
    let id = uuid::Uuid::new_v4().to_string();
    exec(
        tx,
        "INSERT INTO blob_claims (id, digest, expires_at) VALUES ($1, $2, $3)",
        &[&id, &text, &now().saturating_add(lease_secs)],
    )
    .await?;
    Ok(Some(BlobClaim {
        id,
        digest: digest.clone(),
    }))
}

/// Whether claim `id` still holds at `now`. A claim whose lease ended may
/// not have kept the collector away: what it guarded cannot be trusted.
pub(super) async fn claim_holds(tx: &Transaction<'_>, id: &str, now: i64) -> Sql<bool> {
    exists(
        tx,
        "SELECT 1 FROM blob_claims WHERE id = $1 AND expires_at > $2",
        &[&id, &now],
    )
    .await
}

pub(super) async fn release_claim(tx: &Transaction<'_>, id: &str) -> Sql<()> {
    exec(tx, "DELETE FROM blob_claims WHERE id = $1", &[&id]).await?;
    Ok(())
}

pub(super) async fn expire_claims(tx: &Transaction<'_>, now: i64) -> Sql<u64> {
    exec(
        tx,
        "DELETE FROM blob_claims WHERE expires_at <= $1",
        &[&now],
    )
    .await
}

pub(super) async fn touch(tx: &Transaction<'_>, touches: &[(String, String)], at: i64) -> Sql<()> {
    let link = format!(
        "UPDATE repo_blobs SET touched_at = GREATEST(touched_at, $3)
         WHERE repo_id = {REPO_ID} AND digest = $2"
    );
    for (repo, digest) in touches {
        exec(tx, &link, &[repo, digest, &at]).await?;
        exec(
            tx,
            "UPDATE blobs SET touched_at = GREATEST(touched_at, $2) WHERE digest = $1",
            &[digest, &at],
        )
        .await?;
    }
    Ok(())
}

fn parse_repo(name: String) -> Sql<RepositoryName> {
    Ok(name.parse().map_err(Error::storage)?)
}

pub(super) async fn untagged_manifests(
    c: &impl GenericClient,
    pushed_before: i64,
    limit: usize,
) -> Sql<Vec<(RepositoryName, Digest)>> {
    let sql = format!(
        "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE {UNTAGGED_ORPHAN} ORDER BY r.name, m.digest LIMIT $2"
    );
    let rows = all(c, &sql, &[&pushed_before, &(limit as i64)]).await?;
    rows.iter()
        .map(|r| Ok((parse_repo(r.get(0))?, parse_digest(r.get(1))?)))
        .collect()
}

pub(super) async fn delete_untagged_manifest(
    tx: &Transaction<'_>,
    repo: &str,
    digest: &str,
    pushed_before: i64,
) -> Sql<bool> {
    let sql = format!(
        "SELECT 1 FROM manifests m
         WHERE m.repo_id = (SELECT id FROM repositories WHERE name = $2)
           AND m.digest = $3 AND {UNTAGGED_ORPHAN}"
    );
    if !exists(tx, &sql, &[&pushed_before, &repo, &digest]).await? {
        return Ok(false);
    }
    manifests::delete(tx, repo, digest).await
}

pub(super) async fn dangling_links(
    c: &impl GenericClient,
    touched_before: i64,
    limit: usize,
) -> Sql<Vec<(RepositoryName, Digest, u64)>> {
    let rows = all(
        c,
        "SELECT r.name, l.digest, l.size FROM repo_blobs l JOIN repositories r ON r.id = l.repo_id
         WHERE l.touched_at < $1
           AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                           WHERE f.repo_id = l.repo_id AND f.child = l.digest)
         ORDER BY r.name, l.digest LIMIT $2",
        &[&touched_before, &(limit as i64)],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                parse_repo(r.get(0))?,
                parse_digest(r.get(1))?,
                unsigned(r.get(2)),
            ))
        })
        .collect()
}

pub(super) async fn unlink_dangling(
    tx: &Transaction<'_>,
    repo: &str,
    digest: &str,
    touched_before: i64,
) -> Sql<bool> {
    let sql = format!(
        "DELETE FROM repo_blobs
         WHERE repo_id = {REPO_ID} AND digest = $2 AND touched_at < $3
           AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                           WHERE f.repo_id = repo_blobs.repo_id AND f.child = $2)"
    );
    Ok(exec(tx, &sql, &[&repo, &digest, &touched_before]).await? > 0)
}

pub(super) async fn blob_candidates(
    c: &impl GenericClient,
    touched_before: i64,
    after: &str,
    limit: usize,
) -> Sql<Vec<(Digest, u64)>> {
    let sql = format!(
        "SELECT b.digest, b.size FROM blobs b
         WHERE b.digest > $2 AND b.deleting_since IS NULL AND b.touched_at < $1
           AND {UNREFERENCED}
         ORDER BY b.digest LIMIT $3"
    );
    let rows = all(c, &sql, &[&touched_before, &after, &(limit as i64)]).await?;
    rows.iter()
        .map(|r| Ok((parse_digest(r.get(0))?, unsigned(r.get(1)))))
        .collect()
}

pub(super) async fn tombstone(
    tx: &Transaction<'_>,
    digest: &str,
    touched_before: i64,
) -> Sql<Option<u64>> {
    let now = now();
    let sql = format!(
        "SELECT b.size FROM blobs b
         WHERE b.digest = $1 AND b.deleting_since IS NULL AND b.touched_at < $2
           AND {UNREFERENCED}
           AND NOT EXISTS (SELECT 1 FROM blob_claims c
                           WHERE c.digest = b.digest AND c.expires_at > $3)"
    );
    let Some(row) = opt(tx, &sql, &[&digest, &touched_before, &now]).await? else {
        return Ok(None);
    };
    exec(
        tx,
        "UPDATE blobs SET deleting_since = $2 WHERE digest = $1",
        &[&digest, &now],
    )
    .await?;
    exec(tx, "DELETE FROM repo_blobs WHERE digest = $1", &[&digest]).await?;
    Ok(Some(unsigned(row.get(0))))
}

pub(super) async fn drop_tombstone(tx: &Transaction<'_>, digest: &str) -> Sql<()> {
    exec(
        tx,
        "DELETE FROM blobs WHERE digest = $1 AND deleting_since IS NOT NULL",
        &[&digest],
    )
    .await?;
    Ok(())
}

pub(super) async fn tombstones(c: &impl GenericClient) -> Sql<Vec<Digest>> {
    let rows = all(
        c,
        "SELECT digest FROM blobs WHERE deleting_since IS NOT NULL ORDER BY digest",
        &[],
    )
    .await?;
    rows.iter().map(|r| parse_digest(r.get(0))).collect()
}

pub(super) async fn tombstone_orphan(tx: &Transaction<'_>, digest: &str) -> Sql<bool> {
    let now = now();
    if known(tx, digest).await? || live_claim(tx, digest, now).await? {
        return Ok(false);
    }
    if named(tx, digest).await? {
        // Linked or referenced but without a row (a link an older repair
        // added): not an orphan. Adopted, so that it is judged like any blob.
        exec(
            tx,
            "INSERT INTO blobs (digest, size, touched_at)
             SELECT $1::text, coalesce((SELECT max(size) FROM repo_blobs WHERE digest = $1),
                                       (SELECT max(size) FROM manifests WHERE digest = $1), 0),
                    $2",
            &[&digest, &now],
        )
        .await?;
        return Ok(false);
    }
    exec(
        tx,
        "INSERT INTO blobs (digest, size, touched_at, deleting_since) VALUES ($1, 0, $2, $2)",
        &[&digest, &now],
    )
    .await?;
    Ok(true)
}

/// Whether any link, manifest or reference names `digest`.
async fn named(tx: &Transaction<'_>, digest: &str) -> Sql<bool> {
    let row = one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = $1)
             OR EXISTS (SELECT 1 FROM manifest_refs WHERE child = $1)
             OR EXISTS (SELECT 1 FROM manifests WHERE digest = $1)",
        &[&digest],
    )
    .await?;
    Ok(row.get(0))
}

pub(super) async fn known(c: &impl GenericClient, digest: &str) -> Sql<bool> {
    exists(c, "SELECT 1 FROM blobs WHERE digest = $1", &[&digest]).await
}

pub(super) async fn reclaimable(c: &impl GenericClient) -> Sql<Reclaimable> {
    let sql = format!(
        "SELECT count(*), coalesce(sum(b.size), 0)::bigint FROM blobs b
         WHERE b.deleting_since IS NULL AND {UNREFERENCED}"
    );
    let row = one(c, &sql, &[]).await?;
    Ok(Reclaimable {
        blobs: unsigned(row.get(0)),
        bytes: unsigned(row.get(1)),
    })
}

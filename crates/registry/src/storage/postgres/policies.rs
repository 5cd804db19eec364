//! Queries behind the policies: immutable tags and quotas checked inside
//! the manifest PUT's transaction, last-pull times, the tags retention
//! reads and the conditional delete it writes with.

use super::db::{all, exec, exists, one, opt, unsigned, Sql};
use super::{parse_digest, REPO_ID};
use crate::error::{Error, QuotaResource};
use crate::policy::TagState;
use crate::storage::Quota;
use crate::storage::{PullRecord, PulledBy, RepositoryUsage};
use berth_oci::Digest;
use deadpool_postgres::{GenericClient, Transaction};

/// What a PUT found before writing, to decide afterwards whether it grew
/// the repository.
pub(super) struct BeforePut {
    manifest_is_new: bool,
    tag_is_new: bool,
}

/// Before a PUT of `digest` tagged `tag` into repository `repo_id` writes:
/// refuses moving an immutable tag, and notes what the PUT adds.
pub(super) async fn before_put(
    tx: &Transaction<'_>,
    repo: &str,
    repo_id: i64,
    digest: &Digest,
    tag: Option<&str>,
    immutable_tag: bool,
) -> Sql<BeforePut> {
    let digest_text = digest.to_string();
    let current: Option<String> = match tag {
        None => None,
        Some(tag) => opt(
            tx,
            "SELECT digest FROM tags WHERE repo_id = $1 AND name = $2",
            &[&repo_id, &tag],
        )
        .await?
        .map(|r| r.get(0)),
    };
    if let (true, Some(tag), Some(current)) = (immutable_tag, tag, &current) {
        if *current != digest_text {
            return Err(Error::TagImmutable {
                repository: repo.to_string(),
                tag: tag.to_string(),
                current: parse_digest(current.clone())?,
            }
            .into());
        }
    }
    let manifest_exists = exists(
        tx,
        "SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2",
        &[&repo_id, &digest_text],
    )
    .await?;
    Ok(BeforePut {
        manifest_is_new: !manifest_exists,
        tag_is_new: tag.is_some() && current.is_none(),
    })
}

/// After the PUT's writes, in its transaction: refuses (so the whole PUT
/// rolls back) when it took the repository over `quota`. Only what the PUT
/// added is judged: re-pushing what is there, or moving a tag, passes even
/// in a repository already over a quota lowered since.
pub(super) async fn after_put(
    tx: &Transaction<'_>,
    repo: &str,
    repo_id: i64,
    before: BeforePut,
    quota: Option<&Quota>,
) -> Sql<()> {
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
        if bytes_bound(tx, repo_id).await? > limit {
            let used = stored_bytes(tx, repo_id).await?;
            over(QuotaResource::Bytes, used, limit)?;
        }
    }
    if let (true, Some(limit)) = (checks_tags, quota.max_tags) {
        over(QuotaResource::Tags, tag_count(tx, repo_id).await?, limit)?;
    }
    Ok(())
}

/// The repository's manifests plus every blob linked to it, named by a
/// manifest or not: never less than [`stored_bytes`].
async fn bytes_bound(c: &impl GenericClient, repo_id: i64) -> Sql<u64> {
    let row = one(
        c,
        "SELECT ((SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repo_id = $1)
               + (SELECT COALESCE(SUM(size), 0) FROM repo_blobs WHERE repo_id = $1))::bigint",
        &[&repo_id],
    )
    .await?;
    Ok(unsigned(row.get(0)))
}

/// Manifests' own bytes, plus each blob a manifest names counted once (an
/// index's children are manifests, counted as such).
async fn stored_bytes(c: &impl GenericClient, repo_id: i64) -> Sql<u64> {
    let row = one(
        c,
        "SELECT ((SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repo_id = $1)
           + (SELECT COALESCE(SUM(b.size), 0) FROM repo_blobs b
              WHERE b.repo_id = $1
                AND EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo_id = $1 AND r.child = b.digest)
                AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = $1 AND m.digest = b.digest)))::bigint",
        &[&repo_id],
    )
    .await?;
    Ok(unsigned(row.get(0)))
}

async fn tag_count(c: &impl GenericClient, repo_id: i64) -> Sql<u64> {
    let row = one(
        c,
        "SELECT count(*) FROM tags WHERE repo_id = $1",
        &[&repo_id],
    )
    .await?;
    Ok(unsigned(row.get(0)))
}

/// Usage of the repository named `repo`; zero if it does not exist.
pub(super) async fn usage(c: &impl GenericClient, repo: &str) -> Sql<RepositoryUsage> {
    let id = opt(c, "SELECT id FROM repositories WHERE name = $1", &[&repo]).await?;
    match id.map(|r| r.get::<_, i64>(0)) {
        Some(id) => Ok(RepositoryUsage {
            stored_bytes: stored_bytes(c, id).await?,
            tags: tag_count(c, id).await?,
        }),
        None => Ok(RepositoryUsage::default()),
    }
}

/// Moves last-pull times forward (never back: records may arrive late).
/// Pulls of tags or manifests deleted since are ignored.
pub(super) async fn record_pulls(tx: &Transaction<'_>, pulls: &[PullRecord]) -> Sql<()> {
    let by_tag = format!(
        "UPDATE tags SET pulled_at = GREATEST(COALESCE(pulled_at, 0), $3)
         WHERE repo_id = {REPO_ID} AND name = $2"
    );
    let by_digest = format!(
        "UPDATE manifests SET pulled_at = GREATEST(COALESCE(pulled_at, 0), $3)
         WHERE repo_id = {REPO_ID} AND digest = $2"
    );
    for pull in pulls {
        let repo = pull.repository.as_str();
        match &pull.by {
            PulledBy::Tag(tag) => exec(tx, &by_tag, &[&repo, &tag.as_str(), &pull.at]).await?,
            PulledBy::Digest(digest) => {
                exec(tx, &by_digest, &[&repo, &digest.to_string(), &pull.at]).await?
            }
        };
    }
    Ok(())
}

/// Every tag of `repo` with its push time and its last pull (by tag, or of
/// its manifest by digest, whichever is later; GREATEST skips a NULL).
pub(super) async fn tag_states(c: &impl GenericClient, repo: &str) -> Sql<Vec<TagState>> {
    let sql = format!(
        "SELECT t.name, t.digest, t.updated_at, GREATEST(t.pulled_at, m.pulled_at)
         FROM tags t
         LEFT JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
         WHERE t.repo_id = {REPO_ID}
         ORDER BY t.name"
    );
    let rows = all(c, &sql, &[&repo]).await?;
    rows.iter()
        .map(|r| {
            Ok(TagState {
                tag: r.get(0),
                digest: parse_digest(r.get(1))?,
                pushed_at: r.get(2),
                pulled_at: r.get(3),
            })
        })
        .collect()
}

/// Deletes `tag` only if it still points at `digest` and was last pushed
/// at `updated_at`: a tag pushed again since retention looked survives.
pub(super) async fn delete_tag_if(
    tx: &Transaction<'_>,
    repo: &str,
    tag: &str,
    digest: &str,
    updated_at: i64,
) -> Sql<bool> {
    let sql = format!(
        "DELETE FROM tags
         WHERE repo_id = {REPO_ID} AND name = $2 AND digest = $3 AND updated_at = $4"
    );
    let deleted = exec(tx, &sql, &[&repo, &tag, &digest, &updated_at]).await?;
    if deleted > 0 {
        let sql = format!("DELETE FROM cached_tags WHERE repo_id = {REPO_ID} AND tag = $2");
        exec(tx, &sql, &[&repo, &tag]).await?;
    }
    Ok(deleted > 0)
}

//! The embedded [`MetaStore`]: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread that commits in groups
//! ([`writer`]); a few reader connections answer queries concurrently
//! ([`readers`]). The schema is the versioned one both engines share
//! ([`crate::storage::schema`], applied here by [`schema`]). The queries
//! live by area in [`blobs`], [`manifests`], [`listings`] and [`uploads`],
//! as functions of a connection; this module only routes each trait method
//! to its query and its connection.

mod blobs;
mod browse;
mod cache;
mod gc;
mod listings;
mod manifests;
mod monitoring;
mod policies;
mod readers;
mod replicas;
mod repositories;
pub mod schema;
mod uploads;
mod writer;

use super::{
    BlobClaim, CacheSource, EvictionCandidate, ManifestFacts, ManifestRecord, ManifestRow,
    MetaStore, Overview, PullRecord, PutOptions, Reclaimable, ReferrerRecord, RepositoryDeleted,
    RepositoryOrigin, RepositorySummary, RepositoryUsage, StoreStats, TagCursor, TagRow,
    UploadLimits, UploadProgress, UploadSession,
};
use crate::error::{Error, Result};
use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use readers::Readers;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use writer::{Commit, Writer};

pub struct SqliteMetaStore {
    writer: Writer,
    readers: Readers,
    file: monitoring::OpenedFile,
}

fn storage_err(e: impl std::fmt::Display) -> Error {
    Error::storage(e)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn parse_digest(s: String) -> Result<Digest> {
    s.parse().map_err(storage_err)
}

/// Refuses to remove `digest` from `repo` while a manifest there refers to
/// it (as a blob or as an index child). Runs in the deleting transaction, so
/// no manifest can start referring to it between the check and the delete.
fn refuse_if_referenced(tx: &Connection, repo: &str, digest: &str) -> Result<()> {
    let by: Option<String> = tx
        .prepare_cached(&format!(
            "SELECT manifest FROM manifest_refs WHERE repo_id = {REPO_ID} AND child = ?2 LIMIT 1"
        ))
        .and_then(|mut q| q.query_row([repo, digest], |r| r.get(0)).optional())
        .map_err(storage_err)?;
    match by {
        None => Ok(()),
        Some(by) => Err(Error::StillReferenced {
            digest: parse_digest(digest.to_string())?,
            by: parse_digest(by)?,
        }),
    }
}

/// Temporary files (statement journals, sorts, transient indices) kept in
/// memory. On disk SQLite puts them in `$TMPDIR`, `/var/tmp`, `/tmp` or the
/// working folder; berth's image (scratch, uid 65532, working folder `/`)
/// has none it may write, and a statement journal that cannot be created
/// rolls the whole write back ("cannot commit - no transaction is active").
const TEMP_IN_MEMORY: &str = "PRAGMA temp_store = MEMORY;";

/// The id of the repository named `?1`, inside a query.
const REPO_ID: &str = "(SELECT id FROM repositories WHERE name = ?1)";

/// Id of `name`, creating the repository row if it does not exist yet.
fn ensure_repo(tx: &Connection, name: &str) -> Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO repositories (name) VALUES (?1)",
        [name],
    )
    .map_err(storage_err)?;
    tx.query_row("SELECT id FROM repositories WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .map_err(storage_err)
}

impl SqliteMetaStore {
    /// Opens (creating if needed) the database at `path`, migrating its schema.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path).map_err(storage_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(storage_err)?;
        conn.execute_batch(TEMP_IN_MEMORY).map_err(storage_err)?;
        schema::migrate(&mut conn).map_err(storage_err)?;
        let readers = Readers::open(path)?;
        Ok(SqliteMetaStore {
            writer: Writer::start(conn)?,
            readers,
            file: monitoring::OpenedFile::of(path)?,
        })
    }

    /// A write that is durable when it returns.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.write(Commit::Durable, f).await
    }

    /// A write that survives berth stopping, not necessarily the machine.
    async fn write_lazily<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.write(Commit::Lazy, f).await
    }
}

#[async_trait]
impl MetaStore for SqliteMetaStore {
    async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        claim: Option<&BlobClaim>,
    ) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        let claim = claim.map(|c| c.id.clone());
        self.write(move |tx| blobs::link(tx, &repo, &digest, size, claim.as_deref()))
            .await
    }

    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        self.readers
            .lookup(|c| blobs::size(c, repo.as_str(), &digest.to_string()))
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        self.write(move |tx| blobs::unlink(tx, &repo, &digest))
            .await
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &ManifestRecord,
        tag: Option<&Tag>,
        options: &PutOptions,
    ) -> Result<()> {
        let (repo, m, options) = (repo.to_string(), manifest.clone(), options.clone());
        let tag = tag.map(|t| t.to_string());
        self.write(move |tx| manifests::put(tx, &repo, &m, tag.as_deref(), &options))
            .await
    }

    async fn manifest_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestRow>> {
        self.readers
            .lookup(|c| Ok(manifests::by_tag(c, repo.as_str(), tag.as_str())))?
    }

    async fn manifest_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRow>> {
        self.readers
            .lookup(|c| Ok(manifests::by_digest(c, repo.as_str(), &digest.to_string())))?
    }

    async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        self.write(move |tx| manifests::delete(tx, &repo, &digest))
            .await
    }

    async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool> {
        let (repo, tag) = (repo.to_string(), tag.to_string());
        self.write(move |tx| manifests::delete_tag(tx, &repo, &tag))
            .await
    }

    async fn delete_repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryDeleted>> {
        let repo = repo.to_string();
        self.write(move |tx| repositories::delete(tx, &repo)).await
    }

    async fn list_tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>> {
        // Tag lists are short and hot (every UI asks for them): answer in place.
        self.readers
            .lookup(|c| listings::tags(c, repo.as_str(), last.unwrap_or(""), limit))
    }

    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let last = last.unwrap_or("").to_string();
        self.readers
            .read(move |c| listings::repositories(c, &last, limit))
            .await
    }

    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ReferrerRecord>> {
        let (repo, subject) = (repo.to_string(), subject.to_string());
        let artifact_type = artifact_type.map(str::to_string);
        let page = listings::Page {
            last: last.unwrap_or("").to_string(),
            limit,
        };
        let rows = self
            .readers
            .read(move |c| listings::referrers(c, &repo, &subject, artifact_type.as_deref(), &page))
            .await?;
        rows.into_iter().map(listings::into_referrer).collect()
    }

    async fn repository_summaries(
        &self,
        filter: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositorySummary>> {
        let filter = filter.map(str::to_string);
        let last = last.unwrap_or("").to_string();
        self.readers
            .read(move |c| browse::repository_summaries(c, filter.as_deref(), &last, limit))
            .await
    }

    async fn repository_summary(&self, repo: &RepositoryName) -> Result<Option<RepositorySummary>> {
        self.readers
            .lookup(|c| browse::repository_summary(c, repo.as_str()))
    }

    async fn tag_details(
        &self,
        repo: &RepositoryName,
        after: Option<&TagCursor>,
        limit: usize,
    ) -> Result<Option<Vec<TagRow>>> {
        let (repo, after) = (repo.to_string(), after.cloned());
        let rows = self
            .readers
            .read(move |c| browse::tag_details(c, &repo, after.as_ref(), limit))
            .await?;
        let Some(rows) = rows else { return Ok(None) };
        rows.into_iter()
            .map(
                |(tag, digest, media_type, artifact_type, size, pushed_at)| {
                    Ok(TagRow {
                        tag,
                        digest: parse_digest(digest)?,
                        media_type,
                        artifact_type,
                        size_bytes: u64::try_from(size).unwrap_or(0),
                        pushed_at,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    async fn manifest_facts(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestFacts>> {
        self.readers
            .lookup(|c| browse::manifest_facts(c, repo.as_str(), &digest.to_string()))
    }

    async fn overview(&self) -> Result<Overview> {
        self.readers.read(browse::overview).await
    }

    async fn create_upload(&self, session: &UploadSession, limits: UploadLimits) -> Result<()> {
        let s = session.clone();
        self.write_lazily(move |tx| uploads::create(tx, &s, limits))
            .await
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>> {
        self.readers.lookup(|c| Ok(uploads::get(c, id)))?
    }

    async fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: &UploadProgress,
        updated_at: i64,
    ) -> Result<bool> {
        let id = id.to_string();
        let to = to.clone();
        self.write_lazily(move |tx| {
            uploads::advance(tx, &id, from, &to, updated_at)?.ok_or(Error::BlobUploadUnknown)
        })
        .await
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write_lazily(move |tx| uploads::delete(tx, &id)).await
    }

    async fn stale_uploads(&self, cutoff: i64) -> Result<Vec<String>> {
        self.readers.read(move |c| uploads::stale(c, cutoff)).await
    }

    async fn check(&self) -> Result<()> {
        self.file.check()?;
        self.readers.read(monitoring::answers).await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.readers.read(monitoring::stats).await
    }

    async fn claim_blob(&self, digest: &Digest, lease: Duration) -> Result<Option<BlobClaim>> {
        let digest = digest.clone();
        let lease = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
        // A lost claim (machine crash) loses the publish it guarded too.
        self.write_lazily(move |tx| gc::claim(tx, &digest, lease))
            .await
    }

    async fn release_claim(&self, claim: &BlobClaim) -> Result<()> {
        let id = claim.id.clone();
        self.write_lazily(move |tx| gc::release_claim(tx, &id))
            .await
    }

    async fn touch_blobs(&self, touches: Vec<(RepositoryName, Digest)>, at: i64) -> Result<()> {
        let touches: Vec<(String, String)> = touches
            .into_iter()
            .map(|(r, d)| (r.to_string(), d.to_string()))
            .collect();
        self.write_lazily(move |tx| gc::touch(tx, &touches, at))
            .await
    }

    async fn gc_untagged_manifests(
        &self,
        pushed_before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest)>> {
        let rows = self
            .readers
            .read(move |c| gc::untagged_manifests(c, pushed_before, limit))
            .await?;
        gc::into_manifest_pairs(rows)
    }

    async fn delete_untagged_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        pushed_before: i64,
    ) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        self.write(move |tx| gc::delete_untagged_manifest(tx, &repo, &digest, pushed_before))
            .await
    }

    async fn gc_dangling_links(
        &self,
        touched_before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest, u64)>> {
        let rows = self
            .readers
            .read(move |c| gc::dangling_links(c, touched_before, limit))
            .await?;
        gc::into_links(rows)
    }

    async fn unlink_dangling(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        touched_before: i64,
    ) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        self.write(move |tx| gc::unlink_dangling(tx, &repo, &digest, touched_before))
            .await
    }

    async fn gc_blob_candidates(
        &self,
        touched_before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>> {
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        let rows = self
            .readers
            .read(move |c| gc::blob_candidates(c, touched_before, &after, limit))
            .await?;
        gc::into_sized(rows)
    }

    async fn tombstone_blob(&self, digest: &Digest, touched_before: i64) -> Result<Option<u64>> {
        let digest = digest.to_string();
        self.write(move |tx| gc::tombstone(tx, &digest, touched_before))
            .await
    }

    async fn drop_tombstone(&self, digest: &Digest) -> Result<()> {
        let digest = digest.to_string();
        // Lost in a machine crash, it is found again by `tombstones` at start-up.
        self.write_lazily(move |tx| gc::drop_tombstone(tx, &digest))
            .await
    }

    async fn tombstones(&self) -> Result<Vec<Digest>> {
        let rows = self.readers.read(gc::tombstones).await?;
        rows.into_iter().map(parse_digest).collect()
    }

    async fn tombstone_orphan(&self, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        self.write(move |tx| gc::tombstone_orphan(tx, &digest))
            .await
    }

    async fn known_blob(&self, digest: &Digest) -> Result<bool> {
        self.readers.lookup(|c| gc::known(c, &digest.to_string()))
    }

    async fn reclaimable(&self) -> Result<Reclaimable> {
        self.readers.read(gc::reclaimable).await
    }

    async fn expire_claims(&self, now: i64) -> Result<u64> {
        self.write_lazily(move |tx| gc::expire_claims(tx, now))
            .await
    }

    async fn record_pulls(&self, pulls: Vec<PullRecord>) -> Result<()> {
        if pulls.is_empty() {
            return Ok(());
        }
        self.write_lazily(move |tx| policies::record_pulls(tx, &pulls))
            .await
    }

    async fn tag_states(&self, repo: &RepositoryName) -> Result<Vec<crate::policy::TagState>> {
        let repo = repo.to_string();
        self.readers
            .read(move |c| policies::tag_states(c, &repo))
            .await
    }

    async fn delete_tag_if(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        updated_at: i64,
    ) -> Result<bool> {
        let (repo, tag, digest) = (repo.to_string(), tag.to_string(), digest.to_string());
        self.write(move |tx| policies::delete_tag_if(tx, &repo, &tag, &digest, updated_at))
            .await
    }

    async fn repository_usage(&self, repo: &RepositoryName) -> Result<RepositoryUsage> {
        let repo = repo.to_string();
        self.readers.read(move |c| policies::usage(c, &repo)).await
    }

    async fn repository_origin(&self, repo: &RepositoryName) -> Result<RepositoryOrigin> {
        self.readers
            .lookup(|c| Ok(cache::origin(c, repo.as_str())))?
    }

    async fn mark_cached(&self, repo: &RepositoryName, source: &CacheSource) -> Result<()> {
        let (repo, source) = (repo.to_string(), source.clone());
        self.write(move |tx| cache::mark_by_name(tx, &repo, &source))
            .await
    }

    async fn tag_checked_at(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<i64>> {
        self.readers
            .lookup(|c| Ok(cache::tag_checked_at(c, repo.as_str(), tag.as_str())))?
    }

    async fn set_tag_checked(&self, repo: &RepositoryName, tag: &Tag, at: i64) -> Result<()> {
        let (repo, tag) = (repo.to_string(), tag.to_string());
        // A lost check time costs one more HEAD upstream, nothing worse.
        self.write_lazily(move |tx| cache::set_tag_checked(tx, &repo, &tag, at))
            .await
    }

    async fn cached_bytes(&self) -> Result<u64> {
        self.readers.read(|c| Ok(cache::cached_bytes(c))).await?
    }

    async fn eviction_candidates(&self, limit: usize) -> Result<Vec<EvictionCandidate>> {
        self.readers
            .read(move |c| Ok(cache::eviction_candidates(c, limit)))
            .await?
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let until = now().saturating_add(ttl.as_secs().min(i64::MAX as u64) as i64);
        self.write(move |tx| replicas::try_lease(tx, &name, &holder, until))
            .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |tx| replicas::release_lease(tx, &name, &holder))
            .await
    }

    async fn shared_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>> {
        let name = name.to_string();
        self.write(move |tx| replicas::shared_secret(tx, &name, &candidate))
            .await
    }

    async fn repository_links(
        &self,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>> {
        let repo = repo.as_str().to_string();
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        self.readers
            .read(move |c| Ok(replicas::links(c, &repo, &after, limit)))
            .await?
    }

    async fn repository_manifests(
        &self,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestRow>> {
        let repo = repo.as_str().to_string();
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        self.readers
            .read(move |c| Ok(replicas::manifests(c, &repo, &after, limit)))
            .await?
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn keeps_every_meta_store_promise() {
        let dir = tempfile::tempdir().unwrap();
        let meta = super::SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
        crate::testing::meta_store(std::sync::Arc::new(meta)).await;
    }

    #[tokio::test]
    async fn every_connection_keeps_its_temporary_files_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let meta = super::SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
        let temp_store =
            |c: &rusqlite::Connection| c.query_row("PRAGMA temp_store", [], |r| r.get::<_, i64>(0));
        // 2 = MEMORY: nothing needs a writable temporary folder.
        let written = meta.write(move |c| temp_store(c).map_err(super::storage_err));
        assert_eq!(written.await.unwrap(), 2);
        for _ in 0..super::readers::READERS {
            assert_eq!(meta.readers.read(temp_store).await.unwrap(), 2);
        }
    }

    #[tokio::test]
    async fn a_linked_file_without_a_blobs_row_is_adopted_not_deleted_as_an_orphan() {
        use crate::storage::MetaStore;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let meta = super::SqliteMetaStore::open(&path).unwrap();
        let (r, d) = (
            "a".parse().unwrap(),
            berth_oci::Digest::sha256_of(b"relinked"),
        );
        crate::testing::publish_link(&meta, &r, &d, 8).await;
        // As a repair that re-adds a link, or a database from before v5, leaves it.
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute("DELETE FROM blobs", []).unwrap();
        assert!(!meta.known_blob(&d).await.unwrap());
        assert!(!meta.tombstone_orphan(&d).await.unwrap());
        assert!(meta.known_blob(&d).await.unwrap(), "adopted");
        assert!(meta.tombstones().await.unwrap().is_empty());
        assert_eq!(meta.blob_size(&r, &d).await.unwrap(), Some(8));
    }

    #[tokio::test]
    async fn the_check_fails_while_the_database_file_is_moved_or_replaced() {
        use crate::storage::MetaStore;
        let dir = tempfile::tempdir().unwrap();
        let (path, aside) = (dir.path().join("meta.db"), dir.path().join("meta.db.aside"));
        let meta = super::SqliteMetaStore::open(&path).unwrap();
        meta.check().await.unwrap();
        std::fs::rename(&path, &aside).unwrap();
        let moved = meta.check().await.unwrap_err().to_string();
        assert!(moved.contains("moved or deleted"), "{moved}");
        std::fs::copy(&aside, &path).unwrap();
        let replaced = meta.check().await.unwrap_err().to_string();
        assert!(replaced.contains("not the file berth opened"), "{replaced}");
        std::fs::rename(&aside, &path).unwrap();
        meta.check().await.unwrap();
    }
}

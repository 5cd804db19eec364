//! [`MetaStore`] on PostgreSQL: what several berth replicas share.
//!
//! The same rules as the embedded store ([`super::sqlite`]), in the same
//! areas ([`blobs`], [`manifests`], [`listings`], [`uploads`], [`gc`],
//! [`policies`], [`cache`], [`browse`]), over one pool of connections
//! (deadpool, each connection caching its prepared statements) and the
//! shared schema ([`crate::storage::schema`], run by [`migrate`]).
//!
//! Isolation, per kind of operation:
//! - **Every write** runs in one SERIALIZABLE transaction, retried from the
//!   start on a serialization failure (40001) or deadlock (40P01), up to
//!   [`db::ATTEMPTS`] times. SERIALIZABLE is what makes the embedded store's
//!   read-check-write rules hold across replicas without naming a lock: a
//!   manifest PUT that checked its references, a delete refused for a
//!   reference, a tombstone re-checking that nothing names a blob, a claim
//!   checked before a link, a tag move with its immutability and quota
//!   checks, the upload caps counted before an insert, and an upload
//!   advanced only from the offset it was read at: if another transaction
//!   changed what one of them read before it committed, one of the two is
//!   rolled back and runs again, seeing the other's result.
//! - **Every read** is a single statement, so it sees one snapshot (READ
//!   COMMITTED takes one per statement); reads that need two statements
//!   (a repository's existence, then its tags) tolerate a write between them
//!   exactly as the embedded store's readers do.
//! - **Migrations** run in one READ COMMITTED transaction holding an
//!   advisory lock ([`migrate`]): a replica that waited for the lock must
//!   see, in its next statement, the schema the other one committed.
//!
//! Timestamps are Unix seconds (BIGINT), sizes BIGINT, digests and names
//! TEXT in the "C" collation (byte order, as SQLite compares, which keyset
//! pages and the catalog's sort rely on), opaque bytes BYTEA.

mod blobs;
mod browse;
mod cache;
mod coordination;
mod db;
mod gc;
mod listings;
mod manifests;
mod migrate;
mod monitoring;
mod policies;
mod repositories;
mod uploads;

use super::{
    BlobClaim, CacheSource, EvictionCandidate, ManifestFacts, ManifestRecord, ManifestRow,
    MetaStore, Overview, PullRecord, PutOptions, Reclaimable, ReferrerRecord, RepositoryDeleted,
    RepositoryOrigin, RepositorySummary, RepositoryUsage, StoreStats, TagCursor, TagRow,
    UploadLimits, UploadProgress, UploadSession,
};
use crate::error::{Error, Result};
use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use db::{exec, one, opt, Failure, Sql};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::IsolationLevel;

pub use migrate::SchemaError;

/// Connections per replica: enough for the reads and writes of one
/// process under load, few enough that several replicas stay under the
/// server's default `max_connections` (100).
const POOL_SIZE: usize = 16;

/// A server that does not answer within this is down: requests fail
/// instead of hanging.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// Longest wait for a free pooled connection.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(30);

/// The PostgreSQL metadata store.
pub struct PostgresMetaStore {
    pool: Pool,
}

/// Runs `$body` (an expression using the transaction `$tx`, evaluating to
/// a future of `Sql<T>`) in a SERIALIZABLE transaction on `$store`, retried
/// while it fails with a serialization failure or a deadlock.
macro_rules! serializable {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 1;
        loop {
            let outcome: Sql<_> = async {
                let mut client = $store.client().await?;
                let $tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .await?;
                let value = $body.await?;
                $tx.commit().await?;
                Ok(value)
            }
            .await;
            match outcome {
                Err(failure) if failure.retryable() && attempt < db::ATTEMPTS => {
                    tokio::time::sleep(db::backoff(attempt)).await;
                    attempt += 1;
                }
                other => break other.map_err(Failure::into_error),
            }
        }
    }};
}

/// Runs `$body` (a future of `Sql<T>` using the connection `$c`) on a
/// pooled connection: a read, one statement (or two that tolerate a write
/// between them).
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {{
        let outcome: Sql<_> = async {
            let $c = $store.client().await?;
            $body.await
        }
        .await;
        outcome.map_err(Failure::into_error)
    }};
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn parse_digest(s: String) -> Sql<Digest> {
    Ok(s.parse().map_err(Error::storage)?)
}

/// The id of the repository named `$1`, inside a query.
const REPO_ID: &str = "(SELECT id FROM repositories WHERE name = $1)";

/// Id of `name`, creating the repository row if it does not exist yet.
/// A row another transaction inserted since this one began is a
/// serialization failure (the caller retries and then sees it).
async fn ensure_repo(tx: &Transaction<'_>, name: &str) -> Sql<i64> {
    exec(
        tx,
        "INSERT INTO repositories (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[&name],
    )
    .await?;
    let row = one(tx, "SELECT id FROM repositories WHERE name = $1", &[&name]).await?;
    Ok(row.get(0))
}

/// Refuses to remove `digest` from `repo` while a manifest there refers to
/// it (as a blob or as an index child). Runs in the deleting transaction:
/// a manifest PUT adding such a reference concurrently conflicts with it.
async fn refuse_if_referenced(tx: &Transaction<'_>, repo: &str, digest: &str) -> Sql<()> {
    let sql = format!(
        "SELECT manifest FROM manifest_refs WHERE repo_id = {REPO_ID} AND child = $2 LIMIT 1"
    );
    match opt(tx, &sql, &[&repo, &digest]).await? {
        None => Ok(()),
        Some(row) => Err(Error::StillReferenced {
            digest: parse_digest(digest.to_string())?,
            by: parse_digest(row.get(0))?,
        }
        .into()),
    }
}

impl PostgresMetaStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`,
    /// without TLS), with `password` if given (else any in the URL), and
    /// brings its schema to the current version. Refuses a database whose
    /// schema is newer than this berth knows.
    pub async fn connect(url: &str, password: Option<String>) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Storage(format!("metadata URL: {e}")))?;
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_application_name().is_none() {
            config.application_name("berth");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_WITHIN);
        }
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_WITHIN))
            .wait_timeout(Some(WAIT_FOR_CONNECTION))
            .build()
            .map_err(|e| Error::Storage(format!("postgresql pool: {e}")))?;
        let store = PostgresMetaStore { pool };
        let mut client = store.client().await.map_err(Failure::into_error)?;
        migrate::migrate(&mut client)
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        Ok(store)
    }

    /// The plans PostgreSQL picks for the hot reads (a manifest by tag, a
    /// blob's size in a repository) as it would run them now, for tests that
    /// they stay index lookups.
    #[cfg(any(test, feature = "testing"))]
    pub async fn hot_read_plans(&self, repo: &str, tag: &str, digest: &str) -> Result<Vec<String>> {
        let mut plans = Vec::new();
        for (sql, key) in [(manifests::BY_TAG, tag), (blobs::SIZE, digest)] {
            let explain = format!("EXPLAIN {sql}");
            let rows = read!(self, |c| db::all(&c, &explain, &[&repo, &key]))?;
            let lines: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            plans.push(lines.join("\n"));
        }
        Ok(plans)
    }

    async fn client(&self) -> Sql<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| Failure::Pool(e.to_string()))
    }
}

#[async_trait]
impl MetaStore for PostgresMetaStore {
    async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        claim: Option<&BlobClaim>,
    ) -> Result<bool> {
        let (repo, digest) = (repo.as_str(), digest.to_string());
        let claim = claim.map(|c| c.id.as_str());
        serializable!(self, |tx| blobs::link(&tx, repo, &digest, size, claim))
    }

    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let digest = digest.to_string();
        read!(self, |c| blobs::size(&c, repo.as_str(), &digest))
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        serializable!(self, |tx| blobs::unlink(&tx, repo.as_str(), &digest))
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &ManifestRecord,
        tag: Option<&Tag>,
        options: &PutOptions,
    ) -> Result<()> {
        let tag = tag.map(|t| t.as_str());
        serializable!(self, |tx| manifests::put(
            &tx,
            repo.as_str(),
            manifest,
            tag,
            options
        ))
    }

    async fn manifest_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestRow>> {
        read!(self, |c| manifests::by_tag(&c, repo.as_str(), tag.as_str()))
    }

    async fn manifest_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRow>> {
        let digest = digest.to_string();
        read!(self, |c| manifests::by_digest(&c, repo.as_str(), &digest))
    }

    async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        serializable!(self, |tx| manifests::delete(&tx, repo.as_str(), &digest))
    }

    async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool> {
        serializable!(self, |tx| manifests::delete_tag(
            &tx,
            repo.as_str(),
            tag.as_str()
        ))
    }

    async fn delete_repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryDeleted>> {
        serializable!(self, |tx| repositories::delete(&tx, repo.as_str()))
    }

    async fn list_tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>> {
        let last = last.unwrap_or("");
        read!(self, |c| listings::tags(&c, repo.as_str(), last, limit))
    }

    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let last = last.unwrap_or("");
        read!(self, |c| listings::repositories(&c, last, limit))
    }

    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ReferrerRecord>> {
        let (subject, last) = (subject.to_string(), last.unwrap_or(""));
        read!(self, |c| listings::referrers(
            &c,
            repo.as_str(),
            &subject,
            artifact_type,
            last,
            limit
        ))
    }

    async fn repository_summaries(
        &self,
        filter: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositorySummary>> {
        let last = last.unwrap_or("");
        read!(self, |c| browse::repository_summaries(
            &c, filter, last, limit
        ))
    }

    async fn repository_summary(&self, repo: &RepositoryName) -> Result<Option<RepositorySummary>> {
        read!(self, |c| browse::repository_summary(&c, repo.as_str()))
    }

    async fn tag_details(
        &self,
        repo: &RepositoryName,
        after: Option<&TagCursor>,
        limit: usize,
    ) -> Result<Option<Vec<TagRow>>> {
        read!(self, |c| browse::tag_details(
            &c,
            repo.as_str(),
            after,
            limit
        ))
    }

    async fn manifest_facts(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestFacts>> {
        let digest = digest.to_string();
        read!(self, |c| browse::manifest_facts(&c, repo.as_str(), &digest))
    }

    async fn overview(&self) -> Result<Overview> {
        read!(self, |c| browse::overview(&c))
    }

    async fn create_upload(&self, session: &UploadSession, limits: UploadLimits) -> Result<()> {
        serializable!(self, |tx| uploads::create(&tx, session, limits))
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>> {
        read!(self, |c| uploads::get(&c, id))
    }

    async fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: &UploadProgress,
        updated_at: i64,
    ) -> Result<bool> {
        let found = serializable!(self, |tx| uploads::advance(&tx, id, from, to, updated_at))?;
        found.ok_or(Error::BlobUploadUnknown)
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        serializable!(self, |tx| uploads::delete(&tx, id))
    }

    async fn stale_uploads(&self, cutoff: i64) -> Result<Vec<String>> {
        read!(self, |c| uploads::stale(&c, cutoff))
    }

    async fn check(&self) -> Result<()> {
        read!(self, |c| monitoring::answers(&c))
    }

    async fn stats(&self) -> Result<StoreStats> {
        read!(self, |c| monitoring::stats(&c))
    }

    async fn claim_blob(&self, digest: &Digest, lease: Duration) -> Result<Option<BlobClaim>> {
        let lease = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
        serializable!(self, |tx| gc::claim(&tx, digest, lease))
    }

    async fn release_claim(&self, claim: &BlobClaim) -> Result<()> {
        serializable!(self, |tx| gc::release_claim(&tx, &claim.id))
    }

    async fn touch_blobs(&self, touches: Vec<(RepositoryName, Digest)>, at: i64) -> Result<()> {
        let touches: Vec<(String, String)> = touches
            .into_iter()
            .map(|(r, d)| (r.to_string(), d.to_string()))
            .collect();
        serializable!(self, |tx| gc::touch(&tx, &touches, at))
    }

    async fn gc_untagged_manifests(
        &self,
        pushed_before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest)>> {
        read!(self, |c| gc::untagged_manifests(&c, pushed_before, limit))
    }

    async fn delete_untagged_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        pushed_before: i64,
    ) -> Result<bool> {
        let digest = digest.to_string();
        serializable!(self, |tx| gc::delete_untagged_manifest(
            &tx,
            repo.as_str(),
            &digest,
            pushed_before
        ))
    }

    async fn gc_dangling_links(
        &self,
        touched_before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest, u64)>> {
        read!(self, |c| gc::dangling_links(&c, touched_before, limit))
    }

    async fn unlink_dangling(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        touched_before: i64,
    ) -> Result<bool> {
        let digest = digest.to_string();
        serializable!(self, |tx| gc::unlink_dangling(
            &tx,
            repo.as_str(),
            &digest,
            touched_before
        ))
    }

    async fn gc_blob_candidates(
        &self,
        touched_before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>> {
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        read!(self, |c| gc::blob_candidates(
            &c,
            touched_before,
            &after,
            limit
        ))
    }

    async fn tombstone_blob(&self, digest: &Digest, touched_before: i64) -> Result<Option<u64>> {
        let digest = digest.to_string();
        serializable!(self, |tx| gc::tombstone(&tx, &digest, touched_before))
    }

    async fn drop_tombstone(&self, digest: &Digest) -> Result<()> {
        let digest = digest.to_string();
        serializable!(self, |tx| gc::drop_tombstone(&tx, &digest))
    }

    async fn tombstones(&self) -> Result<Vec<Digest>> {
        read!(self, |c| gc::tombstones(&c))
    }

    async fn tombstone_orphan(&self, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        serializable!(self, |tx| gc::tombstone_orphan(&tx, &digest))
    }

    async fn known_blob(&self, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        read!(self, |c| gc::known(&c, &digest))
    }

    async fn reclaimable(&self) -> Result<Reclaimable> {
        read!(self, |c| gc::reclaimable(&c))
    }

    async fn expire_claims(&self, now: i64) -> Result<u64> {
        serializable!(self, |tx| gc::expire_claims(&tx, now))
    }

    async fn record_pulls(&self, pulls: Vec<PullRecord>) -> Result<()> {
        if pulls.is_empty() {
            return Ok(());
        }
        serializable!(self, |tx| policies::record_pulls(&tx, &pulls))
    }

    async fn tag_states(&self, repo: &RepositoryName) -> Result<Vec<crate::policy::TagState>> {
        read!(self, |c| policies::tag_states(&c, repo.as_str()))
    }

    async fn delete_tag_if(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        updated_at: i64,
    ) -> Result<bool> {
        let digest = digest.to_string();
        serializable!(self, |tx| policies::delete_tag_if(
            &tx,
            repo.as_str(),
            tag.as_str(),
            &digest,
            updated_at
        ))
    }

    async fn repository_usage(&self, repo: &RepositoryName) -> Result<RepositoryUsage> {
        read!(self, |c| policies::usage(&c, repo.as_str()))
    }

    async fn repository_origin(&self, repo: &RepositoryName) -> Result<RepositoryOrigin> {
        read!(self, |c| cache::origin(&c, repo.as_str()))
    }

    async fn mark_cached(&self, repo: &RepositoryName, source: &CacheSource) -> Result<()> {
        serializable!(self, |tx| cache::mark_by_name(&tx, repo.as_str(), source))
    }

    async fn tag_checked_at(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<i64>> {
        read!(self, |c| cache::tag_checked_at(
            &c,
            repo.as_str(),
            tag.as_str()
        ))
    }

    async fn set_tag_checked(&self, repo: &RepositoryName, tag: &Tag, at: i64) -> Result<()> {
        serializable!(self, |tx| cache::set_tag_checked(
            &tx,
            repo.as_str(),
            tag.as_str(),
            at
        ))
    }

    async fn cached_bytes(&self) -> Result<u64> {
        read!(self, |c| cache::cached_bytes(&c))
    }

    async fn eviction_candidates(&self, limit: usize) -> Result<Vec<EvictionCandidate>> {
        read!(self, |c| cache::eviction_candidates(&c, limit))
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        serializable!(self, |tx| coordination::try_lease(&tx, name, holder, ttl))
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        serializable!(self, |tx| coordination::release_lease(&tx, name, holder))
    }

    async fn shared_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>> {
        serializable!(self, |tx| coordination::shared_secret(
            &tx, name, &candidate
        ))
    }

    async fn repository_links(
        &self,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>> {
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        read!(self, |c| listings::links(&c, repo.as_str(), &after, limit))
    }

    async fn repository_manifests(
        &self,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestRow>> {
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        read!(self, |c| listings::manifests(
            &c,
            repo.as_str(),
            &after,
            limit
        ))
    }
}

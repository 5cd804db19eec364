//! [`MetaStore`]: repository-scoped metadata, and the rows it answers with.

use super::{PullRecord, RepositoryUsage};
use crate::error::Result;
use crate::policy::TagState;
use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use std::time::Duration;

/// A manifest as the metadata store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// Annotations as a JSON object, for the referrers API.
    pub annotations: Option<String>,
    /// Blobs (digest, declared size) that must be linked to the repository
    /// with that size for the manifest to be accepted.
    pub blobs: Vec<(Digest, u64)>,
    /// Manifests (digest, declared size) that must exist in the repository
    /// (children of an index).
    pub manifests: Vec<(Digest, u64)>,
}

/// What serving a manifest needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRow {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A descriptor row answered by the referrers query.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferrerRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

/// An upload in progress, as the metadata store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub id: String,
    pub repository: RepositoryName,
    /// Bytes received so far.
    pub offset: u64,
    /// Seconds since the Unix epoch of the last change.
    pub updated_at: i64,
    /// The address that started it, when known.
    pub client: Option<std::net::IpAddr>,
    /// The hash of the first `offset` bytes ([`berth_oci::DigestHasher::save`]);
    /// `None` if unknown (the bytes are re-read at commit).
    pub hash_state: Option<Vec<u8>>,
    /// The blob store's state of the upload ([`super::UploadState`]).
    pub store_state: Vec<u8>,
}

/// What an append moves an upload session to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadProgress {
    pub offset: u64,
    pub hash_state: Option<Vec<u8>>,
    pub store_state: Vec<u8>,
}

/// Totals over the whole store, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Repositories holding at least one manifest: those the catalog lists.
    pub repositories: u64,
    /// Manifests, once per repository holding them.
    pub manifests: u64,
    /// Distinct blob digests linked to any repository.
    pub blobs: u64,
    /// Sizes of those blobs, each digest counted once.
    pub blob_bytes: u64,
    /// Upload sessions open (not yet finished, cancelled or swept).
    pub uploads: u64,
}

/// One repository as the browse listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepositorySummary {
    pub name: String,
    pub tag_count: u64,
    pub manifest_count: u64,
    /// Sizes of the distinct blobs linked to the repository (layers and
    /// configs; manifests themselves are not counted).
    pub size_bytes: u64,
    /// Unix seconds of the latest manifest push or tag move; `None` never
    /// happens for a listed repository but is kept honest in the type.
    pub last_push: Option<i64>,
    /// Where its content comes from, if it is a pull-through cache.
    pub cached_from: Option<CacheOrigin>,
}

/// The upstream a cached repository mirrors.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CacheOrigin {
    /// The configured upstream's name.
    pub upstream: String,
    /// The repository's name on the upstream.
    pub remote: String,
    /// Unix seconds of the last upstream check of any of its tags.
    pub checked_at: Option<i64>,
}

/// Whose content a repository holds: what decides whether a pull may go
/// upstream (only for absent or cached ones) and whether a push may land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryOrigin {
    /// No manifest, no blob link, not marked cached.
    Absent,
    /// Pushed content.
    Local,
    Cached(CacheOrigin),
}

/// A manifest PUT made by the pull-through cache: what it mirrors, and when
/// the tag (if any) was last checked upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSource {
    pub upstream: String,
    pub remote: String,
    pub checked_at: i64,
}

/// A cached image the eviction phase may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictionCandidate {
    pub repository: RepositoryName,
    pub digest: Digest,
    /// Unix seconds of its last pull (by tag or digest), or when it was cached.
    pub last_pulled: i64,
}

/// A tag with what a tag listing shows, from the metadata alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub tag: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    /// The manifest, its distinct blobs and, for an index, its children
    /// and their distinct blobs.
    pub size_bytes: u64,
    /// Unix seconds when the tag was last pointed at its manifest.
    pub pushed_at: i64,
}

/// Where a page of tags (newest first, then by name) resumes: after the
/// tag `name` pushed at `pushed_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCursor {
    pub pushed_at: i64,
    pub name: String,
}

/// What is known of one manifest beyond what serving it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFacts {
    /// Unix seconds of its first push into the repository.
    pub pushed_at: i64,
    pub artifact_type: Option<String>,
    /// Tags pointing at it, sorted.
    pub tags: Vec<String>,
}

/// Totals for the overview page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Overview {
    /// Repositories holding at least one manifest.
    pub repositories: u64,
    pub tags: u64,
    /// Manifests, once per repository holding them.
    pub manifests: u64,
    /// Distinct blob digests.
    pub blobs: u64,
    /// Bytes on disk for blobs: each digest once.
    pub stored_bytes: u64,
    /// Bytes the images would take if none shared a blob: every manifest's
    /// config and layers, counted once per manifest that names them.
    pub referenced_bytes: u64,
    /// `referenced_bytes` less what those blobs take stored once each: what
    /// layers shared between images save.
    pub shared_savings_bytes: u64,
}

/// What deleting a repository removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepositoryDeleted {
    pub tags: u64,
    /// Manifests of every kind: images, indexes, referrers.
    pub manifests: u64,
}

/// How many upload sessions may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    pub total: usize,
    pub per_client: usize,
}

/// Options of one manifest PUT beyond the manifest itself.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The claim taken before the manifest's bytes were written; released in
    /// the same transaction that records the manifest.
    pub claim: Option<BlobClaim>,
    /// The tag may not move to a different manifest (filled by the policies).
    pub immutable_tag: bool,
    /// Refuse if, after this PUT, the repository would exceed this.
    pub quota: Option<Quota>,
    /// A manifest fetched from an upstream: its references need not be
    /// present (they are fetched when pulled), the repository is marked
    /// cached and the tag's check time set, in the same transaction.
    pub cached: Option<CacheSource>,
}

/// Limits on what one repository may hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Its manifests plus the distinct blobs they reference, each once.
    pub max_bytes: Option<u64>,
    pub max_tags: Option<u64>,
}

/// A lease saying "the bytes of `digest` are being written into the blob
/// store right now": the collector never tombstones a claimed digest, so a
/// publish never writes a file that a collection is deleting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobClaim {
    pub id: String,
    pub digest: Digest,
}

/// What the collector could reclaim once the grace delay has passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reclaimable {
    /// Blobs no manifest in any repository references (and not manifests themselves).
    pub blobs: u64,
    pub bytes: u64,
}

/// Repository-scoped metadata: every read is one indexed query, every write
/// one transaction.
///
/// Guarantees every implementation keeps:
/// - **Durability**: writes about blobs, manifests and tags are durable when
///   they return; upload-session writes need only survive a restart of
///   berth, since a client re-sends what a lost session held.
/// - **Isolation**: each write is atomic and isolated from every other,
///   however many callers write at once (not by relying on one writer): a
///   manifest is stored only if every reference it names is present at that
///   instant, and a delete refused for a reference sees the same instant.
/// - **Idempotence**: linking a linked blob, re-putting a stored manifest and
///   deleting an absent upload succeed without changing anything else.
/// - **Missing rows**: reads answer `None`/empty; deletes answer `false`;
///   [`MetaStore::advance_upload`] on a missing session is
///   [`crate::Error::BlobUploadUnknown`].
/// - **Shared by replicas**: several processes may use one store at once;
///   upload sessions advance only by compare-and-set, and leases decide
///   which process runs work that must run once.
/// - **Garbage collection** (see [`crate::gc`]): a link exists only to a
///   blob that has a row and no tombstone, so whatever a link or manifest
///   names is in the blob store; a tombstone removes every link in its own
///   transaction; nothing is tombstoned while a live claim on it exists,
///   and nothing is claimed or linked while it is tombstoned. Claims,
///   touches and dropped tombstones need only survive a restart of berth.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Records that `repo` may read blob `digest` of `size` bytes, and
    /// touches the blob. With `claim` (a publish whose bytes were just
    /// written) the blob's row is created if needed and the claim released
    /// in the same transaction; without (a mount) the blob must already be
    /// known. Returns false, linking nothing, when the blob is tombstoned,
    /// without a claim unknown, or with a claim whose lease has ended (the
    /// collector may have taken the bytes meanwhile).
    async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        claim: Option<&BlobClaim>,
    ) -> Result<bool>;

    /// Size of `digest` if `repo` may read it.
    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>>;

    /// Removes `repo`'s link to a blob; returns whether there was one.
    /// Refused with `Error::StillReferenced` while a manifest of `repo`
    /// names the blob, decided in the same transaction as the unlink.
    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;

    /// In one transaction: checks that every blob and child manifest the record
    /// names is in `repo` (else `Error::ManifestBlobUnknown`) with the declared
    /// size (else `Error::ManifestSizeMismatch`), stores the manifest, points
    /// `tag` at it, records (touches) the manifest's own bytes as a blob and
    /// releases `options.claim` (refused with `Error::Storage` if that
    /// claim's lease has ended).
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &ManifestRecord,
        tag: Option<&Tag>,
        options: &PutOptions,
    ) -> Result<()>;

    /// A manifest by tag.
    async fn manifest_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestRow>>;

    /// A manifest by digest.
    async fn manifest_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRow>>;

    /// Deletes a manifest and every tag on it; returns whether it existed.
    /// Refused with `Error::StillReferenced` while an index of `repo` names
    /// it as a child; manifests naming it as their subject do not hold it.
    /// Touches the manifest's bytes and the children it named (their blobs
    /// and their links in `repo`), so that they get a full grace delay.
    async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;

    /// Deletes one tag; returns whether it existed.
    async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool>;

    /// Deletes the repository with all its tags, manifests and blob links
    /// in one transaction, restarting the grace period of the blobs it
    /// held (GC reclaims those no other repository references); `None` if
    /// there is no such repository.
    async fn delete_repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryDeleted>>;

    /// Up to `limit` tags after `last`, sorted; `None` if the repository has no manifests.
    async fn list_tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>>;

    /// Up to `limit` repositories holding manifests, after `last`, sorted.
    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>>;

    /// Up to `limit` manifests in `repo` whose subject is `subject`
    /// (optionally of one artifact type), sorted by digest, after `last`.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ReferrerRecord>>;

    /// Up to `limit` repositories holding manifests, after `last`, by name,
    /// whose names contain `filter` (already lower case: names are), each
    /// with its counts, size and last push: one query for the whole page.
    async fn repository_summaries(
        &self,
        filter: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositorySummary>>;

    /// The summary of one repository; `None` if it holds no manifest.
    async fn repository_summary(&self, repo: &RepositoryName) -> Result<Option<RepositorySummary>>;

    /// Up to `limit` tags of `repo`, newest first then by name, after
    /// `after`; `None` if the repository has no manifests.
    async fn tag_details(
        &self,
        repo: &RepositoryName,
        after: Option<&TagCursor>,
        limit: usize,
    ) -> Result<Option<Vec<TagRow>>>;

    /// Push time, artifact type and tags of a manifest in `repo`.
    async fn manifest_facts(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestFacts>>;

    /// Totals over the whole store. May scan whole tables.
    async fn overview(&self) -> Result<Overview>;

    /// Records a new session unless that would exceed `limits` (in total, or
    /// for the session's client): then `Error::TooManyUploads`. The count
    /// and the insert are one transaction.
    async fn create_upload(&self, session: &UploadSession, limits: UploadLimits) -> Result<()>;
    async fn upload(&self, id: &str) -> Result<Option<UploadSession>>;
    /// Moves session `id` from `from` bytes to `to`, only if it still holds
    /// `from` bytes: `Ok(false)`, changing nothing, when another request or
    /// process moved it first (so two can never both append).
    async fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: &UploadProgress,
        updated_at: i64,
    ) -> Result<bool>;
    async fn delete_upload(&self, id: &str) -> Result<()>;
    /// Ids of uploads last changed before `cutoff` (Unix seconds).
    async fn stale_uploads(&self, cutoff: i64) -> Result<Vec<String>>;

    /// Fails when the store cannot answer a trivial query, or no longer
    /// reads what is at its configured location: what a readiness probe asks.
    async fn check(&self) -> Result<()>;

    /// Totals over every repository. May scan whole tables: callers that
    /// ask often (metrics scrapes) cache the answer.
    async fn stats(&self) -> Result<StoreStats>;

    // --- Online garbage collection (see `crate::gc` for the protocol). ---

    /// Claims `digest` for a publish for `lease`; `None` while the blob is
    /// tombstoned (the caller waits and retries).
    async fn claim_blob(&self, digest: &Digest, lease: Duration) -> Result<Option<BlobClaim>>;

    /// Releases a claim whose publish failed before linking.
    async fn release_claim(&self, claim: &BlobClaim) -> Result<()>;

    /// Records reads of blobs (coalesced by the caller): bumps the links'
    /// and the blobs' `touched_at` to `at`. Need not be durable.
    async fn touch_blobs(&self, touches: Vec<(RepositoryName, Digest)>, at: i64) -> Result<()>;

    /// Up to `limit` untagged manifests pushed before `pushed_before` that no
    /// manifest of their repository holds (as an index child) and whose
    /// subject, if any, is not in their repository.
    async fn gc_untagged_manifests(
        &self,
        pushed_before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest)>>;

    /// Deletes one manifest if it still qualifies as in
    /// [`MetaStore::gc_untagged_manifests`], decided in the deleting
    /// transaction, touching what it named; whether it did.
    async fn delete_untagged_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        pushed_before: i64,
    ) -> Result<bool>;

    /// Up to `limit` links (repository, digest, size) that no manifest of
    /// their repository names, touched before `touched_before`.
    async fn gc_dangling_links(
        &self,
        touched_before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest, u64)>>;

    /// Removes one link if it is still dangling and untouched since
    /// `touched_before`; whether it did.
    async fn unlink_dangling(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        touched_before: i64,
    ) -> Result<bool>;

    /// Up to `limit` blobs (digest, size) after `after`, sorted by digest,
    /// that nothing references, touched before `touched_before` and not
    /// tombstoned.
    async fn gc_blob_candidates(
        &self,
        touched_before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>>;

    /// Re-checks that `digest` is still a candidate (unreferenced, touched
    /// before `touched_before`, no live claim); then tombstones it and
    /// removes its links, durably. `Some(size)` if it did.
    async fn tombstone_blob(&self, digest: &Digest, touched_before: i64) -> Result<Option<u64>>;

    /// Forgets a tombstoned blob once its bytes are gone.
    async fn drop_tombstone(&self, digest: &Digest) -> Result<()>;

    /// Every tombstoned digest (left by a pass a crash interrupted).
    async fn tombstones(&self) -> Result<Vec<Digest>>;

    /// Tombstones a digest the blob store holds with no `blobs` row (an
    /// orphan file), unless a live claim exists; whether it did. A digest
    /// that a link or manifest names is no orphan: it gets its row instead.
    async fn tombstone_orphan(&self, digest: &Digest) -> Result<bool>;

    /// Whether the store has a row for `digest` (tombstoned or not).
    async fn known_blob(&self, digest: &Digest) -> Result<bool>;

    /// Unreferenced blobs whatever their age.
    async fn reclaimable(&self) -> Result<Reclaimable>;

    /// Deletes claims whose lease ended before `now`; how many.
    async fn expire_claims(&self, now: i64) -> Result<u64>;

    // --- Policies (see `crate::policy`). ---

    /// Moves last-pull times forward (by tag on `tags`, by digest on
    /// `manifests`; never back). Need only survive a restart of berth: a
    /// lost pull time makes a tag look less recently used, nothing worse.
    async fn record_pulls(&self, pulls: Vec<PullRecord>) -> Result<()>;

    /// Every tag of `repo` with its push time (`updated_at`) and last pull
    /// (by tag or of its manifest by digest, the later), sorted by name.
    async fn tag_states(&self, repo: &RepositoryName) -> Result<Vec<TagState>>;

    /// Deletes `tag` only if it still points at `digest`, pushed at
    /// `updated_at`, in one transaction: a tag pushed again after retention
    /// read it survives. Whether it deleted.
    async fn delete_tag_if(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        updated_at: i64,
    ) -> Result<bool>;

    /// What `repo` holds as its quota counts it (zero if it does not exist).
    async fn repository_usage(&self, repo: &RepositoryName) -> Result<RepositoryUsage>;

    // --- The pull-through cache (see `crate::pull_through`). ---

    /// Whether `repo` is absent, holds pushed content, or caches an upstream.
    async fn repository_origin(&self, repo: &RepositoryName) -> Result<RepositoryOrigin>;

    /// Marks `repo` (created if needed) as a cache of `source`'s upstream,
    /// before anything is linked in it: a blob pulled first must not make
    /// the repository look pushed. `source.checked_at` is not a tag check.
    async fn mark_cached(&self, repo: &RepositoryName, source: &CacheSource) -> Result<()>;

    /// Unix seconds of the last upstream check of `tag` in cached `repo`.
    async fn tag_checked_at(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<i64>>;

    /// Records an upstream check of `tag` at `at` (also the repository's
    /// last check); nothing if `repo` is not cached.
    async fn set_tag_checked(&self, repo: &RepositoryName, tag: &Tag, at: i64) -> Result<()>;

    /// Bytes cached: the distinct present blobs that manifests of cached
    /// repositories name, plus those manifests' own bytes.
    async fn cached_bytes(&self) -> Result<u64>;

    /// Up to `limit` top-level manifests (no index of their repository names
    /// them) of cached repositories, least recently pulled first.
    async fn eviction_candidates(&self, limit: usize) -> Result<Vec<EvictionCandidate>>;

    // --- Replicas and migration. ---

    /// Takes or renews lease `name` for `holder` until now + `ttl`; false
    /// while another holder's lease on it has not expired.
    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool>;

    /// Gives up `holder`'s lease on `name`, if it has it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// The value stored under `name`, storing `candidate` first if there is
    /// none: the first writer wins, atomically, and every process sharing
    /// the store reads the same value (a token-signing key, the store's id).
    async fn shared_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>>;

    /// Up to `limit` blobs linked to `repo` (digest, size) after `after`,
    /// sorted by digest.
    async fn repository_links(
        &self,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>>;

    /// Up to `limit` manifests of `repo` after `after`, sorted by digest.
    async fn repository_manifests(
        &self,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestRow>>;
}

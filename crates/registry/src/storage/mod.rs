//! The two storage seams of berth.
//!
//! [`BlobStore`] holds bytes, addressed by digest, plus in-progress uploads.
//! [`MetaStore`] holds every fact that must be answered by a query: which
//! repository may see which blob, manifests, tags, referrers, upload sessions.
//! The filesystem and SQLite implementations here are the embedded default;
//! S3 and PostgreSQL backends implement the same traits.

#[cfg(test)]
pub(crate) mod conformance;
pub mod fs;
pub mod sqlite;
mod writeback;

use crate::error::Result;
use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::io;

/// A stream of body bytes.
pub type ByteStream<'a> = BoxStream<'a, io::Result<Bytes>>;

/// An inclusive byte range `start..=end` within a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes covered (never zero: ranges are inclusive).
    pub fn length(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// A blob's bytes as a store hands them over.
pub enum BlobContent {
    /// A stretch of a local file: the server can send it without copying it
    /// through memory (sendfile).
    File(FileRegion),
    /// Bytes from anywhere else.
    Stream(ByteStream<'static>),
}

impl BlobContent {
    /// The bytes as a stream, wherever they come from.
    pub fn into_stream(self) -> ByteStream<'static> {
        match self {
            BlobContent::File(region) => fs::stream_file(region.file, region.start, region.len),
            BlobContent::Stream(stream) => stream,
        }
    }
}

/// `len` bytes of `file`, starting at `start`.
#[derive(Debug)]
pub struct FileRegion {
    pub file: std::fs::File,
    pub start: u64,
    pub len: u64,
}

/// Content-addressed bytes and the uploads that become them.
///
/// Guarantees every implementation keeps: a blob is readable under its digest
/// only after [`BlobStore::commit_upload`] or [`BlobStore::put`] returned, and
/// then it is durable; an upload is private to its id until committed.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A stored blob, or the given range of it. `None` if absent.
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<Option<BlobContent>>;

    /// Stores small content (manifests) durably under its digest.
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()>;

    /// Creates an empty upload.
    async fn create_upload(&self, id: &str) -> Result<()>;

    /// Appends `body` to an upload that currently holds `offset` bytes and
    /// returns its new length. On error the upload is left at `offset` bytes.
    async fn append_upload(&self, id: &str, offset: u64, body: ByteStream<'_>) -> Result<u64>;

    /// Streams what an upload holds so far (to re-hash it after a restart).
    async fn read_upload(&self, id: &str) -> Result<ByteStream<'static>>;

    /// Makes a verified upload durable and readable under `digest`.
    /// The caller has already checked that the content hashes to `digest`.
    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<()>;

    /// Forgets an upload; absent uploads are not an error.
    async fn delete_upload(&self, id: &str) -> Result<()>;

    /// Ids of uploads last written more than `age` ago, including any a
    /// crash left without a session, so that they can be swept.
    async fn uploads_older_than(&self, age: std::time::Duration) -> Result<Vec<String>>;
}

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
}

/// Repository-scoped metadata: every read is one indexed query, every write
/// one transaction. Writes about blobs, manifests and tags are durable when
/// they return; upload-session writes need only survive a restart of berth,
/// since a client re-sends what a lost session held (the upload's bytes are
/// not fsynced before publishing either).
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Records that `repo` may read blob `digest` of `size` bytes.
    async fn link_blob(&self, repo: &RepositoryName, digest: &Digest, size: u64) -> Result<()>;

    /// Size of `digest` if `repo` may read it.
    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>>;

    /// Removes `repo`'s link to a blob; returns whether there was one.
    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;

    /// In one transaction: checks that every blob and child manifest the record
    /// names is in `repo` (else `Error::ManifestBlobUnknown`) with the declared
    /// size (else `Error::ManifestSizeMismatch`), stores the manifest and points
    /// `tag` at it.
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &ManifestRecord,
        tag: Option<&Tag>,
    ) -> Result<()>;

    /// Digest, media type and size of a manifest by tag.
    async fn manifest_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<(Digest, String, u64)>>;

    /// Media type and size of a manifest by digest.
    async fn manifest_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<(String, u64)>>;

    /// Deletes a manifest and every tag on it; returns whether it existed.
    async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;

    /// Deletes one tag; returns whether it existed.
    async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool>;

    /// Up to `limit` tags after `last`, sorted; `None` if the repository has no manifests.
    async fn list_tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>>;

    /// Up to `limit` repositories holding manifests, after `last`, sorted.
    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>>;

    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRecord>>;

    async fn create_upload(&self, session: &UploadSession) -> Result<()>;
    async fn upload(&self, id: &str) -> Result<Option<UploadSession>>;
    async fn set_upload_offset(&self, id: &str, offset: u64, updated_at: i64) -> Result<()>;
    async fn delete_upload(&self, id: &str) -> Result<()>;
    /// Ids of uploads last changed before `cutoff` (Unix seconds).
    async fn stale_uploads(&self, cutoff: i64) -> Result<Vec<String>>;
}

//! [`BlobStore`]: content-addressed bytes and the uploads that become them.

use super::{ByteRange, ByteStream, FileRegion};
use crate::error::Result;
use async_trait::async_trait;
use berth_oci::Digest;
use bytes::Bytes;
use std::path::Path;

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
            BlobContent::File(region) => region.into_stream(),
            BlobContent::Stream(stream) => stream,
        }
    }
}

/// Content-addressed bytes and the uploads that become them.
///
/// Guarantees every implementation keeps:
/// - **Visibility and durability**: a blob is readable under its digest only
///   after [`BlobStore::commit_upload`] or [`BlobStore::put`] returned, and
///   from then on it survives a crash of the process or the machine.
/// - **Idempotence**: committing or putting a digest that is already stored
///   succeeds, and afterwards the stored bytes are the ones just verified
///   (an earlier copy is never trusted blindly).
/// - **Isolation**: an upload is private to its id until committed; appends
///   to different uploads never interfere. The caller serialises requests on
///   one upload id.
/// - **Missing uploads**: appending to or reading an upload that does not
///   exist is [`crate::Error::BlobUploadUnknown`]; deleting one is not an error.
/// - Upload bytes need not be durable before commit: a lost upload is re-sent.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A stored blob, or the given range of it (cut at the blob's end).
    /// `None` if absent.
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<Option<BlobContent>>;

    /// Stores small content (manifests) durably under its digest.
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()>;

    /// Creates an empty upload and returns its state.
    async fn create_upload(&self, id: &str) -> Result<UploadState>;

    /// Appends `body` to an upload that holds `offset` bytes described by
    /// `state`, and returns its new length and state. On error the upload
    /// is still at (`offset`, `state`): nothing the failed call wrote
    /// becomes part of it.
    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        state: &[u8],
        body: ByteStream<'_>,
    ) -> Result<Appended>;

    /// Starts upload `id` holding the bytes of the local file `source`,
    /// shared rather than copied, when the backend can (a hard link within
    /// one filesystem). `Ok(None)` when it cannot: nothing was created and
    /// the caller copies instead. The upload is verified before it is
    /// committed, like any other.
    async fn create_upload_linked(&self, id: &str, source: &Path) -> Result<Option<UploadState>> {
        let _ = (id, source);
        Ok(None)
    }

    /// Streams what an upload holds so far (to re-hash one whose saved
    /// hash was lost). A store that cannot read back parts it has sent
    /// answers [`crate::Error::Unsupported`].
    async fn read_upload(&self, id: &str, state: &[u8]) -> Result<ByteStream<'static>>;

    /// Makes a verified upload durable and readable under `digest`.
    /// The caller has already checked that the content hashes to `digest`.
    async fn commit_upload(&self, id: &str, state: &[u8], digest: &Digest) -> Result<()>;

    /// Forgets an upload; absent uploads are not an error. Without a state
    /// (an upload no session describes) the store removes what it can find.
    async fn delete_upload(&self, id: &str, state: Option<&[u8]>) -> Result<()>;

    /// A URL the client may fetch `digest` from directly (a presigned
    /// object-store URL), when the store is configured to hand them out.
    async fn redirect_url(&self, digest: &Digest) -> Result<Option<String>> {
        let _ = digest;
        Ok(None)
    }

    /// Ids of uploads last written more than `age` ago, including any a
    /// crash left without a session, so that they can be swept.
    async fn uploads_older_than(&self, age: std::time::Duration) -> Result<Vec<String>>;

    /// Removes a stored blob durably; `Ok(false)` if it was absent. Only the
    /// collector calls it, for a digest it has tombstoned.
    async fn delete(&self, digest: &Digest) -> Result<bool>;

    /// Up to `limit` stored blobs after `after`, sorted by digest.
    async fn list(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<StoredBlob>>;

    /// Room left for new content, if the backend has such a limit (a local
    /// disk does, object storage does not).
    fn free_space(&self) -> Result<Option<FreeSpace>> {
        Ok(None)
    }

    /// Fails when the store could not serve or take content right now (its
    /// folder gone or not writable, the bucket unreachable): what a
    /// readiness probe asks. Cheap enough to run every few seconds.
    async fn check(&self) -> Result<()>;
}

/// Where an upload stands inside a store, opaque to everyone else (the
/// filesystem keeps none; an object store keeps its multipart upload and
/// parts). The registry saves it with the session after every append, so
/// that any process sharing the stores can continue the upload.
pub type UploadState = Vec<u8>;

/// An upload after a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Bytes it holds.
    pub offset: u64,
    pub state: UploadState,
}

/// A blob as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// Bytes a store can still take, out of its total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    pub available: u64,
    pub total: u64,
}

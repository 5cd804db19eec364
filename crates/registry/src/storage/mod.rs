//! The two storage seams of berth.
//!
//! [`BlobStore`] holds bytes, addressed by digest, plus in-progress uploads.
//! [`MetaStore`] holds every fact that must be answered by a query: which
//! repository may see which blob, manifests, tags, referrers, upload sessions.
//! The filesystem and SQLite implementations here are the embedded default;
//! S3 and PostgreSQL backends implement the same traits and must pass the
//! same promise suites (`crate::testing`, feature `testing`).

mod blob_store;
mod file_region;
pub mod fs;
mod io_mode;
mod meta_store;
mod policy_rows;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod s3;
pub mod schema;
pub mod sqlite;

pub use blob_store::{Appended, BlobContent, BlobStore, FreeSpace, StoredBlob, UploadState};
pub use file_region::FileRegion;
pub use io_mode::{IoMode, PORTABLE_IO_ENV};
pub use meta_store::{
    BlobClaim, CacheOrigin, CacheSource, EvictionCandidate, ManifestFacts, ManifestRecord,
    ManifestRow, MetaStore, Overview, PutOptions, Quota, Reclaimable, ReferrerRecord,
    RepositoryDeleted, RepositoryOrigin, RepositorySummary, StoreStats, TagCursor, TagRow,
    UploadLimits, UploadProgress, UploadSession,
};
pub use policy_rows::{PullRecord, PulledBy, RepositoryUsage};

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

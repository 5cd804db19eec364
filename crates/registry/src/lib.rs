//! The rules of the OCI distribution spec, independent of HTTP.
//!
//! [`Registry`] owns uploads, manifests, tags, referrers, mounts and deletes.
//! It talks to storage only through two traits: [`BlobStore`] for bytes and
//! [`MetaStore`] for everything that is a query (repositories, tags, links,
//! upload sessions). The server crate turns requests into calls here; nothing
//! in this crate knows about status codes beyond the spec's error codes.
#![deny(unsafe_code)] // one exception: storage::fs::writeback, a syscall libc alone offers

pub mod error;
pub mod fsck;
pub mod gc;
pub mod import;
pub mod layers;
pub mod policy;
pub mod pull_through;
pub mod registry;
pub mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod units;

pub use error::{Error, ErrorCode, QuotaResource, Result};
pub use pull_through::{CacheOutcome, PullThrough, Pulled, UpstreamStats};
pub use registry::{
    BlobBody, BlobSummary, ExpectedChunk, ImageContents, ImageDetail, IndexChild, ManifestContent,
    ManifestPushed, MountOutcome, Page, RangeRequest, Readiness, ReferrerSummary, ReferrersPage,
    Registry, RegistryOptions, TagDetail, UploadStatus, MAX_BROWSE_PAGE,
};
pub use storage::{
    BlobContent, BlobStore, ByteRange, ByteStream, CacheOrigin, FileRegion, IoMode, MetaStore,
    Overview, RepositoryDeleted, RepositorySummary, StoreStats, PORTABLE_IO_ENV,
};

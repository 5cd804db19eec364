//! The one error type of the registry, and the spec's error codes it maps to.

use crate::layers::LayerError;
use berth_oci::{Digest, DigestError, ManifestError, NameError, TagError};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error codes of the distribution spec (plus the ones registries commonly add).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

/// Everything that can go wrong in a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(Digest),
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A chunk did not start where the upload currently ends.
    #[error("chunk starts at {got}, upload is at {offset}")]
    UploadOutOfOrder { offset: u64, got: u64 },
    #[error("invalid digest: {0}")]
    DigestInvalid(#[from] DigestError),
    #[error("provided digest {expected} does not match uploaded content {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("manifest references a blob unknown to this repository: {0}")]
    ManifestBlobUnknown(Digest),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(#[from] ManifestError),
    #[error("manifest declares {digest} as {declared} bytes, but it is {stored}")]
    ManifestSizeMismatch {
        digest: Digest,
        declared: u64,
        stored: u64,
    },
    #[error("invalid tag: {0}")]
    TagInvalid(#[from] TagError),
    #[error("manifest is larger than the {limit} byte limit")]
    ManifestTooLarge { limit: usize },
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("manifest {digest} has type {media_type}, which the request's Accept header excludes")]
    ManifestNotAcceptable { digest: Digest, media_type: String },
    #[error("invalid repository name: {0}")]
    NameInvalid(#[from] NameError),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("size invalid: {0}")]
    SizeInvalid(String),
    #[error("deletion is disabled on this registry")]
    DeleteDisabled,
    /// A delete that would leave manifest `by` pointing at nothing.
    #[error("{digest} is still referenced by manifest {by}: delete that manifest first")]
    StillReferenced { digest: Digest, by: Digest },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// The client's request body could not be read to its end.
    #[error("request body failed: {0}")]
    BodyRead(String),
    #[error("storage failure: {0}")]
    Storage(String),
    /// Too many upload sessions are open, in total or for this client.
    #[error("too many uploads in progress{}: at most {limit}; finish or cancel some first", if *per_client { " from this client" } else { "" })]
    TooManyUploads { limit: usize, per_client: bool },
    /// Free space is under the configured watermark: pushes wait, reads go on.
    #[error("the registry is low on storage ({available} bytes free); pushes are refused until space is freed")]
    InsufficientStorage { available: u64 },
    /// A layer's files were asked for, but its blob is not a readable tar.
    #[error("cannot list the files of {digest}: {reason}")]
    Layer { digest: Digest, reason: LayerError },
    /// Files were asked for of an index, which has none of its own.
    #[error("manifest {digest} is an index: ask for the files of one of its {} platform manifests", manifests.len())]
    IndexHasNoFiles {
        digest: Digest,
        manifests: Vec<Digest>,
    },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BlobUnknown(_) => ErrorCode::BlobUnknown,
            Error::BlobUploadUnknown => ErrorCode::BlobUploadUnknown,
            Error::BlobUploadInvalid(_) | Error::UploadOutOfOrder { .. } | Error::BodyRead(_) => {
                ErrorCode::BlobUploadInvalid
            }
            Error::DigestInvalid(_) | Error::DigestMismatch { .. } => ErrorCode::DigestInvalid,
            Error::ManifestBlobUnknown(_) => ErrorCode::ManifestBlobUnknown,
            Error::ManifestInvalid(_)
            | Error::ManifestSizeMismatch { .. }
            | Error::TagInvalid(_)
            | Error::ManifestTooLarge { .. } => ErrorCode::ManifestInvalid,
            Error::ManifestUnknown(_) | Error::ManifestNotAcceptable { .. } => {
                ErrorCode::ManifestUnknown
            }
            Error::NameInvalid(_) => ErrorCode::NameInvalid,
            Error::NameUnknown(_) => ErrorCode::NameUnknown,
            Error::SizeInvalid(_) => ErrorCode::SizeInvalid,
            Error::DeleteDisabled
            | Error::Unsupported(_)
            | Error::Layer { .. }
            | Error::IndexHasNoFiles { .. } => ErrorCode::Unsupported,
            Error::StillReferenced { .. } => ErrorCode::Denied,
            Error::TooManyUploads { .. } => ErrorCode::TooManyRequests,
            Error::RangeNotSatisfiable { .. } => ErrorCode::RangeInvalid,
            Error::Storage(_) | Error::InsufficientStorage { .. } => ErrorCode::Unknown,
        }
    }

    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::storage(e)
    }
}

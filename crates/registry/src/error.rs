//! The one error type of the registry, and the spec's error codes it maps to.

use crate::layers::LayerError;
use crate::pull_through::UpstreamError;
use crate::units::format_size;
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
    /// A push would move a tag an `[[immutable]]` rule covers.
    #[error(
        "tag {repository}:{tag} is immutable and already points at {current}; push under a new tag"
    )]
    TagImmutable {
        repository: String,
        tag: String,
        current: Digest,
    },
    /// A delete would remove a tag an `[[immutable]]` rule covers (by name,
    /// or by deleting the manifest it points at): immutability that a
    /// delete-then-push could undo would promise nothing.
    #[error(
        "tag {repository}:{tag} is immutable: it cannot be deleted, nor the manifest it points at"
    )]
    ImmutableTagDelete { repository: String, tag: String },
    /// A manifest PUT would take its repository over a `[[quota]]`.
    #[error("{}", quota_message(repository, *resource, *used, *limit))]
    QuotaExceeded {
        repository: String,
        resource: QuotaResource,
        used: u64,
        limit: u64,
    },
    /// A write (push, mount, delete) into a repository that caches an
    /// upstream: its content is the upstream's, so it is read-only here.
    #[error("repository {repository} is a cache of {upstream}: push under another name")]
    CacheReadOnly {
        repository: String,
        upstream: String,
    },
    /// The upstream of a cached repository could not answer (and no cached
    /// copy could stand in). `NotFound` never gets here: the cache turns it
    /// into the spec's MANIFEST_UNKNOWN or BLOB_UNKNOWN.
    #[error("upstream {upstream}: {error}")]
    Upstream {
        upstream: String,
        error: UpstreamError,
    },
    /// The upstream sent content that does not hash to what it was asked
    /// for (or to the digest it announced): nothing of it was cached.
    #[error("upstream {upstream} sent content hashing to {actual} for {expected}")]
    UpstreamDigestMismatch {
        upstream: String,
        expected: Digest,
        actual: Digest,
    },
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
            Error::StillReferenced { .. }
            | Error::TagImmutable { .. }
            | Error::ImmutableTagDelete { .. }
            | Error::QuotaExceeded { .. }
            | Error::CacheReadOnly { .. } => ErrorCode::Denied,
            Error::Upstream {
                error: UpstreamError::RateLimited { .. },
                ..
            } => ErrorCode::TooManyRequests,
            Error::Upstream { .. } | Error::UpstreamDigestMismatch { .. } => ErrorCode::Unknown,
            Error::TooManyUploads { .. } => ErrorCode::TooManyRequests,
            Error::RangeNotSatisfiable { .. } => ErrorCode::RangeInvalid,
            Error::Storage(_) | Error::InsufficientStorage { .. } => ErrorCode::Unknown,
        }
    }

    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        Error::Storage(e.to_string())
    }
}

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaResource {
    /// Manifests plus the distinct blobs they name.
    Bytes,
    Tags,
}

impl QuotaResource {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaResource::Bytes => "bytes",
            QuotaResource::Tags => "tags",
        }
    }
}

impl std::fmt::Display for QuotaResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `repository r would hold 10.5 GiB, over its quota of 10 GiB`; exact
/// bytes are added where rounding would show two equal sizes.
fn quota_message(repository: &str, resource: QuotaResource, used: u64, limit: u64) -> String {
    let (used, limit) = match resource {
        QuotaResource::Tags => (format!("{used} tags"), format!("{limit} tags")),
        QuotaResource::Bytes => {
            let (u, l) = (format_size(used), format_size(limit));
            if u == l {
                (
                    format!("{u} ({used} bytes)"),
                    format!("{l} ({limit} bytes)"),
                )
            } else {
                (u, l)
            }
        }
    };
    format!("repository {repository} would hold {used}, over its quota of {limit}")
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::storage(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refusals_are_denied_with_messages_that_say_why() {
        let current = Digest::sha256_of(b"v1");
        let e = Error::TagImmutable {
            repository: "prod/app".into(),
            tag: "v1".into(),
            current: current.clone(),
        };
        assert_eq!(e.code(), ErrorCode::Denied);
        assert_eq!(
            e.to_string(),
            format!("tag prod/app:v1 is immutable and already points at {current}; push under a new tag")
        );
        let quota = |resource, used, limit| Error::QuotaExceeded {
            repository: "team/app".into(),
            resource,
            used,
            limit,
        };
        let e = quota(QuotaResource::Bytes, (10 << 30) + (1 << 29), 10 << 30);
        assert_eq!(e.code(), ErrorCode::Denied);
        assert_eq!(
            e.to_string(),
            "repository team/app would hold 10.5 GiB, over its quota of 10 GiB"
        );
        assert_eq!(
            quota(QuotaResource::Bytes, 1025, 1024).to_string(),
            "repository team/app would hold 1 KiB (1025 bytes), over its quota of 1 KiB (1024 bytes)"
        );
        assert_eq!(
            quota(QuotaResource::Tags, 3, 2).to_string(),
            "repository team/app would hold 3 tags, over its quota of 2 tags"
        );
    }
}

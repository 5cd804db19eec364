//! What the pull-through cache asks of a remote registry: the seam between
//! the cache's rules (here, no HTTP) and the client that speaks to an
//! upstream over the network (`berth-upstream`).

use crate::storage::ByteStream;
use async_trait::async_trait;
use berth_oci::Digest;
use bytes::Bytes;

/// Why an upstream could not answer. The cache decides from this whether
/// to serve a stale copy (`RateLimited`, `Unavailable`) or to refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream has no such manifest, blob or repository.
    #[error("not found upstream")]
    NotFound,
    /// The upstream refused berth's credentials (or wants some).
    #[error("upstream refused berth's credentials: {0}")]
    Unauthorized(String),
    /// 429: the upstream rate-limits berth; `retry_after` in seconds if said.
    #[error("upstream rate-limits requests (429)")]
    RateLimited { retry_after: Option<u64> },
    /// Unreachable: refused connection, timeout, TLS failure, 5xx.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// An answer that breaks the protocol: a bad digest header, a body over
    /// the limit, a missing header the cache needs.
    #[error("upstream answered badly: {0}")]
    Invalid(String),
}

/// A manifest as the upstream sent it: exact bytes, never re-serialised.
#[derive(Debug, Clone)]
pub struct UpstreamManifest {
    pub bytes: Bytes,
    /// The `Content-Type` the upstream sent.
    pub media_type: String,
    /// The `Docker-Content-Digest` the upstream sent, if any; the cache
    /// checks it against the bytes.
    pub digest: Option<Digest>,
}

/// A blob as it streams from the upstream.
pub struct UpstreamBlob {
    /// `Content-Length`, when the upstream sent one.
    pub size: Option<u64>,
    /// The bytes; an error mid-stream is an I/O error.
    pub body: ByteStream<'static>,
}

/// One remote registry. `repository` is the name on the upstream (already
/// normalised, e.g. `library/busybox` on Docker Hub); `reference` a tag or
/// a digest as text.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// `GET /v2/<repository>/manifests/<reference>`, accepting every
    /// manifest type berth serves.
    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<UpstreamManifest, UpstreamError>;

    /// `HEAD` of a manifest: its digest, to check a cached tag's freshness
    /// without downloading it (Docker Hub does not count HEADs against its
    /// pull limit).
    async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Digest, UpstreamError>;

    /// `GET /v2/<repository>/blobs/<digest>`, streamed.
    async fn blob(&self, repository: &str, digest: &Digest) -> Result<UpstreamBlob, UpstreamError>;

    /// `HEAD` of a blob: its size.
    async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<u64, UpstreamError>;
}

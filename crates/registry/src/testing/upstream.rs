//! [`FakeUpstream`]: an in-memory [`Upstream`] for tests of the
//! pull-through cache, with switches for the upstream's failures and
//! counts of every call it answered.

use crate::pull_through::{Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};
use async_trait::async_trait;
use berth_oci::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The four calls of [`Upstream`], as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakeCall {
    Manifest,
    ManifestDigest,
    Blob,
    BlobSize,
}

#[derive(Clone)]
struct StoredManifest {
    bytes: Bytes,
    media_type: String,
    digest: Digest,
}

#[derive(Default)]
struct Content {
    /// By (repository, tag or digest as text).
    manifests: HashMap<(String, String), StoredManifest>,
    blobs: HashMap<(String, Digest), Bytes>,
}

/// An upstream registry in memory. Every call is counted per method and
/// per (method, repository, reference); the switches make it fail as real
/// upstreams do.
pub struct FakeUpstream {
    content: Mutex<Content>,
    calls: Mutex<HashMap<(FakeCall, String, String), usize>>,
    down: AtomicBool,
    rate_limited: AtomicBool,
    hung: AtomicBool,
    wrong_bytes: AtomicBool,
    wrong_manifest_digest: AtomicBool,
    send_length: AtomicBool,
    /// Milliseconds between two chunks of a blob; 0: no delay.
    chunk_delay_ms: AtomicU64,
    chunk_size: AtomicUsize,
    /// Blob chunks handed out so far, all blobs together.
    chunks_sent: Arc<AtomicU64>,
}

impl Default for FakeUpstream {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeUpstream {
    pub fn new() -> Self {
        FakeUpstream {
            content: Mutex::default(),
            calls: Mutex::default(),
            down: AtomicBool::new(false),
            rate_limited: AtomicBool::new(false),
            hung: AtomicBool::new(false),
            wrong_bytes: AtomicBool::new(false),
            wrong_manifest_digest: AtomicBool::new(false),
            send_length: AtomicBool::new(true),
            chunk_delay_ms: AtomicU64::new(0),
            chunk_size: AtomicUsize::new(64 << 10),
            chunks_sent: Arc::default(),
        }
    }

    /// Stores a manifest in `repo`, by digest and, if given, under `tag`
    /// (moving the tag if it existed); its digest.
    pub fn add_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: impl Into<Bytes>,
    ) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::sha256_of(&bytes);
        let stored = StoredManifest {
            bytes,
            media_type: media_type.to_string(),
            digest: digest.clone(),
        };
        let mut content = self.content.lock().unwrap();
        if let Some(tag) = tag {
            content
                .manifests
                .insert((repo.to_string(), tag.to_string()), stored.clone());
        }
        content
            .manifests
            .insert((repo.to_string(), digest.to_string()), stored);
        digest
    }

    /// Stores a blob in `repo`; its digest.
    pub fn add_blob(&self, repo: &str, bytes: impl Into<Bytes>) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::sha256_of(&bytes);
        self.content
            .lock()
            .unwrap()
            .blobs
            .insert((repo.to_string(), digest.clone()), bytes);
        digest
    }

    /// Every call fails with `Unavailable` (a stopped upstream).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every call waits forever: an upstream that accepts connections and
    /// never answers.
    pub fn set_hung(&self, hung: bool) {
        self.hung.store(hung, Ordering::SeqCst);
    }

    /// Every call fails with `RateLimited` (429, Retry-After 60).
    pub fn set_rate_limited(&self, limited: bool) {
        self.rate_limited.store(limited, Ordering::SeqCst);
    }

    /// Blobs are served with their first byte flipped: same size, wrong digest.
    pub fn set_wrong_bytes(&self, wrong: bool) {
        self.wrong_bytes.store(wrong, Ordering::SeqCst);
    }

    /// Manifests come with a `Docker-Content-Digest` that is not theirs.
    pub fn set_wrong_manifest_digest(&self, wrong: bool) {
        self.wrong_manifest_digest.store(wrong, Ordering::SeqCst);
    }

    /// Whether blobs come with a `Content-Length` (default: yes).
    pub fn set_send_length(&self, send: bool) {
        self.send_length.store(send, Ordering::SeqCst);
    }

    /// A delay before each blob chunk after the first (a slow upstream);
    /// `None`: none.
    pub fn set_slow(&self, delay: Option<Duration>) {
        let ms = delay.map_or(0, |d| d.as_millis() as u64);
        self.chunk_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Bytes per blob chunk (default 64 KiB).
    pub fn set_chunk_size(&self, size: usize) {
        self.chunk_size.store(size.max(1), Ordering::SeqCst);
    }

    /// Calls of `method` answered (or refused), all repositories together.
    pub fn calls(&self, method: FakeCall) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|((m, _, _), _)| *m == method)
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls of `method` for `reference` (a tag, or a digest as text) in `repo`.
    pub fn calls_for(&self, method: FakeCall, repo: &str, reference: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .get(&(method, repo.to_string(), reference.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Every call of every method.
    pub fn total_calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    /// Blob chunks handed out so far.
    pub fn chunks_sent(&self) -> u64 {
        self.chunks_sent.load(Ordering::SeqCst)
    }

    fn count(&self, method: FakeCall, repo: &str, reference: &str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry((method, repo.to_string(), reference.to_string()))
            .or_default() += 1;
    }

    async fn failing(&self) -> Result<(), UpstreamError> {
        if self.hung.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(UpstreamError::Unavailable(
                "connection refused (fake upstream is down)".into(),
            ));
        }
        if self.rate_limited.load(Ordering::SeqCst) {
            return Err(UpstreamError::RateLimited {
                retry_after: Some(60),
            });
        }
        Ok(())
    }

    fn stored_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<StoredManifest, UpstreamError> {
        self.content
            .lock()
            .unwrap()
            .manifests
            .get(&(repo.to_string(), reference.to_string()))
            .cloned()
            .ok_or(UpstreamError::NotFound)
    }

    fn stored_blob(&self, repo: &str, digest: &Digest) -> Result<Bytes, UpstreamError> {
        self.content
            .lock()
            .unwrap()
            .blobs
            .get(&(repo.to_string(), digest.clone()))
            .cloned()
            .ok_or(UpstreamError::NotFound)
    }
}

#[async_trait]
impl Upstream for FakeUpstream {
    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<UpstreamManifest, UpstreamError> {
        self.count(FakeCall::Manifest, repository, reference);
        self.failing().await?;
        let m = self.stored_manifest(repository, reference)?;
        let digest = if self.wrong_manifest_digest.load(Ordering::SeqCst) {
            Digest::sha256_of(b"not this manifest")
        } else {
            m.digest
        };
        Ok(UpstreamManifest {
            bytes: m.bytes,
            media_type: m.media_type,
            digest: Some(digest),
        })
    }

    async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Digest, UpstreamError> {
        self.count(FakeCall::ManifestDigest, repository, reference);
        self.failing().await?;
        Ok(self.stored_manifest(repository, reference)?.digest)
    }

    async fn blob(&self, repository: &str, digest: &Digest) -> Result<UpstreamBlob, UpstreamError> {
        self.count(FakeCall::Blob, repository, &digest.to_string());
        self.failing().await?;
        let bytes = self.stored_blob(repository, digest)?;
        let bytes = if self.wrong_bytes.load(Ordering::SeqCst) && !bytes.is_empty() {
            let mut wrong = bytes.to_vec();
            wrong[0] ^= 0xff;
            Bytes::from(wrong)
        } else {
            bytes
        };
        let size = self
            .send_length
            .load(Ordering::SeqCst)
            .then_some(bytes.len() as u64);
        let chunk = self.chunk_size.load(Ordering::SeqCst);
        let delay = Duration::from_millis(self.chunk_delay_ms.load(Ordering::SeqCst));
        let chunks: Vec<Bytes> = (0..bytes.len())
            .step_by(chunk)
            .map(|at| bytes.slice(at..(at + chunk).min(bytes.len())))
            .collect();
        let sent = self.chunks_sent.clone();
        let body = futures_util::stream::iter(chunks.into_iter().enumerate())
            .then(move |(i, chunk)| {
                let sent = sent.clone();
                async move {
                    if i > 0 && !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                    Ok(chunk)
                }
            })
            .boxed();
        Ok(UpstreamBlob { size, body })
    }

    async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<u64, UpstreamError> {
        self.count(FakeCall::BlobSize, repository, &digest.to_string());
        self.failing().await?;
        Ok(self.stored_blob(repository, digest)?.len() as u64)
    }
}

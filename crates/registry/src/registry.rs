//! [`Registry`]: the distribution spec's operations over the two stores.

use crate::error::{Error, Result};
use crate::manifest_cache::ManifestCache;
use crate::storage::{
    BlobContent, BlobStore, ByteRange, ByteStream, ManifestRecord, MetaStore, UploadSession,
};
use crate::uploads::{HashState, UploadHashes};
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::{Algorithm, Descriptor, Digest, ParsedManifest, Reference, RepositoryName};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest page a listing returns, whatever `n` asks for.
pub const MAX_PAGE: usize = 10_000;

/// Memory for recently served manifests.
const MANIFEST_CACHE_BYTES: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Whether DELETE of manifests, tags and blobs is allowed.
    pub delete_enabled: bool,
    /// How long an untouched upload lives.
    pub upload_expiry: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            delete_enabled: true,
            upload_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received so far.
    pub offset: u64,
}

/// A blob to serve: its size, the range served and, unless HEAD, the bytes.
pub struct BlobBody {
    pub size: u64,
    pub range: Option<ByteRange>,
    pub content: Option<BlobContent>,
}

/// A manifest to serve.
#[derive(Debug, Clone)]
pub struct ManifestContent {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// `None` for HEAD.
    pub body: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPushed {
    pub digest: Digest,
    /// The subject the manifest refers to, echoed as `OCI-Subject`.
    pub subject: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    Mounted,
    /// The blob could not be mounted; a fresh upload was started instead.
    Upload(UploadStatus),
}

/// One page of a listing, with the key to ask for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
    pub next: Option<String>,
}

/// What a client asked for in a `Range` header, before knowing the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=a-b`
    Bounded(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
    /// A `Range` header that cannot be served (malformed, several ranges, another
    /// unit). Kept as a value so the 416 can name the blob's real size, and a
    /// blob that does not exist is still a 404.
    Invalid,
}

impl RangeRequest {
    /// The bytes this request covers in a blob of `size` bytes; `Invalid`,
    /// and anything starting at or past the end, is `RangeNotSatisfiable`.
    pub fn resolve(self, size: u64) -> Result<ByteRange> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        let (start, end) = match self {
            RangeRequest::Bounded(a, b) if a <= b && a < size => (a, b.min(size - 1)),
            RangeRequest::From(a) if a < size => (a, size - 1),
            RangeRequest::Suffix(n) if n > 0 && size > 0 => (size - n.min(size), size - 1),
            RangeRequest::Bounded(..)
            | RangeRequest::From(_)
            | RangeRequest::Suffix(_)
            | RangeRequest::Invalid => return Err(unsatisfiable),
        };
        Ok(ByteRange { start, end })
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The registry: every operation of the distribution spec.
pub struct Registry {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetaStore>,
    options: RegistryOptions,
    hashes: UploadHashes,
    manifests: ManifestCache,
}

impl Registry {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetaStore>,
        options: RegistryOptions,
    ) -> Self {
        Registry {
            blobs,
            meta,
            options,
            hashes: UploadHashes::default(),
            manifests: ManifestCache::new(MANIFEST_CACHE_BYTES),
        }
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    // ---- blobs -------------------------------------------------------------

    /// A blob of `repo`, whole or a range; without its bytes when `with_body` is false.
    pub async fn blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<RangeRequest>,
        with_body: bool,
    ) -> Result<BlobBody> {
        let size = self
            .meta
            .blob_size(repo, digest)
            .await?
            .ok_or_else(|| Error::BlobUnknown(digest.clone()))?;
        let range = range.map(|r| r.resolve(size)).transpose()?;
        let content = if with_body {
            let content =
                self.blobs.read(digest, range).await?.ok_or_else(|| {
                    Error::Storage(format!("blob {digest} is linked but missing"))
                })?;
            Some(content)
        } else {
            None
        };
        Ok(BlobBody {
            size,
            range,
            content,
        })
    }

    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if !self.options.delete_enabled {
            return Err(Error::DeleteDisabled);
        }
        if self.meta.unlink_blob(repo, digest).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown(digest.clone()))
        }
    }

    /// Links `digest` from `from` into `repo` if `from` has it; otherwise starts an upload.
    pub async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<MountOutcome> {
        if let Some(from) = from {
            if let Some(size) = self.meta.blob_size(from, digest).await? {
                self.meta.link_blob(repo, digest, size).await?;
                return Ok(MountOutcome::Mounted);
            }
        }
        Ok(MountOutcome::Upload(self.start_upload(repo).await?))
    }

    /// Monolithic upload in one request: stream, verify, publish.
    pub async fn push_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        body: ByteStream<'_>,
    ) -> Result<()> {
        // No session row: the whole upload lives and dies within this request.
        let id = format!("mono-{}", uuid::Uuid::new_v4());
        self.blobs.create_upload(&id).await?;
        let outcome = async {
            let mut hasher = digest.algorithm().hasher();
            let size = self.append_hashing(&id, 0, body, &mut hasher).await?;
            verify(digest, hasher.finish())?;
            self.publish(repo, &id, digest, size).await
        }
        .await;
        if outcome.is_err() {
            let _ = self.blobs.delete_upload(&id).await;
        }
        outcome
    }

    // ---- uploads -----------------------------------------------------------

    pub async fn start_upload(&self, repo: &RepositoryName) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().to_string();
        self.blobs.create_upload(&id).await?;
        self.meta
            .create_upload(&UploadSession {
                id: id.clone(),
                repository: repo.clone(),
                offset: 0,
                updated_at: unix_now(),
            })
            .await?;
        Ok(UploadStatus { id, offset: 0 })
    }

    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        Ok(UploadStatus {
            id: session.id,
            offset: session.offset,
        })
    }

    /// Appends a chunk. `start` is the chunk's first byte from `Content-Range`,
    /// if the client sent one; it must be where the upload ends.
    pub async fn append_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        body: ByteStream<'_>,
    ) -> Result<UploadStatus> {
        let (mut state, session) = self.lock_session(repo, id).await?;
        check_chunk_start(&session, start)?;
        let offset = self.append_session(&session, &mut state, body).await?;
        Ok(UploadStatus {
            id: session.id,
            offset,
        })
    }

    /// Completes an upload with an optional last chunk (starting at `start`,
    /// if given), verifying `digest`. On a digest mismatch the upload is
    /// discarded and nothing becomes visible.
    pub async fn finish_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        start: Option<u64>,
        last_chunk: Option<ByteStream<'_>>,
    ) -> Result<()> {
        let (mut state, session) = self.lock_session(repo, id).await?;
        check_chunk_start(&session, start)?;
        let size = match last_chunk {
            Some(body) => self.append_session(&session, &mut state, body).await?,
            None => session.offset,
        };
        let actual = match state.take() {
            Some(s) if s.offset == size && s.hasher.algorithm() == digest.algorithm() => {
                s.hasher.finish()
            }
            _ => self.rehash_upload(id, digest.algorithm()).await?,
        };
        let outcome = match verify(digest, actual) {
            Ok(()) => self.publish(repo, id, digest, size).await,
            Err(e) => Err(e),
        };
        // Success or mismatch, the session is over.
        self.forget_upload(id).await?;
        outcome
    }

    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        let _locked = self.lock_session(repo, id).await?;
        self.forget_upload(id).await
    }

    /// Removes uploads untouched for longer than the configured expiry, and
    /// upload files that outlived their request or session (after a crash).
    pub async fn expire_uploads(&self) -> Result<usize> {
        let cutoff = unix_now() - self.options.upload_expiry.as_secs() as i64;
        let stale = self.meta.stale_uploads(cutoff).await?;
        for id in &stale {
            self.forget_upload(id).await?;
        }
        let mut orphans = 0;
        for id in self
            .blobs
            .uploads_older_than(self.options.upload_expiry)
            .await?
        {
            if self.meta.upload(&id).await?.is_none() {
                self.blobs.delete_upload(&id).await?;
                orphans += 1;
            }
        }
        Ok(stale.len() + orphans)
    }

    /// Takes upload `id` of `repo` for the length of one request (so requests
    /// on one upload take turns) and reads its session.
    async fn lock_session(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> Result<(
        tokio::sync::OwnedMutexGuard<Option<HashState>>,
        UploadSession,
    )> {
        // Validate first, so that made-up ids never get a slot.
        self.session(repo, id).await?;
        let state = self.hashes.slot(id).lock_owned().await;
        match self.session(repo, id).await {
            Ok(session) => Ok((state, session)),
            Err(e) => {
                drop(state);
                self.hashes.remove(id);
                Err(e)
            }
        }
    }

    /// The live session `id` of `repo`; expired or foreign sessions are unknown.
    async fn session(&self, repo: &RepositoryName, id: &str) -> Result<UploadSession> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Error::BlobUploadUnknown);
        }
        let session = self
            .meta
            .upload(id)
            .await?
            .filter(|s| &s.repository == repo)
            .ok_or(Error::BlobUploadUnknown)?;
        let age = unix_now() - session.updated_at;
        if age > self.options.upload_expiry.as_secs() as i64 {
            self.forget_upload(id).await?;
            return Err(Error::BlobUploadUnknown);
        }
        Ok(session)
    }

    /// Appends to a session, keeping the running hash when it is current.
    async fn append_session(
        &self,
        session: &UploadSession,
        state: &mut Option<HashState>,
        body: ByteStream<'_>,
    ) -> Result<u64> {
        let mut hasher = match state.take() {
            Some(s) if s.offset == session.offset => Some(s.hasher),
            _ if session.offset == 0 => Some(Algorithm::Sha256.hasher()),
            _ => None, // lost (restart): re-hash at commit
        };
        let offset = match &mut hasher {
            Some(h) => {
                self.append_hashing(&session.id, session.offset, body, h)
                    .await?
            }
            None => {
                self.blobs
                    .append_upload(&session.id, session.offset, body)
                    .await?
            }
        };
        self.meta
            .set_upload_offset(&session.id, offset, unix_now())
            .await?;
        *state = hasher.map(|hasher| HashState { offset, hasher });
        Ok(offset)
    }

    async fn append_hashing(
        &self,
        id: &str,
        offset: u64,
        body: ByteStream<'_>,
        hasher: &mut berth_oci::DigestHasher,
    ) -> Result<u64> {
        let hashing = body.inspect_ok(|chunk| hasher.update(chunk)).boxed();
        self.blobs.append_upload(id, offset, hashing).await
    }

    async fn rehash_upload(&self, id: &str, algorithm: Algorithm) -> Result<Digest> {
        let mut hasher = algorithm.hasher();
        let mut stream = self.blobs.read_upload(id).await?;
        while let Some(chunk) = stream.try_next().await? {
            hasher.update(&chunk);
        }
        Ok(hasher.finish())
    }

    /// Verified content becomes durable, then visible in `repo`.
    async fn publish(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.blobs.commit_upload(id, digest).await?;
        self.meta.link_blob(repo, digest, size).await
    }

    async fn forget_upload(&self, id: &str) -> Result<()> {
        self.blobs.delete_upload(id).await?;
        self.meta.delete_upload(id).await?;
        self.hashes.remove(id);
        Ok(())
    }

    // ---- manifests ---------------------------------------------------------

    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestPushed> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(Error::ManifestTooLarge {
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let parsed = ParsedManifest::parse(&bytes, content_type)?;
        let (digest, tag) = match reference {
            Reference::Digest(expected) => {
                let mut hasher = expected.algorithm().hasher();
                hasher.update(&bytes);
                verify(expected, hasher.finish())?;
                (expected.clone(), None)
            }
            Reference::Tag(tag) => (Digest::sha256_of(&bytes), Some(tag)),
        };
        let record = ManifestRecord {
            digest: digest.clone(),
            media_type: parsed.media_type,
            size: bytes.len() as u64,
            artifact_type: parsed.artifact_type,
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
            annotations: parsed
                .annotations
                .map(|a| serde_json::Value::Object(a).to_string()),
            blobs: parsed
                .blobs
                .into_iter()
                .map(|d| (d.digest, d.size))
                .collect(),
            manifests: parsed
                .manifests
                .into_iter()
                .map(|d| (d.digest, d.size))
                .collect(),
        };
        self.blobs.put(&digest, bytes.clone()).await?;
        self.meta.put_manifest(repo, &record, tag).await?;
        self.manifests.insert(&digest, bytes);
        Ok(ManifestPushed {
            digest,
            subject: record.subject,
        })
    }

    /// A manifest by tag or digest, if its type is one the client accepts.
    /// `accept` lists media types from the `Accept` header; empty means any.
    pub async fn manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
        with_body: bool,
    ) -> Result<ManifestContent> {
        let unknown = || Error::ManifestUnknown(format!("{repo}:{reference}"));
        let (digest, media_type, size) = match reference {
            Reference::Tag(tag) => self
                .meta
                .manifest_by_tag(repo, tag)
                .await?
                .ok_or_else(unknown)?,
            Reference::Digest(digest) => {
                let (media_type, size) = self
                    .meta
                    .manifest_by_digest(repo, digest)
                    .await?
                    .ok_or_else(unknown)?;
                (digest.clone(), media_type, size)
            }
        };
        let acceptable = accept.is_empty()
            || accept
                .iter()
                .any(|a| *a == media_type || *a == "*/*" || *a == "application/*");
        if !acceptable {
            return Err(Error::ManifestNotAcceptable { digest, media_type });
        }
        let body = if with_body {
            Some(self.manifest_bytes(&digest, size).await?)
        } else {
            None
        };
        Ok(ManifestContent {
            digest,
            media_type,
            size,
            body,
        })
    }

    async fn manifest_bytes(&self, digest: &Digest, size: u64) -> Result<Bytes> {
        if let Some(bytes) = self.manifests.get(digest) {
            return Ok(bytes);
        }
        let mut stream = self
            .blobs
            .read(digest, None)
            .await?
            .ok_or_else(|| Error::Storage(format!("manifest {digest} is recorded but missing")))?
            .into_stream();
        let mut buf = BytesMut::with_capacity(size as usize);
        while let Some(chunk) = stream.try_next().await? {
            buf.extend_from_slice(&chunk);
        }
        let bytes = buf.freeze();
        self.manifests.insert(digest, bytes.clone());
        Ok(bytes)
    }

    /// Deletes a manifest (by digest, with all its tags) or just one tag.
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        if !self.options.delete_enabled {
            return Err(Error::DeleteDisabled);
        }
        let deleted = match reference {
            Reference::Tag(tag) => self.meta.delete_tag(repo, tag).await?,
            Reference::Digest(digest) => self.meta.delete_manifest(repo, digest).await?,
        };
        if deleted {
            Ok(())
        } else {
            Err(Error::ManifestUnknown(format!("{repo}:{reference}")))
        }
    }

    // ---- discovery ---------------------------------------------------------

    pub async fn tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Page> {
        let limit = page_limit(n);
        let tags = self
            .meta
            .list_tags(repo, last, limit + 1)
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.to_string()))?;
        Ok(into_page(tags, limit))
    }

    pub async fn catalog(&self, last: Option<&str>, n: Option<usize>) -> Result<Page> {
        let limit = page_limit(n);
        let repos = self.meta.list_repositories(last, limit + 1).await?;
        Ok(into_page(repos, limit))
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let rows = self.meta.referrers(repo, subject, artifact_type).await?;
        Ok(rows
            .into_iter()
            .map(|r| Descriptor {
                media_type: r.media_type,
                digest: r.digest,
                size: r.size,
                artifact_type: r.artifact_type,
                annotations: r.annotations.and_then(|a| serde_json::from_str(&a).ok()),
            })
            .collect())
    }
}

/// A chunk must start where the upload ends.
fn check_chunk_start(session: &UploadSession, start: Option<u64>) -> Result<()> {
    match start {
        Some(got) if got != session.offset => Err(Error::UploadOutOfOrder {
            offset: session.offset,
            got,
        }),
        _ => Ok(()),
    }
}

fn verify(expected: &Digest, actual: Digest) -> Result<()> {
    if *expected == actual {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            expected: expected.clone(),
            actual,
        })
    }
}

fn page_limit(n: Option<usize>) -> usize {
    n.unwrap_or(MAX_PAGE).min(MAX_PAGE)
}

/// `items` holds up to `limit + 1` entries; the extra one only says there is more.
fn into_page(mut items: Vec<String>, limit: usize) -> Page {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().cloned()
    } else {
        None
    };
    Page { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{fs::FsBlobStore, sqlite::SqliteMetaStore};
    use futures_util::stream;

    #[tokio::test]
    async fn made_up_upload_ids_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new(
            Arc::new(FsBlobStore::open(dir.path()).unwrap()),
            Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap()),
            RegistryOptions::default(),
        );
        let name: RepositoryName = "a".parse().unwrap();
        for _ in 0..100 {
            let id = uuid::Uuid::new_v4().to_string();
            let body = stream::iter([Ok(Bytes::from_static(b"x"))]).boxed();
            let err = reg.append_upload(&name, &id, None, body).await.unwrap_err();
            assert!(matches!(err, Error::BlobUploadUnknown));
            assert!(reg.cancel_upload(&name, &id).await.is_err());
        }
        assert_eq!(reg.hashes.len(), 0);
        // A real upload holds a slot only while it lives.
        let up = reg.start_upload(&name).await.unwrap();
        let body = stream::iter([Ok(Bytes::from_static(b"x"))]).boxed();
        reg.append_upload(&name, &up.id, Some(0), body)
            .await
            .unwrap();
        assert_eq!(reg.hashes.len(), 1);
        reg.cancel_upload(&name, &up.id).await.unwrap();
        assert_eq!(reg.hashes.len(), 0);
    }
}

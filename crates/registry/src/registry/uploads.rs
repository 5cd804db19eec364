//! Chunked uploads: sessions that receive bytes over several requests, are
//! hashed as they arrive, and end in a verified publish or in nothing.

use super::chunk::{exactly, ExpectedChunk};
use super::upload_hashes::HashState;
use super::{unix_now, verify, Registry};
use crate::error::{Error, Result};
use crate::storage::{ByteStream, UploadLimits, UploadSession};
use berth_oci::{Algorithm, Digest, RepositoryName};
use futures_util::{StreamExt, TryStreamExt};
use std::net::IpAddr;

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received so far.
    pub offset: u64,
}

impl Registry {
    /// Opens an upload session for `client` (the peer's address, when the
    /// server knows it), within the configured caps.
    pub async fn start_upload(
        &self,
        repo: &RepositoryName,
        client: Option<IpAddr>,
    ) -> Result<UploadStatus> {
        self.refuse_cached_write(repo).await?;
        self.check_free_space()?;
        let id = uuid::Uuid::new_v4().to_string();
        self.blobs.create_upload(&id).await?;
        let session = UploadSession {
            id: id.clone(),
            repository: repo.clone(),
            offset: 0,
            updated_at: unix_now(),
            client,
        };
        let limits = UploadLimits {
            total: self.options.max_uploads,
            per_client: self.options.max_uploads_per_client,
        };
        if let Err(e) = self.meta.create_upload(&session, limits).await {
            let _ = self.blobs.delete_upload(&id).await;
            return Err(e);
        }
        Ok(UploadStatus { id, offset: 0 })
    }

    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        // An expired session is gone, unless a request is still working on it.
        if self.is_expired(&session) && !self.hashes.is_busy(id) {
            return Err(Error::BlobUploadUnknown);
        }
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
        chunk: impl Into<ExpectedChunk>,
        body: ByteStream<'_>,
    ) -> Result<UploadStatus> {
        let chunk = chunk.into();
        self.check_free_space()?;
        let (mut state, session) = self.lock_session(repo, id).await?;
        check_chunk_start(&session, chunk.start)?;
        let body = exactly(body, chunk.len);
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
        chunk: impl Into<ExpectedChunk>,
        last_chunk: Option<ByteStream<'_>>,
    ) -> Result<()> {
        let chunk = chunk.into();
        if last_chunk.is_some() {
            self.check_free_space()?;
        }
        let (mut state, session) = self.lock_session(repo, id).await?;
        check_chunk_start(&session, chunk.start)?;
        let size = match last_chunk {
            Some(body) => {
                let body = exactly(body, chunk.len);
                self.append_session(&session, &mut state, body).await?
            }
            None => session.offset,
        };
        // The running hash covers exactly the bytes this lock's holders wrote;
        // anything else (a restart, a dropped request) is re-read from the
        // file, and then the file's length is the size.
        let (actual, size) = match state.take() {
            Some(s) if s.offset == size && s.hasher.algorithm() == digest.algorithm() => {
                (s.hasher.finish(), size)
            }
            _ => self.rehash_upload(id, digest.algorithm()).await?,
        };
        let outcome = match verify(digest, actual) {
            Ok(()) => self.publish(repo, id, digest, size).await,
            Err(e) => Err(e),
        };
        // Success or mismatch, the session is over. Failing to clean up does
        // not undo a publish: the sweeper removes what is left.
        if let Err(e) = self.forget_upload(id).await {
            tracing::warn!(upload = id, error = %e, "could not remove a finished upload");
        }
        outcome
    }

    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        let _locked = self.lock_session(repo, id).await?;
        self.forget_upload(id).await
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
        let live = match self.session(repo, id).await {
            Ok(session) if self.is_expired(&session) => {
                // Ours now, and stale: nothing else can be using it.
                self.forget_upload(id).await?;
                Err(Error::BlobUploadUnknown)
            }
            other => other,
        };
        match live {
            Ok(session) => Ok((state, session)),
            Err(e) => {
                self.hashes.remove(id);
                drop(state);
                Err(e)
            }
        }
    }

    /// The session `id` of `repo`; foreign sessions are unknown.
    async fn session(&self, repo: &RepositoryName, id: &str) -> Result<UploadSession> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Error::BlobUploadUnknown);
        }
        self.meta
            .upload(id)
            .await?
            .filter(|s| &s.repository == repo)
            .ok_or(Error::BlobUploadUnknown)
    }

    /// Whether a session has been untouched for longer than the expiry.
    pub(super) fn is_expired(&self, session: &UploadSession) -> bool {
        unix_now() - session.updated_at > self.options.upload_expiry.as_secs() as i64
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
        let appended = match &mut hasher {
            Some(h) => {
                self.append_hashing(&session.id, session.offset, body, h)
                    .await
            }
            None => {
                self.blobs
                    .append_upload(&session.id, session.offset, body)
                    .await
            }
        };
        let offset = match appended {
            Ok(offset) => offset,
            Err(Error::UploadOutOfOrder { offset: held, got }) if held < got => {
                // The session is ahead of the bytes stored (a write was
                // lost): it continues from what the file really holds.
                self.meta
                    .set_upload_offset(&session.id, held, unix_now())
                    .await?;
                return Err(Error::UploadOutOfOrder { offset: held, got });
            }
            Err(e) => return Err(e),
        };
        self.meta
            .set_upload_offset(&session.id, offset, unix_now())
            .await?;
        *state = hasher.map(|hasher| HashState { offset, hasher });
        Ok(offset)
    }

    pub(super) async fn append_hashing(
        &self,
        id: &str,
        offset: u64,
        body: ByteStream<'_>,
        hasher: &mut berth_oci::DigestHasher,
    ) -> Result<u64> {
        let hashing = body.inspect_ok(|chunk| hasher.update(chunk)).boxed();
        self.blobs.append_upload(id, offset, hashing).await
    }

    /// The digest and length of what upload `id` holds.
    async fn rehash_upload(&self, id: &str, algorithm: Algorithm) -> Result<(Digest, u64)> {
        let mut hasher = algorithm.hasher();
        let mut len = 0u64;
        let mut stream = self.blobs.read_upload(id).await?;
        while let Some(chunk) = stream.try_next().await? {
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        Ok((hasher.finish(), len))
    }

    pub(super) async fn forget_upload(&self, id: &str) -> Result<()> {
        self.blobs.delete_upload(id).await?;
        self.meta.delete_upload(id).await?;
        self.hashes.remove(id);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{fs::FsBlobStore, sqlite::SqliteMetaStore};
    use crate::RegistryOptions;
    use bytes::Bytes;
    use futures_util::stream;
    use std::sync::Arc;

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
        let up = reg.start_upload(&name, None).await.unwrap();
        let body = stream::iter([Ok(Bytes::from_static(b"x"))]).boxed();
        reg.append_upload(&name, &up.id, Some(0), body)
            .await
            .unwrap();
        assert_eq!(reg.hashes.len(), 1);
        reg.cancel_upload(&name, &up.id).await.unwrap();
        assert_eq!(reg.hashes.len(), 0);
    }
}

//! Chunked uploads: sessions that receive bytes over several requests, are
//! hashed as they arrive, and end in a verified publish or in nothing.

use super::chunk::{exactly, ExpectedChunk};
use super::{unix_now, verify, Registry};
use crate::error::{Error, Result};
use crate::storage::{Appended, ByteStream, UploadLimits, UploadProgress, UploadSession};
use berth_oci::{Algorithm, Digest, DigestHasher, RepositoryName};
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
        let store_state = self.blobs.create_upload(&id).await?;
        let session = UploadSession {
            id: id.clone(),
            repository: repo.clone(),
            offset: 0,
            updated_at: unix_now(),
            client,
            hash_state: Some(Algorithm::Sha256.hasher().save()),
            store_state,
        };
        let limits = UploadLimits {
            total: self.options.max_uploads,
            per_client: self.options.max_uploads_per_client,
        };
        if let Err(e) = self.meta.create_upload(&session, limits).await {
            let _ = self
                .blobs
                .delete_upload(&id, Some(&session.store_state))
                .await;
            return Err(e);
        }
        Ok(UploadStatus { id, offset: 0 })
    }

    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        // An expired session is gone, unless a request is still working on it.
        if self.is_expired(&session) && !self.turns.is_busy(id) {
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
        let (_turn, session) = self.lock_session(repo, id).await?;
        check_chunk_start(&session, chunk.start)?;
        let body = exactly(body, chunk.len);
        let progress = self.append_session(&session, body).await?;
        Ok(UploadStatus {
            id: session.id,
            offset: progress.offset,
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
        let (_turn, session) = self.lock_session(repo, id).await?;
        check_chunk_start(&session, chunk.start)?;
        let progress = match last_chunk {
            Some(body) => {
                let body = exactly(body, chunk.len);
                self.append_session(&session, body).await?
            }
            None => UploadProgress {
                offset: session.offset,
                hash_state: session.hash_state,
                store_state: session.store_state,
            },
        };
        // The saved hash covers exactly the bytes the session holds; without
        // one (a session from before hashes were saved, or another
        // algorithm) the upload is read back and its length is the size.
        let saved = progress
            .hash_state
            .as_deref()
            .and_then(DigestHasher::resume);
        let (actual, size) = match saved {
            Some(hasher) if hasher.algorithm() == digest.algorithm() => {
                (hasher.finish(), progress.offset)
            }
            _ => {
                self.rehash_upload(id, &progress.store_state, digest.algorithm())
                    .await?
            }
        };
        let outcome = match verify(digest, actual) {
            Ok(()) => {
                self.publish(repo, id, &progress.store_state, digest, size)
                    .await
            }
            Err(e) => Err(e),
        };
        // Success or mismatch, the session is over. Failing to clean up does
        // not undo a publish: the sweeper removes what is left.
        if let Err(e) = self.forget_upload(id, Some(&progress.store_state)).await {
            tracing::warn!(upload = id, error = %e, "could not remove a finished upload");
        }
        outcome
    }

    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        let (_turn, session) = self.lock_session(repo, id).await?;
        self.forget_upload(id, Some(&session.store_state)).await
    }

    /// Takes upload `id` of `repo` for the length of one request (so requests
    /// on one upload take turns) and reads its session.
    async fn lock_session(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> Result<(tokio::sync::OwnedMutexGuard<()>, UploadSession)> {
        // Validate first, so that made-up ids never get a slot.
        self.session(repo, id).await?;
        let turn = self.turns.slot(id).lock_owned().await;
        let live = match self.session(repo, id).await {
            Ok(session) if self.is_expired(&session) => {
                // Ours now, and stale: nothing else can be using it.
                self.forget_upload(id, Some(&session.store_state)).await?;
                Err(Error::BlobUploadUnknown)
            }
            other => other,
        };
        match live {
            Ok(session) => Ok((turn, session)),
            Err(e) => {
                self.turns.remove(id);
                drop(turn);
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

    /// Appends to a session and records how far it got, by compare-and-set:
    /// if another request or process moved the session meanwhile, this
    /// append is not part of it and the client hears where it stands.
    async fn append_session(
        &self,
        session: &UploadSession,
        body: ByteStream<'_>,
    ) -> Result<UploadProgress> {
        let mut hasher = match session.hash_state.as_deref() {
            Some(saved) => DigestHasher::resume(saved),
            None if session.offset == 0 => Some(Algorithm::Sha256.hasher()),
            None => None, // re-hashed at commit
        };
        let appended = match &mut hasher {
            Some(h) => {
                self.append_hashing(&session.id, session.offset, &session.store_state, body, h)
                    .await
            }
            None => {
                self.blobs
                    .append_upload(&session.id, session.offset, &session.store_state, body)
                    .await
            }
        };
        let appended = match appended {
            Ok(appended) => appended,
            Err(Error::UploadOutOfOrder { offset: held, got }) if held < got => {
                // The session is ahead of the bytes stored (a write was
                // lost): it continues from what the store really holds,
                // hashed again at commit.
                let behind = UploadProgress {
                    offset: held,
                    hash_state: None,
                    store_state: session.store_state.clone(),
                };
                self.meta
                    .advance_upload(&session.id, session.offset, &behind, unix_now())
                    .await?;
                return Err(Error::UploadOutOfOrder { offset: held, got });
            }
            Err(e) => return Err(e),
        };
        let progress = UploadProgress {
            offset: appended.offset,
            hash_state: hasher.map(|h| h.save()),
            store_state: appended.state,
        };
        let recorded = self
            .meta
            .advance_upload(&session.id, session.offset, &progress, unix_now())
            .await?;
        if !recorded {
            let now = self.meta.upload(&session.id).await?;
            return Err(match now {
                Some(now) => Error::UploadOutOfOrder {
                    offset: now.offset,
                    got: session.offset,
                },
                None => Error::BlobUploadUnknown,
            });
        }
        Ok(progress)
    }

    pub(super) async fn append_hashing(
        &self,
        id: &str,
        offset: u64,
        state: &[u8],
        body: ByteStream<'_>,
        hasher: &mut DigestHasher,
    ) -> Result<Appended> {
        // The hasher must see only what the store kept: hash a copy, and
        // keep it only if the append succeeded.
        let mut running = hasher.clone();
        let hashing = body.inspect_ok(|chunk| running.update(chunk)).boxed();
        let appended = self.blobs.append_upload(id, offset, state, hashing).await?;
        *hasher = running;
        Ok(appended)
    }

    /// The digest and length of what upload `id` holds.
    async fn rehash_upload(
        &self,
        id: &str,
        state: &[u8],
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)> {
        let mut hasher = algorithm.hasher();
        let mut len = 0u64;
        let mut stream = self.blobs.read_upload(id, state).await?;
        while let Some(chunk) = stream.try_next().await? {
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        Ok((hasher.finish(), len))
    }

    pub(super) async fn forget_upload(&self, id: &str, state: Option<&[u8]>) -> Result<()> {
        self.blobs.delete_upload(id, state).await?;
        self.meta.delete_upload(id).await?;
        self.turns.remove(id);
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
        assert_eq!(reg.turns.len(), 0);
        // A real upload holds a slot only while it lives.
        let up = reg.start_upload(&name, None).await.unwrap();
        let body = stream::iter([Ok(Bytes::from_static(b"x"))]).boxed();
        reg.append_upload(&name, &up.id, Some(0), body)
            .await
            .unwrap();
        assert_eq!(reg.turns.len(), 1);
        reg.cancel_upload(&name, &up.id).await.unwrap();
        assert_eq!(reg.turns.len(), 0);
    }
}

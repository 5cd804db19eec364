//! Blobs: serving them, mounting them across repositories, pushing one in a
//! single request, and publishing verified bytes.

use super::uploads::UploadStatus;
use super::{unix_now, verify, RangeRequest, Registry};
use crate::error::{Error, Result};
use crate::gc::{touches, CLAIM_LEASE};
use crate::storage::{
    BlobClaim, BlobContent, BlobStore, ByteRange, ByteStream, ManifestRow, MetaStore,
};
use berth_oci::{Digest, RepositoryName};
use futures_util::TryStreamExt;
use std::net::IpAddr;
use std::sync::Arc;

/// How long a publish waits for the collector to finish deleting its digest.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often it asks meanwhile.
const CLAIM_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// A blob to serve: its size, the range served and, unless HEAD, the bytes.
pub struct BlobBody {
    pub size: u64,
    pub range: Option<ByteRange>,
    pub content: Option<BlobContent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    Mounted,
    /// The blob could not be mounted; a fresh upload was started instead.
    Upload(UploadStatus),
}

impl Registry {
    /// A blob of `repo`, whole or a range; without its bytes when `with_body` is false.
    pub async fn blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<RangeRequest>,
        with_body: bool,
    ) -> Result<BlobBody> {
        // Recorded before the lookup: a collection pass either sees this read
        // and keeps the blob, or has already removed its link (see crate::gc).
        let now = unix_now();
        self.touches.record(repo, digest, now).await;
        let size = self.meta.blob_size(repo, digest).await?;
        self.read_answered(repo, digest, now, size.is_some());
        let size = size.ok_or_else(|| Error::BlobUnknown(digest.clone()))?;
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

    /// Where a client may fetch blob `digest` of `repo` directly (a
    /// presigned object-store URL), when the blob store hands such URLs out
    /// (`[storage.s3] redirect`); `None` otherwise, and then the blob is
    /// served through berth. Checked and recorded as a read like [`Registry::blob`].
    pub async fn blob_redirect(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<String>> {
        let Some(url) = self.blobs.redirect_url(digest).await? else {
            return Ok(None);
        };
        self.blob(repo, digest, None, false).await?;
        Ok(Some(url))
    }

    /// A manifest of `repo` by digest, as a read: it restarts an untagged
    /// manifest's age as a blob read restarts a blob's grace, so that a
    /// client that saw it (and skips pushing it) finds it when its index
    /// arrives (see crate::gc).
    pub(super) async fn manifest_read_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRow>> {
        let now = unix_now();
        self.touches.record(repo, digest, now).await;
        let found = self.meta.manifest_by_digest(repo, digest).await?;
        self.read_answered(repo, digest, now, found.is_some());
        Ok(found)
    }

    /// Ends a read recorded in the TouchLog at `now`: a hit is written
    /// (coalesced, in the background), a miss forgotten.
    pub(super) fn read_answered(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        now: i64,
        found: bool,
    ) {
        if !found {
            self.touches.missed(repo, digest);
        } else if self.touches.found(repo, digest, now) {
            touches::schedule_flush(self.touches.clone(), self.meta.clone());
        }
    }

    /// Links `digest` from `from` into `repo` if `from` has it; otherwise starts an upload.
    pub async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
        client: Option<IpAddr>,
    ) -> Result<MountOutcome> {
        self.refuse_cached_write(repo).await?;
        if let Some(from) = from {
            if let Some(size) = self.meta.blob_size(from, digest).await? {
                // False when the collector is deleting it: upload it afresh.
                if self.meta.link_blob(repo, digest, size, None).await? {
                    return Ok(MountOutcome::Mounted);
                }
            }
        }
        Ok(MountOutcome::Upload(self.start_upload(repo, client).await?))
    }

    /// Monolithic upload in one request: stream, verify, publish. A client
    /// may have as many in progress as it may have upload sessions.
    pub async fn push_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        body: ByteStream<'_>,
        client: Option<IpAddr>,
    ) -> Result<()> {
        self.refuse_cached_write(repo).await?;
        self.check_free_space()?;
        let limit = self.options.max_uploads_per_client;
        let _counted = match client {
            Some(client) => Some(self.pushes.enter(client, limit).ok_or(
                Error::TooManyUploads {
                    limit,
                    per_client: true,
                },
            )?),
            None => None,
        };
        // No session row: the whole upload lives and dies within this request.
        let id = format!("mono-{}", uuid::Uuid::new_v4());
        // Held for the whole push, so that the sweeper leaves its file alone.
        let _busy = self.turns.slot(&id).lock_owned().await;
        let mut state = self.blobs.create_upload(&id).await?;
        let outcome = async {
            let mut hasher = digest.algorithm().hasher();
            let appended = self
                .append_hashing(&id, 0, &state, body, &mut hasher)
                .await?;
            state = appended.state;
            verify(digest, hasher.finish())?;
            self.publish(repo, &id, &state, digest, appended.offset)
                .await
        }
        .await;
        if outcome.is_err() {
            let _ = self.blobs.delete_upload(&id, Some(&state)).await;
        }
        self.turns.remove(&id);
        outcome
    }

    /// Publishes the local file `source` as blob `digest` of `repo`, sharing
    /// its bytes instead of copying them when the blob store can (a hard
    /// link), after hashing them like any push; `on_read` hears of each chunk
    /// hashed. `Ok(false)`: the store cannot share the file and nothing
    /// changed. A failed read of the file is [`Error::BodyRead`], as a
    /// client's broken body would be.
    pub async fn push_blob_linked(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        source: &std::path::Path,
        on_read: &(dyn Fn(u64) + Sync),
    ) -> Result<bool> {
        self.refuse_cached_write(repo).await?;
        let id = format!("link-{}", uuid::Uuid::new_v4());
        let _busy = self.turns.slot(&id).lock_owned().await;
        let outcome = async {
            let Some(state) = self.blobs.create_upload_linked(&id, source).await? else {
                return Ok(false);
            };
            let mut hasher = digest.algorithm().hasher();
            let mut size = 0u64;
            let mut stream = self.blobs.read_upload(&id, &state).await?;
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| Error::BodyRead(format!("{}: {e}", source.display())))?
            {
                hasher.update(&chunk);
                size += chunk.len() as u64;
                on_read(chunk.len() as u64);
            }
            verify(digest, hasher.finish())?;
            self.publish(repo, &id, &state, digest, size).await?;
            Ok(true)
        }
        .await;
        if outcome.is_err() {
            // Linked uploads exist only on stores that keep no state.
            let _ = self.blobs.delete_upload(&id, None).await;
        }
        self.turns.remove(&id);
        outcome
    }

    /// Verified content becomes durable, then visible in `repo` (see [`Stores::publish`]).
    pub(super) async fn publish(
        &self,
        repo: &RepositoryName,
        id: &str,
        state: &[u8],
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.stores().publish(repo, id, state, digest, size).await
    }

    /// Claims `digest` for a publish, waiting while the collector deletes it.
    pub(super) async fn claim(&self, digest: &Digest) -> Result<BlobClaim> {
        self.stores().claim(digest).await
    }

    /// Releases the claim of a publish that failed.
    pub(super) async fn release(&self, claim: &BlobClaim) {
        self.stores().release(claim).await
    }

    /// The two stores, to carry into a task that outlives the request.
    pub(crate) fn stores(&self) -> Stores {
        Stores {
            blobs: self.blobs.clone(),
            meta: self.meta.clone(),
        }
    }
}

/// The stores a publish writes to: owned, so that a cache fill can go on
/// in a task of its own after the client that started it has gone.
#[derive(Clone)]
pub(crate) struct Stores {
    pub blobs: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetaStore>,
}

impl Stores {
    /// Verified content becomes durable, then visible in `repo`: under a
    /// claim on the digest, so that no collection deletes the file while it
    /// is written (see crate::gc).
    pub async fn publish(
        &self,
        repo: &RepositoryName,
        id: &str,
        state: &[u8],
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let claim = self.claim(digest).await?;
        let outcome = async {
            self.blobs.commit_upload(id, state, digest).await?;
            if self
                .meta
                .link_blob(repo, digest, size, Some(&claim))
                .await?
            {
                Ok(())
            } else {
                // Only if the claim outlived its lease before linking.
                Err(Error::Storage(format!(
                    "blob {digest} was deleted by garbage collection while it was published; push it again"
                )))
            }
        }
        .await;
        if outcome.is_err() {
            self.release(&claim).await;
        }
        outcome
    }

    /// Claims `digest` for a publish, waiting while the collector deletes it.
    pub async fn claim(&self, digest: &Digest) -> Result<BlobClaim> {
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            if let Some(claim) = self.meta.claim_blob(digest, CLAIM_LEASE).await? {
                return Ok(claim);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Storage(format!(
                    "blob {digest} is being deleted by garbage collection; retry"
                )));
            }
            tokio::time::sleep(CLAIM_RETRY).await;
        }
    }

    /// Releases the claim of a publish that failed; a failure to do so only
    /// delays the collector until the lease ends.
    pub async fn release(&self, claim: &BlobClaim) {
        if let Err(e) = self.meta.release_claim(claim).await {
            tracing::warn!(digest = %claim.digest, error = %e, "could not release a blob claim");
        }
    }
}

//! Manifests: pushing one (parse, verify, check its references, record it)
//! and serving one by tag or digest.

use super::{pull_log, unix_now, verify, Registry};
use crate::error::{Error, Result};
use crate::storage::{CacheSource, ManifestRecord, ManifestRow, PulledBy, PutOptions};
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::{Digest, ParsedManifest, Reference, RepositoryName, Tag};
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;

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

impl Registry {
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestPushed> {
        self.refuse_cached_write(repo).await?;
        self.store_manifest(repo, reference, content_type, bytes, None)
            .await
    }

    /// A manifest PUT's work, for a client's push (`cached: None`, with the
    /// policies) or for the pull-through cache (with lazy references and
    /// no policies: the upstream decides what its tags point at).
    pub(crate) async fn store_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        cached: Option<CacheSource>,
    ) -> Result<ManifestPushed> {
        self.check_free_space()?;
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
        let policed = cached.is_none();
        let immutable_tag = policed
            && tag.is_some_and(|t| {
                self.options
                    .policies
                    .is_immutable(repo.as_str(), t.as_str())
            });
        if let (true, Some(tag)) = (immutable_tag, tag) {
            // Refused before writing anything when it already shows; the
            // put transaction decides for pushes that race.
            self.refuse_moving_immutable(repo, tag, &digest).await?;
        }
        // Claimed first, so that no collection deletes the bytes between
        // their write and the record naming them (see crate::gc).
        let claim = self.claim(&digest).await?;
        let options = PutOptions {
            claim: Some(claim.clone()),
            immutable_tag,
            quota: self
                .options
                .policies
                .quota_for(repo.as_str())
                .filter(|_| policed)
                .map(|rule| rule.quota),
            cached,
        };
        let stored = async {
            self.blobs.put(&digest, bytes.clone()).await?;
            self.meta.put_manifest(repo, &record, tag, &options).await
        }
        .await;
        if let Err(e) = stored {
            self.release(&claim).await;
            return Err(e);
        }
        self.manifests.insert(&digest, bytes);
        Ok(ManifestPushed {
            digest,
            subject: record.subject,
        })
    }

    /// `Error::TagImmutable` if `tag` points at a manifest other than `digest`.
    async fn refuse_moving_immutable(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<()> {
        match self.meta.manifest_by_tag(repo, tag).await? {
            Some(current) if current.digest != *digest => Err(Error::TagImmutable {
                repository: repo.to_string(),
                tag: tag.to_string(),
                current: current.digest,
            }),
            _ => Ok(()),
        }
    }

    /// A manifest by tag or digest, if its type is one the client accepts:
    /// a client's pull (GET or HEAD), so its time is noted for retention.
    /// `accept` lists media types from the `Accept` header; empty means any.
    pub async fn manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
        with_body: bool,
    ) -> Result<ManifestContent> {
        let content = self
            .find_manifest(repo, reference, accept, with_body)
            .await?;
        let by = match reference {
            Reference::Tag(tag) => PulledBy::Tag(tag.clone()),
            Reference::Digest(digest) => PulledBy::Digest(digest.clone()),
        };
        if let Some(delay) = self.pulls.record(repo, by, unix_now()) {
            pull_log::schedule_flush(self.pulls.clone(), self.meta.clone(), delay);
        }
        Ok(content)
    }

    /// Writes the pull times noted so far (retention calls this first);
    /// how many were written.
    pub async fn flush_pulls(&self) -> Result<usize> {
        self.pulls.flush(&*self.meta).await
    }

    /// Pull times noted and not yet written.
    pub fn pending_pulls(&self) -> usize {
        self.pulls.len()
    }

    /// [`Registry::manifest`] for berth's own reads (the UI, listings,
    /// imports): not a pull.
    pub(crate) async fn find_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
        with_body: bool,
    ) -> Result<ManifestContent> {
        let found = match reference {
            Reference::Tag(tag) => self.meta.manifest_by_tag(repo, tag).await?,
            Reference::Digest(digest) => self.manifest_read_by_digest(repo, digest).await?,
        };
        let ManifestRow {
            digest,
            media_type,
            size,
        } = found.ok_or_else(|| Error::ManifestUnknown(format!("{repo}:{reference}")))?;
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

    /// A manifest's bytes, from the cache or the blob store.
    pub(super) async fn manifest_bytes(&self, digest: &Digest, size: u64) -> Result<Bytes> {
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
}

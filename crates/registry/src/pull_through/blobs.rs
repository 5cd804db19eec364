//! Blob pulls of cached repositories: from the store when linked; linked
//! without a download when berth holds the bytes and the upstream confirms
//! them; else one fill per (repository, digest) streamed to the first
//! caller (see [`super::tee`]), the others served from the store after it.

use super::flight::{self, FillFailure, Role};
use super::pulls::CachedRepository;
use super::tee::Fill;
use super::{CacheOutcome, Pulled};
use crate::error::{Error, Result};
use crate::registry::{unix_now, BlobBody, RangeRequest, Registry};
use crate::storage::{BlobContent, CacheSource, RepositoryOrigin};
use berth_oci::{Digest, RepositoryName};

impl Registry {
    pub(super) async fn pull_cached_blob(
        &self,
        cached: &CachedRepository<'_>,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<RangeRequest>,
        with_body: bool,
    ) -> Result<Pulled<BlobBody>> {
        let Some(p) = &self.pull_through else {
            return Err(Error::Unsupported("no pull-through cache".into()));
        };
        let counters = p.counters(&cached.route.name);
        if self.meta.blob_size(repo, digest).await?.is_some() {
            counters.hit();
            let body = self.blob(repo, digest, range, with_body).await?;
            return Ok(Pulled::cached(body, CacheOutcome::Hit));
        }
        if self.link_known_blob(cached, repo, digest).await? {
            counters.hit();
            let body = self.blob(repo, digest, range, with_body).await?;
            return Ok(Pulled::cached(body, CacheOutcome::Hit));
        }
        if !with_body {
            // A HEAD caches nothing: the upstream's word on the size.
            let size = cached
                .route
                .upstream
                .blob_size(&cached.remote, digest)
                .await
                .map_err(|e| {
                    self.upstream_error(cached.route, e, || Error::BlobUnknown(digest.clone()))
                })?;
            let range = range.map(|r| r.resolve(size)).transpose()?;
            counters.miss();
            let body = BlobBody {
                size,
                range,
                content: None,
            };
            return Ok(Pulled::cached(body, CacheOutcome::Miss));
        }
        self.mark_cached(cached, repo).await?;
        let mut retried = false;
        let done = loop {
            match p.blob_fills.join(repo, digest) {
                Role::Leader(done) => break done,
                Role::Waiter(fill) => match flight::wait(fill).await {
                    Ok(()) => {
                        counters.hit();
                        let body = self.blob(repo, digest, range, with_body).await?;
                        return Ok(Pulled::cached(body, CacheOutcome::Hit));
                    }
                    // Not the upstream's fault (a leader gone before it
                    // started, a local failure): one more try, maybe as leader.
                    Err(FillFailure::Other(_)) if !retried => retried = true,
                    Err(failure) => return Err(failure.into_error(digest)),
                },
            }
        };
        // Whoever led before may have linked it just before we joined.
        if self.meta.blob_size(repo, digest).await?.is_some() {
            done.finish(Ok(()));
            counters.hit();
            let body = self.blob(repo, digest, range, with_body).await?;
            return Ok(Pulled::cached(body, CacheOutcome::Hit));
        }
        if let Err(e) = self.check_free_space() {
            done.finish(Err(FillFailure::Other(e.to_string())));
            return Err(e);
        }
        let watch = done.watcher();
        let handle = Fill {
            stores: self.stores(),
            turns: self.turns.clone(),
            counters: counters.clone(),
            upstream_name: cached.route.name.clone(),
            upstream: cached.route.upstream.clone(),
            remote: cached.remote.clone(),
            repo: repo.clone(),
            digest: digest.clone(),
        }
        .spawn(done);
        let mut handle = handle;
        let started = (&mut handle.started)
            .await
            .map_err(|_| Error::Storage("the upstream fetch ended before it began".into()))?
            .map_err(|f| f.into_error(digest))?;
        counters.miss();
        match (started, range) {
            (Some(size), None) => {
                let body = BlobBody {
                    size,
                    range: None,
                    content: Some(BlobContent::Stream(handle.into_stream())),
                };
                Ok(Pulled::cached(body, CacheOutcome::Miss))
            }
            _ => {
                // No length to announce, or a range of it: the whole blob
                // first, then served from the store.
                drop(handle);
                flight::wait(watch)
                    .await
                    .map_err(|f| f.into_error(digest))?;
                let body = self.blob(repo, digest, range, with_body).await?;
                Ok(Pulled::cached(body, CacheOutcome::Miss))
            }
        }
    }

    /// A blob the store holds (for another repository) is linked here
    /// without downloading it, once the upstream confirms this repository
    /// has it with that size: a digest seen elsewhere must not leak from a
    /// private repository. Whether it linked.
    async fn link_known_blob(
        &self,
        cached: &CachedRepository<'_>,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool> {
        let stored = match self.blobs.read(digest, None).await? {
            Some(BlobContent::File(region)) => region.len,
            // Only a local file says its size for free; others are fetched.
            Some(BlobContent::Stream(_)) | None => return Ok(false),
        };
        let size = match cached
            .route
            .upstream
            .blob_size(&cached.remote, digest)
            .await
        {
            Ok(size) => size,
            Err(e) => {
                return Err(
                    self.upstream_error(cached.route, e, || Error::BlobUnknown(digest.clone()))
                )
            }
        };
        if size != stored {
            return Ok(false);
        }
        self.mark_cached(cached, repo).await?;
        self.meta.link_blob(repo, digest, size, None).await
    }

    /// A cached repository is marked so before its first blob is linked:
    /// a link alone would make it look pushed (to the fallback's routing,
    /// to the UI, to eviction).
    async fn mark_cached(
        &self,
        cached: &CachedRepository<'_>,
        repo: &RepositoryName,
    ) -> Result<()> {
        if let RepositoryOrigin::Cached(_) = self.meta.repository_origin(repo).await? {
            return Ok(());
        }
        let source = CacheSource {
            upstream: cached.route.name.clone(),
            remote: cached.remote.clone(),
            checked_at: unix_now(),
        };
        self.meta.mark_cached(repo, &source).await
    }
}

//! The registry's pull API: a pull of a local repository is today's read;
//! a pull of a cached one goes through the cache's rules.

use super::counters::Counters;
use super::flight::{self, FillFailure, Role};
use super::tee::Fill;
use super::{
    freshness, CacheOutcome, PullThrough, Pulled, UpstreamError, UpstreamRoute, UpstreamStats,
};
use crate::error::{Error, Result};
use crate::registry::{unix_now, BlobBody, ManifestContent, RangeRequest, Registry};
use crate::storage::{BlobContent, CacheOrigin, CacheSource, RepositoryOrigin};
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use std::sync::Arc;

/// A cached repository: the upstream it mirrors and its name there.
pub(crate) struct CachedRepository<'a> {
    pub route: &'a UpstreamRoute,
    pub remote: String,
}

impl Registry {
    /// Caches the upstreams `pull_through` names; `Registry::new` caches none.
    pub fn with_pull_through(mut self, pull_through: PullThrough) -> Self {
        self.pull_through = Some(Arc::new(pull_through));
        self
    }

    /// The pull-through cache, if configured.
    pub fn pull_through(&self) -> Option<&PullThrough> {
        self.pull_through.as_deref()
    }

    /// The repository a request names, under berth (see
    /// [`super::UpstreamRoutes::local_name`]): the server asks this for
    /// every `/v2/<name>/...` request before authorizing it.
    pub fn local_name(&self, name: &RepositoryName, ns: Option<&str>) -> RepositoryName {
        match &self.pull_through {
            Some(p) => p.routes().local_name(name, ns),
            None => name.clone(),
        }
    }

    /// A pull of a manifest: local content, or through the repository's upstream.
    pub async fn pull_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
        with_body: bool,
    ) -> Result<Pulled<ManifestContent>> {
        match self.cached_repository(repo).await? {
            None => Ok(Pulled::local(
                self.manifest(repo, reference, accept, with_body).await?,
            )),
            Some(cached) => {
                self.pull_cached_manifest(&cached, repo, reference, accept, with_body)
                    .await
            }
        }
    }

    /// A pull of a blob: local, or streamed from upstream while it is cached.
    pub async fn pull_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<RangeRequest>,
        with_body: bool,
    ) -> Result<Pulled<BlobBody>> {
        match self.cached_repository(repo).await? {
            None => Ok(Pulled::local(
                self.blob(repo, digest, range, with_body).await?,
            )),
            Some(cached) => {
                self.pull_cached_blob(&cached, repo, digest, range, with_body)
                    .await
            }
        }
    }

    /// Counters per upstream, for `/metrics`; empty without a cache.
    pub fn pull_through_stats(&self) -> Vec<UpstreamStats> {
        self.pull_through
            .as_ref()
            .map(|p| p.stats())
            .unwrap_or_default()
    }

    /// The upstream `repo` caches, if it is a cache holding content.
    pub async fn cache_origin(&self, repo: &RepositoryName) -> Result<Option<CacheOrigin>> {
        match self.meta.repository_origin(repo).await? {
            RepositoryOrigin::Cached(origin) => Ok(Some(origin)),
            RepositoryOrigin::Absent | RepositoryOrigin::Local => Ok(None),
        }
    }

    /// The cache size limit the collector enforces (`[cache] max_size`).
    pub fn cache_max_bytes(&self) -> Option<u64> {
        self.pull_through.as_ref().and_then(|p| p.max_bytes())
    }

    /// Bytes held by cached repositories (see [`crate::MetaStore::cached_bytes`]).
    pub async fn cached_bytes(&self) -> Result<u64> {
        self.meta.cached_bytes().await
    }

    /// Whether pulls of `repo` go through an upstream, and which: a name
    /// under a prefix always; with the fallback, a repository that holds
    /// no pushed content.
    pub(crate) async fn cached_repository(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<CachedRepository<'_>>> {
        let Some(p) = &self.pull_through else {
            return Ok(None);
        };
        if let Some((route, remote)) = p.routes().by_prefix(repo) {
            return Ok(Some(CachedRepository { route, remote }));
        }
        let Some(fallback) = p.routes().fallback() else {
            return Ok(None);
        };
        Ok(match self.meta.repository_origin(repo).await? {
            RepositoryOrigin::Local => None,
            RepositoryOrigin::Absent | RepositoryOrigin::Cached(_) => Some(CachedRepository {
                route: fallback,
                remote: fallback.remote_name(repo.as_str()),
            }),
        })
    }

    /// `Error::CacheReadOnly` for a write into a repository that caches an
    /// upstream: under a prefix, or holding content from the fallback.
    pub(crate) async fn refuse_cached_write(&self, repo: &RepositoryName) -> Result<()> {
        let Some(p) = &self.pull_through else {
            return Ok(());
        };
        let upstream = match p.routes().by_prefix(repo) {
            Some((route, _)) => Some(route.name.clone()),
            None if p.routes().fallback().is_some() => {
                match self.meta.repository_origin(repo).await? {
                    RepositoryOrigin::Cached(origin) => Some(origin.upstream),
                    RepositoryOrigin::Absent | RepositoryOrigin::Local => None,
                }
            }
            None => None,
        };
        match upstream {
            Some(upstream) => Err(Error::CacheReadOnly {
                repository: repo.to_string(),
                upstream,
            }),
            None => Ok(()),
        }
    }

    async fn pull_cached_manifest(
        &self,
        cached: &CachedRepository<'_>,
        repo: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
        with_body: bool,
    ) -> Result<Pulled<ManifestContent>> {
        let Some(p) = &self.pull_through else {
            return Err(Error::Unsupported("no pull-through cache".into()));
        };
        let counters = p.counters(&cached.route.name);
        let outcome = {
            // One upstream check per reference at a time: the others wait,
            // then find it fresh.
            let _flight = p
                .manifest_flights
                .lock((repo.clone(), reference.to_string()))
                .await;
            match reference {
                Reference::Digest(digest) => {
                    if self.meta.manifest_by_digest(repo, digest).await?.is_some() {
                        CacheOutcome::Hit
                    } else {
                        self.fetch_manifest(cached, repo, reference).await?;
                        CacheOutcome::Miss
                    }
                }
                Reference::Tag(tag) => self.refresh_tag(p, cached, repo, tag).await?,
            }
        };
        counters.count(&outcome);
        let content = self.manifest(repo, reference, accept, with_body).await?;
        Ok(Pulled::cached(content, outcome))
    }

    /// Brings a cached tag up to date: unchecked within the freshness
    /// interval, a HEAD upstream; a new digest there, a GET. A cached copy
    /// stands in when the upstream is down or rate-limits.
    async fn refresh_tag(
        &self,
        p: &PullThrough,
        cached: &CachedRepository<'_>,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<CacheOutcome> {
        let reference = Reference::Tag(tag.clone());
        let Some(local) = self.meta.manifest_by_tag(repo, tag).await? else {
            self.fetch_manifest(cached, repo, &reference).await?;
            return Ok(CacheOutcome::Miss);
        };
        let now = unix_now();
        let checked_at = self.meta.tag_checked_at(repo, tag).await?;
        if freshness::is_fresh(checked_at, now, p.freshness()) {
            return Ok(CacheOutcome::Hit);
        }
        let route = cached.route;
        let checked = match route
            .upstream
            .manifest_digest(&cached.remote, tag.as_str())
            .await
        {
            Ok(digest) if digest == local.digest => {
                self.meta.set_tag_checked(repo, tag, now).await?;
                return Ok(CacheOutcome::Hit);
            }
            Ok(_moved) => self.fetch_manifest(cached, repo, &reference).await,
            Err(error) => Err(self.upstream_error(route, error, || {
                Error::ManifestUnknown(format!("{repo}:{tag}"))
            })),
        };
        match checked {
            Ok(()) => Ok(CacheOutcome::Miss),
            Err(Error::Upstream {
                upstream,
                error: error @ (UpstreamError::Unavailable(_) | UpstreamError::RateLimited { .. }),
            }) => {
                tracing::warn!(
                    repository = %repo,
                    upstream = %upstream,
                    reason = %error,
                    "pull-through: serving the cached copy of {repo}:{tag}, the upstream could not be asked"
                );
                Ok(CacheOutcome::Stale {
                    reason: error.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// GETs a manifest from the upstream, checks it and stores it (tagged,
    /// for a tag) with lazy references.
    async fn fetch_manifest(
        &self,
        cached: &CachedRepository<'_>,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        let route = cached.route;
        let counters = self.counters_of(route);
        let not_found = || Error::ManifestUnknown(format!("{repo}:{reference}"));
        let manifest = route
            .upstream
            .manifest(&cached.remote, &reference.to_string())
            .await
            .map_err(|e| self.upstream_error(route, e, not_found))?;
        counters.fetched(manifest.bytes.len() as u64);
        if manifest.bytes.len() > MAX_MANIFEST_BYTES {
            counters.error();
            return Err(Error::Upstream {
                upstream: route.name.clone(),
                error: UpstreamError::Invalid(format!(
                    "a manifest of {} bytes, over the {MAX_MANIFEST_BYTES} byte limit",
                    manifest.bytes.len()
                )),
            });
        }
        let expected = match reference {
            Reference::Digest(digest) => Some(digest),
            Reference::Tag(_) => manifest.digest.as_ref(),
        };
        let checks = [expected, manifest.digest.as_ref()];
        for expected in checks.into_iter().flatten() {
            let mut hasher = expected.algorithm().hasher();
            hasher.update(&manifest.bytes);
            let actual = hasher.finish();
            if actual != *expected {
                counters.error();
                tracing::warn!(
                    repository = %repo,
                    upstream = %route.name,
                    expected = %expected,
                    actual = %actual,
                    "pull-through: the upstream sent a manifest that does not match its digest; nothing was cached"
                );
                return Err(Error::UpstreamDigestMismatch {
                    upstream: route.name.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let source = CacheSource {
            upstream: route.name.clone(),
            remote: cached.remote.clone(),
            checked_at: unix_now(),
        };
        let stored = self
            .store_manifest(
                repo,
                reference,
                Some(&manifest.media_type),
                manifest.bytes,
                Some(source),
            )
            .await;
        match stored {
            Ok(_) => Ok(()),
            Err(Error::ManifestInvalid(e)) => {
                counters.error();
                Err(Error::Upstream {
                    upstream: route.name.clone(),
                    error: UpstreamError::Invalid(format!("its manifest is invalid: {e}")),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Counts an upstream failure (not a "not found") and turns it into the
    /// registry's error; `not_found` is what a missing thing is called.
    pub(crate) fn upstream_error(
        &self,
        route: &UpstreamRoute,
        error: UpstreamError,
        not_found: impl FnOnce() -> Error,
    ) -> Error {
        if error == UpstreamError::NotFound {
            return not_found();
        }
        self.counters_of(route).error();
        Error::Upstream {
            upstream: route.name.clone(),
            error,
        }
    }

    fn counters_of(&self, route: &UpstreamRoute) -> Arc<Counters> {
        self.pull_through
            .as_ref()
            .map(|p| p.counters(&route.name))
            .unwrap_or_default()
    }

    async fn pull_cached_blob(
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
        self.mark_fallback_cached(cached, repo).await?;
        let done = match p.blob_fills.join(repo, digest) {
            Role::Waiter(fill) => {
                flight::wait(fill).await.map_err(|f| f.into_error(digest))?;
                counters.hit();
                let body = self.blob(repo, digest, range, with_body).await?;
                return Ok(Pulled::cached(body, CacheOutcome::Hit));
            }
            Role::Leader(done) => done,
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
            hashes: self.hashes.clone(),
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
        self.mark_fallback_cached(cached, repo).await?;
        self.meta.link_blob(repo, digest, size, None).await
    }

    /// A repository of the fallback upstream is marked cached before its
    /// first blob is linked: a link alone would make it look pushed.
    async fn mark_fallback_cached(
        &self,
        cached: &CachedRepository<'_>,
        repo: &RepositoryName,
    ) -> Result<()> {
        let is_fallback = self
            .pull_through
            .as_ref()
            .and_then(|p| p.routes().fallback())
            .is_some_and(|f| std::ptr::eq(f, cached.route));
        if !is_fallback {
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

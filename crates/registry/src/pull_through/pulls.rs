//! The registry's pull API: a pull of a local repository is today's read;
//! a pull of a cached one goes through the cache's rules.

use super::counters::Counters;
use super::{PullThrough, Pulled, UpstreamError, UpstreamRoute, UpstreamStats};
use crate::error::{Error, Result};
use crate::registry::{BlobBody, ManifestContent, RangeRequest, Registry};
use crate::storage::{CacheOrigin, RepositoryOrigin};
use berth_oci::{Digest, Reference, RepositoryName};
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
    pub fn local_name(&self, name: &RepositoryName, ns: Option<&str>) -> Result<RepositoryName> {
        match &self.pull_through {
            Some(p) => Ok(p.routes().local_name(name, ns)?),
            None => Ok(name.clone()),
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

    pub(super) fn counters_of(&self, route: &UpstreamRoute) -> Arc<Counters> {
        self.pull_through
            .as_ref()
            .map(|p| p.counters(&route.name))
            .unwrap_or_default()
    }
}

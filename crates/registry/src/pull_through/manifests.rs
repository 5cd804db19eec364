//! Manifest pulls of cached repositories: by digest from the cache when
//! present; by tag checked upstream at most once per freshness interval,
//! stale when the upstream cannot answer; fetched manifests verified and
//! stored with lazy references.

use super::pulls::CachedRepository;
use super::{freshness, CacheOutcome, PullThrough, Pulled, UpstreamError};
use crate::error::{Error, Result};
use crate::registry::{unix_now, ManifestContent, Registry};
use crate::storage::CacheSource;
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::{Reference, RepositoryName, Tag};
use std::time::Instant;

impl Registry {
    pub(super) async fn pull_cached_manifest(
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
                .enter(&(repo.clone(), reference.to_string()))
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
        if p.outages.is_down(&route.name, Instant::now()) {
            return Ok(CacheOutcome::Stale {
                reason: format!(
                    "upstream {} failed a check less than {} s ago",
                    route.name,
                    freshness::OUTAGE_MEMORY.as_secs()
                ),
            });
        }
        let asked = tokio::time::timeout(
            freshness::CHECK_DEADLINE,
            route.upstream.manifest_digest(&cached.remote, tag.as_str()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(UpstreamError::Unavailable(format!(
                "no answer within {} s",
                freshness::CHECK_DEADLINE.as_secs()
            )))
        });
        let checked = match asked {
            Ok(digest) if digest == local.digest => {
                p.outages.answered(&route.name);
                self.meta.set_tag_checked(repo, tag, now).await?;
                return Ok(CacheOutcome::Hit);
            }
            Ok(_moved) => self.fetch_manifest(cached, repo, &reference).await,
            Err(error) => Err(self.upstream_error(route, error, || {
                Error::ManifestUnknown(format!("{repo}:{tag}"))
            })),
        };
        match checked {
            Ok(()) => {
                p.outages.answered(&route.name);
                Ok(CacheOutcome::Miss)
            }
            Err(Error::Upstream {
                upstream,
                error: error @ (UpstreamError::Unavailable(_) | UpstreamError::RateLimited { .. }),
            }) => {
                p.outages.failed(&route.name, Instant::now());
                tracing::warn!(
                    repository = %repo,
                    upstream = %upstream,
                    reason = %error,
                    "pull-through: serving the cached copy of {repo}:{tag}, the upstream could not be asked; \
                     cached tags of {upstream} are served without asking it for {} s",
                    freshness::OUTAGE_MEMORY.as_secs()
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
}

//! The pull-through cache: repositories whose content comes from an
//! upstream registry on a local miss, streamed to the client while it is
//! published like any push (verify, then persist, then record).
//!
//! Which repositories are cached ([`routing`]): a local name under a
//! configured prefix, always; with the fallback upstream, a repository with
//! no local content or with cached content. A repository holding pushed
//! content is never sent upstream, and a cached one is read-only.
//!
//! One file per job: `pulls.rs` the Registry's pull API and which
//! repositories are cached; `manifests.rs` and `blobs.rs` the pulls of a
//! cached repository; `freshness.rs` the tag check interval; `flight.rs`
//! single-flight; `tee.rs` a blob streamed to its first caller while it is
//! published; `counters.rs` the per-upstream counters. The size limit is
//! enforced by the collector (`crate::gc`'s eviction phase).

mod blobs;
mod counters;
mod flight;
mod freshness;
mod manifests;
mod pulls;
pub mod routing;
mod tee;
pub mod upstream;

pub use counters::UpstreamStats;
pub use routing::{is_docker_hub, UpstreamRoute, UpstreamRoutes};
pub use upstream::{Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};

use counters::Counters;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How a pull was answered, for the `Berth-Cache` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// From the cache, without downloading (a freshness HEAD may have run).
    Hit,
    /// Downloaded from the upstream.
    Miss,
    /// The cached copy, because the upstream could not be asked.
    Stale { reason: String },
}

impl CacheOutcome {
    /// `hit`, `miss` or `stale`: the header's value.
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Stale { .. } => "stale",
        }
    }
}

/// What a pull answered, and how the cache took part (`None`: a local
/// repository, the cache had no say).
#[derive(Debug)]
pub struct Pulled<T> {
    pub value: T,
    pub cache: Option<CacheOutcome>,
}

impl<T> Pulled<T> {
    pub(crate) fn local(value: T) -> Self {
        Pulled { value, cache: None }
    }

    pub(crate) fn cached(value: T, outcome: CacheOutcome) -> Self {
        Pulled {
            value,
            cache: Some(outcome),
        }
    }
}

/// The cache's configuration and state: routes, the tag freshness
/// interval, the size limit the collector enforces, counters per upstream.
pub struct PullThrough {
    routes: UpstreamRoutes,
    freshness: Duration,
    max_bytes: Option<u64>,
    counters: HashMap<String, Arc<Counters>>,
    /// Manifest fetches in progress, by (repository, reference).
    manifest_flights:
        crate::registry::single_flight::SingleFlight<(berth_oci::RepositoryName, String)>,
    /// Blob fills in progress, by (repository, digest).
    blob_fills: Arc<flight::BlobFills>,
    /// Upstreams whose last tag check failed: served stale a while unasked.
    outages: freshness::Outages,
}

impl PullThrough {
    pub fn new(routes: UpstreamRoutes, freshness: Duration, max_bytes: Option<u64>) -> Self {
        let counters = routes
            .all()
            .map(|r| (r.name.clone(), Arc::default()))
            .collect();
        PullThrough {
            routes,
            freshness,
            max_bytes,
            counters,
            manifest_flights: Default::default(),
            blob_fills: Default::default(),
            outages: Default::default(),
        }
    }

    pub fn routes(&self) -> &UpstreamRoutes {
        &self.routes
    }

    /// How long a cached tag is served without asking the upstream.
    pub fn freshness(&self) -> Duration {
        self.freshness
    }

    /// Cached bytes above this are evicted by GC; `None`: no limit.
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// Counters of every upstream, the fallback's included.
    pub fn stats(&self) -> Vec<UpstreamStats> {
        self.routes
            .all()
            .filter_map(|r| self.counters.get(&r.name).map(|c| c.snapshot(&r.name)))
            .collect()
    }

    pub(crate) fn counters(&self, upstream: &str) -> Arc<Counters> {
        self.counters.get(upstream).cloned().unwrap_or_default()
    }
}

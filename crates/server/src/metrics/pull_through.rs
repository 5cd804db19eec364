//! The pull-through cache's families: per-upstream counters kept by the
//! registry (hits, misses, stale answers, upstream errors, bytes fetched)
//! shown at each scrape, and the cache's size against its limit.

use super::raise;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One upstream's totals since the process started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamFigures {
    /// The configured upstream's name (`docker.io`, `proxy`).
    pub upstream: String,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub errors: u64,
    pub fetched_bytes: u64,
}

/// What `/metrics` shows of the cache; `None` where nothing is known (no
/// upstream configured, or a scan that failed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheFigures {
    pub upstreams: Vec<UpstreamFigures>,
    /// Bytes of cached content now (what `[cache] max_size` limits).
    pub cached_bytes: Option<u64>,
    /// `[cache] max_size`, when set.
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

/// The cache's size and limit, rendered only once known: no
/// `max_bytes 0` for "no limit", no `cached_bytes` without a cache.
#[derive(Debug, Default)]
struct CacheSize {
    /// Bytes; `UNKNOWN` until shown.
    cached: Arc<AtomicU64>,
    max: Arc<AtomicU64>,
}

const UNKNOWN: u64 = u64::MAX;

impl CacheSize {
    fn new() -> CacheSize {
        CacheSize {
            cached: Arc::new(AtomicU64::new(UNKNOWN)),
            max: Arc::new(AtomicU64::new(UNKNOWN)),
        }
    }

    fn handle(&self) -> CacheSize {
        CacheSize {
            cached: self.cached.clone(),
            max: self.max.clone(),
        }
    }
}

impl Collector for CacheSize {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = [
            (
                "berth_pull_through_cached",
                "Bytes of cached content: the distinct blobs and manifests of cached repositories",
                &self.cached,
            ),
            (
                "berth_pull_through_max",
                "The cache's size limit ([cache] max_size); GC evicts above it",
                &self.max,
            ),
        ];
        for (name, help, value) in gauges {
            let value = value.load(Ordering::Relaxed);
            if value == UNKNOWN {
                continue;
            }
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric =
                encoder.encode_descriptor(name, help, Some(&Unit::Bytes), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

type PerUpstream = Family<UpstreamLabels, Counter>;

pub(super) struct PullThroughMetrics {
    hits: PerUpstream,
    misses: PerUpstream,
    stale: PerUpstream,
    errors: PerUpstream,
    fetched_bytes: PerUpstream,
    size: CacheSize,
}

impl PullThroughMetrics {
    pub(super) fn register(registry: &mut Registry) -> PullThroughMetrics {
        let metrics = PullThroughMetrics {
            hits: Family::default(),
            misses: Family::default(),
            stale: Family::default(),
            errors: Family::default(),
            fetched_bytes: Family::default(),
            size: CacheSize::new(),
        };
        registry.register(
            "berth_pull_through_hits",
            "Pulls of cached repositories served from the cache (fresh, or confirmed by a HEAD upstream), by upstream",
            metrics.hits.clone(),
        );
        registry.register(
            "berth_pull_through_misses",
            "Pulls of cached repositories that fetched from upstream, by upstream",
            metrics.misses.clone(),
        );
        registry.register(
            "berth_pull_through_stale",
            "Pulls served from a cached copy because the upstream was down or rate-limiting, by upstream",
            metrics.stale.clone(),
        );
        registry.register(
            "berth_pull_through_upstream_errors",
            "Upstream failures (unreachable, refused, rate-limited, invalid answers, digest mismatches; not 404s), by upstream",
            metrics.errors.clone(),
        );
        registry.register_with_unit(
            "berth_pull_through_fetched",
            "Blob and manifest bytes received from upstream, by upstream",
            Unit::Bytes,
            metrics.fetched_bytes.clone(),
        );
        registry.register_collector(Box::new(metrics.size.handle()));
        metrics
    }

    pub(super) fn show(&self, figures: &CacheFigures) {
        for upstream in &figures.upstreams {
            let labels = UpstreamLabels {
                upstream: upstream.upstream.clone(),
            };
            let counters = [
                (&self.hits, upstream.hits),
                (&self.misses, upstream.misses),
                (&self.stale, upstream.stale),
                (&self.errors, upstream.errors),
                (&self.fetched_bytes, upstream.fetched_bytes),
            ];
            for (family, total) in counters {
                raise(&family.get_or_create(&labels), total);
            }
        }
        if let Some(bytes) = figures.cached_bytes {
            self.size
                .cached
                .store(bytes.min(UNKNOWN - 1), Ordering::Relaxed);
        }
        // The limit is configuration: shown as given, unset when not.
        let max = figures.max_bytes.map_or(UNKNOWN, |n| n.min(UNKNOWN - 1));
        self.size.max.store(max, Ordering::Relaxed);
    }
}

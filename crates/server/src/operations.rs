//! What the operations endpoints share across requests: the metrics, who
//! may read them, and the store totals cached between scrapes.

use crate::metrics::Metrics;
use berth_registry::gc::Reclaimable;
use berth_registry::policy::QuotaUse;
use berth_registry::{Registry, Result, StoreStats};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long store totals are reused: they scan whole tables, and several
/// Prometheus servers may scrape every few seconds.
const STATS_TTL: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Operations {
    pub metrics: Arc<Metrics>,
    /// Whether clients other than loopback may read `/metrics`.
    pub metrics_public: bool,
    stats: StatsCache<StoreStats>,
    reclaimable: StatsCache<Reclaimable>,
    quotas: StatsCache<Vec<QuotaUse>>,
    cached_bytes: StatsCache<u64>,
}

impl Operations {
    pub fn new(metrics: Arc<Metrics>, metrics_public: bool) -> Self {
        Operations {
            metrics,
            metrics_public,
            stats: StatsCache::new(STATS_TTL),
            reclaimable: StatsCache::new(STATS_TTL),
            quotas: StatsCache::new(STATS_TTL),
            cached_bytes: StatsCache::new(STATS_TTL),
        }
    }

    /// Whether `client` may read `/metrics`: loopback always (the operator on
    /// the machine, a sidecar), others only when the setting says so. An
    /// unknown client (no socket: in-process use) is refused.
    pub fn may_read_metrics(&self, client: Option<IpAddr>) -> bool {
        self.metrics_public || client.is_some_and(|ip| ip.to_canonical().is_loopback())
    }

    /// Store totals at most [`STATS_TTL`] old.
    pub async fn stats(&self, registry: &Registry) -> Result<StoreStats> {
        self.stats.get_or_refresh(|| registry.stats()).await
    }

    /// What GC could reclaim, at most [`STATS_TTL`] old (a scan too).
    pub async fn reclaimable(&self, registry: &Registry) -> Result<Reclaimable> {
        self.reclaimable
            .get_or_refresh(|| registry.reclaimable())
            .await
    }

    /// Bytes the pull-through cache holds, at most [`STATS_TTL`] old (a
    /// scan of the cached repositories' manifests and blobs).
    pub async fn cached_bytes(&self, registry: &Registry) -> Result<u64> {
        self.cached_bytes
            .get_or_refresh(|| registry.cached_bytes())
            .await
    }

    /// The use of repositories under a quota, at most [`STATS_TTL`] old
    /// (a usage query per such repository).
    pub async fn quota_usage(&self, registry: &Registry) -> Result<Vec<QuotaUse>> {
        self.quotas.get_or_refresh(|| registry.quota_usage()).await
    }
}

/// The last totals (store stats, the UI's overview) and when they were
/// read; one refresh at a time, so concurrent readers wait for it instead
/// of each scanning.
#[derive(Debug)]
pub(crate) struct StatsCache<T> {
    ttl: Duration,
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> StatsCache<T> {
    pub(crate) fn new(ttl: Duration) -> Self {
        StatsCache {
            ttl,
            last: Default::default(),
        }
    }

    pub(crate) async fn get_or_refresh<F, Fut>(&self, read: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, stats)) = &*last {
            if at.elapsed() < self.ttl {
                return Ok(stats.clone());
            }
        }
        let stats = read().await?;
        *last = Some((Instant::now(), stats.clone()));
        Ok(stats)
    }

    /// Drops the kept answer: the next reader reads afresh (after a change
    /// this process made, whose effect its user expects to see at once).
    pub(crate) async fn forget(&self) {
        *self.last.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn operations(public: bool) -> Operations {
        Operations::new(Arc::new(Metrics::new()), public)
    }

    #[test]
    fn metrics_are_for_loopback_unless_public() {
        let private = operations(false);
        let loopbacks: [IpAddr; 4] = [
            Ipv4Addr::LOCALHOST.into(),
            Ipv4Addr::new(127, 0, 0, 2).into(),
            Ipv6Addr::LOCALHOST.into(),
            Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(),
        ];
        for ip in loopbacks {
            assert!(private.may_read_metrics(Some(ip)), "{ip}");
        }
        let others: [IpAddr; 3] = [
            Ipv4Addr::new(192, 0, 2, 2).into(),
            Ipv4Addr::new(192, 0, 2, 2).to_ipv6_mapped().into(),
            "fd00::2".parse().unwrap(),
        ];
        for ip in others {
            assert!(!private.may_read_metrics(Some(ip)), "{ip}");
            assert!(operations(true).may_read_metrics(Some(ip)), "{ip}");
        }
        assert!(!private.may_read_metrics(None));
    }

    #[tokio::test]
    async fn store_totals_are_read_once_per_ttl() {
        let cache = StatsCache::new(Duration::from_secs(60));
        let reads = std::sync::atomic::AtomicU64::new(0);
        let read = || async {
            let n = reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Ok(StoreStats {
                repositories: n,
                ..Default::default()
            })
        };
        assert_eq!(cache.get_or_refresh(read).await.unwrap().repositories, 1);
        assert_eq!(cache.get_or_refresh(read).await.unwrap().repositories, 1);
        let expired = StatsCache::new(Duration::ZERO);
        assert_eq!(expired.get_or_refresh(read).await.unwrap().repositories, 2);
        assert_eq!(expired.get_or_refresh(read).await.unwrap().repositories, 3);
    }
}

//! Counters per upstream, for `/metrics`: plain atomics, bumped on every
//! pull through the cache.

use std::sync::atomic::{AtomicU64, Ordering};

/// One upstream's counters since berth started.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamStats {
    pub upstream: String,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    /// Upstream failures other than "not found", and digest mismatches.
    pub errors: u64,
    /// Manifest and blob bytes received from the upstream.
    pub fetched_bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    errors: AtomicU64,
    fetched_bytes: AtomicU64,
}

impl Counters {
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fetched(&self, bytes: u64) {
        self.fetched_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a pull answered with `outcome`.
    pub fn count(&self, outcome: &super::CacheOutcome) {
        match outcome {
            super::CacheOutcome::Hit => self.hit(),
            super::CacheOutcome::Miss => self.miss(),
            super::CacheOutcome::Stale { .. } => self.stale(),
        }
    }

    pub fn snapshot(&self, upstream: &str) -> UpstreamStats {
        UpstreamStats {
            upstream: upstream.to_string(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            fetched_bytes: self.fetched_bytes.load(Ordering::Relaxed),
        }
    }
}

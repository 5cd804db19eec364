//! What the soak counts: requests and errors per kind, latency histograms,
//! bytes moved, blobs verified, and the first few error messages. Shared by
//! all clients through atomics (a few hundred clients, two cores: contention
//! on relaxed counters is negligible next to the HTTP work).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// The kinds of request the soak sends; one latency histogram each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    StartUpload,
    PutMonolithic,
    PostMonolithic,
    Patch,
    PutFinish,
    UploadStatus,
    CancelUpload,
    Mount,
    HeadBlob,
    GetBlob,
    GetBlobRange,
    DeleteBlob,
    PutManifest,
    GetManifest,
    HeadManifest,
    DeleteManifest,
    DeleteTag,
    TagsList,
    Catalog,
    PutReferrer,
    Referrers,
}

impl Kind {
    pub const ALL: [Kind; 21] = [
        Kind::StartUpload,
        Kind::PutMonolithic,
        Kind::PostMonolithic,
        Kind::Patch,
        Kind::PutFinish,
        Kind::UploadStatus,
        Kind::CancelUpload,
        Kind::Mount,
        Kind::HeadBlob,
        Kind::GetBlob,
        Kind::GetBlobRange,
        Kind::DeleteBlob,
        Kind::PutManifest,
        Kind::GetManifest,
        Kind::HeadManifest,
        Kind::DeleteManifest,
        Kind::DeleteTag,
        Kind::TagsList,
        Kind::Catalog,
        Kind::PutReferrer,
        Kind::Referrers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::StartUpload => "POST upload",
            Kind::PutMonolithic => "PUT blob (monolithic)",
            Kind::PostMonolithic => "POST blob ?digest=",
            Kind::Patch => "PATCH chunk",
            Kind::PutFinish => "PUT finish (chunked)",
            Kind::UploadStatus => "GET upload status",
            Kind::CancelUpload => "DELETE upload",
            Kind::Mount => "POST mount",
            Kind::HeadBlob => "HEAD blob",
            Kind::GetBlob => "GET blob",
            Kind::GetBlobRange => "GET blob Range",
            Kind::DeleteBlob => "DELETE blob",
            Kind::PutManifest => "PUT manifest",
            Kind::GetManifest => "GET manifest",
            Kind::HeadManifest => "HEAD manifest",
            Kind::DeleteManifest => "DELETE manifest",
            Kind::DeleteTag => "DELETE tag",
            Kind::TagsList => "GET tags/list",
            Kind::Catalog => "GET _catalog",
            Kind::PutReferrer => "PUT referrer",
            Kind::Referrers => "GET referrers",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Latency histogram in microseconds: exact below 64 µs, then 32 buckets per
/// power of two (at most ~3% off), up to about 2^40 µs.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

const SUB: u32 = 32;
const EXPS: u32 = 40;

impl Histogram {
    fn new() -> Histogram {
        let n = 64 + (EXPS - 6) * SUB;
        Histogram {
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn bucket(us: u64) -> usize {
        if us < 64 {
            return us as usize;
        }
        let exp = (63 - us.leading_zeros()).min(EXPS - 1);
        let sub = ((us >> (exp - 5)) & (SUB as u64 - 1)) as u32;
        (64 + (exp - 6) * SUB + sub) as usize
    }

    /// The smallest value that falls in bucket `i`.
    fn lower_bound(i: usize) -> u64 {
        if i < 64 {
            return i as u64;
        }
        let i = i as u32 - 64;
        let (exp, sub) = (i / SUB + 6, i % SUB);
        (1u64 << exp) + ((sub as u64) << (exp - 5))
    }

    fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.buckets[Self::bucket(us)].fetch_add(1, Relaxed);
    }

    /// The `q` quantile (0..=1), to the bucket's lower bound; None if empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_micros(Self::lower_bound(i)));
            }
        }
        None
    }
}

/// How many error messages are kept for the report.
const ERROR_SAMPLES: usize = 20;

pub struct Stats {
    requests: Vec<AtomicU64>,
    errors: Vec<AtomicU64>,
    latency: Vec<Histogram>,
    pub bytes_pushed: AtomicU64,
    pub bytes_pulled: AtomicU64,
    /// Blob bodies pulled in full (GET blob) and ranges pulled (GET Range).
    pub blobs_pulled: AtomicU64,
    /// Of those, the ones whose bytes matched their digest (or expected range).
    pub blobs_verified: AtomicU64,
    pub manifests_verified: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Stats {
    pub fn new() -> Stats {
        let n = Kind::ALL.len();
        Stats {
            requests: (0..n).map(|_| AtomicU64::new(0)).collect(),
            errors: (0..n).map(|_| AtomicU64::new(0)).collect(),
            latency: (0..n).map(|_| Histogram::new()).collect(),
            bytes_pushed: AtomicU64::new(0),
            bytes_pulled: AtomicU64::new(0),
            blobs_pulled: AtomicU64::new(0),
            blobs_verified: AtomicU64::new(0),
            manifests_verified: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
        }
    }

    /// A request got an answer (whatever it was) after `took`.
    pub fn answered(&self, kind: Kind, took: Duration) {
        self.requests[kind.index()].fetch_add(1, Relaxed);
        self.latency[kind.index()].record(took);
    }

    /// Something went wrong in a request of `kind`: unexpected status,
    /// connection error, timeout or wrong content.
    pub fn error(&self, kind: Kind, message: String) {
        self.errors[kind.index()].fetch_add(1, Relaxed);
        if let Ok(mut s) = self.samples.lock() {
            if s.len() < ERROR_SAMPLES {
                s.push(format!("{}: {message}", kind.name()));
            }
        }
    }

    pub fn requests(&self, kind: Kind) -> u64 {
        self.requests[kind.index()].load(Relaxed)
    }

    pub fn errors(&self, kind: Kind) -> u64 {
        self.errors[kind.index()].load(Relaxed)
    }

    pub fn latency(&self, kind: Kind) -> &Histogram {
        &self.latency[kind.index()]
    }

    pub fn total_requests(&self) -> u64 {
        Kind::ALL.iter().map(|&k| self.requests(k)).sum()
    }

    pub fn total_errors(&self) -> u64 {
        Kind::ALL.iter().map(|&k| self.errors(k)).sum()
    }

    pub fn error_samples(&self) -> Vec<String> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for us in [0u64, 1, 63, 64, 65, 100, 1000, 12_345, 1 << 20, 987_654_321] {
            let b = Histogram::bucket(us);
            assert!(b >= last);
            last = b;
            let low = Histogram::lower_bound(b);
            assert!(low <= us && us - low <= us / 30 + 1, "{us} -> {low}");
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).unwrap().as_millis();
        let p99 = h.quantile(0.99).unwrap().as_millis();
        assert!((48..=50).contains(&p50), "{p50}");
        assert!((96..=99).contains(&p99), "{p99}");
    }
}

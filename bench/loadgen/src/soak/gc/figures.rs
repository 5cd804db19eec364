//! What the GC soak counts: work done by each role and failures by class.
//! Shared by every task through relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Why a check failed. The first three are the failures a collector that
/// races with pushes produces; the issue asks for zero of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A manifest PUT answered MANIFEST_BLOB_UNKNOWN: a blob the pusher had
    /// just uploaded, or that answered 200 to its HEAD, was gone.
    ManifestBlobUnknown,
    /// A blob of a manifest that is still there answered 404.
    BlobUnknown,
    /// Bytes that do not hash to their digest (blob or manifest).
    DigestMismatch,
    /// A manifest that must exist (tagged, untouched by deleters, or among
    /// the newest a retention rule keeps) answered 404.
    ManifestLost,
    /// `berth gc` exited non-zero.
    GcRun,
    /// Anything else: an unexpected status, a connection error, a timeout.
    Other,
}

impl Failure {
    pub const ALL: [Failure; 6] = [
        Failure::ManifestBlobUnknown,
        Failure::BlobUnknown,
        Failure::DigestMismatch,
        Failure::ManifestLost,
        Failure::GcRun,
        Failure::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Failure::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN on a manifest PUT",
            Failure::BlobUnknown => "BLOB_UNKNOWN for a blob of a manifest still present",
            Failure::DigestMismatch => "bytes not matching their digest",
            Failure::ManifestLost => "a manifest that had to exist answered 404",
            Failure::GcRun => "berth gc failed",
            Failure::Other => "other failed requests",
        }
    }
}

const SAMPLES: usize = 20;

#[derive(Default)]
pub struct Figures {
    pub requests: AtomicU64,
    /// Images whose manifest PUT answered 201.
    pub pushes: AtomicU64,
    /// Of those, pushes that waited between their HEADs and the manifest PUT.
    pub paused_pushes: AtomicU64,
    /// Blob HEADs that answered 200: the upload was skipped, as docker does.
    pub heads_present: AtomicU64,
    pub heads_absent: AtomicU64,
    pub blobs_uploaded: AtomicU64,
    pub mounts: AtomicU64,
    /// Mounts answered 202 (the source link was gone): uploaded instead.
    pub mount_fallbacks: AtomicU64,
    pub bytes_pushed: AtomicU64,
    /// Images pulled in full: manifest and every blob verified.
    pub pulls: AtomicU64,
    pub pulls_by_tag: AtomicU64,
    pub pulls_by_digest: AtomicU64,
    pub blobs_verified: AtomicU64,
    pub bytes_pulled: AtomicU64,
    /// Pulls whose manifest answered MANIFEST_UNKNOWN after a deleter, a
    /// newer push, retention or the untagged-manifest rule removed it.
    pub gone: AtomicU64,
    /// Pulls whose manifest was removed between its GET and a blob's.
    pub gone_mid_pull: AtomicU64,
    pub deleted_manifests: AtomicU64,
    pub deleted_tags: AtomicU64,
    /// Manifest PUTs refused with MANIFEST_BLOB_UNKNOWN that were sent later
    /// after the first HEAD or upload of their image than a touch protects
    /// a blob (the grace less the server's touch coalescing): not a failure.
    pub late_refusals: AtomicU64,
    /// The longest time from an image's first HEAD or upload to its manifest PUT (ms).
    pub longest_window_ms: AtomicU64,
    /// Explicit `berth gc` passes during the load (dry runs counted apart).
    pub gc_runs: AtomicU64,
    pub gc_dry_runs: AtomicU64,
    failures: [AtomicU64; 6],
    samples: Mutex<Vec<String>>,
}

impl Figures {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn max(counter: &AtomicU64, n: u64) {
        counter.fetch_max(n, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub fn fail(&self, class: Failure, message: String) {
        self.failures[class as usize].fetch_add(1, Relaxed);
        if let Ok(mut s) = self.samples.lock() {
            if s.len() < SAMPLES {
                s.push(format!("{}: {message}", class.name()));
            }
        }
    }

    pub fn failures(&self, class: Failure) -> u64 {
        self.failures[class as usize].load(Relaxed)
    }

    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

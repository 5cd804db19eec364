//! [`Registry`]: the distribution spec's operations over the two stores.
//!
//! The path of a push, one file per step: [`uploads`] receives bytes
//! (chunked sessions and monolithic pushes), [`blobs`] verifies and publishes
//! them and serves them back, [`manifests`] checks and records what refers to
//! them, [`deletes`] removes them, [`discovery`] lists what is there;
//! [`browse`] answers the web UI and `/api/v1` with counts, sizes and times;
//! [`retention`] is the policies' phase of a garbage collection pass (the
//! pass itself is in [`crate::gc`]).

mod blob_reader;
pub(crate) mod blobs;
mod browse;
mod chunk;
mod deletes;
mod digest_lru;
mod discovery;
mod expiry;
mod health;
pub(crate) mod in_flight;
mod layer_files;
mod manifest_cache;
mod manifests;
pub mod pull_log;
mod quotas;
mod range;
mod retention;
pub(crate) mod single_flight;
pub(crate) mod upload_turns;
mod uploads;

pub use blobs::{BlobBody, MountOutcome};
pub use browse::{
    BlobSummary, ImageContents, ImageDetail, IndexChild, ReferrerSummary, TagDetail,
    MAX_BROWSE_PAGE, MAX_CONFIG_BYTES,
};
pub use chunk::ExpectedChunk;
pub use discovery::{Page, ReferrersPage, MAX_PAGE, MAX_REFERRERS_PAGE};
pub use health::Readiness;
pub use manifests::{ManifestContent, ManifestPushed};
pub use range::RangeRequest;
pub use uploads::UploadStatus;

use crate::error::{Error, Result};
use crate::gc::collector::GcState;
use crate::gc::{GcSettings, TouchLog};
use crate::layers::ListingLimits;
use crate::policy::Policies;
use crate::storage::{BlobStore, MetaStore};
use berth_oci::Digest;
use digest_lru::{DigestLru, Listed};
use manifest_cache::ManifestCache;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use upload_turns::UploadTurns;

/// Memory for recently served manifests.
const MANIFEST_CACHE_BYTES: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Whether DELETE of manifests, tags and blobs is allowed.
    pub delete_enabled: bool,
    /// How long an untouched upload lives.
    pub upload_expiry: Duration,
    /// Pushes are refused while free space is under the smaller of
    /// `min_free_bytes` and `min_free_percent` of the disk.
    pub min_free_bytes: u64,
    pub min_free_percent: u8,
    /// Upload sessions open at once, in total and per client; the per-client
    /// cap also bounds a client's monolithic pushes in progress.
    pub max_uploads: usize,
    pub max_uploads_per_client: usize,
    /// Retention, immutable tags and quotas from the configuration.
    pub policies: Arc<Policies>,
    /// Online garbage collection: grace delay, interval, untagged manifests.
    pub gc: GcSettings,
    /// Other processes use the same stores (replicas on object storage and
    /// PostgreSQL): nothing may be taken for a leftover of this one.
    pub shared_stores: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            delete_enabled: true,
            upload_expiry: Duration::from_secs(24 * 3600),
            min_free_bytes: 1 << 30,
            min_free_percent: 5,
            max_uploads: 10_000,
            max_uploads_per_client: 100,
            policies: Arc::default(),
            gc: GcSettings::default(),
            shared_stores: false,
        }
    }
}

/// The registry: every operation of the distribution spec.
pub struct Registry {
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) options: RegistryOptions,
    pub(crate) turns: Arc<UploadTurns>,
    manifests: ManifestCache,
    pushes: in_flight::InFlight,
    layer_cache: Arc<DigestLru<Listed>>,
    /// Merged trees by image manifest digest.
    tree_cache: DigestLru<Arc<crate::layers::MergedTree>>,
    /// Turns to decompress a layer: listings are CPU-bound.
    listing_turns: tokio::sync::Semaphore,
    /// Layers being listed: a second request for one waits for the first.
    listings_in_flight: single_flight::SingleFlight,
    listing_limits: ListingLimits,
    /// Reads of blobs, to restart their grace delay without a write each.
    pub(crate) touches: Arc<TouchLog>,
    pub(crate) gc: GcState,
    /// Manifest pulls, for retention's keep_pulled_within, without a write each.
    pub(crate) pulls: Arc<pull_log::PullLog>,
    /// Upstreams this registry caches, if any.
    pub(crate) pull_through: Option<Arc<crate::pull_through::PullThrough>>,
}

impl Registry {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetaStore>,
        options: RegistryOptions,
    ) -> Self {
        Registry {
            touches: Arc::new(TouchLog::new(options.gc.grace)),
            gc: GcState::default(),
            pulls: Arc::default(),
            pull_through: None,
            blobs,
            meta,
            options,
            turns: Arc::default(),
            manifests: ManifestCache::new(MANIFEST_CACHE_BYTES),
            pushes: Default::default(),
            layer_cache: Arc::new(DigestLru::new(layer_files::LAYER_CACHE_ENTRIES)),
            tree_cache: DigestLru::new(layer_files::TREE_CACHE_ENTRIES),
            listing_turns: tokio::sync::Semaphore::new(layer_files::CONCURRENT_LISTINGS),
            listings_in_flight: Default::default(),
            listing_limits: ListingLimits::default(),
        }
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// Refuses a push while free space is under the watermark, so that a
    /// filling disk stops writes cleanly and reads keep working.
    pub(crate) fn check_free_space(&self) -> Result<()> {
        let Some(space) = self.blobs.free_space()? else {
            return Ok(());
        };
        let share = space.total / 100 * u64::from(self.options.min_free_percent.min(100));
        if space.available < self.options.min_free_bytes.min(share) {
            return Err(Error::InsufficientStorage {
                available: space.available,
            });
        }
        Ok(())
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Content hashed to `actual` may be stored under `expected` only if they agree.
pub(crate) fn verify(expected: &Digest, actual: Digest) -> Result<()> {
    if *expected == actual {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            expected: expected.clone(),
            actual,
        })
    }
}

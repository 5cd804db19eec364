//! Online garbage collection: space comes back while the registry serves.
//!
//! # The protocol
//! Every stored blob (manifests' own bytes included) has a `blobs` row with
//! `touched_at`: the last time anything wanted it — a push, a mount, a read
//! of it in a repository (coalesced by the [`TouchLog`]), or the moment a
//! manifest naming it was deleted. A blob that nothing references and that
//! nobody touched within the grace delay is a *candidate*.
//!
//! - **Publish** (blob upload, manifest PUT): the publisher first *claims*
//!   the digest (a lease row), then writes the bytes, then links the blob in
//!   the same transaction that releases the claim. The collector never
//!   tombstones a claimed digest, and a claim is refused while a tombstone
//!   exists (the publisher waits until the collector has finished), so a
//!   publish never writes a file that a collection is deleting.
//! - **Tombstone**: the collector re-checks a candidate in one transaction
//!   (still unreferenced, still untouched, no live claim) and marks it
//!   `deleting_since`, removing its links. Anything that wanted the blob in
//!   the meantime — a manifest PUT naming it, a mount, a re-push — either
//!   committed first (and the re-check fails: the blob is *rescued*), or
//!   comes after and finds no link (the client uploads it again).
//! - **Reads restart the grace**: docker and containerd HEAD each blob and
//!   skip the ones that answer 200. A read records itself in the
//!   [`TouchLog`] *before* looking the link up, and the collector asks the
//!   log, atomically with marking the digest, whether it was read since the
//!   cutoff; a read that meets a digest being tombstoned waits for that step
//!   to end. So a blob reported present is never tombstoned within the
//!   grace of that report, without a database write per read. Reads of a
//!   manifest by digest count the same way for untagged manifests (a
//!   client HEADs an index's children and skips those present).
//! - **Delete**: the file is removed, then the tombstone dropped. A crash in
//!   between is finished at start-up by [`crate::Registry::recover_gc`].
//!
//! The pass itself (phases in order: retention, eviction of cached images
//! over `[cache] max_size` (`eviction.rs`), untagged manifests,
//! dangling links, blobs, orphan files, uploads, claims) is in
//! `collector.rs`; the background worker in `worker.rs`.

pub(crate) mod collector;
mod eviction;
pub mod lease;
mod removal;
pub(crate) mod touches;
mod worker;

pub use crate::storage::Reclaimable;
pub use touches::TouchLog;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a publish may hold its claim on a digest.
pub const CLAIM_LEASE: Duration = Duration::from_secs(600);

/// The garbage collector's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSettings {
    /// How long an unreferenced blob is kept after anything last wanted it.
    pub grace: Duration,
    /// How often the background worker runs a pass; `None`: never.
    pub interval: Option<Duration>,
    /// Untagged manifests older than this are deleted; `None`: kept.
    pub untagged_after: Option<Duration>,
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            grace: Duration::from_secs(3600),
            interval: Some(Duration::from_secs(3600)),
            untagged_after: None,
        }
    }
}

/// What one pass is asked to do.
#[derive(Debug, Clone, Default)]
pub struct GcRequest {
    /// Only report what would go.
    pub dry_run: bool,
    /// Overrides [`GcSettings::grace`] for this pass.
    pub grace: Option<Duration>,
}

/// At most this many [`Removal`]s are listed in a report.
pub const MAX_LISTED_REMOVALS: usize = 1000;

/// What a pass removed (or, dry, would remove).
#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq)]
pub struct GcReport {
    pub dry_run: bool,
    /// Unix seconds when the pass started.
    pub started_at: i64,
    pub took_ms: u64,
    /// Blobs found unreferenced past their grace.
    pub candidates: u64,
    /// Candidates something wanted again before they could be removed.
    pub rescued: u64,
    pub tags_removed: u64,
    pub manifests_removed: u64,
    pub links_removed: u64,
    pub blobs_removed: u64,
    pub bytes_removed: u64,
    pub uploads_removed: u64,
    /// Cached images (manifests) evicted because the pull-through cache was
    /// over its size limit.
    #[serde(default)]
    pub evicted_images: u64,
    /// The first [`MAX_LISTED_REMOVALS`] removals.
    pub removed: Vec<Removal>,
}

impl GcReport {
    /// Lists a removal while the list has room.
    pub fn list(&mut self, removal: Removal) {
        if self.removed.len() < MAX_LISTED_REMOVALS {
            self.removed.push(removal);
        }
    }
}

/// One thing a pass removed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    pub kind: RemovalKind,
    pub repository: Option<String>,
    /// A digest, or a tag's name.
    pub name: String,
    pub bytes: u64,
    /// Why it went, in a few words.
    pub reason: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RemovalKind {
    Tag,
    Manifest,
    Link,
    Blob,
    Upload,
}

/// Hears how a pass advances (a progress bar, an NDJSON stream).
pub trait GcProgress: Send + Sync {
    /// A phase starts with `total` steps (0 when unknown).
    fn phase(&self, name: &str, total: u64) {
        let _ = (name, total);
    }
    /// `n` more steps are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
}

/// No progress reported.
impl GcProgress for () {}

/// Totals since the registry started.
#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq, Eq)]
pub struct GcTotals {
    pub runs: u64,
    pub blobs_removed: u64,
    pub bytes_removed: u64,
    pub manifests_removed: u64,
    pub tags_removed: u64,
    pub links_removed: u64,
    pub uploads_removed: u64,
    #[serde(default)]
    pub evicted_images: u64,
}

/// The collector's state, for status pages and metrics.
#[derive(Serialize, Clone, Default, Debug)]
pub struct GcStatus {
    pub running: bool,
    /// The last pass that completed (dry runs included).
    pub last: Option<GcReport>,
    /// Unix seconds of the background worker's next pass.
    pub next_run_at: Option<i64>,
    pub totals: GcTotals,
}

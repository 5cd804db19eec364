//! One pass of the collector, as phases in order. Each removing step is one
//! metadata transaction that re-checks its condition (see [`super`] for
//! why that makes every push, mount and read that races a pass safe).

use super::lease;
use super::removal::{delete_tombstoned, remove_batch, remove_orphan, RemovalStores};
use super::{GcProgress, GcReport, GcRequest, GcStatus, Reclaimable, Removal, RemovalKind};
use crate::error::{Error, Result};
use crate::registry::{unix_now, Registry};
use berth_oci::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Candidates tombstoned together: their transactions share one commit.
const BLOB_BATCH: usize = 100;
/// Rows asked for at once when listing manifests, links and files.
const PAGE: usize = 1000;

/// The collector's state inside the registry: one pass at a time, and what
/// the last ones did.
#[derive(Default)]
pub(crate) struct GcState {
    pass: tokio::sync::Mutex<()>,
    status: std::sync::Mutex<GcStatus>,
    /// Held by whatever is tombstoning and deleting blobs (a batch, which
    /// may outlive a dropped pass, or recovery), so that recovery never
    /// finishes a tombstone a batch is still working on: the batch would
    /// then delete bytes published again meanwhile.
    removals: Arc<tokio::sync::Mutex<()>>,
    /// Who this process is to the metadata store's GC lease; `None`:
    /// [`lease::LOCAL_HOLDER`], for stores no other process shares.
    holder: Option<String>,
}

impl GcState {
    fn holder(&self) -> &str {
        self.holder.as_deref().unwrap_or(lease::LOCAL_HOLDER)
    }

    fn update(&self, f: impl FnOnce(&mut GcStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut status);
    }

    pub(crate) fn set_next_run(&self, at: Option<i64>) {
        self.update(|s| s.next_run_at = at);
    }
}

/// Marks a pass as running for as long as it lives, even if its caller
/// drops it midway.
struct Running<'a>(&'a GcState);

impl<'a> Running<'a> {
    fn new(state: &'a GcState) -> Self {
        state.update(|s| s.running = true);
        Running(state)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.update(|s| s.running = false);
    }
}

/// Where a pass cuts: what was last wanted before these instants may go.
struct Cutoffs {
    /// Blobs and links untouched since before this (Unix seconds).
    touched_before: i64,
    /// Untagged manifests pushed before this, if they are collected at all.
    pushed_before: Option<i64>,
}

impl Registry {
    /// Names this process to the GC lease: each replica sharing a metadata
    /// store needs its own name (a random one does), so that only one of
    /// them collects at a time.
    pub fn with_gc_holder(mut self, holder: impl Into<String>) -> Self {
        self.gc.holder = Some(holder.into());
        self
    }

    /// Runs one pass now; a second caller in this process waits for the
    /// running pass to end, then runs its own. Refused (a storage error
    /// saying why) while another process sharing the metadata store runs one.
    pub async fn collect_garbage(
        &self,
        request: &GcRequest,
        progress: &dyn GcProgress,
    ) -> Result<GcReport> {
        self.collect_garbage_if_free(request, progress)
            .await?
            .ok_or_else(lease::busy)
    }

    /// Runs one pass now unless another process holds the GC lease
    /// (`Ok(None)`): the background worker's way, which just waits for its
    /// next turn then.
    pub async fn collect_garbage_if_free(
        &self,
        request: &GcRequest,
        progress: &dyn GcProgress,
    ) -> Result<Option<GcReport>> {
        let _one_at_a_time = self.gc.pass.lock().await;
        let pass = async {
            let outcome = self.pass(request, progress).await;
            // A batch outliving the pass still deletes: the next holder's
            // recovery must not find its tombstones half done.
            let _done = self.gc.removals.lock().await;
            outcome
        };
        lease::under_lease(&*self.meta, self.gc.holder(), pass).await
    }

    async fn pass(&self, request: &GcRequest, progress: &dyn GcProgress) -> Result<GcReport> {
        let _running = Running::new(&self.gc);
        let began = Instant::now();
        let now = unix_now();
        let grace = request.grace.unwrap_or(self.options.gc.grace);
        let settings = &self.options.gc;
        let cutoffs = Cutoffs {
            touched_before: now.saturating_sub(secs(grace)),
            pushed_before: settings.untagged_after.map(|d| now.saturating_sub(secs(d))),
        };
        let mut report = GcReport {
            dry_run: request.dry_run,
            started_at: now,
            ..Default::default()
        };
        let outcome = self.run_phases(&cutoffs, progress, &mut report).await;
        report.took_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.gc.update(|s| {
            if outcome.is_ok() {
                s.last = Some(report.clone());
                if !report.dry_run {
                    s.totals.runs += 1;
                    s.totals.blobs_removed += report.blobs_removed;
                    s.totals.bytes_removed += report.bytes_removed;
                    s.totals.manifests_removed += report.manifests_removed;
                    s.totals.tags_removed += report.tags_removed;
                    s.totals.links_removed += report.links_removed;
                    s.totals.uploads_removed += report.uploads_removed;
                    s.totals.evicted_images += report.evicted_images;
                }
            }
        });
        outcome.map(|()| report)
    }

    /// Blobs nothing references, whatever their age: what a pass could free
    /// once their grace has passed.
    pub async fn reclaimable(&self) -> Result<Reclaimable> {
        self.meta.reclaimable().await
    }

    /// Whether a pass runs, what the last one did, when the next is due.
    pub fn gc_status(&self) -> GcStatus {
        self.gc
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes the blob reads not yet written (at shutdown, so that a
    /// restart keeps them); how many.
    pub async fn flush_touches(&self) -> Result<usize> {
        self.touches.flush(&*self.meta).await
    }

    /// Finishes what a pass a crash interrupted left: removes the files of
    /// tombstoned blobs and drops their tombstones. Run at start-up, before
    /// serving; returns how many it finished. Skipped (0) while another
    /// process holds the GC lease: its pass recovers first thing anyway.
    pub async fn recover_gc(&self) -> Result<usize> {
        let recovered =
            lease::under_lease(&*self.meta, self.gc.holder(), self.recover_gc_held()).await?;
        Ok(recovered.unwrap_or(0))
    }

    /// [`Registry::recover_gc`] for a caller holding the lease.
    async fn recover_gc_held(&self) -> Result<usize> {
        let _alone = self.gc.removals.lock().await;
        let leftovers = self.meta.tombstones().await?;
        for digest in &leftovers {
            delete_tombstoned(&*self.blobs, &*self.meta, digest).await?;
        }
        Ok(leftovers.len())
    }

    async fn run_phases(
        &self,
        cutoffs: &Cutoffs,
        progress: &dyn GcProgress,
        report: &mut GcReport,
    ) -> Result<()> {
        let dry_run = report.dry_run;
        if !dry_run {
            // What reads asked for is on disk before anything is judged; reads
            // not yet written are asked about one by one below anyway.
            self.touches.flush(&*self.meta).await?;
            self.recover_gc_held().await?;
        }
        progress.phase("retention", 0);
        self.apply_retention(dry_run, report).await?;
        self.evict_cached_images(progress, report).await?;
        if let Some(pushed_before) = cutoffs.pushed_before {
            self.collect_untagged_manifests(pushed_before, progress, report)
                .await?;
        }
        self.collect_dangling_links(cutoffs.touched_before, progress, report)
            .await?;
        self.collect_blobs(cutoffs.touched_before, progress, report)
            .await?;
        self.collect_orphan_files(cutoffs.touched_before, progress, report)
            .await?;
        progress.phase("uploads", 0);
        if dry_run {
            let cutoff = unix_now().saturating_sub(secs(self.options.upload_expiry));
            report.uploads_removed = self.meta.stale_uploads(cutoff).await?.len() as u64;
        } else {
            report.uploads_removed = self.expire_uploads().await? as u64;
            progress.phase("claims", 0);
            self.meta.expire_claims(unix_now()).await?;
        }
        Ok(())
    }

    /// Untagged manifests past their age, that nothing in their repository
    /// holds, until none is left (deleting an index orphans its children).
    async fn collect_untagged_manifests(
        &self,
        pushed_before: i64,
        progress: &dyn GcProgress,
        report: &mut GcReport,
    ) -> Result<()> {
        loop {
            let found = self.meta.gc_untagged_manifests(pushed_before, PAGE).await?;
            progress.phase("manifests", found.len() as u64);
            if found.is_empty() {
                return Ok(());
            }
            let mut removed = 0;
            for (repo, digest) in found {
                // Its own size, for the report (its blobs are counted when they go).
                let size = self
                    .meta
                    .manifest_by_digest(&repo, &digest)
                    .await?
                    .map_or(0, |m| m.size);
                let gone = if report.dry_run {
                    true
                } else {
                    match self.touches.hold(Some(&repo), &digest, pushed_before) {
                        None => false, // read by digest since: a client relies on it
                        Some(_hold) => {
                            self.meta
                                .delete_untagged_manifest(&repo, &digest, pushed_before)
                                .await?
                        }
                    }
                };
                progress.advance(1);
                if gone {
                    removed += 1;
                    report.manifests_removed += 1;
                    report.list(Removal {
                        kind: RemovalKind::Manifest,
                        repository: Some(repo.to_string()),
                        name: digest.to_string(),
                        bytes: size,
                        reason: "untagged, and nothing holds it".into(),
                    });
                }
            }
            // A dry run cannot see what deleting these would orphan.
            if report.dry_run || removed == 0 {
                return Ok(());
            }
        }
    }

    /// Links of repositories to blobs that none of their manifests names,
    /// untouched since the cutoff.
    async fn collect_dangling_links(
        &self,
        touched_before: i64,
        progress: &dyn GcProgress,
        report: &mut GcReport,
    ) -> Result<()> {
        loop {
            let found = self.meta.gc_dangling_links(touched_before, PAGE).await?;
            progress.phase("links", found.len() as u64);
            let mut removed = 0;
            for (repo, digest, size) in &found {
                let gone = if report.dry_run {
                    true
                } else {
                    match self.touches.hold(Some(repo), digest, touched_before) {
                        None => false, // read since the cutoff
                        Some(_hold) => {
                            self.meta
                                .unlink_dangling(repo, digest, touched_before)
                                .await?
                        }
                    }
                };
                progress.advance(1);
                if gone {
                    removed += 1;
                    report.links_removed += 1;
                    report.list(Removal {
                        kind: RemovalKind::Link,
                        repository: Some(repo.to_string()),
                        name: digest.to_string(),
                        bytes: *size,
                        reason: "no manifest of the repository names it".into(),
                    });
                }
            }
            if report.dry_run || removed == 0 {
                return Ok(());
            }
        }
    }

    /// Blobs nothing references, untouched since the cutoff: tombstoned in
    /// batches (re-checked one by one), then their files removed.
    async fn collect_blobs(
        &self,
        touched_before: i64,
        progress: &dyn GcProgress,
        report: &mut GcReport,
    ) -> Result<()> {
        progress.phase("blobs", self.meta.reclaimable().await?.blobs);
        let mut after: Option<Digest> = None;
        loop {
            let batch = self
                .meta
                .gc_blob_candidates(touched_before, after.as_ref(), BLOB_BATCH)
                .await?;
            let Some((last, _)) = batch.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            let listed = batch.len() as u64;
            report.candidates += listed;
            let removed = if report.dry_run {
                batch
            } else {
                self.tombstone_and_delete(batch, touched_before, report)
                    .await?
            };
            for (digest, size) in removed {
                report.blobs_removed += 1;
                report.bytes_removed += size;
                report.list(Removal {
                    kind: RemovalKind::Blob,
                    repository: None,
                    name: digest.to_string(),
                    bytes: size,
                    reason: "no manifest references it".into(),
                });
            }
            progress.advance(listed);
        }
    }

    /// Tombstones what is still a candidate, then deletes those files and
    /// drops their tombstones; returns what went. Runs as a task of its own,
    /// so that a pass dropped midway (its caller gone) never leaves a
    /// tombstone behind for publishes to wait on.
    async fn tombstone_and_delete(
        &self,
        batch: Vec<(Digest, u64)>,
        touched_before: i64,
        report: &mut GcReport,
    ) -> Result<Vec<(Digest, u64)>> {
        let stores = self.removal_stores();
        let (removed, rescued) = tokio::spawn(remove_batch(stores, batch, touched_before))
            .await
            .map_err(Error::storage)??;
        report.rescued += rescued;
        Ok(removed)
    }

    fn removal_stores(&self) -> RemovalStores {
        RemovalStores {
            meta: self.meta.clone(),
            blobs: self.blobs.clone(),
            touches: self.touches.clone(),
            removals: self.gc.removals.clone(),
        }
    }

    /// Files the blob store holds that no metadata knows (a crash between
    /// writing the bytes and recording them), older than the cutoff.
    async fn collect_orphan_files(
        &self,
        touched_before: i64,
        progress: &dyn GcProgress,
        report: &mut GcReport,
    ) -> Result<()> {
        progress.phase("orphans", 0);
        let cutoff = UNIX_EPOCH + Duration::from_secs(u64::try_from(touched_before).unwrap_or(0));
        let mut after: Option<Digest> = None;
        loop {
            let files = self.blobs.list(after.as_ref(), PAGE).await?;
            let Some(last) = files.last() else {
                return Ok(());
            };
            after = Some(last.digest.clone());
            for file in files {
                progress.advance(1);
                if file.modified >= cutoff || self.meta.known_blob(&file.digest).await? {
                    continue;
                }
                if !report.dry_run {
                    let stores = self.removal_stores();
                    let digest = file.digest.clone();
                    let removed = tokio::spawn(remove_orphan(stores, digest))
                        .await
                        .map_err(Error::storage)??;
                    if !removed {
                        continue;
                    }
                }
                report.blobs_removed += 1;
                report.bytes_removed += file.size;
                report.list(Removal {
                    kind: RemovalKind::Blob,
                    repository: None,
                    name: file.digest.to_string(),
                    bytes: file.size,
                    reason: "a stored file no metadata records".into(),
                });
            }
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

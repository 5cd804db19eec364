//! The eviction phase of a pass: while the pull-through cache holds more
//! than `[cache] max_size`, the least recently pulled cached image goes.
//!
//! Only manifests of cached repositories are ever candidates, so pushed
//! images are never touched. Deleting a manifest deletes its tags and
//! restarts its blobs' grace delay: the bytes come back in the blob phase of
//! a later pass, once the grace has passed (a client may be mid-pull).

use super::{GcProgress, GcReport, Removal, RemovalKind};
use crate::error::{Error, Result};
use crate::registry::Registry;

/// Candidates asked for at once.
const PAGE: usize = 100;

impl Registry {
    /// Evicts cached images, least recently pulled first, until what the
    /// cache holds fits its limit. A dry run only says whether the cache is
    /// over: what each eviction frees depends on the ones before it.
    pub(crate) async fn evict_cached_images(
        &self,
        progress: &dyn GcProgress,
        report: &mut GcReport,
    ) -> Result<()> {
        let Some(max_bytes) = self.cache_max_bytes() else {
            return Ok(());
        };
        progress.phase("eviction", 0);
        let mut cached = self.meta.cached_bytes().await?;
        if cached <= max_bytes || report.dry_run {
            return Ok(());
        }
        // Pulls noted in memory decide who is least recently pulled.
        self.flush_pulls().await?;
        while cached > max_bytes {
            let candidates = self.meta.eviction_candidates(PAGE).await?;
            if candidates.is_empty() {
                break;
            }
            let mut evicted_any = false;
            for candidate in candidates {
                if cached <= max_bytes {
                    break;
                }
                let size = self
                    .meta
                    .manifest_by_digest(&candidate.repository, &candidate.digest)
                    .await?
                    .map_or(0, |m| m.size);
                let gone = match self
                    .meta
                    .delete_manifest(&candidate.repository, &candidate.digest)
                    .await
                {
                    Ok(gone) => gone,
                    // An index naming it arrived meanwhile: it stays with it.
                    Err(Error::StillReferenced { .. }) => false,
                    Err(e) => return Err(e),
                };
                progress.advance(1);
                if !gone {
                    continue;
                }
                evicted_any = true;
                report.evicted_images += 1;
                report.list(Removal {
                    kind: RemovalKind::Manifest,
                    repository: Some(candidate.repository.to_string()),
                    name: candidate.digest.to_string(),
                    bytes: size,
                    reason: format!(
                        "evicted from the pull-through cache (over [cache] max_size), last pulled {}",
                        candidate.last_pulled
                    ),
                });
                cached = self.meta.cached_bytes().await?;
            }
            if !evicted_any {
                break;
            }
        }
        Ok(())
    }
}

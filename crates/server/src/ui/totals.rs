//! The front page when auth is on: only the repositories the caller may
//! pull, and totals over those. A caller who may pull everything sees the
//! registry's own (cached) totals; anyone else sees sums over what they
//! see, read from the repository summaries (a walk over the whole list:
//! the registry cannot count by pattern; about 0.1 s at 10,000
//! repositories in a debug build), kept a few seconds per user.

use super::load::REPOSITORIES_PER_PAGE;
use super::view::{HomePage, Overview, RepositoryRow};
use crate::caller::Caller;
use crate::handlers::visible::{visible_page, visible_totals, VisibleTotals};
use berth_registry::{Registry, RepositorySummary, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a user's totals are reused.
const TTL: Duration = Duration::from_secs(5);
/// Users whose totals are kept at once; more clears the lot.
const CAPACITY: usize = 1024;

/// Totals per user (by name; `""` for the anonymous), a few seconds old at most.
#[derive(Debug, Default)]
pub struct VisibleTotalsCache {
    by_user: Mutex<HashMap<String, (Instant, VisibleTotals)>>,
}

impl VisibleTotalsCache {
    fn get(&self, user: &str) -> Option<VisibleTotals> {
        let map = self.by_user.lock().ok()?;
        map.get(user)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, totals)| *totals)
    }

    fn put(&self, user: &str, totals: VisibleTotals) {
        if let Ok(mut map) = self.by_user.lock() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(user.to_owned(), (Instant::now(), totals));
        }
    }
}

/// The front page for `caller`.
pub async fn home(
    registry: &Registry,
    caches: &super::UiState,
    caller: &Caller,
    query: &str,
    last: Option<&str>,
) -> Result<HomePage> {
    let (cache, visible) = (&caches.overview, &caches.visible);
    let filter = Some(query).filter(|q| !q.trim().is_empty());
    let page = visible_page(
        |after, limit| async move {
            registry
                .repository_summaries(filter, after.as_deref(), limit)
                .await
        },
        last,
        REPOSITORIES_PER_PAGE,
        |summary: &RepositorySummary| caller.may_list(&summary.name),
        |summary| summary.name.clone(),
    )
    .await?;
    let overview = match (filter, last) {
        (None, None) if caller.may_pull_everything() => Some(super::load::overview(
            cache.get_or_refresh(|| registry.overview()).await?,
        )),
        (None, None) => Some(visible_overview(registry, visible, caller).await?),
        _ => None,
    };
    // Registry-wide like the totals: for who sees the whole registry.
    let gc = match (filter, last) {
        (None, None) if caller.may_pull_everything() => {
            let reclaimable = caches
                .reclaimable
                .get_or_refresh(|| registry.reclaimable())
                .await?;
            let grace = registry.options().gc.grace;
            Some(super::load::gc_panel(
                registry.gc_status(),
                reclaimable,
                grace,
            ))
        }
        _ => None,
    };
    let mut rows = Vec::with_capacity(page.items.len());
    for r in page.items {
        let Ok(name) = r.name.parse() else { continue };
        // A query only for repositories a quota rule names.
        let quota = registry.repository_quota(&name).await?.map(Into::into);
        rows.push(RepositoryRow {
            name,
            tags: r.tag_count,
            size: r.size_bytes,
            last_push: r.last_push,
            quota,
            cached: r.cached_from.map(Into::into),
        });
    }
    Ok(HomePage {
        overview,
        query: query.to_owned(),
        rows,
        next: page.next,
        gc,
    })
}

/// Sums over the repositories `caller` may pull. A token's grants are its
/// own, so a token's bearer is not cached by name.
async fn visible_overview(
    registry: &Registry,
    cache: &VisibleTotalsCache,
    caller: &Caller,
) -> Result<Overview> {
    let key = (!caller.has_token()).then(|| caller.name().unwrap_or_default());
    let cached = key.and_then(|user| cache.get(user));
    let totals = match cached {
        Some(totals) => totals,
        None => {
            let totals = visible_totals(registry, caller).await?;
            if let Some(user) = key {
                cache.put(user, totals);
            }
            totals
        }
    };
    Ok(Overview {
        repositories: totals.repositories,
        tags: totals.tags,
        manifests: totals.manifests,
        blobs: None,
        stored_bytes: totals.size_bytes,
        saved_bytes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_kept_per_user() {
        let cache = VisibleTotalsCache::default();
        let alice = VisibleTotals {
            repositories: 2,
            ..VisibleTotals::default()
        };
        assert_eq!(cache.get("alice"), None);
        cache.put("alice", alice);
        assert_eq!(cache.get("alice"), Some(alice));
        assert_eq!(cache.get("bob"), None);
        assert_eq!(cache.get(""), None);
    }
}

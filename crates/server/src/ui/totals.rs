//! The front page when auth is on: only the repositories the caller may
//! pull, and totals over those. A caller who may pull everything sees the
//! registry's own (cached) totals; anyone else sees sums over what they
//! see, read from the repository summaries (a walk over the whole list:
//! the registry cannot count by pattern).

use super::load::REPOSITORIES_PER_PAGE;
use super::view::{HomePage, Overview, RepositoryRow};
use crate::caller::Caller;
use crate::handlers::visible::{visible_page, visible_totals};
use crate::operations::StatsCache;
use berth_registry::{Registry, RepositorySummary, Result};

/// The front page for `caller`.
pub async fn home(
    registry: &Registry,
    cache: &StatsCache<berth_registry::Overview>,
    caller: &Caller,
    query: &str,
    last: Option<&str>,
) -> Result<HomePage> {
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
        (None, None) => Some(visible_overview(registry, caller).await?),
        _ => None,
    };
    let rows = page
        .items
        .into_iter()
        .filter_map(|r| {
            Some(RepositoryRow {
                name: r.name.parse().ok()?,
                tags: r.tag_count,
                size: r.size_bytes,
                last_push: r.last_push,
            })
        })
        .collect();
    Ok(HomePage {
        overview,
        query: query.to_owned(),
        rows,
        next: page.next,
    })
}

/// Sums over the repositories `caller` may pull.
async fn visible_overview(registry: &Registry, caller: &Caller) -> Result<Overview> {
    let totals = visible_totals(registry, caller).await?;
    Ok(Overview {
        repositories: totals.repositories,
        tags: totals.tags,
        manifests: totals.manifests,
        blobs: None,
        stored_bytes: totals.size_bytes,
        saved_bytes: None,
    })
}

//! Fills the pages' view data from the registry's browse queries.

use super::view::{
    ConfigView, DeletePage, GcPanel, GcPass, HistoryRow, ImageContent, ImagePage, LayerRow,
    Overview, PlatformRow, ReferrerRow, RepositoryPage, RepositoryRow, TagRow,
};
use berth_oci::{ImageConfig, Platform, Reference, RepositoryName};
use berth_registry::{ImageContents, Registry, Result};

/// Repositories per page of the list.
pub const REPOSITORIES_PER_PAGE: usize = 100;
/// Tags per page of a repository.
pub const TAGS_PER_PAGE: usize = 100;

/// The front page's garbage collection panel, from what the collector
/// reports and what it could reclaim.
pub fn gc_panel(
    status: berth_registry::gc::GcStatus,
    reclaimable: berth_registry::storage::Reclaimable,
    grace: std::time::Duration,
) -> GcPanel {
    GcPanel {
        reclaimable_blobs: reclaimable.blobs,
        reclaimable_bytes: reclaimable.bytes,
        grace: berth_registry::units::format_duration(grace),
        running: status.running,
        last: status.last.map(|report| GcPass {
            at: report.started_at,
            dry_run: report.dry_run,
            blobs: report.blobs_removed,
            bytes: report.bytes_removed,
            manifests: report.manifests_removed,
            tags: report.tags_removed,
        }),
        next_run_at: status.next_run_at,
    }
}

/// The registry's own totals, as the front page shows them.
pub fn overview(o: berth_registry::Overview) -> Overview {
    Overview {
        repositories: o.repositories,
        tags: o.tags,
        manifests: o.manifests,
        blobs: Some(o.blobs),
        stored_bytes: o.stored_bytes,
        saved_bytes: Some(o.shared_savings_bytes),
    }
}

pub async fn repository(
    registry: &Registry,
    name: RepositoryName,
    last: Option<&str>,
) -> Result<RepositoryPage> {
    let summary = registry.repository_summary(&name).await?;
    let page = registry.tag_details(&name, last, TAGS_PER_PAGE).await?;
    let quota = registry.repository_quota(&name).await?.map(Into::into);
    let tags = page
        .items
        .into_iter()
        .filter_map(|t| {
            Some(TagRow {
                tag: t.tag.parse().ok()?,
                digest: t.digest,
                media_type: t.media_type,
                size: t.size_bytes,
                pushed: Some(t.pushed_at),
                platforms: t.platforms.iter().map(platform).collect(),
            })
        })
        .collect();
    Ok(RepositoryPage {
        summary: RepositoryRow {
            name: name.clone(),
            tags: summary.tag_count,
            size: summary.size_bytes,
            last_push: summary.last_push,
            quota,
            cached: summary.cached_from.map(Into::into),
        },
        name,
        tags,
        next: page.next,
    })
}

pub async fn image(
    registry: &Registry,
    name: RepositoryName,
    reference: Reference,
) -> Result<ImagePage> {
    let detail = registry.image_detail(&name, &reference).await?;
    let cached = registry.cache_origin(&name).await?.map(Into::into);
    let content = match detail.contents {
        ImageContents::Manifest {
            config_blob,
            config,
            layers,
        } => ImageContent::Manifest {
            layers: layers
                .into_iter()
                .map(|l| LayerRow {
                    digest: l.digest,
                    media_type: l.media_type,
                    size: l.size,
                })
                .collect(),
            config: config.map(|c| Box::new(config_view(*c))),
            config_digest: config_blob.map(|b| b.digest),
        },
        ImageContents::Index { manifests } => ImageContent::Index {
            platforms: manifests
                .into_iter()
                .map(|m| PlatformRow {
                    platform: m
                        .platform
                        .as_ref()
                        .map_or_else(|| "unknown".into(), platform),
                    digest: m.digest,
                    media_type: m.media_type,
                    size: m.size,
                })
                .collect(),
        },
        ImageContents::Unknown => ImageContent::Unknown,
    };
    Ok(ImagePage {
        name,
        reference,
        digest: detail.digest,
        media_type: detail.media_type,
        size: detail.size,
        pushed: Some(detail.pushed_at),
        tags: detail.tags,
        content,
        referrers: detail
            .referrers
            .into_iter()
            .map(|r| ReferrerRow {
                artifact_type: r.artifact_type.unwrap_or_default(),
                digest: r.digest,
                media_type: r.media_type,
                size: r.size,
            })
            .collect(),
        pretty_json: super::format::pretty_json(&detail.raw),
        cached,
    })
}

/// The confirmation page; for a digest, checks it exists and lists its tags.
pub async fn delete(
    registry: &Registry,
    name: RepositoryName,
    reference: Reference,
) -> Result<DeletePage> {
    let tags = match &reference {
        Reference::Digest(_) => registry.image_detail(&name, &reference).await?.tags,
        Reference::Tag(_) => Vec::new(),
    };
    Ok(DeletePage {
        name,
        reference,
        tags,
    })
}

/// `os/architecture[/variant]`, as `docker` writes a platform.
fn platform(p: &Platform) -> String {
    match &p.variant {
        Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

fn config_view(config: ImageConfig) -> ConfigView {
    let run = config.config;
    let platform = match (&config.os, &config.architecture) {
        (Some(os), Some(arch)) => platform(&Platform {
            os: os.clone(),
            architecture: arch.clone(),
            variant: config.variant.clone(),
        }),
        _ => "unknown".into(),
    };
    ConfigView {
        platform,
        created: config.created,
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
        env: run.env,
        labels: run.labels.into_iter().collect(),
        exposed_ports: run.exposed_ports,
        working_dir: run.working_dir.unwrap_or_default(),
        user: run.user.unwrap_or_default(),
        history: config
            .history
            .into_iter()
            .map(|h| HistoryRow {
                created: h.created,
                created_by: h.created_by.unwrap_or_default(),
                comment: h.comment,
                empty_layer: h.empty_layer,
            })
            .collect(),
    }
}

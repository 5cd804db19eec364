//! Listings: tags, the catalog and referrers, paged by key.

use super::Registry;
use crate::error::{Error, Result};
use berth_oci::{Descriptor, Digest, RepositoryName};

/// Largest page a listing returns, whatever `n` asks for.
pub const MAX_PAGE: usize = 10_000;

/// Largest page of referrers: each may carry up to
/// `berth_oci::manifest::MAX_ANNOTATION_BYTES` of annotations.
pub const MAX_REFERRERS_PAGE: usize = 1_000;

/// One page of referrers, with the digest to ask for the next one after.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferrersPage {
    pub manifests: Vec<Descriptor>,
    pub next: Option<String>,
}

/// One page of a listing, with the key to ask for the next one (the
/// `last` of the next request).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T = String> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl Registry {
    pub async fn tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Page> {
        let limit = page_limit(n);
        let tags = self
            .meta
            .list_tags(repo, last, limit + 1)
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.to_string()))?;
        Ok(into_page(tags, limit))
    }

    pub async fn catalog(&self, last: Option<&str>, n: Option<usize>) -> Result<Page> {
        let limit = page_limit(n);
        let repos = self.meta.list_repositories(last, limit + 1).await?;
        Ok(into_page(repos, limit))
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`,
    /// by digest, up to `n` (at most [`MAX_REFERRERS_PAGE`]) after `last`.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<ReferrersPage> {
        let limit = n.unwrap_or(MAX_REFERRERS_PAGE).min(MAX_REFERRERS_PAGE);
        let mut rows = self
            .meta
            .referrers(repo, subject, artifact_type, last, limit + 1)
            .await?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| r.digest.to_string())
        } else {
            None
        };
        let manifests = rows
            .into_iter()
            .map(|r| Descriptor {
                media_type: r.media_type,
                digest: r.digest,
                size: r.size,
                artifact_type: r.artifact_type,
                annotations: r.annotations.and_then(|a| serde_json::from_str(&a).ok()),
            })
            .collect();
        Ok(ReferrersPage { manifests, next })
    }
}

fn page_limit(n: Option<usize>) -> usize {
    n.unwrap_or(MAX_PAGE).min(MAX_PAGE)
}

/// `items` holds up to `limit + 1` entries; the extra one only says there is more.
fn into_page(items: Vec<String>, limit: usize) -> Page {
    into_page_by(items, limit, Clone::clone)
}

/// Like [`into_page`], with the next page's key taken from the last item by `key`.
pub(super) fn into_page_by<T>(
    mut items: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> String,
) -> Page<T> {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}

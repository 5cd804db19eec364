//! Listings: tags, the catalog and referrers, paged by key.

use super::Registry;
use crate::error::{Error, Result};
use berth_oci::{Descriptor, Digest, RepositoryName};

/// Largest page a listing returns, whatever `n` asks for.
pub const MAX_PAGE: usize = 10_000;

/// One page of a listing, with the key to ask for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
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

    /// Descriptors of the manifests in `repo` whose subject is `subject`.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let rows = self.meta.referrers(repo, subject, artifact_type).await?;
        Ok(rows
            .into_iter()
            .map(|r| Descriptor {
                media_type: r.media_type,
                digest: r.digest,
                size: r.size,
                artifact_type: r.artifact_type,
                annotations: r.annotations.and_then(|a| serde_json::from_str(&a).ok()),
            })
            .collect())
    }
}

fn page_limit(n: Option<usize>) -> usize {
    n.unwrap_or(MAX_PAGE).min(MAX_PAGE)
}

/// `items` holds up to `limit + 1` entries; the extra one only says there is more.
fn into_page(mut items: Vec<String>, limit: usize) -> Page {
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().cloned()
    } else {
        None
    };
    Page { items, next }
}

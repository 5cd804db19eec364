//! What repositories under a quota hold, against their limits.

use super::Registry;
use crate::error::Result;
use crate::policy::QuotaUse;
use berth_oci::RepositoryName;

/// Repositories read per listing call.
const PAGE: usize = 500;

impl Registry {
    /// Every repository a `[[quota]]` applies to, with its use (for
    /// `/metrics` and the UI); empty without quotas.
    pub async fn quota_usage(&self) -> Result<Vec<QuotaUse>> {
        let mut uses = Vec::new();
        if self.options.policies.quotas.is_empty() {
            return Ok(uses);
        }
        let mut last: Option<String> = None;
        loop {
            let page = self.meta.list_repositories(last.as_deref(), PAGE).await?;
            for name in &page {
                let Ok(repo) = name.parse::<RepositoryName>() else {
                    continue;
                };
                if let Some(usage) = self.repository_quota(&repo).await? {
                    uses.push(usage);
                }
            }
            if page.len() < PAGE {
                return Ok(uses);
            }
            last = page.last().cloned();
        }
    }

    /// The use of one repository, if a quota applies to it.
    pub async fn repository_quota(&self, repo: &RepositoryName) -> Result<Option<QuotaUse>> {
        let Some(rule) = self.options.policies.quota_for(repo.as_str()) else {
            return Ok(None);
        };
        let usage = self.meta.repository_usage(repo).await?;
        Ok(Some(QuotaUse {
            repository: repo.to_string(),
            used_bytes: usage.stored_bytes,
            max_bytes: rule.quota.max_bytes,
            tags: usage.tags,
            max_tags: rule.quota.max_tags,
        }))
    }
}

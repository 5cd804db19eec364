//! The retention phase of a collection pass: deletes the tags that the
//! `[[retention]]` rules no longer keep, then the manifests that lost their
//! last tag that way (and, for an index, its children left untagged).

use super::Registry;
use crate::error::Result;
use crate::gc::{GcReport, Removal, RemovalKind};
use crate::policy::{DoomedTag, Policies};
use berth_oci::{Digest, ParsedManifest, RepositoryName, Tag};
use std::collections::{BTreeMap, BTreeSet};

/// Repositories read per listing call.
const PAGE: usize = 500;

impl Registry {
    /// Applies every retention rule: for each repository a rule matches,
    /// the tags it does not keep go, each with `delete_tag_if` (a tag pushed
    /// again since it was judged stays), and so do the manifests left with
    /// no tag, unless an index holds them. A dry run only reports.
    pub(crate) async fn apply_retention(&self, dry_run: bool, report: &mut GcReport) -> Result<()> {
        let policies = self.options.policies.clone();
        if !policies.has_retention() {
            return Ok(());
        }
        // Recent pulls keep tags: judge with every pull noted so far.
        self.flush_pulls().await?;
        let now = super::unix_now();
        let mut last: Option<String> = None;
        loop {
            let page = self.meta.list_repositories(last.as_deref(), PAGE).await?;
            for name in &page {
                if policies.retention_for(name).is_none() {
                    continue;
                }
                let Ok(repo) = name.parse::<RepositoryName>() else {
                    continue;
                };
                self.retain_in(&repo, &policies, now, dry_run, report)
                    .await?;
            }
            if page.len() < PAGE {
                return Ok(());
            }
            last = page.last().cloned();
        }
    }

    /// Retention in one repository.
    async fn retain_in(
        &self,
        repo: &RepositoryName,
        policies: &Policies,
        now: i64,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        let tags = self.meta.tag_states(repo).await?;
        let doomed = policies.doomed_tags(repo.as_str(), &tags, now);
        if doomed.is_empty() {
            return Ok(());
        }
        // Manifests whose every tag is doomed, with why their tags went.
        let mut tagged: BTreeMap<&Digest, usize> = BTreeMap::new();
        for state in &tags {
            *tagged.entry(&state.digest).or_default() += 1;
        }
        let mut removed_tags: BTreeMap<Digest, (usize, String)> = BTreeMap::new();
        for DoomedTag { tag: state, reason } in &doomed {
            let Ok(tag) = state.tag.parse::<Tag>() else {
                continue;
            };
            let gone = dry_run
                || self
                    .meta
                    .delete_tag_if(repo, &tag, &state.digest, state.pushed_at)
                    .await?;
            if !gone {
                continue; // pushed again since it was judged
            }
            report.tags_removed += 1;
            report.list(Removal {
                kind: RemovalKind::Tag,
                repository: Some(repo.to_string()),
                name: state.tag.clone(),
                bytes: 0,
                reason: reason.clone(),
            });
            let entry = removed_tags
                .entry(state.digest.clone())
                .or_insert((0, reason.clone()));
            entry.0 += 1;
        }
        for (digest, (count, _)) in &removed_tags {
            if tagged.get(digest) != Some(count) {
                continue; // another tag keeps it
            }
            self.remove_untagged(repo, digest, now, dry_run, report)
                .await?;
        }
        Ok(())
    }

    /// Deletes a manifest retention left untagged (refused while an index
    /// holds it or it is tagged again), then the children of an index that
    /// it left untagged and unheld.
    async fn remove_untagged(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        now: i64,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        let children = self.index_children(repo, digest).await;
        let gone = dry_run
            || self
                .meta
                .delete_untagged_manifest(repo, digest, now + 1)
                .await?;
        if !gone {
            return Ok(());
        }
        self.manifests_removed(repo, digest, "retention: its last tag was removed", report);
        if dry_run {
            return Ok(()); // whether its children go depends on the delete
        }
        let mut seen = BTreeSet::new();
        for child in children {
            if seen.insert(child.clone())
                && self
                    .meta
                    .delete_untagged_manifest(repo, &child, now + 1)
                    .await?
            {
                self.manifests_removed(repo, &child, "retention: its index was removed", report);
            }
        }
        Ok(())
    }

    fn manifests_removed(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        why: &str,
        report: &mut GcReport,
    ) {
        report.manifests_removed += 1;
        report.list(Removal {
            kind: RemovalKind::Manifest,
            repository: Some(repo.to_string()),
            name: digest.to_string(),
            bytes: 0,
            reason: why.to_string(),
        });
    }

    /// The child manifests an index names; empty for an image or when its
    /// bytes cannot be read (its children then wait for the untagged phase).
    async fn index_children(&self, repo: &RepositoryName, digest: &Digest) -> Vec<Digest> {
        let Ok(Some(row)) = self.meta.manifest_by_digest(repo, digest).await else {
            return Vec::new();
        };
        let Ok(bytes) = self.manifest_bytes(digest, row.size).await else {
            return Vec::new();
        };
        match ParsedManifest::parse(&bytes, Some(&row.media_type)) {
            Ok(parsed) => parsed.manifests.into_iter().map(|d| d.digest).collect(),
            Err(_) => Vec::new(),
        }
    }
}

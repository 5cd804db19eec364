//! The copy itself: every repository of the source, written into the
//! destination through its [`Registry`] so that each blob is hashed on
//! arrival and each manifest checked as a push would be. What the
//! destination already holds is skipped, which makes a rerun finish an
//! interrupted migration.

use super::stores::Stores;
use crate::progress::Bar;
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use berth_registry::storage::{CacheSource, ManifestRow, RepositoryOrigin, TagCursor};
use berth_registry::{Error, Registry};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};

/// Rows asked for at a time from any listing.
const PAGE: usize = 500;

/// What the source holds, counted before copying.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub repositories: u64,
    pub manifests: u64,
    pub tags: u64,
    /// Distinct blob digests linked anywhere, and their bytes.
    pub blobs: u64,
    pub bytes: u64,
}

/// What a migration did.
#[derive(Debug, Default)]
pub struct Report {
    pub blobs_copied: u64,
    pub bytes_copied: u64,
    /// Links made to a blob the destination already held (another
    /// repository's, or an earlier run's).
    pub blobs_linked: u64,
    pub blobs_present: u64,
    pub manifests_copied: u64,
    pub manifests_present: u64,
    pub tags_copied: u64,
    pub tags_present: u64,
    /// Manifests of pull-through cached repositories whose layers were never
    /// fetched: the destination's cache fetches them again when pulled.
    pub cached_left: u64,
    pub failures: Vec<String>,
}

/// Failures that would hit every following item too: stop.
fn is_fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::Storage(_) | Error::InsufficientStorage { .. } | Error::TooManyUploads { .. }
    )
}

/// Every repository of the source that holds manifests, by name.
async fn repositories(source: &Stores) -> Result<Vec<RepositoryName>, Error> {
    let mut names = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = source.meta.list_repositories(last.as_deref(), PAGE).await?;
        let Some(tail) = page.last().cloned() else {
            break;
        };
        for name in page {
            match name.parse() {
                Ok(name) => names.push(name),
                Err(_) => return Err(Error::Storage(format!("malformed repository {name:?}"))),
            }
        }
        last = Some(tail);
    }
    Ok(names)
}

async fn all_links(source: &Stores, repo: &RepositoryName) -> Result<Vec<(Digest, u64)>, Error> {
    let mut all = Vec::new();
    loop {
        let page = source
            .meta
            .repository_links(repo, all.last().map(|(d, _)| d), PAGE)
            .await?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

async fn all_manifests(source: &Stores, repo: &RepositoryName) -> Result<Vec<ManifestRow>, Error> {
    let mut all: Vec<ManifestRow> = Vec::new();
    loop {
        let page = source
            .meta
            .repository_manifests(repo, all.last().map(|m| &m.digest), PAGE)
            .await?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// Every tag of `repo` with the digest it points at.
async fn all_tags(source: &Stores, repo: &RepositoryName) -> Result<Vec<(String, Digest)>, Error> {
    let mut all = Vec::new();
    let mut after: Option<TagCursor> = None;
    loop {
        let Some(page) = source.meta.tag_details(repo, after.as_ref(), PAGE).await? else {
            return Ok(all);
        };
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = Some(TagCursor {
            pushed_at: last.pushed_at,
            name: last.tag.clone(),
        });
        let done = page.len() < PAGE;
        all.extend(page.into_iter().map(|row| (row.tag, row.digest)));
        if done {
            return Ok(all);
        }
    }
}

/// Counts what the source holds (the bar's totals, and `--dry-run`).
pub async fn count(source: &Stores) -> Result<(Vec<RepositoryName>, Totals), Error> {
    let names = repositories(source).await?;
    let mut totals = Totals {
        repositories: names.len() as u64,
        ..Totals::default()
    };
    let mut seen = HashSet::new();
    for repo in &names {
        for (digest, size) in all_links(source, repo).await? {
            if seen.insert(digest) {
                totals.blobs += 1;
                totals.bytes += size;
            }
        }
        totals.manifests += all_manifests(source, repo).await?.len() as u64;
        totals.tags += all_tags(source, repo).await?.len() as u64;
    }
    Ok((names, totals))
}

/// One migration's state.
pub struct Migration<'a> {
    pub source: &'a Stores,
    pub destination: &'a Stores,
    pub registry: &'a Registry,
    pub bar: &'a Bar,
    pub totals: Totals,
    /// Digests already counted on the bar.
    counted: HashSet<Digest>,
    pub report: Report,
}

impl<'a> Migration<'a> {
    pub fn new(
        source: &'a Stores,
        destination: &'a Stores,
        registry: &'a Registry,
        bar: &'a Bar,
        totals: Totals,
    ) -> Self {
        Migration {
            source,
            destination,
            registry,
            bar,
            totals,
            counted: HashSet::new(),
            report: Report::default(),
        }
    }

    fn fail(&mut self, repo: &RepositoryName, what: String, why: impl std::fmt::Display) {
        self.report.failures.push(format!("{repo}: {what}: {why}"));
    }

    fn message(&self) {
        self.bar.set_message(format!(
            "blobs {}/{}",
            self.counted.len(),
            self.totals.blobs
        ));
    }

    /// Copies one repository: its cache mark, blobs, manifests (children of
    /// an index first), tags.
    pub async fn repository(&mut self, repo: &RepositoryName) -> Result<(), Error> {
        let cached = match self.source.meta.repository_origin(repo).await? {
            RepositoryOrigin::Cached(origin) => {
                let source = CacheSource {
                    upstream: origin.upstream,
                    remote: origin.remote,
                    checked_at: origin.checked_at.unwrap_or(0),
                };
                self.destination.meta.mark_cached(repo, &source).await?;
                true
            }
            RepositoryOrigin::Absent | RepositoryOrigin::Local => false,
        };
        let links = all_links(self.source, repo).await?;
        self.blobs(repo, links).await?;
        let manifests = all_manifests(self.source, repo).await?;
        let mut contents: HashMap<Digest, (String, Bytes)> = HashMap::new();
        for row in manifests {
            match self.manifest_bytes(&row.digest).await {
                Ok(bytes) => {
                    contents.insert(row.digest, (row.media_type, bytes));
                }
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => self.fail(repo, format!("manifest {}", row.digest), e),
            }
        }
        for digest in push_order(&contents) {
            let Some((media_type, bytes)) = contents.get(&digest) else {
                continue;
            };
            if self
                .destination
                .meta
                .manifest_by_digest(repo, &digest)
                .await?
                .is_some()
            {
                self.report.manifests_present += 1;
                continue;
            }
            let reference = Reference::Digest(digest.clone());
            match self
                .registry
                .put_manifest(repo, &reference, Some(media_type), bytes.clone())
                .await
            {
                Ok(_) => self.report.manifests_copied += 1,
                Err(e) if is_fatal(&e) => return Err(e),
                Err(Error::ManifestBlobUnknown(_)) if cached => self.report.cached_left += 1,
                Err(e) => self.fail(repo, format!("manifest {digest}"), e),
            }
        }
        for (tag, digest) in all_tags(self.source, repo).await? {
            self.tag(repo, &tag, &digest, &contents, cached).await?;
        }
        Ok(())
    }

    async fn tag(
        &mut self,
        repo: &RepositoryName,
        tag_text: &str,
        digest: &Digest,
        contents: &HashMap<Digest, (String, Bytes)>,
        cached: bool,
    ) -> Result<(), Error> {
        let tag: Tag = match tag_text.parse() {
            Ok(tag) => tag,
            Err(e) => {
                self.fail(repo, format!("tag {tag_text}"), e);
                return Ok(());
            }
        };
        let current = self.destination.meta.manifest_by_tag(repo, &tag).await?;
        if current.is_some_and(|row| row.digest == *digest) {
            self.report.tags_present += 1;
        } else {
            let Some((media_type, bytes)) = contents.get(digest) else {
                self.fail(repo, format!("tag {tag}"), "its manifest was not read");
                return Ok(());
            };
            let reference = Reference::Tag(tag.clone());
            match self
                .registry
                .put_manifest(repo, &reference, Some(media_type), bytes.clone())
                .await
            {
                Ok(_) => self.report.tags_copied += 1,
                Err(e) if is_fatal(&e) => return Err(e),
                Err(Error::ManifestBlobUnknown(_)) if cached => self.report.cached_left += 1,
                Err(e) => self.fail(repo, format!("tag {tag}"), e),
            }
        }
        if cached {
            if let Some(at) = self.source.meta.tag_checked_at(repo, &tag).await? {
                self.destination
                    .meta
                    .set_tag_checked(repo, &tag, at)
                    .await?;
            }
        }
        Ok(())
    }

    /// A manifest's own bytes, from the source's blob store.
    async fn manifest_bytes(&self, digest: &Digest) -> Result<Bytes, Error> {
        let content = self
            .source
            .blobs
            .read(digest, None)
            .await?
            .ok_or_else(|| Error::ManifestUnknown(digest.to_string()))?;
        let chunks: Vec<Bytes> = content.into_stream().try_collect().await.map_err(|e| {
            Error::Storage(format!("reading manifest {digest} from the source: {e}"))
        })?;
        Ok(chunks.concat().into())
    }

    /// Brings `repo`'s blobs over, several at a time (each copy waits on
    /// its fsyncs, or on object storage round trips), then records how
    /// each went.
    async fn blobs(
        &mut self,
        repo: &RepositoryName,
        links: Vec<(Digest, u64)>,
    ) -> Result<(), Error> {
        // Whether each digest moves the bar (the first time it is met).
        let jobs: Vec<(Digest, u64, bool)> = links
            .into_iter()
            .map(|(digest, size)| {
                let first = self.counted.insert(digest.clone());
                (digest, size, first)
            })
            .collect();
        let (source, destination, registry, bar) =
            (self.source, self.destination, self.registry, self.bar);
        let outcomes: Vec<_> = futures_util::stream::iter(jobs)
            .map(|(digest, size, first)| async move {
                let outcome = bring_blob(
                    source,
                    destination,
                    registry,
                    bar,
                    repo,
                    &digest,
                    size,
                    first,
                )
                .await;
                if first && !matches!(outcome, Ok(BlobOutcome::Copied)) {
                    bar.advance(size);
                }
                (digest, size, outcome)
            })
            .buffer_unordered(BLOBS_AT_ONCE)
            .collect()
            .await;
        let mut fatal = None;
        for (digest, size, outcome) in outcomes {
            match outcome {
                Ok(BlobOutcome::Present) => self.report.blobs_present += 1,
                Ok(BlobOutcome::Linked) => self.report.blobs_linked += 1,
                Ok(BlobOutcome::Copied) => {
                    self.report.blobs_copied += 1;
                    self.report.bytes_copied += size;
                }
                Ok(BlobOutcome::Missing) => {
                    self.fail(repo, format!("blob {digest}"), "missing from the source")
                }
                Err(e) if is_fatal(&e) => fatal = Some(e),
                Err(e) => self.fail(repo, format!("blob {digest}"), e),
            }
        }
        self.message();
        fatal.map_or(Ok(()), Err)
    }
}

/// Blob copies in flight at once.
const BLOBS_AT_ONCE: usize = 4;

/// How one blob got into a repository of the destination.
enum BlobOutcome {
    Present,
    /// Linked to the destination's copy: another repository's, or an
    /// earlier run's.
    Linked,
    /// Streamed from the source and verified on arrival.
    Copied,
    Missing,
}

/// Brings blob `digest` of `size` bytes into `repo` of the destination;
/// its bytes move the bar when `first`.
#[allow(clippy::too_many_arguments)] // one blob's whole context, used once
async fn bring_blob(
    source: &Stores,
    destination: &Stores,
    registry: &Registry,
    bar: &Bar,
    repo: &RepositoryName,
    digest: &Digest,
    size: u64,
    first: bool,
) -> Result<BlobOutcome, Error> {
    let meta = &destination.meta;
    if meta.blob_size(repo, digest).await?.is_some() {
        return Ok(BlobOutcome::Present);
    }
    // A link as a mount makes it: the bytes are there, verified when they came.
    if meta.link_blob(repo, digest, size, None).await? {
        return Ok(BlobOutcome::Linked);
    }
    let Some(content) = source.blobs.read(digest, None).await? else {
        return Ok(BlobOutcome::Missing);
    };
    let body = content
        .into_stream()
        .inspect_ok(move |chunk| {
            if first {
                bar.advance(chunk.len() as u64);
            }
        })
        .boxed();
    registry.push_blob(repo, digest, body, None).await?;
    Ok(BlobOutcome::Copied)
}

/// The digests an index (or any manifest with `manifests`) names.
fn children(bytes: &[u8]) -> Vec<Digest> {
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct WithChildren {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<WithChildren>(bytes)
        .map(|m| {
            m.manifests
                .into_iter()
                .filter_map(|d| d.digest.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The manifests of one repository in an order a registry accepts: every
/// child of an index before the index (depth first; a cycle, which no
/// digest can make, would just be broken somewhere).
pub fn push_order<V>(contents: &HashMap<Digest, (V, Bytes)>) -> Vec<Digest> {
    let mut digests: Vec<&Digest> = contents.keys().collect();
    digests.sort();
    let mut order = Vec::with_capacity(contents.len());
    let mut visited = HashSet::new();
    for root in digests {
        // An explicit stack: (digest, children already pushed on it).
        let mut stack = vec![(root.clone(), false)];
        while let Some((digest, expanded)) = stack.pop() {
            if expanded {
                order.push(digest);
                continue;
            }
            if !visited.insert(digest.clone()) {
                continue;
            }
            stack.push((digest.clone(), true));
            if let Some((_, bytes)) = contents.get(&digest) {
                for child in children(bytes) {
                    if contents.contains_key(&child) && !visited.contains(&child) {
                        stack.push((child, false));
                    }
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(children: &[&Digest]) -> Bytes {
        let manifests: Vec<_> = children
            .iter()
            .map(|d| serde_json::json!({"digest": d.to_string(), "size": 1, "mediaType": "x"}))
            .collect();
        serde_json::to_vec(&serde_json::json!({ "manifests": manifests }))
            .unwrap()
            .into()
    }

    #[test]
    fn children_come_before_the_indexes_that_name_them() {
        let image_a = Bytes::from_static(b"{\"layers\":[]}");
        let image_b = Bytes::from_static(b"{\"config\":{}}");
        let (a, b) = (Digest::sha256_of(&image_a), Digest::sha256_of(&image_b));
        let inner = index(&[&a, &b]);
        let inner_digest = Digest::sha256_of(&inner);
        let outer = index(&[&inner_digest, &a]);
        let outer_digest = Digest::sha256_of(&outer);
        let contents: HashMap<Digest, ((), Bytes)> = [
            (outer_digest.clone(), ((), outer)),
            (inner_digest.clone(), ((), inner)),
            (a.clone(), ((), image_a)),
            (b.clone(), ((), image_b)),
        ]
        .into_iter()
        .collect();
        let order = push_order(&contents);
        assert_eq!(order.len(), 4);
        let at = |d: &Digest| order.iter().position(|x| x == d).unwrap();
        assert!(at(&a) < at(&inner_digest));
        assert!(at(&b) < at(&inner_digest));
        assert!(at(&inner_digest) < at(&outer_digest));
    }
}

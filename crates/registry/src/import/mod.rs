//! Importing a CNCF distribution (`registry:2`) filesystem tree: every
//! repository, manifest revision, current tag and the blobs they need.
//!
//! Everything goes through [`Registry`]'s own push path, so each blob is
//! hashed against its name before it is published, with the durability of a
//! push, and each manifest is checked like a pushed one. Damaged content is
//! reported and skipped, together with whatever needs it; the rest is
//! imported. Running it again copies nothing already imported.

pub mod layout;
mod plan;

pub use layout::{DistributionTree, LayoutError, RepositoryLayout};

use crate::error::Error;
use crate::registry::Registry;
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};
use plan::RepositoryPlan;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use tokio::io::AsyncReadExt;

/// Bytes read from a blob file at a time.
const READ_CHUNK: usize = 1 << 20;

/// Told how the import advances, to draw a bar or print lines.
pub trait ImportProgress: Sync {
    /// Bytes of blob content the import will go through, counted once per digest.
    fn start(&self, total_bytes: u64);
    fn repository(&self, name: &str);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// Something that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub repository: String,
    /// "blob sha256:…", "manifest sha256:…", "tag latest", or the repository itself.
    pub what: String,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.repository, self.what, self.reason)
    }
}

/// What an import did. `*_present` count what berth already held (a re-run).
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Repositories with at least one manifest in berth afterwards.
    pub repositories: usize,
    pub tags: usize,
    pub tags_present: usize,
    pub manifests: usize,
    pub manifests_present: usize,
    /// Blobs brought over, their bytes verified.
    pub blobs: usize,
    /// Of those, how many share their file with the tree (hard links).
    pub blobs_linked: usize,
    /// Blob links that needed no copy (already in the repository, or
    /// mounted from a repository imported earlier in the run).
    pub blobs_present: usize,
    pub bytes: u64,
    pub skipped: Vec<Skipped>,
}

impl ImportReport {
    /// Whether everything the tree holds is now in berth.
    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty()
    }
}

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Hard-link blob files into berth's store where the filesystem allows,
    /// instead of copying them: no second copy of the data on disk. registry:2
    /// writes a blob's file only while its digest is absent and removes it by
    /// unlinking, so the shared bytes stay the ones verified.
    pub hard_link: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The registry itself failed (storage, low disk): the import stops.
    #[error("{0}")]
    Registry(#[from] Error),
}

/// Failures that stop the import rather than skip one item: they would hit
/// every following item too.
fn is_fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::Storage(_) | Error::InsufficientStorage { .. } | Error::TooManyUploads { .. }
    )
}

/// Imports every repository of `tree` into `registry`.
pub async fn import(
    registry: &Registry,
    tree: &DistributionTree,
    options: ImportOptions,
    progress: &dyn ImportProgress,
) -> Result<ImportReport, ImportError> {
    let layouts = tree.repositories()?;
    // A first pass only sizes the work; plans hold manifests' bytes, so
    // each is made again when its repository's turn comes rather than
    // keeping every manifest of a large registry in memory at once.
    let mut sizes = HashMap::new();
    for layout in &layouts {
        for digest in RepositoryPlan::new(tree, layout.clone()).blobs {
            let path = tree.blob_path(&digest);
            sizes
                .entry(digest)
                .or_insert_with(|| std::fs::metadata(path).map_or(0, |m| m.len()));
        }
    }
    progress.start(sizes.values().sum());
    let mut run = Run {
        registry,
        tree,
        options,
        progress,
        sizes,
        counted: HashSet::new(),
        imported_in: HashMap::new(),
        report: ImportReport::default(),
    };
    for layout in layouts {
        run.repository(RepositoryPlan::new(tree, layout)).await?;
    }
    progress.finish();
    Ok(run.report)
}

/// One import's state across repositories.
struct Run<'a> {
    registry: &'a Registry,
    tree: &'a DistributionTree,
    options: ImportOptions,
    progress: &'a dyn ImportProgress,
    sizes: HashMap<Digest, u64>,
    /// Digests already counted on the progress bar.
    counted: HashSet<Digest>,
    /// A repository that holds each blob already, to mount it from instead of copying.
    imported_in: HashMap<Digest, RepositoryName>,
    report: ImportReport,
}

impl Run<'_> {
    fn skip(&mut self, repository: &str, what: String, reason: String) {
        self.report.skipped.push(Skipped {
            repository: repository.to_string(),
            what,
            reason,
        });
    }

    /// Moves the bar past a digest not streamed (already present, or failed).
    fn count(&mut self, digest: &Digest) {
        if self.counted.insert(digest.clone()) {
            self.progress
                .advance(self.sizes.get(digest).copied().unwrap_or(0));
        }
    }

    async fn repository(&mut self, plan: RepositoryPlan) -> Result<(), ImportError> {
        let name_text = plan.layout.name.clone();
        self.progress.repository(&name_text);
        for (link, why) in &plan.layout.unreadable {
            self.skip(&name_text, format!("link {}", link.display()), why.clone());
        }
        let name: RepositoryName = match name_text.parse() {
            Ok(name) => name,
            Err(e) => {
                self.skip(&name_text, "repository".into(), e.to_string());
                return Ok(());
            }
        };
        let mut failed_blobs = BTreeMap::new();
        for digest in &plan.blobs {
            if let Err(reason) = self.blob(&name, digest).await? {
                self.skip(&name_text, format!("blob {digest}"), reason.clone());
                failed_blobs.insert(digest.clone(), reason);
            }
        }
        let mut in_repository = HashSet::new();
        for digest in plan.push_order() {
            let Some(Ok(manifest)) = plan.manifests.get(&digest) else {
                continue;
            };
            let missing_blob = manifest
                .blobs
                .iter()
                .find(|b| failed_blobs.contains_key(*b));
            let missing_child = manifest
                .children
                .iter()
                .find(|c| plan.manifests.contains_key(*c) && !in_repository.contains(*c));
            let reason = match (missing_blob, missing_child) {
                (Some(blob), _) => Some(format!("needs blob {blob}, not imported")),
                (None, Some(child)) => Some(format!("needs manifest {child}, not imported")),
                (None, None) => None,
            };
            if let Some(reason) = reason {
                self.skip(&name_text, format!("manifest {digest}"), reason);
                continue;
            }
            if self.has_manifest(&name, &digest).await? {
                self.report.manifests_present += 1;
                in_repository.insert(digest);
                continue;
            }
            let pushed = self
                .registry
                .put_manifest(
                    &name,
                    &Reference::Digest(digest.clone()),
                    None,
                    manifest.bytes.clone(),
                )
                .await;
            match pushed {
                Ok(_) => {
                    self.report.manifests += 1;
                    in_repository.insert(digest);
                }
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => self.skip(&name_text, format!("manifest {digest}"), e.to_string()),
            }
        }
        for (digest, result) in &plan.manifests {
            if let Err(reason) = result {
                self.skip(&name_text, format!("manifest {digest}"), reason.clone());
            }
        }
        for (tag_text, digest) in &plan.layout.tags {
            self.tag(&name, tag_text, digest, &plan, &in_repository)
                .await?;
        }
        if !in_repository.is_empty() {
            self.report.repositories += 1;
        }
        Ok(())
    }

    async fn tag(
        &mut self,
        name: &RepositoryName,
        tag_text: &str,
        digest: &Digest,
        plan: &RepositoryPlan,
        in_repository: &HashSet<Digest>,
    ) -> Result<(), ImportError> {
        let what = format!("tag {tag_text}");
        let tag: Tag = match tag_text.parse() {
            Ok(tag) => tag,
            Err(e) => {
                self.skip(&plan.layout.name, what, format!("{e}"));
                return Ok(());
            }
        };
        let manifest = match plan.manifests.get(digest) {
            Some(Ok(manifest)) if in_repository.contains(digest) => manifest,
            _ => {
                let reason = format!("points at {digest}, not imported");
                self.skip(&plan.layout.name, what, reason);
                return Ok(());
            }
        };
        let reference = Reference::Tag(tag);
        match self
            .registry
            .find_manifest(name, &reference, &[], false)
            .await
        {
            Ok(current) if current.digest == *digest => {
                self.report.tags_present += 1;
                return Ok(());
            }
            Ok(_) | Err(Error::ManifestUnknown(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match self
            .registry
            .put_manifest(name, &reference, None, manifest.bytes.clone())
            .await
        {
            Ok(_) => self.report.tags += 1,
            Err(e) if is_fatal(&e) => return Err(e.into()),
            Err(e) => self.skip(&plan.layout.name, what, e.to_string()),
        }
        Ok(())
    }

    async fn has_manifest(&self, name: &RepositoryName, digest: &Digest) -> Result<bool, Error> {
        let reference = Reference::Digest(digest.clone());
        match self
            .registry
            .find_manifest(name, &reference, &[], false)
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::ManifestUnknown(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Brings one blob into `name`: already there, mounted from a repository
    /// that has it, or copied with its digest verified. The inner `Err` is
    /// why this blob could not be imported.
    async fn blob(
        &mut self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Result<(), String>, ImportError> {
        match self.registry.blob(name, digest, None, false).await {
            Ok(_) => {
                self.report.blobs_present += 1;
                self.count(digest);
                self.imported_in
                    .entry(digest.clone())
                    .or_insert_with(|| name.clone());
                return Ok(Ok(()));
            }
            Err(Error::BlobUnknown(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(from) = self.imported_in.get(digest).cloned() {
            let mounted = self
                .registry
                .mount_blob(name, digest, Some(&from), None)
                .await?;
            if mounted == crate::MountOutcome::Mounted {
                self.report.blobs_present += 1;
                return Ok(Ok(()));
            }
            if let crate::MountOutcome::Upload(status) = mounted {
                self.registry.cancel_upload(name, &status.id).await?;
            }
        }
        let path = self.tree.blob_path(digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) => {
                self.count(digest);
                let reason = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("missing ({})", path.display())
                } else {
                    format!("{}: {e}", path.display())
                };
                return Ok(Err(reason));
            }
        };
        let progress = if self.counted.contains(digest) {
            None
        } else {
            Some(self.progress)
        };
        let mut linked = false;
        let mut pushed = Ok(());
        if self.options.hard_link {
            let advance = |bytes| {
                if let Some(progress) = progress {
                    progress.advance(bytes);
                }
            };
            match self
                .registry
                .push_blob_linked(name, digest, &path, &advance)
                .await
            {
                Ok(done) => linked = done,
                Err(e) => pushed = Err(e),
            }
        }
        if !linked && pushed.is_ok() {
            pushed = self
                .registry
                .push_blob(name, digest, file_stream(file, progress), None)
                .await;
        }
        self.counted.insert(digest.clone());
        match pushed {
            Ok(()) => {
                let size = self.sizes.get(digest).copied().unwrap_or(0);
                self.report.blobs += 1;
                self.report.bytes += size;
                if linked {
                    self.report.blobs_linked += 1;
                }
                self.imported_in.insert(digest.clone(), name.clone());
                Ok(Ok(()))
            }
            Err(Error::DigestMismatch { actual, .. }) => Ok(Err(format!(
                "corrupt: {} hashes to {actual}",
                path.display()
            ))),
            Err(e) if is_fatal(&e) => Err(e.into()),
            Err(e) => Ok(Err(format!("{}: {e}", path.display()))),
        }
    }
}

/// A file's bytes as a push body, moving `progress` as they are read.
fn file_stream<'a>(
    file: tokio::fs::File,
    progress: Option<&'a dyn ImportProgress>,
) -> crate::ByteStream<'a> {
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let n = file.read_buf(&mut buf).await?;
        Ok((n > 0).then(|| (buf.freeze(), file)))
    })
    .inspect_ok(move |bytes| {
        if let Some(progress) = progress {
            progress.advance(bytes.len() as u64);
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests;

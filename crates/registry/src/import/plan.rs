//! What importing one registry:2 repository involves: its manifests read
//! and verified, the blobs they and the layer links need, in push order.

use super::layout::{DistributionTree, RepositoryLayout};
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::{Digest, ParsedManifest};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// A manifest whose bytes matched its digest and parsed.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    pub bytes: Bytes,
    /// Blobs it needs in the repository (config and layers).
    pub blobs: Vec<Digest>,
    /// Manifests it needs in the repository (an index's children).
    pub children: Vec<Digest>,
}

/// One repository's import, before anything is written.
#[derive(Debug)]
pub struct RepositoryPlan {
    pub layout: RepositoryLayout,
    /// Every manifest a revision or tag link names; `Err` says why it cannot be imported.
    pub manifests: BTreeMap<Digest, Result<LoadedManifest, String>>,
    /// Blobs to bring over: linked layers plus whatever a loaded manifest needs.
    pub blobs: BTreeSet<Digest>,
}

impl RepositoryPlan {
    pub fn new(tree: &DistributionTree, layout: RepositoryLayout) -> Self {
        let wanted: BTreeSet<Digest> = layout
            .revisions
            .iter()
            .chain(layout.tags.iter().map(|(_, d)| d))
            .cloned()
            .collect();
        let manifests: BTreeMap<_, _> = wanted
            .into_iter()
            .map(|d| {
                let loaded = load_manifest(tree, &d);
                (d, loaded)
            })
            .collect();
        let mut blobs: BTreeSet<Digest> = layout.layers.iter().cloned().collect();
        for loaded in manifests.values().flatten() {
            blobs.extend(loaded.blobs.iter().cloned());
        }
        RepositoryPlan {
            layout,
            manifests,
            blobs,
        }
    }

    /// Digests of loaded manifests, children before the indexes naming them,
    /// so that each push finds what it refers to. Cycles (impossible with
    /// honest digests) end up last and fail on their missing children.
    pub fn push_order(&self) -> Vec<Digest> {
        let mut order = Vec::new();
        let mut placed = BTreeSet::new();
        let mut pending: Vec<&Digest> = self
            .manifests
            .iter()
            .filter(|(_, m)| m.is_ok())
            .map(|(d, _)| d)
            .collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|d| {
                let ready = match self.manifests.get(*d) {
                    Some(Ok(m)) => m
                        .children
                        .iter()
                        .all(|c| placed.contains(c) || !self.manifests.contains_key(c)),
                    _ => true,
                };
                if ready {
                    placed.insert((*d).clone());
                    order.push((*d).clone());
                }
                !ready
            });
            if pending.len() == before {
                order.extend(pending.drain(..).cloned());
            }
        }
        order
    }
}

/// Reads a manifest's bytes from the tree, checks them against `digest`, parses them.
fn load_manifest(tree: &DistributionTree, digest: &Digest) -> Result<LoadedManifest, String> {
    let path = tree.blob_path(digest);
    let size = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("its bytes are missing ({})", path.display()))
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if size > MAX_MANIFEST_BYTES as u64 {
        return Err(format!(
            "{size} bytes, over the {MAX_MANIFEST_BYTES} byte manifest limit"
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = digest.algorithm().hasher();
    hasher.update(&bytes);
    let actual = hasher.finish();
    if actual != *digest {
        return Err(format!("corrupt: {} hashes to {actual}", path.display()));
    }
    let parsed = ParsedManifest::parse(&bytes, None).map_err(|e| e.to_string())?;
    Ok(LoadedManifest {
        bytes: Bytes::from(bytes),
        blobs: parsed.blobs.into_iter().map(|d| d.digest).collect(),
        children: parsed.manifests.into_iter().map(|d| d.digest).collect(),
    })
}

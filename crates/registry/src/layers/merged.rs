//! The file tree of a whole image: its layers' listings applied in order,
//! as a container runtime's overlay would show them.

use super::{EntryKind, LayerEntry, LayerListing};
use berth_oci::Digest;
use serde::Serialize;
use std::collections::BTreeMap;

/// One layer of the image, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerRef {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A path as the image finally shows it, and the layer that last set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergedEntry {
    #[serde(flatten)]
    pub entry: LayerEntry,
    /// Index into [`MergedTree::layers`].
    pub layer: usize,
}

/// The merged file tree of an image, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergedTree {
    pub entries: Vec<MergedEntry>,
    /// The image's layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// Layers not applied because the registry does not hold them
    /// (non-distributable layers that live elsewhere).
    pub skipped_layers: Vec<LayerRef>,
    /// Sum of the sizes of the files in the tree.
    pub total_size: u64,
    /// A layer's listing was truncated, or the tree hit its entry bound.
    pub truncated: bool,
}

impl MergedTree {
    /// The digest of the layer that last set `entry`.
    pub fn layer_of(&self, entry: &MergedEntry) -> Option<&Digest> {
        self.layers.get(entry.layer).map(|l| &l.digest)
    }

    /// Applies `layers` (bottom first), keeping at most `max_entries` paths.
    pub fn merge<'a>(
        layers: impl IntoIterator<Item = (LayerRef, &'a LayerListing)>,
        skipped_layers: Vec<LayerRef>,
        max_entries: usize,
    ) -> MergedTree {
        let mut tree = Builder {
            paths: BTreeMap::new(),
            truncated: false,
            max_entries,
        };
        let mut refs = Vec::new();
        for (index, (layer, listing)) in layers.into_iter().enumerate() {
            refs.push(layer);
            tree.apply(index, listing);
        }
        let entries: Vec<MergedEntry> = tree.paths.into_values().collect();
        let total_size = entries
            .iter()
            .filter(|e| e.entry.kind == EntryKind::File)
            .fold(0u64, |sum, e| sum.saturating_add(e.entry.size));
        MergedTree {
            entries,
            layers: refs,
            skipped_layers,
            total_size,
            truncated: tree.truncated,
        }
    }
}

struct Builder {
    paths: BTreeMap<String, MergedEntry>,
    truncated: bool,
    max_entries: usize,
}

impl Builder {
    fn apply(&mut self, layer: usize, listing: &LayerListing) {
        self.truncated |= listing.truncated;
        // Whiteouts act on lower layers only, whatever their place in the tar.
        for e in &listing.entries {
            match e.kind {
                EntryKind::OpaqueWhiteout => self.remove_under(&e.path, layer),
                EntryKind::Whiteout => {
                    self.paths.remove(&e.path);
                    self.remove_under(&e.path, layer);
                }
                _ => {}
            }
        }
        for e in &listing.entries {
            if matches!(e.kind, EntryKind::Whiteout | EntryKind::OpaqueWhiteout) {
                continue;
            }
            if e.kind != EntryKind::Dir {
                // A file over a folder hides the folder's lower contents.
                self.remove_under(&e.path, layer);
            }
            if self.paths.len() >= self.max_entries && !self.paths.contains_key(&e.path) {
                self.truncated = true;
                continue;
            }
            let merged = MergedEntry {
                entry: e.clone(),
                layer,
            };
            self.paths.insert(e.path.clone(), merged);
        }
    }

    /// Removes what layers below `layer` put under folder `dir` (all of the
    /// tree for the root, `""`).
    fn remove_under(&mut self, dir: &str, layer: usize) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .paths
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(_, e)| e.layer < layer)
            .map(|(path, _)| path.clone())
            .collect();
        for path in doomed {
            self.paths.remove(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Compression;
    use super::*;

    fn entry(path: &str, kind: EntryKind, size: u64) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            link_target: None,
        }
    }

    fn listing(entries: Vec<LayerEntry>) -> LayerListing {
        LayerListing {
            total_size: entries.iter().map(|e| e.size).sum(),
            entries,
            truncated: false,
            compression: Compression::None,
        }
    }

    fn layer(n: u8) -> LayerRef {
        LayerRef {
            digest: Digest::sha256_of(&[n]),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            size: 1,
        }
    }

    fn paths(tree: &MergedTree) -> Vec<(&str, usize)> {
        tree.entries
            .iter()
            .map(|e| (e.entry.path.as_str(), e.layer))
            .collect()
    }

    #[test]
    fn a_file_replacing_a_folder_hides_its_lower_contents() {
        let base = listing(vec![
            entry("opt", EntryKind::Dir, 0),
            entry("opt/tool", EntryKind::File, 5),
        ]);
        let top = listing(vec![entry("opt", EntryKind::Symlink, 0)]);
        let tree = MergedTree::merge([(layer(0), &base), (layer(1), &top)], vec![], 100);
        assert_eq!(paths(&tree), [("opt", 1)]);
        assert_eq!(tree.total_size, 0);
    }

    #[test]
    fn an_opaque_whiteout_keeps_what_its_own_layer_adds() {
        let base = listing(vec![
            entry("a", EntryKind::Dir, 0),
            entry("a/old", EntryKind::File, 1),
            entry("ab", EntryKind::File, 2),
        ]);
        // The new file comes before the marker in the tar: order must not matter.
        let top = listing(vec![
            entry("a/new", EntryKind::File, 3),
            entry("a", EntryKind::OpaqueWhiteout, 0),
        ]);
        let tree = MergedTree::merge([(layer(0), &base), (layer(1), &top)], vec![], 100);
        assert_eq!(paths(&tree), [("a", 0), ("a/new", 1), ("ab", 0)]);
        assert_eq!(tree.layer_of(&tree.entries[1]), Some(&layer(1).digest));
    }

    #[test]
    fn serialises_in_snake_case_like_the_rest_of_api_v1() {
        let base = listing(vec![entry("f", EntryKind::File, 1)]);
        let tree = MergedTree::merge([(layer(0), &base)], vec![layer(9)], 10);
        let json = serde_json::to_value(&tree).unwrap();
        assert_eq!(json["total_size"], 1);
        assert_eq!(json["entries"][0]["layer"], 0);
        assert_eq!(json["entries"][0]["type"], "file");
        assert!(json["layers"][0]["media_type"].is_string(), "{json}");
        assert!(json["skipped_layers"][0]["digest"].is_string(), "{json}");
    }

    #[test]
    fn the_entry_bound_truncates_the_tree() {
        let base = listing(
            (0..10)
                .map(|i| entry(&format!("f{i}"), EntryKind::File, 1))
                .collect(),
        );
        let tree = MergedTree::merge([(layer(0), &base)], vec![], 4);
        assert_eq!(tree.entries.len(), 4);
        assert!(tree.truncated);
    }
}

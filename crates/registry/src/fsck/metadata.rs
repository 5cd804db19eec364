//! The metadata against the bytes: every row that points at content has it,
//! every manifest parses and everything it references is in its repository
//! with the size it declares, and every tag names a manifest that can be served.

use super::blobs::{relative_path, Inventory};
use super::problem::{ContentFault, ManifestFault, Problem};
use super::rows::{ManifestRow, RefRow, Snapshot};
use berth_oci::{Digest, ParsedManifest, RepositoryName};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

/// A repository's id and a digest: how rows name their content.
type Key = (i64, Digest);

/// The references of a manifest that parsed: blobs and child manifests with declared sizes.
struct Parsed {
    blobs: Vec<(Digest, u64)>,
    children: Vec<(Digest, u64)>,
}

/// Blobs that are intact but in no repository: fine (deletes only unlink), reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unreferenced {
    pub count: u64,
    pub bytes: u64,
}

pub struct Findings {
    pub problems: Vec<Problem>,
    pub unreferenced: Unreferenced,
}

fn content_fault(inventory: &Inventory, digest: &Digest, recorded: i64) -> Option<ContentFault> {
    match inventory.files.get(digest) {
        None => Some(ContentFault::Missing),
        Some(f) if !f.intact => Some(ContentFault::Corrupt),
        Some(f) if recorded < 0 || f.size != recorded as u64 => Some(ContentFault::SizeDiffers {
            recorded: recorded.max(0) as u64,
            actual: f.size,
        }),
        Some(_) => None,
    }
}

/// Reads and parses a manifest whose blob file is intact.
fn parse_manifest(root: &Path, digest: &Digest, media_type: &str) -> Result<Parsed, String> {
    let bytes = std::fs::read(root.join(relative_path(digest))).map_err(|e| e.to_string())?;
    let parsed = ParsedManifest::parse(&bytes, Some(media_type)).map_err(|e| e.to_string())?;
    let sized = |d: &berth_oci::Descriptor| (d.digest.clone(), d.size);
    Ok(Parsed {
        blobs: parsed.blobs.iter().map(sized).collect(),
        children: parsed.manifests.iter().map(sized).collect(),
    })
}

/// The `manifest_refs` rows of a manifest.
fn refs_of<'a>(snap: &'a Snapshot, row: &'a ManifestRow) -> impl Iterator<Item = &'a RefRow> {
    snap.refs
        .iter()
        .filter(move |r| r.repo_id == row.repo_id && r.manifest == row.digest)
}

pub fn check(root: &Path, snap: &Snapshot, inventory: &Inventory) -> Findings {
    let mut problems = Vec::new();
    for name in snap.repositories.values() {
        if name.parse::<RepositoryName>().is_err() {
            problems.push(Problem::BadRepositoryName { name: name.clone() });
        }
    }
    let linked = blob_links(snap, inventory, &mut problems);
    let manifests = Manifests::judge(root, snap, inventory, &linked, &mut problems);
    manifests.report(snap, &mut problems);
    let servable = manifests.servable(snap);
    manifest_refs(snap, &servable, &manifests.broken(snap), &mut problems);
    tags(snap, &servable, &mut problems);
    Findings {
        problems,
        unreferenced: unreferenced(snap, inventory),
    }
}

fn known(snap: &Snapshot, repo_id: i64) -> bool {
    snap.repositories.contains_key(&repo_id)
}

/// Blob links: each needs its intact file, of the recorded size. Returns the good ones.
fn blob_links(
    snap: &Snapshot,
    inventory: &Inventory,
    problems: &mut Vec<Problem>,
) -> HashMap<Key, u64> {
    let mut linked = HashMap::new();
    for row in &snap.repo_blobs {
        let repo = snap.repo_name(row.repo_id);
        if !known(snap, row.repo_id) {
            problems.push(Problem::OrphanRow {
                row: row.stored(&repo),
            });
            continue;
        }
        let fault = match row.digest.parse::<Digest>() {
            Err(_) => ContentFault::BadDigest,
            Ok(digest) => match content_fault(inventory, &digest, row.size) {
                None => {
                    linked.insert((row.repo_id, digest), row.size as u64);
                    continue;
                }
                Some(fault) => fault,
            },
        };
        problems.push(Problem::BrokenBlobLink {
            repo: repo.clone(),
            digest: row.digest.clone(),
            fault,
            row: row.stored(&repo),
        });
    }
    linked
}

/// Which manifest rows (by index into the snapshot) can be served, and why the others cannot.
struct Manifests {
    parsed: HashMap<usize, Parsed>,
    faults: BTreeMap<usize, ManifestFault>,
    /// Blobs servable manifests need that are intact but unlinked: the first manifest and the size.
    relinks: BTreeMap<Key, (String, u64)>,
}

impl Manifests {
    fn judge(
        root: &Path,
        snap: &Snapshot,
        inventory: &Inventory,
        linked: &HashMap<Key, u64>,
        problems: &mut Vec<Problem>,
    ) -> Manifests {
        let mut m = Manifests {
            parsed: HashMap::new(),
            faults: BTreeMap::new(),
            relinks: BTreeMap::new(),
        };
        let by_key = m.own_content(root, snap, inventory, problems);
        m.blobs(snap, inventory, linked);
        m.children(snap, &by_key);
        m
    }

    /// Each manifest's own bytes: intact, of the recorded size, parseable.
    fn own_content(
        &mut self,
        root: &Path,
        snap: &Snapshot,
        inventory: &Inventory,
        problems: &mut Vec<Problem>,
    ) -> HashMap<Key, usize> {
        let mut by_key = HashMap::new();
        for (i, row) in snap.manifests.iter().enumerate() {
            if !known(snap, row.repo_id) {
                problems.push(Problem::OrphanRow {
                    row: row.stored(&snap.repo_name(row.repo_id)),
                });
                continue;
            }
            let Ok(digest) = row.digest.parse::<Digest>() else {
                self.faults
                    .insert(i, ManifestFault::Content(ContentFault::BadDigest));
                continue;
            };
            by_key.insert((row.repo_id, digest.clone()), i);
            if let Some(fault) = content_fault(inventory, &digest, row.size) {
                self.faults.insert(i, ManifestFault::Content(fault));
                continue;
            }
            match parse_manifest(root, &digest, &row.media_type) {
                Ok(p) => {
                    self.parsed.insert(i, p);
                }
                Err(e) => {
                    self.faults.insert(i, ManifestFault::Unparseable(e));
                }
            }
        }
        by_key
    }

    /// The blobs each manifest references are linked in its repository with the declared size.
    fn blobs(&mut self, snap: &Snapshot, inventory: &Inventory, linked: &HashMap<Key, u64>) {
        for (&i, p) in &self.parsed {
            let row = &snap.manifests[i];
            let lazy = snap.cached.contains(&row.repo_id);
            let mut wanted = Vec::new();
            let fault = p.blobs.iter().find_map(|(digest, declared)| {
                let key = (row.repo_id, digest.clone());
                match linked.get(&key) {
                    Some(linked) if linked == declared => None,
                    Some(linked) => Some(ManifestFault::BlobSizeDiffers {
                        digest: digest.to_string(),
                        declared: *declared,
                        linked: *linked,
                    }),
                    // A cache links a blob when it is pulled, after asking
                    // the upstream: fsck neither wants it nor links it.
                    None if lazy => None,
                    None if inventory.intact(digest) == Some(*declared) => {
                        wanted.push((key, *declared));
                        None
                    }
                    None => Some(ManifestFault::BlobMissing {
                        digest: digest.to_string(),
                    }),
                }
            });
            match fault {
                Some(fault) => {
                    self.faults.insert(i, fault);
                }
                None => {
                    for (key, size) in wanted {
                        self.relinks
                            .entry(key)
                            .or_insert((row.digest.clone(), size));
                    }
                }
            }
        }
    }

    /// An index is servable only if its children are: repeat until nothing changes.
    fn children(&mut self, snap: &Snapshot, by_key: &HashMap<Key, usize>) {
        loop {
            let mut newly_broken = Vec::new();
            for (&i, p) in &self.parsed {
                if self.faults.contains_key(&i) {
                    continue;
                }
                let repo_id = snap.manifests[i].repo_id;
                let lazy = snap.cached.contains(&repo_id);
                let fault = p.children.iter().find_map(|(digest, declared)| {
                    let child = by_key
                        .get(&(repo_id, digest.clone()))
                        .filter(|c| !self.faults.contains_key(c));
                    match child.map(|&c| snap.manifests[c].size as u64) {
                        Some(stored) if stored == *declared => None,
                        Some(stored) => Some(ManifestFault::ChildSizeDiffers {
                            digest: digest.to_string(),
                            declared: *declared,
                            stored,
                        }),
                        None if lazy => None,
                        None => Some(ManifestFault::ChildMissing {
                            digest: digest.to_string(),
                        }),
                    }
                });
                if let Some(fault) = fault {
                    newly_broken.push((i, fault));
                }
            }
            if newly_broken.is_empty() {
                return;
            }
            self.faults.extend(newly_broken);
        }
    }

    fn report(&self, snap: &Snapshot, problems: &mut Vec<Problem>) {
        for (&i, fault) in &self.faults {
            let row = &snap.manifests[i];
            let repo = snap.repo_name(row.repo_id);
            let mut rows = vec![row.stored(&repo)];
            rows.extend(refs_of(snap, row).map(|r| r.stored(&repo)));
            problems.push(Problem::BrokenManifest {
                repo,
                digest: row.digest.clone(),
                fault: fault.clone(),
                rows,
            });
        }
        for ((repo_id, digest), (manifest, size)) in &self.relinks {
            problems.push(Problem::UnlinkedBlob {
                repo: snap.repo_name(*repo_id),
                repo_id: *repo_id,
                manifest: manifest.clone(),
                digest: digest.to_string(),
                size: *size,
            });
        }
    }

    /// Servable manifests by (repository id, digest), with the digests they reference.
    fn servable<'s>(&self, snap: &'s Snapshot) -> HashMap<(i64, &'s str), HashSet<String>> {
        self.parsed
            .iter()
            .filter(|(i, _)| !self.faults.contains_key(i))
            .map(|(&i, p)| {
                let row = &snap.manifests[i];
                let children = p.blobs.iter().chain(&p.children);
                let children = children.map(|(d, _)| d.to_string()).collect();
                ((row.repo_id, row.digest.as_str()), children)
            })
            .collect()
    }

    /// Manifests to be removed, whose `manifest_refs` rows go with them.
    fn broken<'s>(&self, snap: &'s Snapshot) -> HashSet<(i64, &'s str)> {
        self.faults
            .keys()
            .map(|&i| &snap.manifests[i])
            .map(|m| (m.repo_id, m.digest.as_str()))
            .collect()
    }
}

/// `manifest_refs` holds exactly the references of each servable manifest.
fn manifest_refs(
    snap: &Snapshot,
    servable: &HashMap<(i64, &str), HashSet<String>>,
    broken: &HashSet<(i64, &str)>,
    problems: &mut Vec<Problem>,
) {
    let mut recorded: HashSet<(i64, &str, &str)> = HashSet::new();
    for r in &snap.refs {
        let repo = snap.repo_name(r.repo_id);
        if !known(snap, r.repo_id) {
            problems.push(Problem::OrphanRow {
                row: r.stored(&repo),
            });
            continue;
        }
        if broken.contains(&(r.repo_id, r.manifest.as_str())) {
            continue; // removed with its broken manifest
        }
        let referenced = servable
            .get(&(r.repo_id, r.manifest.as_str()))
            .is_some_and(|children| children.contains(&r.child));
        if referenced {
            recorded.insert((r.repo_id, r.manifest.as_str(), r.child.as_str()));
        } else {
            problems.push(Problem::StaleRef {
                repo: repo.clone(),
                manifest: r.manifest.clone(),
                child: r.child.clone(),
                row: r.stored(&repo),
            });
        }
    }
    let mut missing = BTreeSet::new();
    for (&(repo_id, manifest), children) in servable {
        for child in children {
            if !recorded.contains(&(repo_id, manifest, child.as_str())) {
                missing.insert((repo_id, manifest.to_string(), child.clone()));
            }
        }
    }
    for (repo_id, manifest, child) in missing {
        problems.push(Problem::MissingRef {
            repo: snap.repo_name(repo_id),
            repo_id,
            manifest,
            child,
        });
    }
}

/// Each tag names a servable manifest of its repository.
fn tags(
    snap: &Snapshot,
    servable: &HashMap<(i64, &str), HashSet<String>>,
    problems: &mut Vec<Problem>,
) {
    for t in &snap.tags {
        let repo = snap.repo_name(t.repo_id);
        if !known(snap, t.repo_id) {
            problems.push(Problem::OrphanRow {
                row: t.stored(&repo),
            });
        } else if !servable.contains_key(&(t.repo_id, t.digest.as_str())) {
            problems.push(Problem::DanglingTag {
                repo: repo.clone(),
                tag: t.name.clone(),
                digest: t.digest.clone(),
                row: t.stored(&repo),
            });
        }
    }
}

/// Intact blobs no row names.
fn unreferenced(snap: &Snapshot, inventory: &Inventory) -> Unreferenced {
    let named: HashSet<&str> = snap
        .repo_blobs
        .iter()
        .map(|r| r.digest.as_str())
        .chain(snap.manifests.iter().map(|m| m.digest.as_str()))
        .collect();
    let mut unreferenced = Unreferenced::default();
    for (digest, file) in &inventory.files {
        if file.intact && !named.contains(digest.to_string().as_str()) {
            unreferenced.count += 1;
            unreferenced.bytes += file.size;
        }
    }
    unreferenced
}

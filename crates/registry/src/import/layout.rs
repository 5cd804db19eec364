//! Reads the on-disk layout of CNCF distribution (`registry:2`)'s filesystem
//! driver: `docker/registry/v2/{blobs,repositories}`. Only link files say
//! what a repository holds; this module lists them and finds blob files, it
//! never trusts a blob's content (the importer verifies every digest).

use berth_oci::Digest;
use std::io;
use std::path::{Path, PathBuf};

/// Folders inside a repository folder that belong to the repository itself
/// rather than naming a nested repository.
const REPOSITORY_MARKERS: [&str; 3] = ["_manifests", "_layers", "_uploads"];

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "{0} holds no registry:2 data (expected docker/registry/v2/repositories or \
         repositories/ inside it)"
    )]
    NotADistributionTree(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |e| LayoutError::Io(path.to_path_buf(), e)
}

/// A registry:2 storage tree: the `docker/registry/v2` folder.
#[derive(Debug, Clone)]
pub struct DistributionTree {
    v2: PathBuf,
}

/// What one repository's link files say it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepositoryLayout {
    /// The repository name, `/`-separated as clients spell it.
    pub name: String,
    /// Blobs linked into the repository (`_layers/<alg>/<hex>/link`).
    pub layers: Vec<Digest>,
    /// Manifests stored in the repository, tagged or not
    /// (`_manifests/revisions/<alg>/<hex>/link`).
    pub revisions: Vec<Digest>,
    /// Tags and the manifest each currently points at
    /// (`_manifests/tags/<tag>/current/link`).
    pub tags: Vec<(String, Digest)>,
    /// Link files that could not be read as a digest, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl DistributionTree {
    /// Finds the tree given the folder `registry:2` was configured with
    /// (holding `docker/registry/v2`) or the `v2` folder itself.
    /// The v2 folder itself must hold `repositories/`: berth's own data
    /// folder also has a `blobs/sha256`, and must not pass for one.
    pub fn locate(src: &Path) -> Result<Self, LayoutError> {
        let nested = src.join("docker").join("registry").join("v2");
        for v2 in [nested, src.into()] {
            if v2.join("repositories").is_dir() {
                return Ok(DistributionTree { v2 });
            }
        }
        Err(LayoutError::NotADistributionTree(src.to_path_buf()))
    }

    /// The `docker/registry/v2` folder.
    pub fn v2(&self) -> &Path {
        &self.v2
    }

    /// Where registry:2 keeps a blob's (or a manifest's) bytes.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.v2
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Whether the tree holds at least one repository; stops at the first.
    pub fn has_repositories(&self) -> bool {
        let mut found = false;
        let _ = walk(&self.v2.join("repositories"), "", &mut |_, _| {
            found = true;
            false
        });
        found
    }

    /// Every repository, nested names included, sorted by name.
    pub fn repositories(&self) -> Result<Vec<RepositoryLayout>, LayoutError> {
        let mut found = Vec::new();
        let root = self.v2.join("repositories");
        if !root.is_dir() {
            return Ok(found);
        }
        let mut failure = None;
        walk(&root, "", &mut |name, dir| {
            match read_repository(name, dir) {
                Ok(repo) => found.push(repo),
                Err(e) => failure = Some(e),
            }
            failure.is_none()
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}

/// Calls `visit(name, folder)` for each repository under `dir`, depth first,
/// until it answers false. A folder is a repository when it holds one of
/// [`REPOSITORY_MARKERS`]; it may also hold nested repositories.
fn walk(
    dir: &Path,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &Path) -> bool,
) -> Result<bool, LayoutError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    entries.sort();
    let is_repository = !prefix.is_empty()
        && entries
            .iter()
            .any(|e| REPOSITORY_MARKERS.contains(&e.as_str()));
    if is_repository && !visit(prefix, dir) {
        return Ok(false);
    }
    for entry in entries.iter().filter(|e| !e.starts_with('_')) {
        let name = if prefix.is_empty() {
            entry.clone()
        } else {
            format!("{prefix}/{entry}")
        };
        if !walk(&dir.join(entry), &name, visit)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn read_repository(name: &str, dir: &Path) -> Result<RepositoryLayout, LayoutError> {
    let mut repo = RepositoryLayout {
        name: name.to_string(),
        ..Default::default()
    };
    let manifests = dir.join("_manifests");
    for (link, digest) in digest_links(&dir.join("_layers"))? {
        push_link(&mut repo.unreadable, &mut repo.layers, link, digest);
    }
    for (link, digest) in digest_links(&manifests.join("revisions"))? {
        push_link(&mut repo.unreadable, &mut repo.revisions, link, digest);
    }
    let tags_dir = manifests.join("tags");
    for tag in sorted_subdirs(&tags_dir)? {
        let link = tags_dir.join(&tag).join("current").join("link");
        // A tag folder without `current` is what a deleted tag leaves.
        if !link.is_file() {
            continue;
        }
        match read_link(&link) {
            Ok(digest) => repo.tags.push((tag, digest)),
            Err(why) => repo.unreadable.push((link, why)),
        }
    }
    Ok(repo)
}

fn push_link(
    unreadable: &mut Vec<(PathBuf, String)>,
    digests: &mut Vec<Digest>,
    link: PathBuf,
    digest: Result<Digest, String>,
) {
    match digest {
        Ok(d) => digests.push(d),
        Err(why) => unreadable.push((link, why)),
    }
}

/// A link file and the digest it names, or why it names none.
type Link = (PathBuf, Result<Digest, String>);

/// The `link` files of `<dir>/<alg>/<hex>/link`, each read as a digest that
/// must agree with the folder it sits in. Absent folders hold nothing.
fn digest_links(dir: &Path) -> Result<Vec<Link>, LayoutError> {
    let mut links = Vec::new();
    for alg in sorted_subdirs(dir)? {
        let alg_dir = dir.join(&alg);
        for hex in sorted_subdirs(&alg_dir)? {
            let link = alg_dir.join(&hex).join("link");
            // registry:2 removes only the link file when it deletes.
            if !link.is_file() {
                continue;
            }
            let digest = read_link(&link).and_then(|d| {
                if d.algorithm().as_str() == alg && d.hex() == hex {
                    Ok(d)
                } else {
                    Err(format!("names {d}, but sits in the folder of {alg}:{hex}"))
                }
            });
            links.push((link, digest));
        }
    }
    Ok(links)
}

fn read_link(link: &Path) -> Result<Digest, String> {
    let text = std::fs::read_to_string(link).map_err(|e| e.to_string())?;
    text.trim()
        .parse::<Digest>()
        .map_err(|e| format!("{:?} is not a digest: {e}", text.trim()))
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<String>, LayoutError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LayoutError::Io(dir.to_path_buf(), e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn digest_of(content: &[u8]) -> Digest {
        Digest::sha256_of(content)
    }

    /// Writes `content` as registry:2 stores a blob and returns its digest.
    fn blob(v2: &Path, content: &[u8]) -> Digest {
        let d = digest_of(content);
        let dir = v2.join("blobs/sha256").join(&d.hex()[..2]).join(d.hex());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("data"), content).unwrap();
        d
    }

    fn link(path: PathBuf, digest: &Digest) {
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join("link"), digest.to_string()).unwrap();
    }

    fn layer(v2: &Path, repo: &str, d: &Digest) {
        link(
            v2.join("repositories")
                .join(repo)
                .join("_layers/sha256")
                .join(d.hex()),
            d,
        );
    }

    fn revision(v2: &Path, repo: &str, d: &Digest) {
        link(
            v2.join("repositories")
                .join(repo)
                .join("_manifests/revisions/sha256")
                .join(d.hex()),
            d,
        );
    }

    fn tag(v2: &Path, repo: &str, tag: &str, d: &Digest) {
        let tag_dir = v2
            .join("repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag);
        link(tag_dir.join("current"), d);
        link(tag_dir.join("index/sha256").join(d.hex()), d);
    }

    #[test]
    fn locates_the_tree_from_the_root_folder_or_the_v2_folder() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("docker/registry/v2");
        fs::create_dir_all(v2.join("repositories")).unwrap();
        let from_root = DistributionTree::locate(dir.path()).unwrap();
        assert_eq!(from_root.v2(), v2);
        let from_v2 = DistributionTree::locate(&v2).unwrap();
        assert_eq!(from_v2.v2(), v2);
        // An empty folder, or berth's own data folder, is not one.
        let berth = tempfile::tempdir().unwrap();
        fs::create_dir_all(berth.path().join("blobs/sha256/ab")).unwrap();
        assert!(matches!(
            DistributionTree::locate(berth.path()),
            Err(LayoutError::NotADistributionTree(_))
        ));
    }

    #[test]
    fn reads_nested_repositories_their_layers_revisions_and_current_tags() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("docker/registry/v2");
        let layer_a = blob(&v2, b"layer a");
        let old = blob(&v2, b"{\"old\":1}");
        let new = blob(&v2, b"{\"new\":1}");
        let untagged = blob(&v2, b"{\"untagged\":1}");
        layer(&v2, "a", &layer_a);
        revision(&v2, "a", &new);
        tag(&v2, "a", "latest", &new);
        // a/b/c is a repository nested under repository a, with a folder between.
        layer(&v2, "a/b/c", &layer_a);
        revision(&v2, "a/b/c", &old);
        revision(&v2, "a/b/c", &untagged);
        tag(&v2, "a/b/c", "v1", &old);
        // The tag moved: its history keeps the old digest, `current` the new one.
        let v1 = v2.join("repositories/a/b/c/_manifests/tags/v1");
        link(v1.join("current"), &new);
        // A deleted tag keeps its folder but loses `current`.
        let gone = v2.join("repositories/a/b/c/_manifests/tags/gone/index/sha256");
        link(gone.join(old.hex()), &old);
        // A deleted layer keeps its folder but loses the link.
        fs::create_dir_all(v2.join("repositories/a/_layers/sha256/00ff")).unwrap();

        let tree = DistributionTree::locate(dir.path()).unwrap();
        assert!(tree.has_repositories());
        let repos = tree.repositories().unwrap();
        let names: Vec<_> = repos.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "a/b/c"]);
        assert_eq!(repos[0].layers, std::slice::from_ref(&layer_a));
        assert_eq!(repos[0].revisions, std::slice::from_ref(&new));
        assert_eq!(repos[0].tags, [("latest".to_string(), new.clone())]);
        let mut revisions = vec![old.clone(), untagged.clone()];
        revisions.sort_by_key(|d| d.to_string());
        assert_eq!(repos[1].revisions, revisions);
        assert_eq!(repos[1].tags, [("v1".to_string(), new.clone())]);
        assert!(repos.iter().all(|r| r.unreadable.is_empty()));
        assert!(tree.blob_path(&layer_a).is_file());
        assert_eq!(
            fs::read(tree.blob_path(&untagged)).unwrap(),
            b"{\"untagged\":1}"
        );
    }

    #[test]
    fn a_link_that_disagrees_with_its_folder_is_reported_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().to_path_buf();
        let real = blob(&v2, b"x");
        let other = digest_of(b"y");
        link(
            v2.join("repositories/r/_layers/sha256").join(real.hex()),
            &other,
        );
        let garbage = v2.join("repositories/r/_manifests/revisions/sha256/abc");
        fs::create_dir_all(&garbage).unwrap();
        fs::write(garbage.join("link"), "not a digest").unwrap();
        let repos = DistributionTree::locate(&v2)
            .unwrap()
            .repositories()
            .unwrap();
        assert_eq!(repos.len(), 1);
        assert!(repos[0].layers.is_empty());
        assert!(repos[0].revisions.is_empty());
        assert_eq!(repos[0].unreadable.len(), 2, "{:?}", repos[0].unreadable);
    }

    #[test]
    fn an_empty_tree_has_no_repositories() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(
            dir.path()
                .join("docker/registry/v2/repositories/just/folders"),
        )
        .unwrap();
        let tree = DistributionTree::locate(dir.path()).unwrap();
        assert!(!tree.has_repositories());
        assert!(tree.repositories().unwrap().is_empty());
    }
}

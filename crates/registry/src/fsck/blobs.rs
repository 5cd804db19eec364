//! The blob files: where each may live (`blobs/<alg>/<ab>/<hex>`), and
//! whether its content hashes to the digest its path names.

use super::{Problem, Progress};
use berth_oci::{Algorithm, Digest};
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes read per call while hashing.
const HASH_CHUNK: usize = 1 << 20;

/// Most files hashed at once.
const HASH_THREADS: usize = 4;

/// A blob file as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobFile {
    pub size: u64,
    /// Its content hashes to its digest.
    pub intact: bool,
}

/// Every blob file, by the digest its path names.
#[derive(Default)]
pub struct Inventory {
    pub files: HashMap<Digest, BlobFile>,
    pub bytes_hashed: u64,
}

impl Inventory {
    /// The file of `digest` if it is there and intact.
    pub fn intact(&self, digest: &Digest) -> Option<u64> {
        self.files.get(digest).filter(|f| f.intact).map(|f| f.size)
    }
}

/// Where the blob of `digest` lives, relative to the data folder.
pub fn relative_path(digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    Path::new("blobs")
        .join(digest.algorithm().as_str())
        .join(&hex[..2])
        .join(hex)
}

fn algorithm_named(name: &str) -> Option<Algorithm> {
    match name {
        "sha256" => Some(Algorithm::Sha256),
        "sha512" => Some(Algorithm::Sha512),
        _ => None,
    }
}

fn is_fan_out(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A directory entry, as the walk needs it.
struct Entry {
    name: String,
    /// Relative to the data folder.
    path: PathBuf,
    is_dir: bool,
    is_file: bool,
    size: u64,
}

/// A file where a blob can be: its digest, relative path and size.
struct Located {
    digest: Digest,
    path: PathBuf,
    size: u64,
}

/// Entries of `dir` (relative to `root`), sorted by name. Symlinks are neither files nor folders.
fn entries(root: &Path, dir: &Path) -> io::Result<Vec<Entry>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root.join(dir))? {
        let entry = entry?;
        let kind = entry.file_type()?; // does not follow symlinks
        let size = if kind.is_file() {
            entry.metadata()?.len()
        } else {
            0
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        found.push(Entry {
            path: dir.join(entry.file_name()),
            name,
            is_dir: kind.is_dir(),
            is_file: kind.is_file(),
            size,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Files that are where a blob can be, and the entries that are not.
fn layout(root: &Path) -> io::Result<(Vec<Located>, Vec<Problem>)> {
    let (mut blobs, mut strays) = (Vec::new(), Vec::new());
    let mut stray = |path: PathBuf, why| strays.push(Problem::StrayEntry { path, why });
    if !root.join("blobs").is_dir() {
        return Ok((blobs, strays));
    }
    for alg in entries(root, Path::new("blobs"))? {
        let Some(algorithm) = algorithm_named(&alg.name).filter(|_| alg.is_dir) else {
            stray(alg.path, "not a digest algorithm's folder");
            continue;
        };
        for fan in entries(root, &alg.path)? {
            if !fan.is_dir || !is_fan_out(&fan.name) {
                stray(fan.path, "not a two-hex-digit fan-out folder");
                continue;
            }
            for file in entries(root, &fan.path)? {
                let digest = format!("{}:{}", algorithm.as_str(), file.name).parse::<Digest>();
                match digest {
                    Ok(_) if !file.is_file => stray(file.path, "not a regular file"),
                    Ok(digest) if digest.hex().starts_with(&fan.name) => blobs.push(Located {
                        digest,
                        path: file.path,
                        size: file.size,
                    }),
                    Ok(_) => stray(file.path, "in another digest's fan-out folder"),
                    Err(_) => stray(file.path, "name is not a digest"),
                }
            }
        }
    }
    Ok((blobs, strays))
}

/// The digest of the file's content, or why it could not be read.
fn hash_file(
    path: &Path,
    algorithm: Algorithm,
    progress: &dyn Progress,
) -> Result<Digest, io::Error> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; HASH_CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
}

/// What hashing found wrong with a file: `None` when it is intact.
fn fault_of(root: &Path, blob: &Located, progress: &dyn Progress) -> Option<String> {
    match hash_file(&root.join(&blob.path), blob.digest.algorithm(), progress) {
        Ok(actual) if actual == blob.digest => None,
        Ok(actual) => Some(actual.to_string()),
        Err(e) => Some(format!("unreadable ({e})")),
    }
}

/// Hashes `blobs` on a few threads: one file's reads overlap another's
/// hashing, which on a cold disk is most of the difference.
fn hash_all(
    root: &Path,
    blobs: &[Located],
    progress: &dyn Progress,
) -> io::Result<Vec<Option<String>>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, HASH_THREADS);
    let next = AtomicUsize::new(0);
    let mut faults = vec![None; blobs.len()];
    std::thread::scope(|scope| {
        let worker = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(blob) = blobs.get(i) else {
                    return done;
                };
                done.push((i, fault_of(root, blob, progress)));
            }
        };
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
        for handle in handles {
            let done = handle
                .join()
                .map_err(|_| io::Error::other("a hashing thread panicked"))?;
            for (i, fault) in done {
                faults[i] = fault;
            }
        }
        Ok::<_, io::Error>(())
    })?;
    Ok(faults)
}

/// Walks `blobs/` under `root` and hashes every blob file.
pub fn scan(root: &Path, progress: &dyn Progress) -> io::Result<(Inventory, Vec<Problem>)> {
    let (blobs, mut problems) = layout(root)?;
    progress.start(blobs.iter().map(|b| b.size).sum());
    let faults = hash_all(root, &blobs, progress)?;
    progress.finish();
    let mut inventory = Inventory::default();
    for (Located { digest, path, size }, fault) in blobs.into_iter().zip(faults) {
        inventory.bytes_hashed += size;
        let intact = fault.is_none();
        if let Some(found) = fault {
            problems.push(Problem::CorruptBlob { path, found });
        }
        inventory.files.insert(digest, BlobFile { size, intact });
    }
    Ok((inventory, problems))
}

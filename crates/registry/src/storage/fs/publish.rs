//! Publishing verified bytes under their digest, durably.
//!
//! The rule: before a publish returns, the blob's bytes, its directory entry
//! and the entries of every folder on its path are on disk, whichever path
//! was taken (a new fan-out folder, one another publisher is creating at the
//! same moment, or a digest that is already stored).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Fan-out folders (`blobs/<alg>/<ab>`) whose entries, and their parents',
/// this process has made durable, so that publishing into them needs one
/// directory fsync, not three.
#[derive(Default)]
pub(super) struct DurableDirs {
    known: Mutex<HashSet<PathBuf>>,
}

impl DurableDirs {
    fn contains(&self, dir: &Path) -> bool {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.contains(dir)
    }

    fn insert(&self, dir: PathBuf) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(dir);
    }
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Makes `tmp` (verified content) durable and visible at `dest`.
///
/// An existing `dest` is replaced, never trusted: it may be a copy a crash
/// or a disk error damaged, and the bytes in hand are the verified ones.
/// Readers holding the old file keep reading it; the rename is atomic.
pub(super) fn publish(tmp: &Path, dest: &Path, durable: &DurableDirs) -> io::Result<()> {
    std::fs::File::open(tmp)?.sync_all()?;
    let dir = dest
        .parent()
        .ok_or_else(|| io::Error::other("blob path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    std::fs::rename(tmp, dest)?;
    sync_dir(dir)?;
    if !durable.contains(dir) {
        // The folder may be new (ours or a racing publisher's, who may not
        // have synced it yet): make `<ab>` durable in `<alg>`, `<alg>` in `blobs`.
        for ancestor in dir.ancestors().skip(1).take(2) {
            sync_dir(ancestor)?;
        }
        durable.insert(dir.to_path_buf());
    }
    Ok(())
}

//! Mounting the model, crashing it, and mounting what survived.

use crate::model::Tree;
use crate::ops::Ops;
use fuser::{BackgroundSession, Config, MountOption};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const FUSE_THREADS: usize = 4;

/// A mounted crashfs. Dropping it unmounts (and forgets everything).
pub struct CrashFs {
    tree: Arc<Mutex<Tree>>,
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
}

impl CrashFs {
    /// Mounts an empty filesystem of `capacity` bytes on `mountpoint`.
    pub fn mount(mountpoint: &Path, capacity: u64) -> io::Result<CrashFs> {
        let mut fs = CrashFs {
            tree: Arc::new(Mutex::new(Tree::new(capacity))),
            mountpoint: mountpoint.to_path_buf(),
            session: None,
        };
        fs.remount()?;
        Ok(fs)
    }

    fn remount(&mut self) -> io::Result<()> {
        let (uid, gid) = own_ids();
        let ops = Ops {
            tree: Arc::clone(&self.tree),
            uid,
            gid,
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("crashfs".into()),
            MountOption::Subtype("crashfs".into()),
        ];
        // Several threads, so that a slow fsync does not stall every request.
        config.n_threads = Some(FUSE_THREADS);
        self.session = Some(fuser::spawn_mount(ops, &self.mountpoint, &config)?);
        Ok(())
    }

    /// Unmounts; every process using the filesystem must be gone by now.
    pub fn unmount(&mut self) -> io::Result<()> {
        match self.session.take() {
            Some(session) => session.umount_and_join(),
            None => Ok(()),
        }
    }

    /// A power loss: unmounts, keeps only what was durable, mounts that.
    /// Kill (and reap) every process using the filesystem first.
    pub fn crash(&mut self) -> io::Result<()> {
        self.power_loss();
        self.unmount()?;
        self.tree().crash();
        self.remount()
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Changes the capacity (`statfs` and `ENOSPC`) of the live filesystem.
    pub fn set_capacity(&self, bytes: u64) {
        self.tree().set_capacity(bytes);
    }

    /// Makes every fsync of a file take `file`, and of a directory `dir`
    /// (the change is durable when it ends), like a disk.
    pub fn set_fsync_delays(&self, file: Duration, dir: Duration) {
        self.tree().set_fsync_delays(file, dir);
    }

    /// The moment the power goes: from now on every change fails with `EIO`
    /// and [`CrashFs::crash`] keeps what is durable now. Call it before
    /// killing the server, so that nothing it says afterwards counts.
    pub fn power_loss(&self) {
        self.tree().power_loss();
    }

    /// Bytes of file content currently held.
    pub fn used(&self) -> u64 {
        self.tree().used()
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for CrashFs {
    fn drop(&mut self) {
        if self.unmount().is_err() {
            // Still in use (a test failed with its server running): detach
            // it lazily rather than leave a mount behind.
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

/// This process's user and group, as owners of every file (read from
/// `/proc/self`, which belongs to them, to need no `unsafe` call).
fn own_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| (m.uid(), m.gid()))
        .unwrap_or((0, 0))
}

/// Whether FUSE can be mounted here: `/dev/fuse` exists and so does a
/// `fusermount3` (fuser's fallback when the direct mount is not allowed).
/// `Err` says what is missing.
pub fn fuse_available() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing".into());
    }
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join("fusermount3").exists()))
        .unwrap_or(false);
    if !found {
        return Err("fusermount3 is not on PATH (apt-get install fuse3)".into());
    }
    Ok(())
}

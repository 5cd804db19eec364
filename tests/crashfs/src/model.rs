//! The filesystem as a pure data structure: every file has a current and a
//! durable content, every directory current and durable entries, and a crash
//! keeps only what is durable.
//!
//! The rule is strict POSIX, the weakest a real filesystem may be:
//! - writing or truncating a file changes only its current content; `fsync`
//!   (or `fdatasync`) of that file makes the current content durable;
//! - creating, renaming and unlinking change only the current entries of the
//!   directories involved; `fsync` of a directory makes its current entries
//!   durable. `fsync` of a file does not make its name durable.
//!
//! A rename between two directories is durable in each directory on its own:
//! fsync only the destination and, after a crash, the file has both names.
//! Real journaling filesystems are kinder; code that is right here is right
//! there.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::{Duration, SystemTime};

/// An inode number; the root directory is [`ROOT`].
pub type Ino = u64;

/// The root directory's inode number (FUSE's too).
pub const ROOT: Ino = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// Why an operation failed; each maps to one errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    NoSpace,
    Invalid,
    /// The power is off ([`Tree::power_loss`]): nothing more is written.
    Io,
}

impl FsError {
    pub fn errno(self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NoSpace => libc::ENOSPC,
            FsError::Invalid => libc::EINVAL,
            FsError::Io => libc::EIO,
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;

type Entries = BTreeMap<OsString, Ino>;

#[derive(Debug, Clone)]
enum Body {
    File { current: Vec<u8>, durable: Vec<u8> },
    Dir { current: Entries, durable: Entries },
}

#[derive(Debug, Clone)]
struct Inode {
    body: Body,
    mode: u16,
    mtime: SystemTime,
    /// Current entries naming this inode.
    links: u32,
    /// Durable entries naming this inode: it comes back after a crash.
    durable_links: u32,
    /// Open handles: an unlinked file stays readable while open.
    open: u32,
}

impl Inode {
    fn new(kind: Kind, mode: u16) -> Self {
        let body = match kind {
            Kind::File => Body::File {
                current: Vec::new(),
                durable: Vec::new(),
            },
            Kind::Dir => Body::Dir {
                current: Entries::new(),
                durable: Entries::new(),
            },
        };
        Inode {
            body,
            mode,
            mtime: SystemTime::now(),
            links: 0,
            durable_links: 0,
            open: 0,
        }
    }

    fn kind(&self) -> Kind {
        match self.body {
            Body::File { .. } => Kind::File,
            Body::Dir { .. } => Kind::Dir,
        }
    }

    fn size(&self) -> u64 {
        match &self.body {
            Body::File { current, .. } => current.len() as u64,
            Body::Dir { current, .. } => current.len() as u64,
        }
    }

    /// Bytes this inode holds against the capacity.
    fn used(&self) -> u64 {
        match &self.body {
            Body::File { current, .. } => current.len() as u64,
            Body::Dir { .. } => 0,
        }
    }
}

/// What `stat` shows of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub mode: u16,
    pub nlink: u32,
    pub mtime: SystemTime,
}

/// The whole filesystem: inodes by number, and a capacity that writes must
/// stay under (current content counts; durable copies are free).
#[derive(Debug, Clone)]
pub struct Tree {
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    capacity: u64,
    used: u64,
    /// How long each fsync of a file, and of a directory, takes: like a
    /// real disk, it leaves windows between a change and its durability.
    file_sync_delay: Duration,
    dir_sync_delay: Duration,
    /// Set by [`Tree::power_loss`]: every change fails from then on.
    powered_off: bool,
}

impl Tree {
    /// An empty filesystem (just the root, which is always durable).
    pub fn new(capacity: u64) -> Self {
        let mut root = Inode::new(Kind::Dir, 0o755);
        root.links = 1;
        root.durable_links = 1;
        Tree {
            inodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            capacity,
            used: 0,
            file_sync_delay: Duration::ZERO,
            dir_sync_delay: Duration::ZERO,
            powered_off: false,
        }
    }

    /// How long an fsync of `ino` takes.
    pub fn fsync_delay(&self, ino: Ino) -> Duration {
        match self.inodes.get(&ino).map(Inode::kind) {
            Some(Kind::Dir) => self.dir_sync_delay,
            _ => self.file_sync_delay,
        }
    }

    pub fn set_fsync_delays(&mut self, file: Duration, dir: Duration) {
        self.file_sync_delay = file;
        self.dir_sync_delay = dir;
    }

    /// The moment of a power loss: what is durable now is what [`Tree::crash`]
    /// keeps, and every change after it (an fsync still under way included)
    /// fails with `EIO`, so nobody is told that something became durable.
    pub fn power_loss(&mut self) {
        self.powered_off = true;
    }

    fn powered(&self) -> FsResult<()> {
        if self.powered_off {
            Err(FsError::Io)
        } else {
            Ok(())
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn set_capacity(&mut self, capacity: u64) {
        self.capacity = capacity;
    }

    /// Bytes of current content held.
    pub fn used(&self) -> u64 {
        self.used
    }

    fn inode(&self, ino: Ino) -> FsResult<&Inode> {
        self.inodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn inode_mut(&mut self, ino: Ino) -> FsResult<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn entries(&self, dir: Ino) -> FsResult<&Entries> {
        match &self.inode(dir)?.body {
            Body::Dir { current, .. } => Ok(current),
            Body::File { .. } => Err(FsError::NotDir),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> FsResult<&mut Entries> {
        match &mut self.inode_mut(dir)?.body {
            Body::Dir { current, .. } => Ok(current),
            Body::File { .. } => Err(FsError::NotDir),
        }
    }

    pub fn stat(&self, ino: Ino) -> FsResult<Stat> {
        let inode = self.inode(ino)?;
        Ok(Stat {
            ino,
            kind: inode.kind(),
            size: inode.size(),
            mode: inode.mode,
            nlink: inode.links,
            mtime: inode.mtime,
        })
    }

    pub fn lookup(&self, dir: Ino, name: &OsStr) -> FsResult<Ino> {
        self.entries(dir)?
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// The current entries of `dir`, in name order.
    pub fn list(&self, dir: Ino) -> FsResult<Vec<(OsString, Ino, Kind)>> {
        self.entries(dir)?
            .iter()
            .map(|(name, &ino)| Ok((name.clone(), ino, self.inode(ino)?.kind())))
            .collect()
    }

    /// Creates `name` in `dir` (an entry that is not durable yet).
    pub fn create(&mut self, dir: Ino, name: &OsStr, kind: Kind, mode: u16) -> FsResult<Ino> {
        self.powered()?;
        if self.entries(dir)?.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let mut inode = Inode::new(kind, mode);
        inode.links = 1;
        self.inodes.insert(ino, inode);
        self.entries_mut(dir)?.insert(name.to_owned(), ino);
        self.touch(dir);
        Ok(ino)
    }

    fn touch(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.mtime = SystemTime::now();
        }
    }

    pub fn read(&self, ino: Ino, offset: u64, len: usize) -> FsResult<&[u8]> {
        match &self.inode(ino)?.body {
            Body::File { current, .. } => {
                let start = (offset.min(current.len() as u64)) as usize;
                let end = start.saturating_add(len).min(current.len());
                Ok(&current[start..end])
            }
            Body::Dir { .. } => Err(FsError::IsDir),
        }
    }

    /// Changes the current length of a file, zero-filling when it grows.
    pub fn resize(&mut self, ino: Ino, len: u64) -> FsResult<()> {
        self.powered()?;
        let old = self.inode(ino)?.used();
        let grow = len.saturating_sub(old);
        if grow > 0 && self.used + grow > self.capacity {
            return Err(FsError::NoSpace);
        }
        let len = usize::try_from(len).map_err(|_| FsError::Invalid)?;
        let inode = self.inode_mut(ino)?;
        let Body::File { current, .. } = &mut inode.body else {
            return Err(FsError::IsDir);
        };
        current.resize(len, 0);
        inode.mtime = SystemTime::now();
        self.used = self.used - old + len as u64;
        Ok(())
    }

    /// Writes `data` at `offset` of the current content: all or nothing, so
    /// a write that does not fit fails with [`FsError::NoSpace`].
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize> {
        self.powered()?;
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::Invalid)?;
        if end > self.inode(ino)?.used() {
            self.resize(ino, end)?;
        }
        let inode = self.inode_mut(ino)?;
        let Body::File { current, .. } = &mut inode.body else {
            return Err(FsError::IsDir);
        };
        let start = offset as usize;
        current[start..start + data.len()].copy_from_slice(data);
        inode.mtime = SystemTime::now();
        Ok(data.len())
    }

    pub fn set_mode(&mut self, ino: Ino, mode: u16) -> FsResult<()> {
        self.powered()?;
        self.inode_mut(ino)?.mode = mode;
        Ok(())
    }

    pub fn set_mtime(&mut self, ino: Ino, mtime: SystemTime) -> FsResult<()> {
        self.powered()?;
        self.inode_mut(ino)?.mtime = mtime;
        Ok(())
    }

    /// `fsync`/`fdatasync`: a file's content, or a directory's entries,
    /// become what a crash keeps.
    pub fn fsync(&mut self, ino: Ino) -> FsResult<()> {
        self.powered()?;
        let inode = self.inode_mut(ino)?;
        match &mut inode.body {
            Body::File { current, durable } => {
                durable.clone_from(current);
                Ok(())
            }
            Body::Dir { current, durable } => {
                let gone: Vec<Ino> = durable.values().copied().collect();
                let now: Vec<Ino> = current.values().copied().collect();
                durable.clone_from(current);
                for ino in now {
                    self.inode_mut(ino)?.durable_links += 1;
                }
                for ino in gone {
                    if let Some(inode) = self.inodes.get_mut(&ino) {
                        inode.durable_links -= 1;
                    }
                    self.forget_if_unreferenced(ino);
                }
                Ok(())
            }
        }
    }

    pub fn open(&mut self, ino: Ino) -> FsResult<()> {
        self.inode_mut(ino)?.open += 1;
        Ok(())
    }

    pub fn release(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.open = inode.open.saturating_sub(1);
        }
        self.forget_if_unreferenced(ino);
    }

    /// Removes the file `name` from `dir`.
    pub fn unlink(&mut self, dir: Ino, name: &OsStr) -> FsResult<()> {
        self.powered()?;
        let ino = self.lookup(dir, name)?;
        if self.inode(ino)?.kind() == Kind::Dir {
            return Err(FsError::IsDir);
        }
        self.remove_entry(dir, name, ino)
    }

    /// Removes the empty directory `name` from `dir`.
    pub fn rmdir(&mut self, dir: Ino, name: &OsStr) -> FsResult<()> {
        self.powered()?;
        let ino = self.lookup(dir, name)?;
        if !self.entries(ino)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.remove_entry(dir, name, ino)
    }

    fn remove_entry(&mut self, dir: Ino, name: &OsStr, ino: Ino) -> FsResult<()> {
        self.entries_mut(dir)?.remove(name);
        self.touch(dir);
        let inode = self.inode_mut(ino)?;
        inode.links = inode.links.saturating_sub(1);
        self.forget_if_unreferenced(ino);
        Ok(())
    }

    /// Moves `name` in `dir` to `new_name` in `new_dir`, replacing what was
    /// there (a file, or an empty directory in place of a directory).
    pub fn rename(
        &mut self,
        dir: Ino,
        name: &OsStr,
        new_dir: Ino,
        new_name: &OsStr,
    ) -> FsResult<()> {
        self.powered()?;
        let ino = self.lookup(dir, name)?;
        let kind = self.inode(ino)?.kind();
        self.entries(new_dir)?;
        if let Ok(replaced) = self.lookup(new_dir, new_name) {
            if replaced == ino {
                return Ok(());
            }
            match (kind, self.inode(replaced)?.kind()) {
                (Kind::File, Kind::Dir) => return Err(FsError::IsDir),
                (Kind::Dir, Kind::File) => return Err(FsError::NotDir),
                (Kind::Dir, Kind::Dir) if !self.entries(replaced)?.is_empty() => {
                    return Err(FsError::NotEmpty)
                }
                _ => {}
            }
            self.remove_entry(new_dir, new_name, replaced)?;
        }
        self.entries_mut(dir)?.remove(name);
        self.entries_mut(new_dir)?.insert(new_name.to_owned(), ino);
        self.touch(dir);
        self.touch(new_dir);
        Ok(())
    }

    /// Drops an inode nothing can reach any more: no current name, no open
    /// handle, and no durable name that a crash would bring back.
    fn forget_if_unreferenced(&mut self, ino: Ino) {
        let Some(inode) = self.inodes.get(&ino) else {
            return;
        };
        if ino == ROOT || inode.links > 0 || inode.open > 0 || inode.durable_links > 0 {
            return;
        }
        let Some(inode) = self.inodes.remove(&ino) else {
            return;
        };
        self.used -= inode.used();
        if let Body::Dir { durable, .. } = inode.body {
            for child in durable.into_values() {
                if let Some(child_inode) = self.inodes.get_mut(&child) {
                    child_inode.durable_links -= 1;
                }
                self.forget_if_unreferenced(child);
            }
        }
    }

    /// The filesystem as it would be found after a power loss: only what is
    /// reachable from the root through durable entries, with durable content.
    pub fn crash(&mut self) {
        let mut kept: HashMap<Ino, Inode> = HashMap::new();
        let mut links: HashMap<Ino, u32> = HashMap::from([(ROOT, 1)]);
        let mut pending = vec![ROOT];
        while let Some(ino) = pending.pop() {
            if kept.contains_key(&ino) {
                continue;
            }
            let Some(inode) = self.inodes.get(&ino) else {
                continue;
            };
            let body = match &inode.body {
                Body::File { durable, .. } => Body::File {
                    current: durable.clone(),
                    durable: durable.clone(),
                },
                Body::Dir { durable, .. } => {
                    for &child in durable.values() {
                        *links.entry(child).or_default() += 1;
                        pending.push(child);
                    }
                    Body::Dir {
                        current: durable.clone(),
                        durable: durable.clone(),
                    }
                }
            };
            let inode = Inode {
                body,
                open: 0,
                ..inode.clone_without_body()
            };
            kept.insert(ino, inode);
        }
        for (ino, inode) in kept.iter_mut() {
            let n = links.get(ino).copied().unwrap_or(0);
            inode.links = n;
            inode.durable_links = n;
        }
        self.used = kept.values().map(Inode::used).sum();
        self.inodes = kept;
        self.powered_off = false;
    }
}

impl Inode {
    /// The metadata of an inode, with an empty body to fill in.
    fn clone_without_body(&self) -> Inode {
        Inode {
            body: Body::File {
                current: Vec::new(),
                durable: Vec::new(),
            },
            mode: self.mode,
            mtime: self.mtime,
            links: self.links,
            durable_links: self.durable_links,
            open: self.open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn content(tree: &Tree, path: &[&str]) -> Option<Vec<u8>> {
        let mut ino = ROOT;
        for part in path {
            ino = tree.lookup(ino, name(part)).ok()?;
        }
        Some(tree.read(ino, 0, usize::MAX).ok()?.to_vec())
    }

    #[test]
    fn a_file_fsynced_whose_name_never_was_is_gone_after_a_crash() {
        let mut tree = Tree::new(MIB);
        let f = tree.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
        tree.write(f, 0, b"data").unwrap();
        tree.fsync(f).unwrap();
        assert_eq!(content(&tree, &["f"]).unwrap(), b"data");
        tree.crash();
        assert_eq!(content(&tree, &["f"]), None);
        assert_eq!(tree.used(), 0);
    }

    #[test]
    fn a_durable_name_keeps_only_the_durable_content() {
        let mut tree = Tree::new(MIB);
        let f = tree.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
        tree.fsync(ROOT).unwrap();
        tree.write(f, 0, b"never synced").unwrap();
        tree.crash();
        assert_eq!(content(&tree, &["f"]).unwrap(), b"");

        let f = tree.lookup(ROOT, name("f")).unwrap();
        tree.write(f, 0, b"synced").unwrap();
        tree.fsync(f).unwrap();
        tree.write(f, 6, b" and more").unwrap();
        tree.crash();
        assert_eq!(content(&tree, &["f"]).unwrap(), b"synced");
    }

    #[test]
    fn rename_then_directory_fsync_survives() {
        let mut tree = Tree::new(MIB);
        let tmp = tree.create(ROOT, name("tmp"), Kind::File, 0o644).unwrap();
        tree.write(tmp, 0, b"blob").unwrap();
        tree.fsync(tmp).unwrap();
        tree.rename(ROOT, name("tmp"), ROOT, name("blob")).unwrap();
        tree.fsync(ROOT).unwrap();
        tree.crash();
        assert_eq!(content(&tree, &["blob"]).unwrap(), b"blob");
        assert_eq!(content(&tree, &["tmp"]), None);
    }

    #[test]
    fn rename_without_directory_fsync_is_undone() {
        let mut tree = Tree::new(MIB);
        let old = tree.create(ROOT, name("old"), Kind::File, 0o644).unwrap();
        tree.write(old, 0, b"v1").unwrap();
        tree.fsync(old).unwrap();
        tree.fsync(ROOT).unwrap();
        tree.rename(ROOT, name("old"), ROOT, name("new")).unwrap();
        tree.crash();
        assert_eq!(content(&tree, &["old"]).unwrap(), b"v1");
        assert_eq!(content(&tree, &["new"]), None);
    }

    #[test]
    fn a_new_folder_needs_its_parent_fsynced_too() {
        let mut tree = Tree::new(MIB);
        let dir = tree.create(ROOT, name("d"), Kind::Dir, 0o755).unwrap();
        let f = tree.create(dir, name("f"), Kind::File, 0o644).unwrap();
        tree.write(f, 0, b"x").unwrap();
        tree.fsync(f).unwrap();
        tree.fsync(dir).unwrap();
        tree.crash();
        assert_eq!(
            content(&tree, &["d", "f"]),
            None,
            "d itself was not durable"
        );

        let dir = tree.create(ROOT, name("d"), Kind::Dir, 0o755).unwrap();
        let f = tree.create(dir, name("f"), Kind::File, 0o644).unwrap();
        tree.write(f, 0, b"x").unwrap();
        tree.fsync(f).unwrap();
        tree.fsync(dir).unwrap();
        tree.fsync(ROOT).unwrap();
        tree.crash();
        assert_eq!(content(&tree, &["d", "f"]).unwrap(), b"x");
    }

    #[test]
    fn a_rename_across_folders_made_durable_only_at_the_destination_leaves_both_names() {
        let mut tree = Tree::new(MIB);
        let a = tree.create(ROOT, name("a"), Kind::Dir, 0o755).unwrap();
        let b = tree.create(ROOT, name("b"), Kind::Dir, 0o755).unwrap();
        tree.fsync(ROOT).unwrap();
        let f = tree.create(a, name("f"), Kind::File, 0o644).unwrap();
        tree.write(f, 0, b"x").unwrap();
        tree.fsync(f).unwrap();
        tree.fsync(a).unwrap();
        tree.rename(a, name("f"), b, name("f")).unwrap();
        tree.fsync(b).unwrap();
        tree.crash();
        assert_eq!(content(&tree, &["a", "f"]).unwrap(), b"x");
        assert_eq!(content(&tree, &["b", "f"]).unwrap(), b"x");
        assert_eq!(tree.stat(f).unwrap().nlink, 2);
    }

    #[test]
    fn unlink_is_undone_by_a_crash_unless_the_folder_was_fsynced() {
        let mut tree = Tree::new(MIB);
        let f = tree.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
        tree.write(f, 0, b"x").unwrap();
        tree.fsync(f).unwrap();
        tree.fsync(ROOT).unwrap();
        tree.unlink(ROOT, name("f")).unwrap();
        tree.crash();
        assert_eq!(content(&tree, &["f"]).unwrap(), b"x");
        tree.unlink(ROOT, name("f")).unwrap();
        tree.fsync(ROOT).unwrap();
        tree.crash();
        assert_eq!(content(&tree, &["f"]), None);
    }

    #[test]
    fn an_unlinked_open_file_stays_readable_until_released() {
        let mut tree = Tree::new(MIB);
        let f = tree.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
        tree.open(f).unwrap();
        tree.write(f, 0, b"x").unwrap();
        tree.unlink(ROOT, name("f")).unwrap();
        assert_eq!(tree.read(f, 0, 10).unwrap(), b"x");
        assert_eq!(tree.used(), 1);
        tree.release(f);
        assert_eq!(tree.read(f, 0, 10), Err(FsError::NotFound));
        assert_eq!(tree.used(), 0);
    }

    #[test]
    fn writes_beyond_capacity_fail_whole_and_free_space_comes_back() {
        let mut tree = Tree::new(10);
        let f = tree.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
        tree.write(f, 0, b"12345678").unwrap();
        assert_eq!(tree.write(f, 8, b"abc"), Err(FsError::NoSpace));
        assert_eq!(tree.read(f, 0, 100).unwrap(), b"12345678");
        tree.write(f, 0, b"overwrite").unwrap(); // no growth past 10
        tree.resize(f, 2).unwrap();
        assert_eq!(tree.used(), 2);
        tree.write(f, 2, b"12345678").unwrap();
        tree.set_capacity(20);
        tree.write(f, 10, b"more").unwrap();
        assert_eq!(tree.used(), 14);
    }

    #[test]
    fn a_removed_folder_with_durable_entries_comes_back_after_a_crash() {
        let mut tree = Tree::new(MIB);
        let d = tree.create(ROOT, name("d"), Kind::Dir, 0o755).unwrap();
        let f = tree.create(d, name("f"), Kind::File, 0o644).unwrap();
        tree.write(f, 0, b"x").unwrap();
        tree.fsync(f).unwrap();
        tree.fsync(d).unwrap();
        tree.fsync(ROOT).unwrap();
        tree.unlink(d, name("f")).unwrap();
        tree.rmdir(ROOT, name("d")).unwrap();
        assert_eq!(tree.lookup(ROOT, name("d")), Err(FsError::NotFound));
        tree.crash();
        assert_eq!(content(&tree, &["d", "f"]).unwrap(), b"x");
    }

    #[test]
    fn after_a_power_loss_nothing_changes_and_fsync_fails() {
        let mut tree = Tree::new(MIB);
        let f = tree.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
        tree.fsync(ROOT).unwrap();
        tree.write(f, 0, b"x").unwrap();
        tree.power_loss();
        assert_eq!(tree.fsync(f), Err(FsError::Io));
        assert_eq!(tree.write(f, 1, b"y"), Err(FsError::Io));
        assert_eq!(tree.unlink(ROOT, name("f")), Err(FsError::Io));
        assert_eq!(tree.read(f, 0, 10).unwrap(), b"x", "reads still work");
        tree.crash();
        assert_eq!(content(&tree, &["f"]).unwrap(), b"");
        tree.write(f, 0, b"z").unwrap();
    }

    #[test]
    fn rename_over_an_existing_file_replaces_it() {
        let mut tree = Tree::new(MIB);
        let a = tree.create(ROOT, name("a"), Kind::File, 0o644).unwrap();
        let b = tree.create(ROOT, name("b"), Kind::File, 0o644).unwrap();
        tree.write(a, 0, b"a").unwrap();
        tree.write(b, 0, b"bb").unwrap();
        tree.rename(ROOT, name("a"), ROOT, name("b")).unwrap();
        assert_eq!(content(&tree, &["b"]).unwrap(), b"a");
        assert_eq!(tree.used(), 1, "the replaced file was freed");
        assert_eq!(
            tree.list(ROOT).unwrap(),
            vec![(OsString::from("b"), a, Kind::File)]
        );
    }
}

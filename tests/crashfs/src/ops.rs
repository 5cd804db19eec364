//! The FUSE side: each kernel request is one call on the shared [`Tree`].
//! Nothing is cached here, so what the kernel sees is always the model.

use crate::model::{FsError, Ino, Kind, Stat, Tree};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// How long the kernel may cache names and attributes. Every change goes
/// through the kernel, so its caches stay right; a crash remounts anyway.
const TTL: Duration = Duration::from_secs(1);
const BLOCK: u32 = 4096;

/// The filesystem handed to fuser: a handle on the tree the test also holds.
pub(crate) struct Ops {
    pub(crate) tree: Arc<Mutex<Tree>>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.errno())
}

impl Ops {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        // A panic while holding the lock leaves a tree that is still whole
        // (every operation checks before it changes anything).
        self.tree
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn attr(&self, stat: Stat) -> FileAttr {
        FileAttr {
            ino: INodeNo(stat.ino),
            size: stat.size,
            blocks: stat.size.div_ceil(512),
            atime: stat.mtime,
            mtime: stat.mtime,
            ctime: stat.mtime,
            crtime: stat.mtime,
            kind: match stat.kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            },
            perm: stat.mode,
            nlink: stat.nlink.max(1),
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK,
            flags: 0,
        }
    }

    fn entry(&self, tree: &Tree, ino: Ino, reply: ReplyEntry) {
        match tree.stat(ino) {
            Ok(stat) => reply.entry(&TTL, &self.attr(stat), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// fsync and fsyncdir: the change becomes durable when the (simulated)
    /// disk is done, without holding the tree meanwhile.
    fn sync(&self, ino: INodeNo, reply: ReplyEmpty) {
        let delay = self.tree().fsync_delay(ino.0);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        empty(self.tree().fsync(ino.0), reply);
    }

    fn make(&self, parent: INodeNo, name: &OsStr, kind: Kind, mode: u32, reply: ReplyEntry) {
        let mut tree = self.tree();
        match tree.create(parent.0, name, kind, (mode & 0o7777) as u16) {
            Ok(ino) => self.entry(&tree, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn empty(result: Result<(), FsError>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

impl Filesystem for Ops {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let tree = self.tree();
        match tree.lookup(parent.0, name) {
            Ok(ino) => self.entry(&tree, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree().stat(ino.0) {
            Ok(stat) => reply.attr(&TTL, &self.attr(stat)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut tree = self.tree();
        let changed = (|| {
            if let Some(size) = size {
                tree.resize(ino.0, size)?;
            }
            if let Some(mode) = mode {
                tree.set_mode(ino.0, (mode & 0o7777) as u16)?;
            }
            if let Some(mtime) = mtime {
                let at = match mtime {
                    TimeOrNow::SpecificTime(at) => at,
                    TimeOrNow::Now => SystemTime::now(),
                };
                tree.set_mtime(ino.0, at)?;
            }
            tree.stat(ino.0)
        })();
        match changed {
            Ok(stat) => reply.attr(&TTL, &self.attr(stat)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM); // regular files only
        }
        self.make(parent, name, Kind::File, mode, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.make(parent, name, Kind::Dir, mode, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.tree().unlink(parent.0, name), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.tree().rmdir(parent.0, name), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL); // no RENAME_NOREPLACE/EXCHANGE
        }
        empty(
            self.tree().rename(parent.0, name, newparent.0, newname),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree().open(ino.0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut tree = self.tree();
        let created = tree
            .create(parent.0, name, Kind::File, (mode & 0o7777) as u16)
            .and_then(|ino| {
                tree.open(ino)?;
                tree.stat(ino)
            });
        match created {
            Ok(stat) => reply.created(
                &TTL,
                &self.attr(stat),
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.tree().read(ino.0, offset, size as usize) {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.tree().write(ino.0, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok(); // close() is not fsync()
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.tree().release(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(ino, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree().open(ino.0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.tree().list(ino.0);
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) => return reply.error(errno(e)),
        };
        let dots = [
            (".".into(), ino.0, Kind::Dir),
            ("..".into(), ino.0, Kind::Dir),
        ];
        for (i, (name, child, kind)) in dots
            .into_iter()
            .chain(entries)
            .enumerate()
            .skip(offset as usize)
        {
            let kind = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break; // the buffer is full; the kernel asks again from here
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.tree().release(ino.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(ino, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let tree = self.tree();
        let blocks = tree.capacity() / u64::from(BLOCK);
        let free = tree.capacity().saturating_sub(tree.used()) / u64::from(BLOCK);
        reply.statfs(blocks, free, free, 1 << 20, 1 << 20, BLOCK, 255, BLOCK);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
        }
        let mut tree = self.tree();
        let grown = (|| {
            let end = offset.checked_add(length).ok_or(FsError::Invalid)?;
            if end > tree.stat(ino.0)?.size {
                tree.resize(ino.0, end)?;
            }
            Ok(())
        })();
        empty(grown, reply);
    }
}

//! `berth fsck`: checks a data folder offline — every blob's digest and
//! size, every manifest's references, tags and the other metadata, and
//! leftover upload files — and, on request, quarantines what is wrong.
//!
//! It reads the layout of [`crate::storage::fs`] and the tables of
//! [`crate::storage::sqlite`] directly, with a connection of its own, so it
//! sees the data as it is on disk rather than as the running code would
//! present it. The metadata is read before the blobs: the registry writes
//! bytes before the rows that name them, so a server publishing meanwhile
//! cannot make a row look as if its bytes were missing.

mod blobs;
mod metadata;
mod problem;
mod quarantine;
mod rows;
mod uploads;

pub use metadata::Unreferenced;
pub use problem::{ContentFault, ManifestFault, Problem, Remedy};
pub use quarantine::{repair, Repaired};
pub use rows::StoredRow;

use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a running server may leave an upload file or session untouched
/// while still writing it: younger ones are skipped by a check beside it.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error("{0} is not a berth data folder (it has no meta.db)")]
    NotADataDir(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("metadata database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl FsckError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FsckError + '_ {
        move |e| FsckError::Io(path.to_path_buf(), e)
    }
}

/// Told how hashing advances, to draw a progress bar; called from several
/// hashing threads at once. Every method defaults to nothing.
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// No progress shown.
impl Progress for () {}

/// Who else may be using the data folder while fsck runs.
pub enum Access {
    /// fsck holds `berth.lock`: no server can start until it is dropped.
    Exclusive(File),
    /// A server holds the lock: only a read-only check is safe.
    Shared,
}

/// Takes the lock `berth serve` takes, or learns that a server holds it.
pub fn lock(root: &Path) -> Result<Access, FsckError> {
    if !root.join("meta.db").is_file() {
        return Err(FsckError::NotADataDir(root.to_path_buf()));
    }
    let path = root.join("berth.lock");
    let file = File::create(&path).map_err(FsckError::io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(Access::Exclusive(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Access::Shared),
        Err(std::fs::TryLockError::Error(e)) => Err(FsckError::Io(path, e)),
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub blobs: u64,
    pub bytes_hashed: u64,
    pub unreferenced: Unreferenced,
    /// Upload files and sessions skipped because a running server may be writing them.
    pub in_flight: usize,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the data folder at `root`. `access` says whether a server may be
/// writing meanwhile: then recently changed uploads are left alone.
pub fn check(root: &Path, access: &Access, progress: &dyn Progress) -> Result<Report, FsckError> {
    let db = root.join("meta.db");
    if !db.is_file() {
        return Err(FsckError::NotADataDir(root.to_path_buf()));
    }
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let snapshot = rows::Snapshot::load(&conn)?;

    let blobs_dir = root.join("blobs");
    let (inventory, mut problems) =
        blobs::scan(root, progress).map_err(|e| FsckError::Io(blobs_dir, e))?;
    let found = metadata::check(root, &snapshot, &inventory);
    problems.extend(found.problems);
    let grace = match access {
        Access::Exclusive(_) => None,
        Access::Shared => Some(IN_FLIGHT_GRACE),
    };
    let uploads_dir = root.join("uploads");
    let uploads =
        uploads::check(root, &snapshot, grace).map_err(|e| FsckError::Io(uploads_dir, e))?;
    problems.extend(uploads.problems);
    if grace.is_some() {
        // A session may have finished (its file published) since the snapshot.
        problems.retain(|p| match p {
            Problem::SessionWithoutFile { id, .. } => session_exists(&conn, id).unwrap_or(true),
            _ => true,
        });
    }
    Ok(Report {
        problems,
        blobs: inventory.files.len() as u64,
        bytes_hashed: inventory.bytes_hashed,
        unreferenced: found.unreferenced,
        in_flight: uploads.in_flight,
    })
}

fn session_exists(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM uploads WHERE id = ?1)",
        [id],
        |r| r.get(0),
    )
}

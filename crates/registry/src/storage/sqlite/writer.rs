//! The one writer thread and its group commit.
//!
//! The writer owns the write connection and commits in groups: every write
//! that arrives while a commit is under way joins the next transaction (each
//! in its own savepoint, so one failing write does not undo another), and all
//! of them are answered after the one fsync that makes them durable. A group
//! holding only upload-session writes skips that fsync ([`Commit::Lazy`]).

use super::storage_err;
use crate::error::{Error, Result};
use rusqlite::Connection;

/// Most writes committed together.
const MAX_GROUP: usize = 256;

/// A write: runs inside the group's transaction and returns how to answer
/// its caller once the group's commit has succeeded or failed.
struct Job {
    commit: Commit,
    run: Box<dyn FnOnce(&Connection) -> Reply + Send>,
}
type Reply = Box<dyn FnOnce(Result<()>) + Send>;

/// How far a write must have gone before its caller is answered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Commit {
    /// On disk (the WAL is fsynced): blob links, manifests, tags.
    Durable,
    /// In the WAL, not yet fsynced: upload sessions. It survives berth
    /// stopping; a machine crash may lose it, and the client starts over.
    Lazy,
}

impl Commit {
    fn pragma(self) -> &'static str {
        match self {
            Commit::Durable => "PRAGMA synchronous = FULL",
            Commit::Lazy => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// The handle writes are sent through; the thread ends when it is dropped.
pub(super) struct Writer {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn` (opened with `synchronous = FULL`).
    pub fn start(conn: Connection) -> Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("berth-meta-writer".into())
            .spawn(move || commit_in_groups(&conn, &queue))
            .map_err(storage_err)?;
        Ok(Writer { jobs })
    }

    /// Runs `f` as part of the writer's next group commit; answers once it
    /// has been committed as `commit` asks.
    pub async fn write<T, F>(&self, commit: Commit, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = Job {
            commit,
            run: Box::new(move |conn| {
                let outcome = in_savepoint(conn, f);
                Box::new(move |committed: Result<()>| {
                    let _ = answer.send(committed.and(outcome));
                })
            }),
        };
        self.jobs
            .send(job)
            .map_err(|_| Error::Storage("metadata writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::Storage("metadata write could not begin".into()))?
    }
}

/// The writer thread: takes every job waiting, runs them in one transaction,
/// commits once (durably if any job needs it), answers them all. Ends when
/// the store is dropped.
fn commit_in_groups(conn: &Connection, queue: &std::sync::mpsc::Receiver<Job>) {
    let mut mode = Commit::Durable; // as opened
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter().take(MAX_GROUP - 1));
        let wanted = if group.iter().any(|job| job.commit == Commit::Durable) {
            Commit::Durable
        } else {
            Commit::Lazy
        };
        // A durable commit fsyncs the WAL, and with it every lazy commit before it.
        if wanted != mode {
            if conn.execute_batch(wanted.pragma()).is_err() {
                continue; // dropping the group answers its callers with an error
            }
            mode = wanted;
        }
        if conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            continue;
        }
        let replies: Vec<Reply> = group.into_iter().map(|job| (job.run)(conn)).collect();
        let committed = conn.execute_batch("COMMIT");
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(committed.as_ref().map(|_| ()).map_err(storage_err));
        }
    }
}

/// Runs `f` so that its changes are undone if it fails, leaving the rest of
/// the group's transaction intact.
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job").map_err(storage_err)?;
    let outcome = f(conn);
    let end = if outcome.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end).map_err(storage_err)?;
    outcome
}

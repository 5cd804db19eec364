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

/// Writes waiting for the writer, at most. Past it, writers wait to enqueue:
/// overload becomes back-pressure on requests, not memory growth.
pub(super) const MAX_QUEUED: usize = 4 * MAX_GROUP;

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
    jobs: tokio::sync::mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn` (opened with `synchronous = FULL`).
    pub fn start(conn: Connection) -> Result<Self> {
        let (jobs, mut queue) = tokio::sync::mpsc::channel(MAX_QUEUED);
        std::thread::Builder::new()
            .name("berth-meta-writer".into())
            .spawn(move || commit_in_groups(&conn, &mut queue))
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
            .await
            .map_err(|_| Error::Storage("metadata writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::Storage("metadata write could not begin".into()))?
    }
}

/// The writer thread: takes every job waiting, runs them in one transaction,
/// commits once (durably if any job needs it), answers them all. Ends when
/// the store is dropped.
fn commit_in_groups(conn: &Connection, queue: &mut tokio::sync::mpsc::Receiver<Job>) {
    let mut mode = Commit::Durable; // as opened
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_makes_writers_wait_instead_of_growing() {
        let writer = Arc::new(Writer::start(Connection::open_in_memory().unwrap()).unwrap());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let stalled = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(Commit::Lazy, move |_| {
                        let _ = gate.recv();
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let waiting: Vec<_> = (0..MAX_QUEUED + 10)
            .map(|_| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.write(Commit::Lazy, |_| Ok(())).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            writer.jobs.try_reserve().is_err(),
            "the queue is full at {MAX_QUEUED}; the rest wait to enqueue"
        );
        release.send(()).unwrap();
        for write in waiting {
            write.await.unwrap().unwrap();
        }
        stalled.await.unwrap().unwrap();
    }
}

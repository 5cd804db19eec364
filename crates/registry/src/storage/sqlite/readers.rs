//! A few read-only connections that answer queries concurrently with the writer.

use super::storage_err;
use crate::error::Result;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub(super) const READERS: usize = 4;

pub(super) struct Readers {
    conns: Arc<Vec<Mutex<Connection>>>,
    next: AtomicUsize,
}

impl Readers {
    pub fn open(path: &Path) -> Result<Self> {
        let conns = (0..READERS)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(storage_err)?;
                c.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(storage_err)?;
                c.execute_batch(super::TEMP_IN_MEMORY)
                    .map_err(storage_err)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Readers {
            conns: Arc::new(conns),
            next: AtomicUsize::new(0),
        })
    }

    /// Runs a query that may scan many rows on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conns = self.conns.clone();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len();
        tokio::task::spawn_blocking(move || {
            let conn = conns[i].lock().map_err(storage_err)?;
            f(&conn).map_err(storage_err)
        })
        .await
        .map_err(storage_err)?
    }

    /// Runs a point query (one indexed row) right here on the async worker:
    /// it takes microseconds, less than handing it to another thread would.
    pub fn lookup<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        let conn = (0..n)
            .find_map(|k| self.conns[(start + k) % n].try_lock().ok())
            .map(Ok)
            .unwrap_or_else(|| self.conns[start % n].lock())
            .map_err(storage_err)?;
        f(&conn).map_err(storage_err)
    }
}

//! The embedded [`MetaStore`]: one SQLite file in WAL mode.
//!
//! One writer thread owns the write connection and commits in groups: every
//! write that arrives while a commit is under way joins the next transaction
//! (each in its own savepoint, so one failing write does not undo another),
//! and all of them are answered after the one fsync that makes them durable.
//! A group holding only upload-session writes skips that fsync ([`Commit`]).
//! A few reader connections answer queries concurrently. The schema is plain
//! SQL that PostgreSQL also accepts.

use super::{ManifestRecord, MetaStore, ReferrerRecord, UploadSession};
use crate::error::{Error, Result};
use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS repositories (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS repo_blobs (
    repo_id INTEGER NOT NULL REFERENCES repositories(id),
    digest  TEXT NOT NULL,
    size    INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
);
CREATE TABLE IF NOT EXISTS manifests (
    repo_id       INTEGER NOT NULL REFERENCES repositories(id),
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    pushed_at     INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
);
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repo_id, subject);
CREATE TABLE IF NOT EXISTS manifest_refs (
    repo_id  INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    child    TEXT NOT NULL,
    PRIMARY KEY (repo_id, manifest, child)
);
CREATE TABLE IF NOT EXISTS tags (
    repo_id    INTEGER NOT NULL REFERENCES repositories(id),
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (repo_id, name)
);
CREATE INDEX IF NOT EXISTS tags_by_digest ON tags (repo_id, digest);
CREATE TABLE IF NOT EXISTS uploads (
    id         TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
";

const READERS: usize = 4;

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
enum Commit {
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

pub struct SqliteMetaStore {
    jobs: std::sync::mpsc::Sender<Job>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

fn storage_err(e: impl std::fmt::Display) -> Error {
    Error::storage(e)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn parse_digest(s: String) -> Result<Digest> {
    s.parse().map_err(storage_err)
}

impl SqliteMetaStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let writer = Connection::open(path).map_err(storage_err)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(storage_err)?;
        writer.execute_batch(SCHEMA).map_err(storage_err)?;
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(storage_err)?;
                c.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(storage_err)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>>>()?;
        let (jobs, queue) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("berth-meta-writer".into())
            .spawn(move || commit_in_groups(&writer, &queue))
            .map_err(storage_err)?;
        Ok(SqliteMetaStore {
            jobs,
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Runs `f` as part of the writer's next group commit; answers once it is durable.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_as(Commit::Durable, f).await
    }

    /// Runs `f` as part of the writer's next group commit; answers once it
    /// has been committed as `commit` asks.
    async fn write_as<T, F>(&self, commit: Commit, f: F) -> Result<T>
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

    /// Runs a read-only query on one of the reader connections.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let conn = readers[i].lock().map_err(storage_err)?;
            f(&conn).map_err(storage_err)
        })
        .await
        .map_err(storage_err)?
    }

    /// Runs a point query (one indexed row) right here on the async worker:
    /// it takes microseconds, less than handing it to another thread would.
    fn lookup<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        let conn = (0..n)
            .find_map(|k| self.readers[(start + k) % n].try_lock().ok())
            .map(Ok)
            .unwrap_or_else(|| self.readers[start % n].lock())
            .map_err(storage_err)?;
        f(&conn).map_err(storage_err)
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

/// Id of `name`, creating the repository row if it does not exist yet.
fn ensure_repo(tx: &Connection, name: &str) -> Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO repositories (name) VALUES (?1)",
        [name],
    )
    .map_err(storage_err)?;
    tx.query_row("SELECT id FROM repositories WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .map_err(storage_err)
}

/// Checks that each `(digest, size)` is in repository `repo_id` with that size;
/// `sql` selects the stored size for `(?1 = repo_id, ?2 = digest)`.
fn check_sizes(tx: &Connection, sql: &str, repo_id: i64, refs: &[(Digest, u64)]) -> Result<()> {
    let mut stored_size = tx.prepare_cached(sql).map_err(storage_err)?;
    for (digest, declared) in refs {
        let stored: Option<i64> = stored_size
            .query_row(params![repo_id, digest.to_string()], |r| r.get(0))
            .optional()
            .map_err(storage_err)?;
        match stored {
            None => return Err(Error::ManifestBlobUnknown(digest.clone())),
            Some(stored) if stored as u64 != *declared => {
                return Err(Error::ManifestSizeMismatch {
                    digest: digest.clone(),
                    declared: *declared,
                    stored: stored as u64,
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

const REPO_ID: &str = "(SELECT id FROM repositories WHERE name = ?1)";

#[async_trait]
impl MetaStore for SqliteMetaStore {
    async fn link_blob(&self, repo: &RepositoryName, digest: &Digest, size: u64) -> Result<()> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        self.write(move |tx| {
            let id = ensure_repo(tx, &repo)?;
            tx.execute(
                "INSERT OR IGNORE INTO repo_blobs (repo_id, digest, size) VALUES (?1, ?2, ?3)",
                params![id, digest, size as i64],
            )
            .map_err(storage_err)?;
            Ok(())
        })
        .await
    }

    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = self.lookup(|c| {
            c.prepare_cached(
                "SELECT size FROM repo_blobs
                 WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
            )?
            .query_row(params![repo.as_str(), digest.to_string()], |r| r.get(0))
            .optional()
        })?;
        Ok(size.map(|s| s as u64))
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        self.write(move |tx| {
            tx.execute(
                &format!("DELETE FROM repo_blobs WHERE repo_id = {REPO_ID} AND digest = ?2"),
                [repo, digest],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &ManifestRecord,
        tag: Option<&Tag>,
    ) -> Result<()> {
        let repo = repo.to_string();
        let m = manifest.clone();
        let tag = tag.map(|t| t.to_string());
        self.write(move |tx| {
            let id = ensure_repo(tx, &repo)?;
            let digest = m.digest.to_string();
            check_sizes(
                tx,
                "SELECT size FROM repo_blobs WHERE repo_id = ?1 AND digest = ?2",
                id,
                &m.blobs,
            )?;
            check_sizes(
                tx,
                "SELECT size FROM manifests WHERE repo_id = ?1 AND digest = ?2",
                id,
                &m.manifests,
            )?;
            tx.execute(
                "INSERT INTO manifests
                   (repo_id, digest, media_type, size, artifact_type, subject, annotations, pushed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (repo_id, digest) DO UPDATE SET media_type = excluded.media_type",
                params![
                    id,
                    digest,
                    m.media_type,
                    m.size as i64,
                    m.artifact_type,
                    m.subject.as_ref().map(|s| s.to_string()),
                    m.annotations,
                    now()
                ],
            )
            .map_err(storage_err)?;
            for (child, _) in m.blobs.iter().chain(&m.manifests) {
                tx.execute(
                    "INSERT OR IGNORE INTO manifest_refs (repo_id, manifest, child) VALUES (?1, ?2, ?3)",
                    params![id, digest, child.to_string()],
                )
                .map_err(storage_err)?;
            }
            if let Some(tag) = tag {
                tx.execute(
                    "INSERT INTO tags (repo_id, name, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (repo_id, name) DO UPDATE
                       SET digest = excluded.digest, updated_at = excluded.updated_at",
                    params![id, tag, digest, now()],
                )
                .map_err(storage_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn manifest_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<(Digest, String, u64)>> {
        let row = self.lookup(|c| {
            c.prepare_cached(
                "SELECT m.digest, m.media_type, m.size FROM tags t
                 JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest
                 WHERE t.repo_id = (SELECT id FROM repositories WHERE name = ?1) AND t.name = ?2",
            )?
            .query_row(params![repo.as_str(), tag.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
        })?;
        row.map(|(d, mt, size)| Ok((parse_digest(d)?, mt, size as u64)))
            .transpose()
    }

    async fn manifest_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<(String, u64)>> {
        let row = self.lookup(|c| {
            c.prepare_cached(
                "SELECT media_type, size FROM manifests
                 WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
            )?
            .query_row(params![repo.as_str(), digest.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
        })?;
        Ok(row.map(|(mt, size)| (mt, size as u64)))
    }

    async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        self.write(move |tx| {
            let args = [&repo, &digest];
            let sql = |table: &str, column: &str| {
                format!("DELETE FROM {table} WHERE repo_id = {REPO_ID} AND {column} = ?2")
            };
            tx.execute(&sql("tags", "digest"), args)
                .map_err(storage_err)?;
            tx.execute(&sql("manifest_refs", "manifest"), args)
                .map_err(storage_err)?;
            let n = tx
                .execute(&sql("manifests", "digest"), args)
                .map_err(storage_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool> {
        let (repo, tag) = (repo.to_string(), tag.to_string());
        self.write(move |tx| {
            tx.execute(
                &format!("DELETE FROM tags WHERE repo_id = {REPO_ID} AND name = ?2"),
                [repo, tag],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }

    async fn list_tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>> {
        // Tag lists are short and hot (every UI asks for them): answer in place.
        self.lookup(|c| {
            let exists = c
                .prepare_cached(
                    "SELECT 1 FROM manifests
                     WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) LIMIT 1",
                )?
                .exists([repo.as_str()])?;
            if !exists {
                return Ok(None);
            }
            let tags = c
                .prepare_cached(
                    "SELECT name FROM tags
                     WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND name > ?2
                     ORDER BY name LIMIT ?3",
                )?
                .query_map(
                    params![repo.as_str(), last.unwrap_or(""), limit as i64],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(Some(tags))
        })
    }

    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let last = last.unwrap_or("").to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT name FROM repositories r WHERE name > ?1
                   AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
                 ORDER BY name LIMIT ?2",
            )?
            .query_map(params![last, limit as i64], |r| r.get(0))?
            .collect()
        })
        .await
    }

    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRecord>> {
        let (repo, subject) = (repo.to_string(), subject.to_string());
        let artifact_type = artifact_type.map(str::to_string);
        let rows = self
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT digest, media_type, size, artifact_type, annotations FROM manifests
                     WHERE repo_id = {REPO_ID} AND subject = ?2
                       AND (?3 IS NULL OR artifact_type = ?3)
                     ORDER BY digest"
                ))?
                .query_map(params![repo, subject, artifact_type], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(digest, media_type, size, artifact_type, annotations)| {
                Ok(ReferrerRecord {
                    digest: parse_digest(digest)?,
                    media_type,
                    size: size as u64,
                    artifact_type,
                    annotations,
                })
            })
            .collect()
    }

    async fn create_upload(&self, session: &UploadSession) -> Result<()> {
        let s = session.clone();
        self.write_as(Commit::Lazy, move |tx| {
            tx.execute(
                "INSERT INTO uploads (id, repository, bytes, updated_at) VALUES (?1, ?2, ?3, ?4)",
                params![s.id, s.repository.as_str(), s.offset as i64, s.updated_at],
            )
            .map_err(storage_err)?;
            Ok(())
        })
        .await
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>> {
        let row = self.lookup(|c| {
            c.prepare_cached("SELECT repository, bytes, updated_at FROM uploads WHERE id = ?1")?
                .query_row([id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()
        })?;
        row.map(|(repo, offset, updated_at)| {
            Ok(UploadSession {
                id: id.to_string(),
                repository: repo.parse().map_err(storage_err)?,
                offset: offset as u64,
                updated_at,
            })
        })
        .transpose()
    }

    async fn set_upload_offset(&self, id: &str, offset: u64, updated_at: i64) -> Result<()> {
        let id = id.to_string();
        self.write_as(Commit::Lazy, move |tx| {
            tx.execute(
                "UPDATE uploads SET bytes = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, offset as i64, updated_at],
            )
            .map_err(storage_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write_as(Commit::Lazy, move |tx| {
            tx.execute("DELETE FROM uploads WHERE id = ?1", [id])
                .map_err(storage_err)?;
            Ok(())
        })
        .await
    }

    async fn stale_uploads(&self, cutoff: i64) -> Result<Vec<String>> {
        self.read(move |c| {
            c.prepare_cached("SELECT id FROM uploads WHERE updated_at < ?1")?
                .query_map([cutoff], |r| r.get(0))?
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn keeps_every_meta_store_promise() {
        let dir = tempfile::tempdir().unwrap();
        let meta = super::SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
        crate::storage::conformance::meta_store(&meta).await;
    }
}

//! Opening one side of a migration. Until `backends::open_stores` lands,
//! only the embedded stores (filesystem + SQLite) are opened, here.

use crate::config::Config;
use crate::data_dir;
use berth_oci::{Digest, RepositoryName};
use berth_registry::storage::fs::{create_dir_durably, FsBlobStore};
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{BlobStore, IoMode, MetaStore};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The two stores of one registry.
pub struct Stores {
    pub blobs: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetaStore>,
    /// Where the metadata lives, for the listings (see [`Stores::links`]).
    db: PathBuf,
    /// The data folder's lock, held for the whole migration on a side
    /// written to.
    _lock: Option<File>,
}

/// Which side of the migration a configuration describes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    From,
    To,
}

impl Stores {
    /// Opens the stores `config` names. The source must hold a registry;
    /// the destination is created if needed and locked against a server.
    pub fn open(config: &Config, io: IoMode, side: Side) -> Result<Stores, String> {
        let dir = &config.data_dir;
        let db = dir.join("meta.db");
        let lock = match side {
            Side::From => {
                if !db.is_file() {
                    return Err(format!("{} holds no berth registry", dir.display()));
                }
                None
            }
            Side::To => {
                data_dir::check_writable(dir).map_err(|e| e.to_string())?;
                create_dir_durably(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                Some(data_dir::lock(dir).map_err(|e| e.to_string())?)
            }
        };
        let blobs = FsBlobStore::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let meta = SqliteMetaStore::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
        Ok(Stores {
            blobs: Arc::new(blobs.with_io_mode(io)),
            meta: Arc::new(meta),
            db,
            _lock: lock,
        })
    }

    /// Up to `limit` blobs linked to `repo` (digest, size) after `after`, by
    /// digest: `MetaStore::repository_links` once the core change lands.
    pub fn links(
        &self,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>, String> {
        self.rows(
            "SELECT b.digest, b.size FROM repo_blobs b JOIN repositories r ON r.id = b.repo_id
             WHERE r.name = ?1 AND b.digest > ?2 ORDER BY b.digest LIMIT ?3",
            repo,
            after,
            limit,
        )
        .map(|rows| rows.into_iter().map(|(d, s, _)| (d, s)).collect())
    }

    /// Up to `limit` manifests of `repo` (digest, size, media type) after
    /// `after`, by digest: `MetaStore::repository_manifests` once the core
    /// change lands.
    pub fn manifests(
        &self,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64, String)>, String> {
        self.rows(
            "SELECT m.digest, m.size, m.media_type FROM manifests m
             JOIN repositories r ON r.id = m.repo_id
             WHERE r.name = ?1 AND m.digest > ?2 ORDER BY m.digest LIMIT ?3",
            repo,
            after,
            limit,
        )
    }

    fn rows(
        &self,
        sql: &str,
        repo: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64, String)>, String> {
        let fail = |e: rusqlite::Error| format!("{}: {e}", self.db.display());
        let conn = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(fail)?;
        let mut statement = conn.prepare(sql).map_err(fail)?;
        let after = after.map(Digest::to_string).unwrap_or_default();
        let rows = statement
            .query_map(
                rusqlite::params![repo.as_str(), after, limit as i64],
                |row| {
                    let media_type = if row.as_ref().column_count() > 2 {
                        row.get::<_, String>(2)?
                    } else {
                        String::new()
                    };
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, media_type))
                },
            )
            .map_err(fail)?;
        let mut out = Vec::new();
        for row in rows {
            let (digest, size, media_type) = row.map_err(fail)?;
            let digest = digest
                .parse()
                .map_err(|_| format!("malformed digest {digest:?} in {}", self.db.display()))?;
            out.push((digest, u64::try_from(size).unwrap_or(0), media_type));
        }
        Ok(out)
    }
}

/// Whether two configurations name the same stores: migrating a registry
/// onto itself would only find everything present, or worse.
pub fn same_stores(from: &Config, to: &Config) -> bool {
    same_folder(&from.data_dir, &to.data_dir)
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_folder_under_two_spellings_is_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        assert!(same_folder(&a, &dir.path().join("./a/../a")));
        assert!(!same_folder(&a, &dir.path().join("b")));
    }
}

//! Opening one side of a migration. Until `backends::open_stores` lands,
//! only the embedded stores (filesystem + SQLite) are opened, here.

use crate::config::Config;
use crate::data_dir;
use berth_registry::storage::fs::{create_dir_durably, FsBlobStore};
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{BlobStore, IoMode, MetaStore};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// The two stores of one registry.
pub struct Stores {
    pub blobs: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetaStore>,
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
            _lock: lock,
        })
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

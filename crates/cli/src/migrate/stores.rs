//! Opening one side of a migration: the stores its configuration names, as
//! `berth serve` opens them (`backends::open_stores`, with its start-up
//! checks), plus the data folder's lock on a destination that has one.

use crate::backends;
use crate::config::{Config, MetadataConfig, StorageConfig};
use crate::data_dir;
use berth_registry::storage::fs::create_dir_durably;
use berth_registry::{BlobStore, IoMode, MetaStore};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// The two stores of one registry.
pub struct Stores {
    pub blobs: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetaStore>,
    /// Other processes may use them (PostgreSQL): nothing there may be
    /// taken for a leftover of this one.
    pub shared: bool,
    /// What they are, without secrets, for messages.
    pub described: String,
    /// The data folder's lock, held for the whole migration on a
    /// destination that keeps anything in its data folder.
    _lock: Option<File>,
}

/// Which side of the migration a configuration describes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    From,
    To,
}

/// Whether `config` keeps anything in its data folder.
fn uses_data_dir(config: &Config) -> bool {
    matches!(config.storage, StorageConfig::Filesystem)
        || matches!(config.metadata, MetadataConfig::Sqlite)
}

impl Stores {
    /// Opens the stores `config` names. An embedded source must hold a
    /// registry already (opening would create an empty one); a destination
    /// folder is created if needed and locked against a server.
    pub async fn open(config: &Config, io: IoMode, side: Side) -> Result<Stores, String> {
        let dir = &config.data_dir;
        let mut lock = None;
        if side == Side::From
            && matches!(config.metadata, MetadataConfig::Sqlite)
            && !dir.join("meta.db").is_file()
        {
            return Err(format!("{} holds no berth registry", dir.display()));
        }
        if side == Side::To && uses_data_dir(config) {
            data_dir::check_writable(dir).map_err(|e| e.to_string())?;
            create_dir_durably(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            lock = Some(data_dir::lock(dir).map_err(|e| e.to_string())?);
        }
        let stores = backends::open_stores_io(config, io)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Stores {
            blobs: stores.blobs,
            meta: stores.meta,
            shared: stores.shared,
            described: stores.described,
            _lock: lock,
        })
    }
}

/// Whether two configurations share a store (the same blobs or the same
/// metadata): a migration onto itself would find everything present, and
/// half onto itself would bind one store to two registries.
pub fn same_stores(from: &Config, to: &Config) -> bool {
    let same_blobs = match (&from.storage, &to.storage) {
        (StorageConfig::Filesystem, StorageConfig::Filesystem) => {
            same_folder(&from.data_dir, &to.data_dir)
        }
        (StorageConfig::S3(a), StorageConfig::S3(b)) => {
            a.endpoint == b.endpoint && a.bucket == b.bucket && a.root == b.root
        }
        _ => false,
    };
    let same_metadata = match (&from.metadata, &to.metadata) {
        (MetadataConfig::Sqlite, MetadataConfig::Sqlite) => {
            same_folder(&from.data_dir, &to.data_dir)
        }
        (MetadataConfig::Postgres(a), MetadataConfig::Postgres(b)) => a.redacted() == b.redacted(),
        _ => false,
    };
    same_blobs || same_metadata
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

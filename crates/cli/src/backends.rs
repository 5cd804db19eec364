//! The configured stores, opened: blobs on the filesystem or S3, metadata
//! in the embedded SQLite database or PostgreSQL, with the start-up checks
//! that refuse a combination that would lose data (see [`open_stores`]).

mod marker;
mod s3_objects;

use crate::config::{Config, MetadataConfig, SecretSource, StorageConfig};
use crate::data_dir::Refused;
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::postgres::PostgresMetaStore;
use berth_registry::storage::s3::{S3BlobStore, S3Settings};
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{BlobStore, IoMode, MetaStore};
use marker::{FolderObjects, MarkerObjects, Ours};
use s3_objects::S3Objects;
use std::sync::Arc;

/// The stores a registry runs on.
pub struct Stores {
    pub blobs: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetaStore>,
    /// Whether other processes (replicas) may use the same stores at once:
    /// then no state another replica needs may live in this process.
    pub shared: bool,
    /// What they are, for the start-up log: no secrets.
    pub described: String,
}

/// Opens the configured stores as `berth serve` does (see [`open_stores_io`]);
/// for commands with no I/O mode of their own (`berth migrate`).
#[allow(dead_code)] // until berth migrate lands
pub async fn open_stores(config: &Config) -> Result<Stores, Box<dyn std::error::Error>> {
    let io = IoMode::from_env_value(
        std::env::var(berth_registry::PORTABLE_IO_ENV)
            .ok()
            .as_deref(),
    );
    open_stores_io(config, io).await
}

/// Opens the configured stores, then checks, before anything is served:
/// - that the bucket exists and these credentials may write, read and
///   delete in it (a probe object), so that the first push does not find out;
/// - that the blob store belongs to this metadata store: `berth-store.json`
///   beside the blobs names the metadata store's id, and a blob store
///   bound to another one is refused (two registries' garbage collectors
///   would delete each other's blobs), as is a fresh blob store for a
///   metadata store that already holds repositories (its blobs are elsewhere);
/// - the PostgreSQL schema is not newer than this binary (the store refuses
///   to open such a database).
pub async fn open_stores_io(
    config: &Config,
    io: IoMode,
) -> Result<Stores, Box<dyn std::error::Error>> {
    let (meta, metadata_name): (Arc<dyn MetaStore>, String) = match &config.metadata {
        MetadataConfig::Sqlite => {
            let path = config.data_dir.join("meta.db");
            let meta = SqliteMetaStore::open(&path)?;
            (Arc::new(meta), format!("sqlite {}", path.display()))
        }
        MetadataConfig::Postgres(pg) => (open_postgres(pg).await?, pg.redacted()),
    };
    let (blobs, objects, blobs_name): (Arc<dyn BlobStore>, Box<dyn MarkerObjects>, String) =
        match &config.storage {
            StorageConfig::Filesystem => {
                let blobs = FsBlobStore::open(&config.data_dir)?.with_io_mode(io);
                let objects = FolderObjects(config.data_dir.clone());
                let name = format!("filesystem {}", config.data_dir.display());
                (Arc::new(blobs), Box::new(objects), name)
            }
            StorageConfig::S3(s3) => {
                let (blobs, objects) = open_s3(s3).await?;
                marker::probe(&*objects)
                    .await
                    .map_err(|e| Refused(e.to_string()))?;
                let name = objects.location();
                (blobs, objects, name)
            }
        };
    let store_id = store_id(&*meta).await?;
    let has_repositories = !meta.list_repositories(None, 1).await?.is_empty();
    let ours = Ours {
        store_id: &store_id,
        metadata: &metadata_name,
        has_repositories,
        // The embedded database beside its blobs, from before markers.
        adopt_unmarked: matches!(
            (&config.storage, &config.metadata),
            (StorageConfig::Filesystem, MetadataConfig::Sqlite)
        ),
    };
    marker::check_identity(&*objects, &ours, unix_now())
        .await
        .map_err(|e| Refused(e.to_string()))?;
    Ok(Stores {
        blobs,
        meta,
        shared: config.metadata.is_shared(),
        described: format!("blobs: {blobs_name}; metadata: {metadata_name}"),
    })
}

/// The metadata store's id, made (at random) by whichever process asks first.
async fn store_id(meta: &dyn MetaStore) -> Result<String, Box<dyn std::error::Error>> {
    let candidate = uuid::Uuid::new_v4().to_string().into_bytes();
    let id = meta.shared_secret("store-id", candidate).await?;
    Ok(String::from_utf8_lossy(&id).into_owned())
}

/// Reads a secret given inline or as a file; `key` names it in errors.
pub fn resolve_secret(source: &SecretSource, key: &str) -> Result<String, Refused> {
    match source {
        SecretSource::Value(secret) => Ok(secret.expose().to_string()),
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| Refused(format!("{key}: cannot read {}: {e}", path.display()))),
    }
}

/// Connects to PostgreSQL (bringing its schema up to date, refusing one
/// newer than this binary); errors show the URL without its password.
async fn open_postgres(
    pg: &crate::config::storage::PostgresConfig,
) -> Result<Arc<dyn MetaStore>, Box<dyn std::error::Error>> {
    let password = match &pg.password_file {
        Some(path) => Some(resolve_secret(
            &SecretSource::File(path.clone()),
            "metadata.password_file",
        )?),
        None => None,
    };
    let store = PostgresMetaStore::connect(pg.url(), password)
        .await
        .map_err(|e| Refused(format!("metadata store {}: {e}", pg.redacted())))?;
    Ok(Arc::new(store))
}

/// Opens the S3 blob store and the marker objects beside it.
async fn open_s3(
    s3: &crate::config::S3Config,
) -> Result<(Arc<dyn BlobStore>, Box<dyn MarkerObjects>), Box<dyn std::error::Error>> {
    let (access_key, secret_key) = match &s3.credentials {
        Some((access, secret)) => (
            access.clone(),
            resolve_secret(secret, "storage.s3.secret_key_file")?,
        ),
        None => (String::new(), String::new()),
    };
    let settings = S3Settings {
        endpoint: s3.endpoint.clone(),
        bucket: s3.bucket.clone(),
        region: s3.region.clone(),
        access_key,
        secret_key,
        force_path_style: s3.force_path_style,
        root: (!s3.root.is_empty()).then(|| s3.root.clone()),
        redirect: s3.redirect,
        allow_http: s3
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://")),
    };
    let refused = |e: berth_registry::Error| {
        Refused(format!(
            "storage s3://{}/{} (storage.s3): {e}",
            s3.bucket, s3.root
        ))
    };
    let blobs = S3BlobStore::new(settings.clone()).map_err(refused)?;
    let objects = S3Objects::new(&settings).map_err(refused)?;
    Ok((Arc::new(blobs), Box::new(objects)))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_read_without_their_newline_and_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3");
        std::fs::write(&file, "top-secret\n").unwrap();
        let source = SecretSource::File(file);
        assert_eq!(resolve_secret(&source, "k").unwrap(), "top-secret");
        let missing = SecretSource::File(dir.path().join("none"));
        let err = resolve_secret(&missing, "storage.s3.secret_key_file").unwrap_err();
        assert!(
            err.0.starts_with("storage.s3.secret_key_file: cannot read"),
            "{err}"
        );
    }
}

//! The start-up checks that need the blob store's own objects: the
//! store-identity marker (`<root>/berth-store.json`, naming the metadata
//! store the blobs belong to) and the write-read-delete probe.
//!
//! Why the marker: garbage collection deletes every blob its metadata store
//! does not reference. Two registries (two databases) on one bucket would
//! delete each other's blobs, so a blob store bound to one metadata store
//! is refused to any other. Without S3 conditional writes the binding is
//! not atomic: two registries binding the same fresh bucket in the same
//! second could both write; the read-back after writing catches all but
//! that.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The marker's name under the blob store's root.
pub const MARKER: &str = "berth-store.json";

/// A few named objects beside the blobs: what the checks need of a blob
/// store, whatever the backend.
#[async_trait]
pub trait MarkerObjects: Send + Sync {
    /// Where the objects live, for messages (`s3://bucket/root`, a folder).
    fn location(&self) -> String;
    async fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>>;
    async fn put(&self, name: &str, bytes: Vec<u8>) -> std::io::Result<()>;
    async fn delete(&self, name: &str) -> std::io::Result<()>;
}

/// Objects as files in a folder (the filesystem backend's data folder).
pub struct FolderObjects(pub PathBuf);

#[async_trait]
impl MarkerObjects for FolderObjects {
    fn location(&self) -> String {
        self.0.display().to_string()
    }

    async fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.0.join(name)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Written to a temporary name, synced, then renamed: a crash leaves
    /// the old marker or the new one, never half of one.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        let dir = self.0.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let target = dir.join(&name);
            let parent = target.parent().unwrap_or(&dir).to_path_buf();
            std::fs::create_dir_all(&parent)?;
            let tmp = parent.join(format!(".marker.{}", uuid::Uuid::new_v4()));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &target)?;
            std::fs::File::open(&parent)?.sync_all()
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn delete(&self, name: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.0.join(name)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// What the marker holds.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreMarker {
    /// The metadata store's id (`shared_secret("store-id", …)`).
    pub store_id: String,
    /// Which metadata store that was, for the message when it differs
    /// (a PostgreSQL URL without its password, or `sqlite`).
    pub metadata: String,
    pub bound_at: i64,
}

/// Why the stores must not be used together.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error(
        "{location} belongs to another registry: its {MARKER} names metadata store {theirs} \
         ({their_metadata}), but the configured metadata store ({our_metadata}) is {ours}. Two \
         registries on one blob store delete each other's blobs when they collect garbage. \
         Configure the metadata store those blobs belong to, or give this registry its own \
         bucket or storage.s3.root (to move a registry between backends: berth migrate)"
    )]
    Foreign {
        location: String,
        theirs: String,
        their_metadata: String,
        ours: String,
        our_metadata: String,
    },
    #[error(
        "the configured metadata store ({our_metadata}) already holds repositories, but {location} \
         has never been bound to it (no {MARKER}): its blobs are elsewhere. Configure the \
         bucket or folder that registry stored into (to move a registry between backends: \
         berth migrate)"
    )]
    Unbound {
        location: String,
        our_metadata: String,
    },
    #[error("{location}: {MARKER} is not berth's marker ({reason}); remove it only if nothing else uses that location")]
    Unreadable { location: String, reason: String },
    #[error("{location} cannot be used: {step} failed: {error}")]
    Io {
        location: String,
        step: &'static str,
        error: std::io::Error,
    },
    #[error(
        "{location} answered the probe wrongly: an object just written read back as other bytes"
    )]
    ProbeMismatch { location: String },
}

/// What the metadata side brings to the identity check.
pub struct Ours<'a> {
    pub store_id: &'a str,
    /// How to name it in messages (no password).
    pub metadata: &'a str,
    /// Whether it already holds repositories.
    pub has_repositories: bool,
    /// Whether an unmarked blob store may be bound though the metadata
    /// store holds repositories: the embedded database in the same data
    /// folder as the blobs, from before markers existed.
    pub adopt_unmarked: bool,
}

/// Binds `objects` to our metadata store on first use; refuses a blob
/// store bound to another one.
pub async fn check_identity(
    objects: &dyn MarkerObjects,
    ours: &Ours<'_>,
    now: i64,
) -> Result<(), MarkerError> {
    let location = objects.location();
    let io = |step, error| MarkerError::Io {
        location: location.clone(),
        step,
        error,
    };
    if let Some(bytes) = objects
        .get(MARKER)
        .await
        .map_err(|e| io("reading the marker", e))?
    {
        let theirs: StoreMarker =
            serde_json::from_slice(&bytes).map_err(|e| MarkerError::Unreadable {
                location: location.clone(),
                reason: e.to_string(),
            })?;
        if theirs.store_id == ours.store_id {
            return Ok(());
        }
        return Err(MarkerError::Foreign {
            location,
            theirs: theirs.store_id,
            their_metadata: theirs.metadata,
            ours: ours.store_id.to_string(),
            our_metadata: ours.metadata.to_string(),
        });
    }
    if ours.has_repositories && !ours.adopt_unmarked {
        return Err(MarkerError::Unbound {
            location,
            our_metadata: ours.metadata.to_string(),
        });
    }
    let marker = StoreMarker {
        store_id: ours.store_id.to_string(),
        metadata: ours.metadata.to_string(),
        bound_at: now,
    };
    let bytes = serde_json::to_vec_pretty(&marker).map_err(|e| io("encoding", e.into()))?;
    objects
        .put(MARKER, bytes)
        .await
        .map_err(|e| io("writing the marker", e))?;
    // Another registry binding the same fresh store meanwhile: whoever
    // reads back someone else's id stops here.
    Box::pin(check_identity(
        objects,
        &Ours {
            has_repositories: false,
            ..*ours
        },
        now,
    ))
    .await
}

/// Writes, reads back and deletes a small object: the store is reachable,
/// the bucket exists and the credentials may write and delete.
pub async fn probe(objects: &dyn MarkerObjects) -> Result<(), MarkerError> {
    let location = objects.location();
    let io = |step, error| MarkerError::Io {
        location: location.clone(),
        step,
        error,
    };
    let name = format!("_probe/{}", uuid::Uuid::new_v4());
    let content = name.clone().into_bytes();
    objects
        .put(&name, content.clone())
        .await
        .map_err(|e| io("writing a probe object", e))?;
    let read = objects
        .get(&name)
        .await
        .map_err(|e| io("reading the probe object back", e))?;
    objects
        .delete(&name)
        .await
        .map_err(|e| io("deleting the probe object", e))?;
    if read.as_deref() != Some(content.as_slice()) {
        return Err(MarkerError::ProbeMismatch { location });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours<'a>(id: &'a str, has_repositories: bool) -> Ours<'a> {
        Ours {
            store_id: id,
            metadata: "postgres://u:***@db/berth",
            has_repositories,
            adopt_unmarked: false,
        }
    }

    #[tokio::test]
    async fn a_fresh_store_is_bound_and_then_refused_to_another_metadata_store() {
        let dir = tempfile::tempdir().unwrap();
        let objects = FolderObjects(dir.path().to_path_buf());
        check_identity(&objects, &ours("A", false), 1)
            .await
            .unwrap();
        let marker: StoreMarker =
            serde_json::from_slice(&std::fs::read(dir.path().join(MARKER)).unwrap()).unwrap();
        assert_eq!(marker.store_id, "A");
        // The same metadata store again (a restart, another replica): fine.
        check_identity(&objects, &ours("A", true), 2).await.unwrap();
        let err = check_identity(&objects, &ours("B", false), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, MarkerError::Foreign { .. }), "{err}");
        let shown = err.to_string();
        assert!(
            shown.contains("A") && shown.contains("berth migrate"),
            "{shown}"
        );
        assert!(!shown.contains("u:pw"), "{shown}");
        // The refusal changed nothing.
        check_identity(&objects, &ours("A", true), 4).await.unwrap();
    }

    #[tokio::test]
    async fn an_unmarked_store_is_refused_to_metadata_that_has_repositories_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let objects = FolderObjects(dir.path().to_path_buf());
        let err = check_identity(&objects, &ours("A", true), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, MarkerError::Unbound { .. }), "{err}");
        assert!(!dir.path().join(MARKER).exists());
        // The embedded database beside its own blobs, from before markers: adopted.
        let local = Ours {
            adopt_unmarked: true,
            ..ours("A", true)
        };
        check_identity(&objects, &local, 1).await.unwrap();
        assert!(dir.path().join(MARKER).exists());
    }

    #[tokio::test]
    async fn a_marker_that_is_not_berths_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MARKER), "{\"hello\": 1}").unwrap();
        let objects = FolderObjects(dir.path().to_path_buf());
        let err = check_identity(&objects, &ours("A", false), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, MarkerError::Unreadable { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(MARKER)).unwrap(),
            "{\"hello\": 1}"
        );
    }

    #[tokio::test]
    async fn the_probe_leaves_nothing_and_fails_on_a_store_it_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let objects = FolderObjects(dir.path().to_path_buf());
        probe(&objects).await.unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("_probe"))
                .unwrap()
                .count(),
            0
        );
        std::fs::write(dir.path().join("a-file"), "").unwrap();
        let missing = FolderObjects(dir.path().join("a-file"));
        let err = probe(&missing).await.unwrap_err();
        assert!(err.to_string().contains("writing a probe object"), "{err}");
    }
}

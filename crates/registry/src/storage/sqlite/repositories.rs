//! Deleting a whole repository: its tags, manifests, references, links and
//! its own row, in the one transaction the caller runs this in.

use super::{now, storage_err};
use crate::error::Result;
use crate::storage::RepositoryDeleted;
use rusqlite::{Connection, OptionalExtension};

/// Deletes repository `name` and everything it holds; `None` if there is
/// no such repository. Blobs stay in the store for GC, which decides after
/// the grace period whether another repository still wants them.
pub(super) fn delete(tx: &Connection, name: &str) -> Result<Option<RepositoryDeleted>> {
    let id: Option<i64> = tx
        .query_row("SELECT id FROM repositories WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
        .map_err(storage_err)?;
    let Some(id) = id else { return Ok(None) };
    touch_what_it_holds(tx, id)?;
    let remove = |table: &str| {
        tx.execute(&format!("DELETE FROM {table} WHERE repo_id = ?1"), [id])
            .map(|n| n as u64)
            .map_err(storage_err)
    };
    let tags = remove("tags")?;
    remove("manifest_refs")?;
    let manifests = remove("manifests")?;
    remove("repo_blobs")?;
    remove("cached_tags")?;
    remove("cached_repositories")?;
    tx.execute("DELETE FROM repositories WHERE id = ?1", [id])
        .map_err(storage_err)?;
    Ok(Some(RepositoryDeleted { tags, manifests }))
}

/// Restarts the grace period of every blob the repository links or holds
/// as a manifest: once it is gone, they may be unreferenced, and GC must
/// wait the whole grace before it removes them (a push elsewhere may be
/// about to name them). Blobs still referenced elsewhere are unaffected by
/// a newer `touched_at`.
fn touch_what_it_holds(tx: &Connection, id: i64) -> Result<()> {
    tx.execute(
        "UPDATE blobs SET touched_at = max(touched_at, ?2)
         WHERE digest IN (SELECT digest FROM repo_blobs WHERE repo_id = ?1
                          UNION SELECT digest FROM manifests WHERE repo_id = ?1)",
        rusqlite::params![id, now()],
    )
    .map(drop)
    .map_err(storage_err)
}

#[cfg(test)]
mod tests {
    use crate::storage::sqlite::SqliteMetaStore;
    use crate::storage::{ManifestRecord, MetaStore, PutOptions};
    use crate::testing::publish_link;
    use berth_oci::{Digest, RepositoryName};

    #[tokio::test]
    async fn what_a_deleted_repository_held_gets_a_fresh_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let meta = SqliteMetaStore::open(&path).unwrap();
        let gone: RepositoryName = "aged/gone".parse().unwrap();
        let (layer, image) = (Digest::sha256_of(b"layer"), Digest::sha256_of(b"image"));
        let loose = Digest::sha256_of(b"unlinked long ago");
        publish_link(&meta, &gone, &layer, 5).await;
        publish_link(&meta, &gone, &loose, 1).await;
        assert!(meta.unlink_blob(&gone, &loose).await.unwrap());
        let record = ManifestRecord {
            digest: image.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 100,
            artifact_type: None,
            subject: None,
            annotations: None,
            blobs: vec![(layer.clone(), 5)],
            manifests: vec![],
        };
        meta.put_manifest(&gone, &record, None, &PutOptions::default())
            .await
            .unwrap();
        // Everything was last wanted an hour ago.
        let aged = rusqlite::Connection::open(&path).unwrap();
        aged.execute_batch(
            "UPDATE blobs SET touched_at = touched_at - 3600;
             UPDATE repo_blobs SET touched_at = touched_at - 3600;",
        )
        .unwrap();
        let now = super::now();
        let candidates = |cutoff: i64| {
            let meta = &meta;
            async move {
                let found = meta.gc_blob_candidates(cutoff, None, 100).await.unwrap();
                let mut digests: Vec<Digest> = found.into_iter().map(|(d, _)| d).collect();
                digests.sort();
                digests
            }
        };
        assert_eq!(candidates(now - 60).await, std::slice::from_ref(&loose));

        meta.delete_repository(&gone).await.unwrap().unwrap();
        assert_eq!(
            candidates(now - 60).await,
            std::slice::from_ref(&loose),
            "the layer and the manifest wait a whole grace period"
        );
        let mut unreferenced = vec![layer, image, loose];
        unreferenced.sort();
        assert_eq!(candidates(now + 1).await, unreferenced, "and then go");
    }
}

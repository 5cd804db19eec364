//! Removing blobs: the steps that tombstone, delete and forget, as tasks
//! that own what they use, so that they finish even when the pass that
//! started them is dropped (its caller gone), and that take turns with
//! recovery (see `GcState::removals`).

use super::TouchLog;
use crate::error::Result;
use crate::storage::{BlobStore, MetaStore};
use berth_oci::Digest;
use futures_util::{stream, StreamExt};
use std::sync::Arc;

/// Files removed at once.
const PARALLEL_DELETES: usize = 16;

/// What removing needs, owned, for a task that outlives a dropped pass.
pub(super) struct RemovalStores {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub touches: Arc<TouchLog>,
    pub removals: Arc<tokio::sync::Mutex<()>>,
}

/// One batch of candidates: each re-checked and tombstoned (reads of a
/// digest wait only while its tombstone is decided), then deleted.
/// Returns what went and how many were rescued.
pub(super) async fn remove_batch(
    stores: RemovalStores,
    batch: Vec<(Digest, u64)>,
    touched_before: i64,
) -> Result<(Vec<(Digest, u64)>, u64)> {
    let _alone = stores.removals.clone().lock_owned().await;
    let RemovalStores {
        meta,
        blobs,
        touches,
        ..
    } = &stores;
    let mut rescued = 0;
    let mut held = Vec::with_capacity(batch.len());
    for (digest, _) in &batch {
        match touches.hold(None, digest, touched_before) {
            Some(hold) => held.push((digest, hold)),
            None => rescued += 1, // read since the cutoff
        }
    }
    let mut deciding = Vec::with_capacity(held.len());
    for (digest, _) in &held {
        deciding.push(meta.tombstone_blob(digest, touched_before));
    }
    let decisions = futures_util::future::join_all(deciding).await;
    let mut tombstoned = Vec::with_capacity(held.len());
    let mut failed = None;
    for ((digest, _), decided) in held.iter().zip(decisions) {
        match decided {
            Ok(Some(size)) => tombstoned.push(((*digest).clone(), size)),
            Ok(None) => rescued += 1,
            Err(e) => failed = Some(e),
        }
    }
    drop(held); // the links are gone: reads now miss
    let mut deleting = Vec::with_capacity(tombstoned.len());
    for (digest, _) in &tombstoned {
        deleting.push(delete_tombstoned(&**blobs, &**meta, digest));
    }
    let deleted: Vec<Result<()>> = stream::iter(deleting)
        .buffer_unordered(PARALLEL_DELETES)
        .collect()
        .await;
    deleted.into_iter().collect::<Result<Vec<()>>>()?;
    match failed {
        Some(e) => Err(e),
        None => Ok((tombstoned, rescued)),
    }
}

/// An orphan file: tombstoned if still an orphan, deleted; whether it went.
pub(super) async fn remove_orphan(stores: RemovalStores, digest: Digest) -> Result<bool> {
    let _alone = stores.removals.clone().lock_owned().await;
    if !stores.meta.tombstone_orphan(&digest).await? {
        return Ok(false);
    }
    delete_tombstoned(&*stores.blobs, &*stores.meta, &digest).await?;
    Ok(true)
}

/// Removes a tombstoned blob's file, then its tombstone.
pub(super) async fn delete_tombstoned(
    blobs: &dyn BlobStore,
    meta: &dyn MetaStore,
    digest: &Digest,
) -> Result<()> {
    blobs.delete(digest).await?;
    meta.drop_tombstone(digest).await
}

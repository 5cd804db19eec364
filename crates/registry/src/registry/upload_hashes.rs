//! In-memory hash state of uploads in progress, and each upload's lock.
//!
//! Chunked uploads are hashed as their bytes arrive; the running hasher is kept
//! here between requests. It is a cache, not the truth: after a restart, or
//! when another replica took a chunk, the upload is re-read once at commit.
//! Each upload's slot is also its lock, so two requests on one upload take turns.

use berth_oci::DigestHasher;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A hasher that has seen exactly the first `offset` bytes of an upload.
pub(crate) struct HashState {
    pub offset: u64,
    pub hasher: DigestHasher,
}

pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<HashState>>>;

#[derive(Default)]
pub(crate) struct UploadHashes {
    slots: Mutex<HashMap<String, Slot>>,
}

impl UploadHashes {
    /// The slot for `id`, created empty if missing.
    pub fn slot(&self, id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(id.to_string()).or_default().clone()
    }

    /// Holds `id` if no request does, without waiting.
    pub fn try_lock(&self, id: &str) -> Option<tokio::sync::OwnedMutexGuard<Option<HashState>>> {
        self.slot(id).try_lock_owned().ok()
    }

    /// Whether a request holds `id` right now.
    pub fn is_busy(&self, id: &str) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.get(id).is_some_and(|slot| slot.try_lock().is_err())
    }

    /// Forgets `id`'s slot; call while holding it. A slot another request
    /// is waiting for stays, so that the two never hold different locks for
    /// one upload; that request finds the session gone and removes it.
    pub fn remove(&self, id: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and the caller's guard; any more is a waiter.
        if slots
            .get(id)
            .is_some_and(|slot| Arc::strong_count(slot) <= 2)
        {
            slots.remove(id);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

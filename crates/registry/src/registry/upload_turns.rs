//! Each upload's lock within this process, so that two requests on one
//! upload take turns. Across processes, the metadata store's
//! compare-and-set on the session decides (see `MetaStore::advance_upload`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) type Slot = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub(crate) struct UploadTurns {
    slots: Mutex<HashMap<String, Slot>>,
}

impl UploadTurns {
    /// The slot for `id`, created empty if missing.
    pub fn slot(&self, id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(id.to_string()).or_default().clone()
    }

    /// Holds `id` if no request does, without waiting.
    pub fn try_lock(&self, id: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
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

//! One lock per upload id, held by whatever touches the upload's file.
//!
//! An append's writer runs on a blocking thread and owns its lock, so when
//! the request that started it is dropped (a body timeout, a client gone) the
//! writer keeps the upload locked until it has cut the file back, and the
//! next operation on that upload waits for it instead of racing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Slot = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub(super) struct UploadLocks {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

/// Holds upload `id` locked until dropped; the last holder removes the slot.
pub(super) struct UploadLock {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    id: String,
}

impl UploadLocks {
    /// Waits until no one else holds upload `id`, then holds it.
    pub async fn lock(&self, id: &str) -> UploadLock {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(id.to_string()).or_default().clone()
        };
        UploadLock {
            guard: Some(slot.lock_owned().await),
            slots: self.slots.clone(),
            id: id.to_string(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // The map and our guard hold the slot; anyone else is waiting for it.
        if slots
            .get(&self.id)
            .is_some_and(|s| Arc::strong_count(s) <= 2)
        {
            slots.remove(&self.id);
        }
        self.guard.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_gets_the_lock_after_the_holder_and_slots_do_not_leak() {
        let locks = Arc::new(UploadLocks::default());
        let held = locks.lock("u").await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _second = locks.lock("u").await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the second holder waits");
        drop(held);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 0);
    }
}

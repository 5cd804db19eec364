//! One computation per key at a time: callers asking for the same layer
//! while it is being listed wait for that listing instead of starting their
//! own, then find it in the cache.

use berth_oci::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct SingleFlight {
    keys: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while computing `key`; others asking for it wait in [`SingleFlight::enter`].
pub(crate) struct Flight<'a> {
    owner: &'a SingleFlight,
    key: Digest,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl SingleFlight {
    /// Waits until no one else is computing `key`, then holds it. The
    /// caller checks its cache again before computing: whoever held the
    /// key before may have just filled it.
    pub async fn enter(&self, key: &Digest) -> Flight<'_> {
        let lock = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.entry(key.clone()).or_default().clone()
        };
        Flight {
            owner: self,
            key: key.clone(),
            _held: lock.lock_owned().await,
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        // Waiters keep their own handle on the lock; a newcomer after this
        // makes a fresh one and finds the cache filled.
        let mut keys = self.owner.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&self.key);
    }
}

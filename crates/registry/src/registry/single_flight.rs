//! One computation per key at a time: callers asking for the same key
//! (a layer being listed, a manifest being fetched from an upstream) while
//! it is being computed wait for that computation instead of starting their
//! own, then find its result where it was put.

use berth_oci::Digest;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

pub(crate) struct SingleFlight<K = Digest> {
    keys: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for SingleFlight<K> {
    fn default() -> Self {
        SingleFlight {
            keys: Mutex::default(),
        }
    }
}

/// Held while computing `key`; others asking for it wait in [`SingleFlight::enter`].
pub(crate) struct Flight<'a, K: Eq + Hash = Digest> {
    owner: &'a SingleFlight<K>,
    key: K,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl<K: Eq + Hash + Clone> SingleFlight<K> {
    /// Waits until no one else is computing `key`, then holds it. The
    /// caller checks its cache again before computing: whoever held the
    /// key before may have just filled it.
    pub async fn enter(&self, key: &K) -> Flight<'_, K> {
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

impl<K: Eq + Hash> Drop for Flight<'_, K> {
    fn drop(&mut self) {
        // Waiters keep their own handle on the lock; a newcomer after this
        // makes a fresh one and finds the cache filled.
        let mut keys = self.owner.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&self.key);
    }
}

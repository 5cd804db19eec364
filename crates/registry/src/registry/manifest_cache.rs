//! A bounded in-memory copy of recently served manifests, keyed by digest.
//!
//! Content under a digest never changes, so an entry can never be stale:
//! whether a repository may see a manifest is still decided by the metadata
//! store on every request; this only saves reading the bytes from disk.

use berth_oci::Digest;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub(crate) struct ManifestCache {
    budget: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    bytes: usize,
    map: HashMap<Digest, Bytes>,
    /// Insertion order, oldest first: evicted first when over budget.
    order: VecDeque<Digest>,
}

impl ManifestCache {
    pub fn new(budget: usize) -> Self {
        ManifestCache {
            budget,
            inner: Mutex::new(Entries::default()),
        }
    }

    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        let entries = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        entries.map.get(digest).cloned()
    }

    pub fn insert(&self, digest: &Digest, content: Bytes) {
        if content.len() > self.budget {
            return;
        }
        let mut e = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if e.map.contains_key(digest) {
            return;
        }
        e.bytes += content.len();
        e.map.insert(digest.clone(), content);
        e.order.push_back(digest.clone());
        while e.bytes > self.budget {
            let Some(old) = e.order.pop_front() else {
                break;
            };
            if let Some(evicted) = e.map.remove(&old) {
                e.bytes -= evicted.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_entries_past_the_budget() {
        let cache = ManifestCache::new(10);
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        cache.insert(&a, Bytes::from_static(b"123456"));
        cache.insert(&b, Bytes::from_static(b"7890ab"));
        assert!(cache.get(&a).is_none());
        assert_eq!(cache.get(&b).as_deref(), Some(&b"7890ab"[..]));
        cache.insert(&a, Bytes::from(vec![0; 11]));
        assert!(cache.get(&a).is_none(), "larger than the whole budget");
    }
}

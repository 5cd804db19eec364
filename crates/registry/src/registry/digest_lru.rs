//! File listings kept by digest (of a layer, or of an image's manifest),
//! least recently used evicted first.
//!
//! A digest's content never changes, so neither does its listing (nor the
//! reason it has none): the same layer in two repositories shares one
//! entry, and whether a repository may see it is checked before every hit.

use crate::layers::{LayerError, LayerListing, MergedTree};
use berth_oci::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A listing, or why the layer has none (kept so that a corrupt layer is
/// not decompressed again on every request).
pub(crate) type Listed = Result<Arc<LayerListing>, LayerError>;

/// What a cached value costs: the file entries it holds.
pub(crate) trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for Listed {
    fn weight(&self) -> usize {
        match self {
            Ok(listing) => listing.entries.len().max(1),
            Err(_) => 1,
        }
    }
}

impl Weight for Arc<MergedTree> {
    fn weight(&self) -> usize {
        self.entries.len().max(1)
    }
}

pub(crate) struct DigestLru<V> {
    /// Entries (files, folders, links) kept over all values.
    budget: usize,
    inner: Mutex<Slots<V>>,
}

struct Slots<V> {
    used: usize,
    clock: u64,
    map: HashMap<Digest, Slot<V>>,
}

struct Slot<V> {
    listed: V,
    weight: usize,
    last_used: u64,
}

impl<V: Weight + Clone> DigestLru<V> {
    pub fn new(budget: usize) -> Self {
        DigestLru {
            budget,
            inner: Mutex::new(Slots {
                used: 0,
                clock: 0,
                map: HashMap::new(),
            }),
        }
    }

    pub fn get(&self, digest: &Digest) -> Option<V> {
        let mut slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        slots.clock += 1;
        let now = slots.clock;
        let slot = slots.map.get_mut(digest)?;
        slot.last_used = now;
        Some(slot.listed.clone())
    }

    pub fn insert(&self, digest: &Digest, listed: V) {
        let weight = listed.weight();
        if weight > self.budget {
            return;
        }
        let mut slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        slots.clock += 1;
        let last_used = slots.clock;
        let slot = Slot {
            listed,
            weight,
            last_used,
        };
        if let Some(old) = slots.map.insert(digest.clone(), slot) {
            slots.used -= old.weight;
        }
        slots.used += weight;
        while slots.used > self.budget {
            // Listings are few (each may be thousands of entries): a scan is cheap.
            let Some(oldest) = slots
                .map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(d, _)| d.clone())
            else {
                break;
            };
            if let Some(evicted) = slots.map.remove(&oldest) {
                slots.used -= evicted.weight;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Compression, EntryKind, LayerEntry};

    fn listing(entries: usize) -> Listed {
        let entry = LayerEntry {
            path: "f".into(),
            kind: EntryKind::File,
            size: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            link_target: None,
        };
        Ok(Arc::new(LayerListing {
            entries: vec![entry; entries],
            total_size: 0,
            truncated: false,
            compression: Compression::None,
        }))
    }

    #[test]
    fn evicts_the_least_recently_used_listing_past_the_budget() {
        let cache = DigestLru::<Listed>::new(10);
        let (a, b, c) = (
            Digest::sha256_of(b"a"),
            Digest::sha256_of(b"b"),
            Digest::sha256_of(b"c"),
        );
        cache.insert(&a, listing(4));
        cache.insert(&b, listing(4));
        assert!(cache.get(&a).is_some()); // a is now the most recent
        cache.insert(&c, listing(4));
        assert!(cache.get(&b).is_none(), "b was least recently used");
        assert!(cache.get(&a).is_some());
        assert!(cache.get(&c).is_some());
        cache.insert(&b, listing(11));
        assert!(cache.get(&b).is_none(), "larger than the whole budget");
    }

    #[test]
    fn remembers_why_a_layer_has_no_listing() {
        let cache = DigestLru::<Listed>::new(10);
        let d = Digest::sha256_of(b"x");
        cache.insert(&d, Err(LayerError::NotATar("json".into())));
        assert_eq!(
            cache.get(&d).map(|l| l.err()),
            Some(Some(LayerError::NotATar("json".into())))
        );
    }
}

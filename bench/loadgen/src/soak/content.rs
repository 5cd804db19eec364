//! The soak's blob contents: a bounded pool, so the server's disk use is
//! bounded however long the soak runs (blobs are content-addressed: without
//! a collector every distinct blob pushed stays on disk).
//!
//! A blob is identified by a [`BlobId`] (size class and index). Its bytes are
//! the first `size - TAIL` bytes of one random buffer shared by every blob,
//! followed by a `TAIL`-byte tail derived from the id. The SHA-256 state after
//! each class's shared prefix is computed once, so a digest costs one block,
//! and bodies are sent as `Bytes` slices without copying.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::push::Rng;

const TAIL: usize = 64;

/// Blob sizes: a few KiB to a few MiB, as image layers and configs are.
pub const CLASSES: [usize; 7] = [
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
];

/// Which blob: `class` indexes [`CLASSES`]. Scratch blobs (pushed only to be
/// deleted, never referenced) live in a tail space of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobId {
    pub class: u8,
    pub index: u32,
    pub scratch: bool,
}

pub struct Pool {
    base: Bytes,
    seed: u64,
    /// SHA-256 state after each class's shared prefix.
    midstates: Vec<Sha256>,
    /// Distinct pool blobs per class: together about `pool_bytes`.
    per_class: Vec<u32>,
}

impl Pool {
    /// A pool whose distinct blobs total about `pool_bytes` (at least one
    /// blob per class), spread evenly over the classes by bytes.
    pub fn new(pool_bytes: u64) -> Pool {
        let mut rng = Rng::from_entropy();
        let seed = rng.next_u64();
        let largest = CLASSES[CLASSES.len() - 1];
        let mut base = vec![0u8; largest - TAIL];
        rng.fill(&mut base);
        let midstates = CLASSES
            .iter()
            .map(|&size| {
                let mut h = Sha256::new();
                h.update(&base[..size - TAIL]);
                h
            })
            .collect();
        let share = pool_bytes / CLASSES.len() as u64;
        let per_class = CLASSES
            .iter()
            .map(|&size| (share / size as u64).clamp(1, u32::MAX as u64) as u32)
            .collect();
        Pool {
            base: Bytes::from(base),
            seed,
            midstates,
            per_class,
        }
    }

    /// Total bytes of the distinct pool blobs (what the server stores at most).
    pub fn distinct_bytes(&self) -> u64 {
        CLASSES
            .iter()
            .zip(&self.per_class)
            .map(|(&size, &n)| size as u64 * n as u64)
            .sum()
    }

    /// A random pool blob: each class equally likely.
    pub fn pick(&self, rng: &mut Rng) -> BlobId {
        let class = (rng.next_u64() % CLASSES.len() as u64) as u8;
        self.pick_in(class, rng)
    }

    /// A random blob among the first `hot` of a random class: images drawing
    /// from these share layers, so a push finds most of them already there.
    pub fn pick_hot(&self, hot: u32, rng: &mut Rng) -> BlobId {
        let class = (rng.next_u64() % CLASSES.len() as u64) as u8;
        let n = self.per_class[class as usize].min(hot.max(1));
        BlobId {
            class,
            index: (rng.next_u64() % n as u64) as u32,
            scratch: false,
        }
    }

    /// A random pool blob of size class `class`.
    pub fn pick_in(&self, class: u8, rng: &mut Rng) -> BlobId {
        let index = (rng.next_u64() % self.per_class[class as usize] as u64) as u32;
        BlobId {
            class,
            index,
            scratch: false,
        }
    }

    /// A small blob in the scratch space; `index` is chosen by the caller so
    /// that no two clients share one.
    pub fn scratch(&self, index: u32) -> BlobId {
        BlobId {
            class: 0,
            index,
            scratch: true,
        }
    }

    pub fn size(&self, id: BlobId) -> u64 {
        CLASSES[id.class as usize] as u64
    }

    fn tail(&self, id: BlobId) -> Bytes {
        let key = (id.class as u64) << 40 | (id.index as u64) << 1 | id.scratch as u64;
        let mut rng = Rng::seeded(self.seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut tail = vec![0u8; TAIL];
        rng.fill(&mut tail);
        tail[..8].copy_from_slice(&key.to_le_bytes());
        Bytes::from(tail)
    }

    pub fn digest(&self, id: BlobId) -> String {
        let mut h = self.midstates[id.class as usize].clone();
        h.update(self.tail(id));
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    /// The blob's bytes `start..end` as zero-copy pieces.
    pub fn slice(&self, id: BlobId, start: u64, end: u64) -> Vec<Bytes> {
        let prefix = (self.size(id) - TAIL as u64) as usize;
        let (start, end) = (start as usize, end as usize);
        let mut pieces = Vec::with_capacity(2);
        if start < prefix {
            pieces.push(self.base.slice(start..end.min(prefix)));
        }
        if end > prefix {
            let tail = self.tail(id);
            pieces.push(tail.slice(start.max(prefix) - prefix..end - prefix));
        }
        pieces
    }

    /// True if `got` equals the blob's bytes `start..start+got.len()`.
    pub fn matches(&self, id: BlobId, start: u64, got: &[u8]) -> bool {
        let end = start + got.len() as u64;
        if end > self.size(id) {
            return false;
        }
        let mut at = 0;
        for piece in self.slice(id, start, end) {
            if got[at..at + piece.len()] != piece[..] {
                return false;
            }
            at += piece.len();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_hash_to_the_digest() {
        let pool = Pool::new(8 << 20);
        for id in [
            BlobId {
                class: 0,
                index: 3,
                scratch: false,
            },
            BlobId {
                class: 6,
                index: 0,
                scratch: false,
            },
            pool.scratch(3),
        ] {
            let size = pool.size(id);
            let mut h = Sha256::new();
            for piece in pool.slice(id, 0, size) {
                h.update(&piece);
            }
            assert_eq!(
                format!("sha256:{}", hex::encode(h.finalize())),
                pool.digest(id)
            );
            let whole: Vec<u8> = pool.slice(id, 0, size).concat();
            assert!(pool.matches(id, size - 100, &whole[size as usize - 100..]));
            assert!(!pool.matches(id, size - 101, &whole[size as usize - 100..]));
        }
        assert_ne!(
            pool.digest(pool.scratch(3)),
            pool.digest(BlobId {
                class: 0,
                index: 3,
                scratch: false
            })
        );
    }
}

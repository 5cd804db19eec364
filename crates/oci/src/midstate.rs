//! SHA-2 hashing whose state can be saved and resumed.
//!
//! An upload's bytes can arrive over several requests, on different
//! replicas, around restarts. Saving the hash of the first N bytes (the
//! chaining words plus the unfinished block) lets whoever takes the next
//! chunk continue without reading those bytes back from storage. The block
//! function is `sha2`'s (with its CPU-specific code paths); only buffering,
//! padding and the saved form are ours.

use sha2::digest::generic_array::GenericArray;

/// Blocks handed to the block function at once: copying them into one
/// array is cheaper than one call per block.
const BATCH: usize = 32;

/// One SHA-2 variant's block function and constants.
pub trait Variant {
    type Word: Copy + Default;
    /// Block length in bytes.
    const BLOCK: usize;
    /// Bytes of the message length in the padding.
    const LENGTH_BYTES: usize;
    const INITIAL: [Self::Word; 8];
    /// Runs the block function over whole blocks (`data.len()` is a multiple of `BLOCK`).
    fn compress(state: &mut [Self::Word; 8], data: &[u8]);
    fn word_bytes(word: Self::Word, out: &mut Vec<u8>);
    fn word_from(bytes: &[u8]) -> Self::Word;
}

pub struct Sha256;
pub struct Sha512;

impl Variant for Sha256 {
    type Word = u32;
    const BLOCK: usize = 64;
    const LENGTH_BYTES: usize = 8;
    const INITIAL: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    fn compress(state: &mut [u32; 8], data: &[u8]) {
        let mut batch = [GenericArray::default(); BATCH];
        for chunk in data.chunks(Self::BLOCK * BATCH) {
            let blocks = chunk.len() / Self::BLOCK;
            for (slot, block) in batch.iter_mut().zip(chunk.chunks_exact(Self::BLOCK)) {
                slot.copy_from_slice(block);
            }
            sha2::compress256(state, &batch[..blocks]);
        }
    }
    fn word_bytes(word: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&word.to_be_bytes());
    }
    fn word_from(bytes: &[u8]) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(bytes);
        u32::from_be_bytes(b)
    }
}

impl Variant for Sha512 {
    type Word = u64;
    const BLOCK: usize = 128;
    const LENGTH_BYTES: usize = 16;
    const INITIAL: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];
    fn compress(state: &mut [u64; 8], data: &[u8]) {
        let mut batch = [GenericArray::default(); BATCH];
        for chunk in data.chunks(Self::BLOCK * BATCH) {
            let blocks = chunk.len() / Self::BLOCK;
            for (slot, block) in batch.iter_mut().zip(chunk.chunks_exact(Self::BLOCK)) {
                slot.copy_from_slice(block);
            }
            sha2::compress512(state, &batch[..blocks]);
        }
    }
    fn word_bytes(word: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&word.to_be_bytes());
    }
    fn word_from(bytes: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        u64::from_be_bytes(b)
    }
}

/// The running state of one SHA-2 hash.
pub struct Midstate<V: Variant> {
    state: [V::Word; 8],
    /// The unfinished block: `pending.len() < V::BLOCK`.
    pending: Vec<u8>,
    /// Bytes hashed so far, including `pending`.
    length: u64,
}

impl<V: Variant> Clone for Midstate<V> {
    fn clone(&self) -> Self {
        Midstate {
            state: self.state,
            pending: self.pending.clone(),
            length: self.length,
        }
    }
}

impl<V: Variant> Default for Midstate<V> {
    fn default() -> Self {
        Midstate {
            state: V::INITIAL,
            pending: Vec::with_capacity(V::BLOCK),
            length: 0,
        }
    }
}

impl<V: Variant> Midstate<V> {
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len() as u64;
        if !self.pending.is_empty() {
            let take = (V::BLOCK - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() < V::BLOCK {
                return;
            }
            V::compress(&mut self.state, &self.pending);
            self.pending.clear();
        }
        let whole = bytes.len() - bytes.len() % V::BLOCK;
        V::compress(&mut self.state, &bytes[..whole]);
        self.pending.extend_from_slice(&bytes[whole..]);
    }

    /// The digest's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let bits = u128::from(self.length) * 8;
        let mut tail = std::mem::take(&mut self.pending);
        tail.push(0x80);
        while tail.len() % V::BLOCK != V::BLOCK - V::LENGTH_BYTES {
            tail.push(0);
        }
        tail.extend_from_slice(&bits.to_be_bytes()[16 - V::LENGTH_BYTES..]);
        V::compress(&mut self.state, &tail);
        let mut out = Vec::with_capacity(64);
        for word in self.state {
            V::word_bytes(word, &mut out);
        }
        out
    }

    /// Length, chaining words and unfinished block, in that order.
    pub fn save(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.length.to_be_bytes());
        for word in self.state {
            V::word_bytes(word, out);
        }
        out.extend_from_slice(&self.pending);
    }

    /// The inverse of [`Midstate::save`]; `None` if `bytes` are not a saved state.
    pub fn resume(bytes: &[u8]) -> Option<Self> {
        let word = std::mem::size_of::<V::Word>();
        let (length, rest) = bytes.split_at_checked(8)?;
        let (words, pending) = rest.split_at_checked(8 * word)?;
        let length = u64::from_be_bytes(length.try_into().ok()?);
        if pending.len() >= V::BLOCK || length % V::BLOCK as u64 != pending.len() as u64 {
            return None;
        }
        let mut state = [V::Word::default(); 8];
        for (slot, bytes) in state.iter_mut().zip(words.chunks_exact(word)) {
            *slot = V::word_from(bytes);
        }
        let mut kept = Vec::with_capacity(V::BLOCK);
        kept.extend_from_slice(pending);
        Some(Midstate {
            state,
            pending: kept,
            length,
        })
    }
}

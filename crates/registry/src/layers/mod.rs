//! Inside a layer: the files a layer blob adds, changes and deletes, and the
//! merged tree of a whole image.
//!
//! Pure: everything here works on an `impl Read` of the blob's bytes, which
//! stream through a gzip or zstd decoder and a tar header reader, never
//! unpacked to disk and never held whole in memory. The registry feeds it
//! blobs from its [`crate::BlobStore`] and caches the answers by digest.

mod compression;
mod entry;
mod error;
mod listing;
mod merged;
mod pax;

pub use compression::Compression;
pub use entry::{normalize_path, EntryKind, LayerEntry};
pub use error::LayerError;
pub use listing::{list_layer, LayerListing, ListingLimits, MAX_EXTENSION_BYTES};
pub use merged::{LayerRef, MergedEntry, MergedTree};

#[cfg(test)]
mod tests;

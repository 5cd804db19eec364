//! OCI vocabulary for berth: digests, repository names, tags, references,
//! media types and manifest parsing.
//!
//! Everything here is pure: no I/O, no HTTP, no storage. The registry and
//! server crates build on these types so that a value which exists has
//! already been validated against the OCI specifications.
#![forbid(unsafe_code)]

pub mod contents;
pub mod digest;
pub mod image_config;
pub mod manifest;
pub mod media_type;
mod midstate;
pub mod name;
pub mod reference;

pub use contents::{IndexEntry, ManifestContents, Platform};
pub use digest::{Algorithm, Digest, DigestError, DigestHasher};
pub use image_config::ImageConfig;
pub use manifest::{Descriptor, ManifestError, ManifestKind, ParsedManifest};
pub use name::{NameError, RepositoryName};
pub use reference::{Reference, Tag, TagError};

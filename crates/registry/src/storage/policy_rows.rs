//! Rows the policies read and write through [`super::MetaStore`]: last-pull
//! times, and what a repository holds against its quota.

use berth_oci::{Digest, RepositoryName, Tag};

/// What a pull named.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PulledBy {
    Tag(Tag),
    Digest(Digest),
}

/// A manifest GET or HEAD, coalesced: the latest one of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRecord {
    pub repository: RepositoryName,
    pub by: PulledBy,
    /// Unix seconds.
    pub at: i64,
}

/// What one repository holds, as its quota counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepositoryUsage {
    /// Its manifests plus the distinct blobs they name, each digest once
    /// however many of its manifests share it.
    pub stored_bytes: u64,
    pub tags: u64,
}

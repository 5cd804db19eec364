//! Quotas: how much one repository may hold, checked when a manifest is
//! PUT (a streamed blob's size is unknown until it ends, and a blob alone
//! is not part of any image until a manifest names it).

use super::NamePattern;
pub use crate::storage::Quota;
use serde::Serialize;

/// A quota for the repositories matching a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRule {
    pub repositories: NamePattern,
    pub quota: Quota,
}

/// What a repository under a quota holds, against its limits (for
/// `/metrics` and the UI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaUse {
    pub repository: String,
    pub used_bytes: u64,
    pub max_bytes: Option<u64>,
    pub tags: u64,
    pub max_tags: Option<u64>,
}

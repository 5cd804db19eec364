//! What operations endpoints ask the registry: whether its stores answer,
//! and how much they hold.

use super::Registry;
use crate::error::Result;
use crate::storage::StoreStats;

/// Each store's answer to its check; ready when both are `Ok`.
#[derive(Debug)]
pub struct Readiness {
    pub blobs: Result<()>,
    pub meta: Result<()>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.blobs.is_ok() && self.meta.is_ok()
    }
}

impl Registry {
    /// Asks both stores at once whether they could serve requests now.
    pub async fn readiness(&self) -> Readiness {
        let (blobs, meta) = tokio::join!(self.blobs.check(), self.meta.check());
        Readiness { blobs, meta }
    }

    /// Totals over the whole registry; a scan, so callers cache it.
    pub async fn stats(&self) -> Result<StoreStats> {
        self.meta.stats().await
    }
}

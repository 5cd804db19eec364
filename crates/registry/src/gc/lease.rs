//! One collector across replicas: a pass (and start-up recovery) runs only
//! while this process holds the metadata store's lease [`LEASE`], renewed
//! while the pass runs and released after it.
//!
//! The in-process mutex in [`super::collector::GcState`] still orders
//! passes inside one process; the lease orders processes sharing one
//! metadata store (replicas on PostgreSQL, or `berth gc` beside them).
//! Two passes at once would each be safe row by row, but recovery in one
//! could finish a tombstone the other's batch is still deleting.

use crate::error::{Error, Result};
use crate::storage::MetaStore;
use std::future::Future;
use std::time::Duration;

/// The lease's name in the metadata store.
pub const LEASE: &str = "gc";

/// How long a lease lasts unrenewed: a replica killed mid-pass blocks
/// collection for at most this long.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// Renewals per TTL: two may fail (a slow database) before it lapses.
const RENEWALS_PER_TTL: u32 = 3;

/// The holder name of a process whose stores nobody else shares (the
/// embedded database, under the data folder's lock): a restart after a
/// crash takes its own lease back at once instead of waiting it out.
pub const LOCAL_HOLDER: &str = "local";

/// What refusing a pass because another process runs one says.
pub fn busy() -> Error {
    Error::Storage(
        "another berth process (a replica, or berth gc) is running a garbage collection pass: \
         it holds the database lease \"gc\"; try again when it ends"
            .into(),
    )
}

/// Runs `work` while holding the lease as `holder`: `Ok(None)` without
/// running it when another holder has the lease. The lease is renewed
/// while `work` runs; if a renewal finds it lost (this process stalled
/// past the TTL and another took over), `work` is dropped and the pass
/// fails. Released afterwards either way.
pub async fn under_lease<T>(
    meta: &dyn MetaStore,
    holder: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<Option<T>> {
    if !meta.try_lease(LEASE, holder, LEASE_TTL).await? {
        return Ok(None);
    }
    let renewing = async {
        let mut tick = tokio::time::interval(LEASE_TTL / RENEWALS_PER_TTL);
        tick.tick().await; // the first tick is now: just taken
        loop {
            tick.tick().await;
            match meta.try_lease(LEASE, holder, LEASE_TTL).await {
                Ok(true) => {}
                Ok(false) => {
                    return Error::Storage(
                        "the garbage collection lease was lost to another process mid-pass; \
                         the pass stopped"
                            .into(),
                    )
                }
                // Kept trying: the lease is good until its TTL runs out.
                Err(e) => tracing::warn!(error = %e, "renewing the GC lease failed"),
            }
        }
    };
    let outcome = tokio::select! {
        result = work => result.map(Some),
        lost = renewing => Err(lost),
    };
    if let Err(e) = meta.release_lease(LEASE, holder).await {
        // It lapses by itself after the TTL.
        tracing::warn!(error = %e, "releasing the GC lease failed");
    }
    outcome
}

//! The background worker: a pass every `gc.interval`, one at a time (a pass
//! asked for meanwhile, by `berth gc`, waits its turn inside
//! [`Registry::collect_garbage`]).

use super::GcRequest;
use crate::registry::{unix_now, Registry};
use std::sync::Arc;

impl Registry {
    /// Runs passes every `gc.interval` until the task is dropped; returns
    /// at once when the interval is off. A pass that fails (or panics) is
    /// logged, and the next one runs on time.
    pub async fn run_gc_worker(self: Arc<Self>) {
        let Some(interval) = self.options.gc.interval else {
            return;
        };
        loop {
            let next = unix_now().saturating_add(i64::try_from(interval.as_secs()).unwrap_or(0));
            self.gc.set_next_run(Some(next));
            tokio::time::sleep(interval).await;
            let registry = self.clone();
            let pass = tokio::spawn(async move {
                registry
                    .collect_garbage_if_free(&GcRequest::default(), &())
                    .await
            });
            match pass.await {
                Ok(Ok(None)) => tracing::debug!(
                    "garbage collection skipped: another process holds the GC lease"
                ),
                Ok(Ok(Some(report))) => tracing::info!(
                    blobs = report.blobs_removed,
                    bytes = report.bytes_removed,
                    manifests = report.manifests_removed,
                    links = report.links_removed,
                    uploads = report.uploads_removed,
                    rescued = report.rescued,
                    took_ms = report.took_ms,
                    "garbage collection pass done"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "garbage collection pass failed"),
                Err(e) => tracing::error!(error = %e, "garbage collection pass panicked"),
            }
        }
    }
}

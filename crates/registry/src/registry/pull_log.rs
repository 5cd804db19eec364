//! [`PullLog`]: when each tag and manifest was last pulled, without a
//! database write per manifest GET or HEAD.
//!
//! A pull is noted in memory, coalesced by (repository, tag or digest):
//! a tag pulled a thousand times a minute is one pending row. The pending
//! rows are written in one lazy transaction at most once a minute, by a
//! task the first pull after a flush schedules, and always before
//! retention judges tags ([`crate::Registry::flush_pulls`]). Memory is
//! bounded: past [`EARLY_FLUSH_AT`] pending rows a flush is scheduled at
//! once, and past [`MAX_PENDING`] pulls of further names are dropped until
//! it ran (their tags only look less recently pulled).

use crate::storage::{MetaStore, PullRecord, PulledBy};
use berth_oci::RepositoryName;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Pending pulls are written this long after the first one since the last flush.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// Pending rows that make a flush happen now rather than within the minute.
pub const EARLY_FLUSH_AT: usize = 20_000;

/// Pending rows kept at most (a few MiB).
pub const MAX_PENDING: usize = 100_000;

#[derive(Default)]
struct State {
    /// Latest pull time of each (repository, tag or digest) not yet written.
    pending: HashMap<(RepositoryName, PulledBy), i64>,
    /// A flush task is waiting to run.
    scheduled: bool,
    /// A flush was asked for now because the log grew past [`EARLY_FLUSH_AT`].
    early: bool,
}

#[derive(Default)]
pub struct PullLog {
    state: Mutex<State>,
}

impl PullLog {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a pull at `at` (Unix seconds). Answers when the caller should
    /// have the log flushed: `Some(delay)` for the first pull since the last
    /// flush (and once more, with no delay, when the log grows large).
    pub fn record(&self, repository: &RepositoryName, by: PulledBy, at: i64) -> Option<Duration> {
        let mut state = self.lock();
        let key = (repository.clone(), by);
        let full = state.pending.len() >= MAX_PENDING;
        match state.pending.get_mut(&key) {
            Some(latest) => *latest = (*latest).max(at),
            None if full => {}
            None => {
                state.pending.insert(key, at);
            }
        }
        if !state.scheduled {
            state.scheduled = true;
            return Some(FLUSH_EVERY);
        }
        if state.pending.len() >= EARLY_FLUSH_AT && !state.early {
            state.early = true;
            return Some(Duration::ZERO);
        }
        None
    }

    /// Pulls not yet written.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every pending pull; the next pull schedules a new flush.
    fn take(&self) -> Vec<PullRecord> {
        let mut state = self.lock();
        state.scheduled = false;
        state.early = false;
        state
            .pending
            .drain()
            .map(|((repository, by), at)| PullRecord { repository, by, at })
            .collect()
    }

    /// Puts back pulls whose write failed, keeping any later pull of the same name.
    fn restore(&self, records: Vec<PullRecord>) {
        let mut state = self.lock();
        for record in records {
            if state.pending.len() >= MAX_PENDING {
                break;
            }
            let latest = state
                .pending
                .entry((record.repository, record.by))
                .or_insert(record.at);
            *latest = (*latest).max(record.at);
        }
    }

    /// Writes every pending pull in one call; how many.
    pub async fn flush(&self, meta: &dyn MetaStore) -> crate::Result<usize> {
        let records = self.take();
        let count = records.len();
        if count == 0 {
            return Ok(0);
        }
        if let Err(e) = meta.record_pulls(records.clone()).await {
            self.restore(records);
            return Err(e);
        }
        Ok(count)
    }
}

/// Flushes `log` after `delay` on a task of its own: no request waits for
/// a pull time to be written. Without a runtime (never in berth) nothing
/// is scheduled and pulls wait for the next explicit flush.
pub(crate) fn schedule_flush(log: Arc<PullLog>, meta: Arc<dyn MetaStore>, delay: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        tokio::time::sleep(delay).await;
        if let Err(e) = log.flush(&*meta).await {
            tracing::warn!(error = %e, "writing pull times failed; retrying with the next pull");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::{Digest, Tag};

    fn repo(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    fn by_tag(s: &str) -> PulledBy {
        PulledBy::Tag(s.parse::<Tag>().unwrap())
    }

    #[test]
    fn pulls_of_one_name_coalesce_into_their_latest_time() {
        let log = PullLog::default();
        let a = repo("a");
        assert_eq!(log.record(&a, by_tag("v1"), 100), Some(FLUSH_EVERY));
        for at in [50, 300, 200] {
            assert_eq!(
                log.record(&a, by_tag("v1"), at),
                None,
                "one flush is scheduled"
            );
        }
        let digest = PulledBy::Digest(Digest::sha256_of(b"m"));
        log.record(&a, digest.clone(), 10);
        log.record(&repo("b"), by_tag("v1"), 20);
        assert_eq!(log.len(), 3);
        let mut taken = log.take();
        taken.sort_by_key(|r| r.at);
        let times: Vec<(String, i64)> = taken
            .iter()
            .map(|r| (r.repository.to_string(), r.at))
            .collect();
        assert_eq!(
            times,
            [("a".into(), 10), ("b".into(), 20), ("a".into(), 300)]
        );
        assert!(log.is_empty());
        assert_eq!(
            log.record(&a, by_tag("v1"), 400),
            Some(FLUSH_EVERY),
            "the first pull after a flush schedules the next"
        );
    }

    #[test]
    fn a_large_log_asks_for_a_flush_now_and_stops_growing_at_its_bound() {
        let log = PullLog::default();
        let a = repo("a");
        let mut asked_now = 0;
        for i in 0..MAX_PENDING + 10 {
            if log.record(&a, by_tag(&format!("t{i}")), 1) == Some(Duration::ZERO) {
                asked_now += 1;
            }
        }
        assert_eq!(asked_now, 1);
        assert_eq!(log.len(), MAX_PENDING, "bounded");
        // Names already pending still move forward.
        log.record(&a, by_tag("t0"), 99);
        let t0 = log
            .take()
            .into_iter()
            .find(|r| r.by == by_tag("t0"))
            .unwrap();
        assert_eq!(t0.at, 99);
    }

    #[test]
    fn pulls_whose_write_failed_are_kept_for_the_next_flush() {
        let log = PullLog::default();
        let a = repo("a");
        log.record(&a, by_tag("v1"), 100);
        let taken = log.take();
        log.record(&a, by_tag("v1"), 200);
        log.restore(taken);
        let again = log.take();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].at, 200, "the later pull wins");
    }
}

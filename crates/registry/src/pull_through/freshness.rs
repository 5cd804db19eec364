//! When a cached tag is checked upstream: not within the freshness
//! interval after a check, not for a while after the upstream failed one
//! (so that a hung upstream costs one client a short wait, not every
//! client a long one), and never for longer than a short deadline while a
//! cached copy could answer instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a tag check may wait for the upstream while a cached copy could
/// answer: a kubelet or docker gives up on a pull long before the upstream
/// client's own timeouts and retries would.
pub(crate) const CHECK_DEADLINE: Duration = Duration::from_secs(5);
/// After a failed check, cached copies of that upstream's tags are served
/// stale without asking it for this long.
pub(crate) const OUTAGE_MEMORY: Duration = Duration::from_secs(30);

/// Whether a tag last checked at `checked_at` (Unix seconds) needs no check
/// at `now`. Never checked, or checked "in the future" by a clock that went
/// back: not fresh.
pub(crate) fn is_fresh(checked_at: Option<i64>, now: i64, freshness: Duration) -> bool {
    let Some(at) = checked_at else { return false };
    let age = now - at;
    (0..i64::try_from(freshness.as_secs()).unwrap_or(i64::MAX)).contains(&age)
}

/// Upstreams whose last tag check failed, until when they are not asked.
#[derive(Default)]
pub(crate) struct Outages {
    until: Mutex<HashMap<String, Instant>>,
}

impl Outages {
    /// The upstream failed a check at `now`.
    pub fn failed(&self, upstream: &str, now: Instant) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until.insert(upstream.to_string(), now + OUTAGE_MEMORY);
    }

    /// The upstream answered a check.
    pub fn answered(&self, upstream: &str) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until.remove(upstream);
    }

    /// Whether a check of `upstream` at `now` should be skipped.
    pub fn is_down(&self, upstream: &str, now: Instant) -> bool {
        let until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until.get(upstream).is_some_and(|until| now < *until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_upstream_is_not_asked_for_a_while_then_asked_again() {
        let outages = Outages::default();
        let t0 = Instant::now();
        assert!(!outages.is_down("hub", t0));
        outages.failed("hub", t0);
        assert!(outages.is_down("hub", t0 + OUTAGE_MEMORY / 2));
        assert!(!outages.is_down("ghcr", t0), "per upstream");
        assert!(!outages.is_down("hub", t0 + OUTAGE_MEMORY));
        outages.failed("hub", t0);
        outages.answered("hub");
        assert!(!outages.is_down("hub", t0));
    }

    #[test]
    fn a_tag_is_fresh_for_the_interval_after_its_check() {
        let five = Duration::from_secs(300);
        assert!(!is_fresh(None, 1000, five), "never checked");
        assert!(is_fresh(Some(1000), 1000, five));
        assert!(is_fresh(Some(1000), 1299, five));
        assert!(!is_fresh(Some(1000), 1300, five));
        assert!(!is_fresh(Some(1000), 999, five), "a clock gone back");
        assert!(
            !is_fresh(Some(1000), 1000, Duration::ZERO),
            "zero: always check"
        );
    }
}

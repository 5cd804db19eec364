//! The tag check interval: a cached tag checked upstream within it is
//! served without asking again.

use std::time::Duration;

/// Whether a tag last checked at `checked_at` (Unix seconds) needs no check
/// at `now`. Never checked, or checked "in the future" by a clock that went
/// back: not fresh.
pub(crate) fn is_fresh(checked_at: Option<i64>, now: i64, freshness: Duration) -> bool {
    let Some(at) = checked_at else { return false };
    let age = now - at;
    (0..i64::try_from(freshness.as_secs()).unwrap_or(i64::MAX)).contains(&age)
}

#[cfg(test)]
mod tests {
    use super::*;

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

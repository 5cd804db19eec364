//! Retention, pure: given the tags of one repository and the time, which of
//! them a [`RetentionRule`] deletes and why. No storage here; the pass that
//! applies it is `Registry::apply_retention`.

use super::NamePattern;
use crate::units::format_duration;
use berth_oci::Digest;
use std::time::Duration;

/// Which tags of the matching repositories to keep; every other one goes.
///
/// A tag is kept when any of these holds: its name matches `keep_tags`; it
/// is among the `keep_last` newest by push time (counted among the tags
/// `keep_tags` and immutability do not already keep); it was pushed less
/// than `older_than` ago; it was pulled less than `keep_pulled_within` ago;
/// it is immutable. A rule must set `keep_last` or `older_than`, or it
/// would delete every tag; configuration refuses such a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    pub repositories: NamePattern,
    pub keep_last: Option<usize>,
    pub keep_tags: Vec<NamePattern>,
    pub older_than: Option<Duration>,
    pub keep_pulled_within: Option<Duration>,
}

/// One tag as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagState {
    pub tag: String,
    pub digest: Digest,
    /// Unix seconds when the tag was last pointed at its manifest; the
    /// store's `updated_at`, which `delete_tag_if` compares again.
    pub pushed_at: i64,
    /// Unix seconds of the last pull by this tag or of its manifest by
    /// digest, whichever is later; `None` if never pulled since recording began.
    pub pulled_at: Option<i64>,
}

/// A tag the rule deletes, and why, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoomedTag {
    pub tag: TagState,
    pub reason: String,
}

impl RetentionRule {
    /// Whether this rule can ever delete anything (config refuses a rule
    /// that cannot, so a typo does not pass for a policy).
    pub fn deletes_anything(&self) -> bool {
        self.keep_last.is_some() || self.older_than.is_some()
    }

    /// The tags of one repository this rule deletes at `now` (Unix seconds);
    /// `immutable(tag)` says which tags may never go.
    pub fn doomed(
        &self,
        tags: &[TagState],
        now: i64,
        immutable: impl Fn(&str) -> bool,
    ) -> Vec<DoomedTag> {
        if !self.deletes_anything() {
            return Vec::new();
        }
        let mut candidates: Vec<&TagState> = tags
            .iter()
            .filter(|t| !immutable(&t.tag) && !self.keep_tags.iter().any(|p| p.matches(&t.tag)))
            .collect();
        // Newest first, then by name: the order the UI lists tags in.
        candidates.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.tag.cmp(&b.tag)));
        let beyond_newest = self.keep_last.unwrap_or(0);
        candidates
            .into_iter()
            .enumerate()
            .filter(|(rank, _)| *rank >= beyond_newest)
            .filter_map(|(_, tag)| {
                let age = now.saturating_sub(tag.pushed_at);
                if self.older_than.is_some_and(|limit| age < seconds(limit)) {
                    return None;
                }
                let pulled_recently = match (self.keep_pulled_within, tag.pulled_at) {
                    (Some(within), Some(pulled)) => now.saturating_sub(pulled) < seconds(within),
                    _ => false,
                };
                if pulled_recently {
                    return None;
                }
                Some(DoomedTag {
                    reason: self.reason(age),
                    tag: tag.clone(),
                })
            })
            .collect()
    }

    /// Why a tag pushed `age` seconds ago goes, in the rule's own terms.
    fn reason(&self, age: i64) -> String {
        let mut why = Vec::new();
        if let Some(n) = self.keep_last {
            why.push(format!("not among the {n} newest"));
        }
        if let Some(limit) = self.older_than {
            let age = Duration::from_secs(u64::try_from(age).unwrap_or(0));
            why.push(format!(
                "pushed {} ago (older_than {})",
                format_duration(age),
                format_duration(limit)
            ));
        }
        if let Some(within) = self.keep_pulled_within {
            why.push(format!("not pulled within {}", format_duration(within)));
        }
        format!("retention {}: {}", self.repositories, why.join(", "))
    }
}

/// A duration in whole seconds, saturating where an i64 ends.
fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_000 * DAY;

    fn rule() -> RetentionRule {
        RetentionRule {
            repositories: NamePattern::any(),
            keep_last: None,
            keep_tags: vec![],
            older_than: None,
            keep_pulled_within: None,
        }
    }

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 86_400)
    }

    /// A tag pushed `age` days ago, pulled `pulled` days ago if at all.
    fn tag(name: &str, age: i64, pulled: Option<i64>) -> TagState {
        TagState {
            tag: name.into(),
            digest: Digest::sha256_of(name.as_bytes()),
            pushed_at: NOW - age * DAY,
            pulled_at: pulled.map(|p| NOW - p * DAY),
        }
    }

    fn names(rule: &RetentionRule, tags: &[TagState]) -> Vec<String> {
        names_with(rule, tags, |_| false)
    }

    fn names_with(
        rule: &RetentionRule,
        tags: &[TagState],
        immutable: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut doomed: Vec<String> = rule
            .doomed(tags, NOW, immutable)
            .into_iter()
            .map(|d| d.tag.tag)
            .collect();
        doomed.sort();
        doomed
    }

    fn five() -> Vec<TagState> {
        // v1 oldest .. v5 newest, one day apart.
        (1..=5)
            .map(|i| tag(&format!("v{i}"), 10 - i, None))
            .collect()
    }

    #[test]
    fn a_rule_with_neither_keep_last_nor_older_than_deletes_nothing() {
        let r = RetentionRule {
            keep_pulled_within: Some(days(1)),
            keep_tags: vec![NamePattern::new("x").unwrap()],
            ..rule()
        };
        assert!(!r.deletes_anything());
        assert_eq!(names(&r, &five()), Vec::<String>::new());
    }

    #[test]
    fn keep_last_keeps_the_newest_by_push_time() {
        let r = RetentionRule {
            keep_last: Some(2),
            ..rule()
        };
        assert_eq!(names(&r, &five()), ["v1", "v2", "v3"]);
        let r = RetentionRule {
            keep_last: Some(0),
            ..rule()
        };
        assert_eq!(names(&r, &five()).len(), 5);
        let r = RetentionRule {
            keep_last: Some(9),
            ..rule()
        };
        assert!(names(&r, &five()).is_empty());
    }

    #[test]
    fn keep_last_breaks_ties_by_name_so_the_result_is_stable() {
        let tags = vec![tag("b", 1, None), tag("a", 1, None), tag("c", 1, None)];
        let r = RetentionRule {
            keep_last: Some(1),
            ..rule()
        };
        assert_eq!(names(&r, &tags), ["b", "c"]);
    }

    #[test]
    fn older_than_deletes_only_tags_pushed_at_least_that_long_ago() {
        let r = RetentionRule {
            older_than: Some(days(7)),
            ..rule()
        };
        // Ages 9, 8, 7, 6, 5 days: exactly 7 days old is old enough.
        assert_eq!(names(&r, &five()), ["v1", "v2", "v3"]);
    }

    #[test]
    fn keep_last_and_older_than_together_delete_only_old_tags_beyond_the_newest() {
        let r = RetentionRule {
            keep_last: Some(4),
            older_than: Some(days(7)),
            ..rule()
        };
        assert_eq!(names(&r, &five()), ["v1"]);
        let r = RetentionRule {
            keep_last: Some(1),
            older_than: Some(days(8)),
            ..rule()
        };
        assert_eq!(names(&r, &five()), ["v1", "v2"]);
    }

    #[test]
    fn keep_tags_are_kept_and_do_not_take_a_keep_last_place() {
        let mut tags = five();
        tags.push(tag("latest", 0, None));
        tags.push(tag("stable", 30, None));
        let r = RetentionRule {
            keep_last: Some(2),
            keep_tags: vec![
                NamePattern::new("latest").unwrap(),
                NamePattern::new("stab*").unwrap(),
            ],
            ..rule()
        };
        // latest and stable are kept by name; v5 and v4 are the two newest others.
        assert_eq!(names(&r, &tags), ["v1", "v2", "v3"]);
    }

    #[test]
    fn tags_pulled_within_the_window_are_kept_whatever_their_age() {
        let tags = vec![
            tag("old-pulled", 90, Some(1)),
            tag("old-pulled-long-ago", 90, Some(40)),
            tag("old-never-pulled", 90, None),
        ];
        let r = RetentionRule {
            older_than: Some(days(30)),
            keep_pulled_within: Some(days(7)),
            ..rule()
        };
        assert_eq!(
            names(&r, &tags),
            ["old-never-pulled", "old-pulled-long-ago"]
        );
        // Without the window, pulls do not matter.
        let r = RetentionRule {
            keep_pulled_within: None,
            ..r
        };
        assert_eq!(names(&r, &tags).len(), 3);
    }

    #[test]
    fn immutable_tags_are_never_deleted_and_take_no_keep_last_place() {
        let r = RetentionRule {
            keep_last: Some(1),
            ..rule()
        };
        let immutable = |t: &str| t == "v5" || t == "v1";
        // v5 and v1 are immutable; of v4, v3, v2 the newest (v4) is kept.
        assert_eq!(names_with(&r, &five(), immutable), ["v2", "v3"]);
        let r = RetentionRule {
            keep_last: None,
            older_than: Some(days(0)),
            ..rule()
        };
        assert_eq!(names_with(&r, &five(), |_| true), Vec::<String>::new());
    }

    #[test]
    fn every_rule_combined() {
        let tags = vec![
            tag("latest", 100, None),       // keep_tags
            tag("release-1", 100, None),    // immutable
            tag("nightly-9", 1, None),      // among the 2 newest
            tag("nightly-8", 2, None),      // among the 2 newest
            tag("nightly-7", 3, None),      // younger than 5 days
            tag("nightly-6", 20, Some(2)),  // pulled within 7 days
            tag("nightly-5", 20, Some(10)), // goes
            tag("nightly-4", 20, None),     // goes
        ];
        let r = RetentionRule {
            repositories: NamePattern::new("ci/*").unwrap(),
            keep_last: Some(2),
            keep_tags: vec![NamePattern::new("latest").unwrap()],
            older_than: Some(days(5)),
            keep_pulled_within: Some(days(7)),
        };
        let doomed = r.doomed(&tags, NOW, |t| t.starts_with("release-"));
        let mut gone: Vec<&str> = doomed.iter().map(|d| d.tag.tag.as_str()).collect();
        gone.sort();
        assert_eq!(gone, ["nightly-4", "nightly-5"]);
        let reason = &doomed[0].reason;
        assert!(reason.contains("ci/*"), "{reason}");
        assert!(reason.contains("not among the 2 newest"), "{reason}");
        assert!(
            reason.contains("pushed 20d ago (older_than 5d)"),
            "{reason}"
        );
        assert!(reason.contains("not pulled within 7d"), "{reason}");
    }

    #[test]
    fn a_tag_pushed_in_the_future_is_young() {
        // Clocks move; a tag stamped after `now` must not look ancient.
        let tags = vec![TagState {
            pushed_at: NOW + 3600,
            ..tag("future", 0, None)
        }];
        let r = RetentionRule {
            older_than: Some(days(1)),
            ..rule()
        };
        assert!(names(&r, &tags).is_empty());
    }
}

//! Policies from the configuration: retention (which tags a GC pass
//! deletes), immutable tags (which tags a push may not move) and quotas
//! (how much a repository may hold). Pure data and decisions; the registry
//! applies them ([`crate::Registry::put_manifest`] for immutability and
//! quotas, the GC pass's retention phase for retention).
//!
//! Each kind of rule names repositories by [`NamePattern`]. Retention and
//! quotas take the first rule that matches a repository, so a specific rule
//! goes before a catch-all; a tag is immutable if any rule says so.

mod pattern;
mod quota;
mod retention;

pub use pattern::{EmptyPattern, NamePattern};
pub use quota::{Quota, QuotaRule, QuotaUse};
pub use retention::{DoomedTag, RetentionRule, TagState};

/// Tags that no push may move once they exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableRule {
    pub repositories: NamePattern,
    /// Tag patterns; `["*"]` makes every tag of the repositories immutable.
    pub tags: Vec<NamePattern>,
}

impl ImmutableRule {
    pub fn covers(&self, repo: &str, tag: &str) -> bool {
        self.repositories.matches(repo) && self.tags.iter().any(|p| p.matches(tag))
    }
}

/// Every policy rule of the configuration, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies {
    pub retention: Vec<RetentionRule>,
    pub immutable: Vec<ImmutableRule>,
    pub quotas: Vec<QuotaRule>,
}

impl Policies {
    /// The retention rule of `repo`: the first whose pattern matches.
    pub fn retention_for(&self, repo: &str) -> Option<&RetentionRule> {
        self.retention.iter().find(|r| r.repositories.matches(repo))
    }

    /// Whether any rule makes `repo:tag` immutable.
    pub fn is_immutable(&self, repo: &str, tag: &str) -> bool {
        self.immutable.iter().any(|r| r.covers(repo, tag))
    }

    /// The quota of `repo`: the first rule whose pattern matches.
    pub fn quota_for(&self, repo: &str) -> Option<&QuotaRule> {
        self.quotas.iter().find(|r| r.repositories.matches(repo))
    }

    /// Whether any retention rule exists (a GC pass skips the phase otherwise).
    pub fn has_retention(&self) -> bool {
        !self.retention.is_empty()
    }

    /// The tags of `repo` its retention rule deletes at `now`, never an
    /// immutable one; empty when no rule applies.
    pub fn doomed_tags(&self, repo: &str, tags: &[TagState], now: i64) -> Vec<DoomedTag> {
        match self.retention_for(repo) {
            Some(rule) => rule.doomed(tags, now, |tag| self.is_immutable(repo, tag)),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn p(text: &str) -> NamePattern {
        NamePattern::new(text).unwrap()
    }

    fn keep_last(repos: &str, n: usize) -> RetentionRule {
        RetentionRule {
            repositories: p(repos),
            keep_last: Some(n),
            keep_tags: vec![],
            older_than: None,
            keep_pulled_within: None,
        }
    }

    fn quota(repos: &str, max_tags: u64) -> QuotaRule {
        QuotaRule {
            repositories: p(repos),
            quota: Quota {
                max_bytes: None,
                max_tags: Some(max_tags),
            },
        }
    }

    #[test]
    fn the_first_matching_retention_and_quota_rule_applies() {
        let policies = Policies {
            retention: vec![keep_last("ci/special", 10), keep_last("ci/*", 2)],
            quotas: vec![quota("team-a/*", 5), quota("*", 100)],
            ..Default::default()
        };
        assert_eq!(
            policies.retention_for("ci/special").unwrap().keep_last,
            Some(10)
        );
        assert_eq!(
            policies.retention_for("ci/other").unwrap().keep_last,
            Some(2)
        );
        assert!(policies.retention_for("prod/app").is_none());
        let tags = |r: &str| policies.quota_for(r).unwrap().quota.max_tags;
        assert_eq!(tags("team-a/app"), Some(5));
        assert_eq!(tags("team-b/app"), Some(100));
        assert!(Policies::default().quota_for("x").is_none());
        assert!(policies.has_retention());
        assert!(!Policies::default().has_retention());
    }

    #[test]
    fn a_tag_is_immutable_if_any_rule_covers_it() {
        let policies = Policies {
            immutable: vec![
                ImmutableRule {
                    repositories: p("prod/*"),
                    tags: vec![p("*")],
                },
                ImmutableRule {
                    repositories: p("*"),
                    tags: vec![p("v*"), p("release-*")],
                },
            ],
            ..Default::default()
        };
        assert!(policies.is_immutable("prod/app", "latest"));
        assert!(policies.is_immutable("dev/app", "v1.0"));
        assert!(policies.is_immutable("dev/app", "release-3"));
        assert!(!policies.is_immutable("dev/app", "latest"));
        assert!(!Policies::default().is_immutable("prod/app", "v1"));
    }

    #[test]
    fn retention_never_deletes_a_tag_an_immutable_rule_covers() {
        let policies = Policies {
            retention: vec![RetentionRule {
                older_than: Some(Duration::from_secs(1)),
                ..keep_last("app", 0)
            }],
            immutable: vec![ImmutableRule {
                repositories: p("app"),
                tags: vec![p("v1")],
            }],
            ..Default::default()
        };
        let tags: Vec<TagState> = ["v1", "v2"]
            .iter()
            .map(|t| TagState {
                tag: t.to_string(),
                digest: berth_oci::Digest::sha256_of(t.as_bytes()),
                pushed_at: 0,
                pulled_at: None,
            })
            .collect();
        let doomed = policies.doomed_tags("app", &tags, 1_000);
        let gone: Vec<&str> = doomed.iter().map(|d| d.tag.tag.as_str()).collect();
        assert_eq!(gone, ["v2"]);
        assert!(policies.doomed_tags("other", &tags, 1_000).is_empty());
    }
}

//! The policy tables of the config file: `[[retention]]`, `[[immutable]]`
//! and `[[quota]]`, read into [`berth_registry::policy::Policies`]. File
//! only: rules are lists of tables, which environment variables and flags
//! cannot say well.
//!
//! A rule that would not do what it looks like it does is refused when
//! loading, naming the table, the rule's number and the key: a retention
//! rule that can delete nothing, a quota with no limit, a duration or size
//! that does not parse.

use berth_registry::policy::{
    EmptyPattern, ImmutableRule, NamePattern, Policies, Quota, QuotaRule, RetentionRule,
};
use berth_registry::units::{parse_duration, parse_size, UnitError};
use serde::Deserialize;
use std::time::Duration;

/// One pattern or a list of them (`repositories = "ci/*"` or `["a", "b/*"]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Patterns {
    One(String),
    Many(Vec<String>),
}

/// A duration or size as text (`"30d"`, `"10GiB"`) or a bare number
/// (seconds, bytes).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Number(u64),
    Text(String),
}

/// `[[retention]]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub repositories: Patterns,
    pub keep_last: Option<usize>,
    #[serde(default)]
    pub keep_tags: Vec<String>,
    pub older_than: Option<Amount>,
    pub keep_pulled_within: Option<Amount>,
}

/// `[[immutable]]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImmutableConfig {
    pub repositories: Patterns,
    /// Default `["*"]`: every tag of the repositories.
    pub tags: Option<Vec<String>>,
}

/// `[[quota]]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub repositories: Patterns,
    pub max_bytes: Option<Amount>,
    pub max_tags: Option<u64>,
}

/// The three tables as written; each absent table is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyTables {
    pub retention: Option<Vec<RetentionConfig>>,
    pub immutable: Option<Vec<ImmutableConfig>>,
    pub quota: Option<Vec<QuotaConfig>>,
}

/// Where in the file a bad value is: `[[retention]]` rule 2, key `older_than`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleKey {
    pub table: &'static str,
    /// 1-based, in file order.
    pub rule: usize,
    pub key: &'static str,
}

impl std::fmt::Display for RuleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[[{}]] rule {}, {}", self.table, self.rule, self.key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{at}: {source}")]
    Unit { at: RuleKey, source: UnitError },
    #[error("{at}: {source}")]
    Pattern { at: RuleKey, source: EmptyPattern },
    #[error("{at}: name at least one repository pattern")]
    NoRepositories { at: RuleKey },
    #[error("[[retention]] rule {rule} ({repositories}) deletes nothing: set keep_last or older_than (keep_tags and keep_pulled_within only keep tags)")]
    RetentionDeletesNothing { rule: usize, repositories: String },
    #[error(
        "[[quota]] rule {rule} ({repositories}) limits nothing: set max_bytes, max_tags or both"
    )]
    QuotaWithoutLimit { rule: usize, repositories: String },
    #[error("{at}: 0 would refuse every push; remove the limit instead if none is wanted")]
    ZeroLimit { at: RuleKey },
}

impl PolicyTables {
    /// Validates every rule into [`Policies`], in file order. A rule naming
    /// several repository patterns becomes one rule per pattern (the same
    /// thing under first-match lookups).
    pub fn into_policies(self) -> Result<Policies, PolicyError> {
        let mut policies = Policies::default();
        for (i, raw) in self.retention.unwrap_or_default().into_iter().enumerate() {
            let at = |key| RuleKey {
                table: "retention",
                rule: i + 1,
                key,
            };
            let repositories = patterns(&raw.repositories, at("repositories"))?;
            let keep_tags = raw
                .keep_tags
                .iter()
                .map(|t| pattern(t, at("keep_tags")))
                .collect::<Result<Vec<_>, _>>()?;
            let older_than = duration(raw.older_than.as_ref(), at("older_than"))?;
            let keep_pulled_within =
                duration(raw.keep_pulled_within.as_ref(), at("keep_pulled_within"))?;
            if raw.keep_last.is_none() && older_than.is_none() {
                return Err(PolicyError::RetentionDeletesNothing {
                    rule: i + 1,
                    repositories: describe(&repositories),
                });
            }
            for repositories in repositories {
                policies.retention.push(RetentionRule {
                    repositories,
                    keep_last: raw.keep_last,
                    keep_tags: keep_tags.clone(),
                    older_than,
                    keep_pulled_within,
                });
            }
        }
        for (i, raw) in self.immutable.unwrap_or_default().into_iter().enumerate() {
            let at = |key| RuleKey {
                table: "immutable",
                rule: i + 1,
                key,
            };
            let tags = match &raw.tags {
                None => vec![NamePattern::any()],
                Some(tags) if tags.is_empty() => {
                    return Err(PolicyError::Pattern {
                        at: at("tags"),
                        source: EmptyPattern,
                    })
                }
                Some(tags) => tags
                    .iter()
                    .map(|t| pattern(t, at("tags")))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            for repositories in patterns(&raw.repositories, at("repositories"))? {
                policies.immutable.push(ImmutableRule {
                    repositories,
                    tags: tags.clone(),
                });
            }
        }
        for (i, raw) in self.quota.unwrap_or_default().into_iter().enumerate() {
            let at = |key| RuleKey {
                table: "quota",
                rule: i + 1,
                key,
            };
            let repositories = patterns(&raw.repositories, at("repositories"))?;
            let max_bytes = match &raw.max_bytes {
                None => None,
                Some(Amount::Number(n)) => Some(*n),
                Some(Amount::Text(text)) => {
                    Some(parse_size(text).map_err(|source| PolicyError::Unit {
                        at: at("max_bytes"),
                        source,
                    })?)
                }
            };
            if max_bytes.is_none() && raw.max_tags.is_none() {
                return Err(PolicyError::QuotaWithoutLimit {
                    rule: i + 1,
                    repositories: describe(&repositories),
                });
            }
            if max_bytes == Some(0) {
                return Err(PolicyError::ZeroLimit {
                    at: at("max_bytes"),
                });
            }
            if raw.max_tags == Some(0) {
                return Err(PolicyError::ZeroLimit { at: at("max_tags") });
            }
            for repositories in repositories {
                policies.quotas.push(QuotaRule {
                    repositories,
                    quota: Quota {
                        max_bytes,
                        max_tags: raw.max_tags,
                    },
                });
            }
        }
        Ok(policies)
    }
}

/// Takes the policy tables out of `raw` and validates them.
pub(super) fn take(raw: &mut super::RawConfig) -> Result<Policies, PolicyError> {
    PolicyTables {
        retention: raw.retention.take(),
        immutable: raw.immutable.take(),
        quota: raw.quota.take(),
    }
    .into_policies()
}

fn pattern(text: &str, at: RuleKey) -> Result<NamePattern, PolicyError> {
    NamePattern::new(text).map_err(|source| PolicyError::Pattern { at, source })
}

fn patterns(raw: &Patterns, at: RuleKey) -> Result<Vec<NamePattern>, PolicyError> {
    let texts: Vec<&String> = match raw {
        Patterns::One(one) => vec![one],
        Patterns::Many(many) => many.iter().collect(),
    };
    if texts.is_empty() {
        return Err(PolicyError::NoRepositories { at });
    }
    texts.into_iter().map(|t| pattern(t, at.clone())).collect()
}

fn duration(raw: Option<&Amount>, at: RuleKey) -> Result<Option<Duration>, PolicyError> {
    match raw {
        None => Ok(None),
        Some(Amount::Number(secs)) => Ok(Some(Duration::from_secs(*secs))),
        Some(Amount::Text(text)) => parse_duration(text)
            .map(Some)
            .map_err(|source| PolicyError::Unit { at, source }),
    }
}

/// `"ci/*"` or `"a", "b/*"`, for messages.
fn describe(patterns: &[NamePattern]) -> String {
    let quoted: Vec<String> = patterns
        .iter()
        .map(|p| format!("{:?}", p.as_str()))
        .collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy tables of a config file's text.
    fn load(text: &str) -> Result<Policies, PolicyError> {
        #[derive(Deserialize)]
        struct File {
            retention: Option<Vec<RetentionConfig>>,
            immutable: Option<Vec<ImmutableConfig>>,
            quota: Option<Vec<QuotaConfig>>,
        }
        let file: File = toml::from_str(text).unwrap();
        PolicyTables {
            retention: file.retention,
            immutable: file.immutable,
            quota: file.quota,
        }
        .into_policies()
    }

    #[test]
    fn every_table_is_read_with_its_defaults() {
        let policies = load(
            r#"
[[retention]]
repositories = "ci/*"
keep_last = 10
keep_tags = ["latest", "release-*"]
older_than = "30d"
keep_pulled_within = "7d"

[[retention]]
repositories = ["a", "b/*"]
older_than = 3600

[[immutable]]
repositories = "prod/*"

[[immutable]]
repositories = ["*"]
tags = ["v*"]

[[quota]]
repositories = "team-a/*"
max_bytes = "10GiB"
max_tags = 100

[[quota]]
repositories = "*"
max_bytes = 1000
"#,
        )
        .unwrap();
        let ci = policies.retention_for("ci/app").unwrap();
        assert_eq!(ci.keep_last, Some(10));
        assert_eq!(ci.keep_tags.len(), 2);
        assert_eq!(ci.older_than, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(ci.keep_pulled_within, Some(Duration::from_secs(7 * 86_400)));
        for repo in ["a", "b/c"] {
            let rule = policies.retention_for(repo).unwrap();
            assert_eq!(rule.older_than, Some(Duration::from_secs(3600)));
            assert_eq!(rule.keep_last, None);
        }
        assert!(policies.retention_for("c").is_none());
        assert!(policies.is_immutable("prod/x", "latest"));
        assert!(policies.is_immutable("dev/x", "v2"));
        assert!(!policies.is_immutable("dev/x", "latest"));
        let quota = |r: &str| policies.quota_for(r).unwrap().quota;
        assert_eq!(
            quota("team-a/app"),
            Quota {
                max_bytes: Some(10 << 30),
                max_tags: Some(100)
            }
        );
        assert_eq!(
            quota("other"),
            Quota {
                max_bytes: Some(1000),
                max_tags: None
            }
        );
        assert_eq!(load("").unwrap(), Policies::default());
    }

    #[test]
    fn a_retention_rule_that_deletes_nothing_is_refused() {
        let err = load(
            "[[retention]]\nrepositories = \"ci/*\"\nkeep_tags = [\"latest\"]\nkeep_pulled_within = \"7d\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[[retention]] rule 1 (\"ci/*\") deletes nothing: set keep_last or older_than (keep_tags and keep_pulled_within only keep tags)"
        );
    }

    #[test]
    fn a_quota_without_a_limit_is_refused() {
        let err = load("[[quota]]\nrepositories = \"*\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "[[quota]] rule 1 (\"*\") limits nothing: set max_bytes, max_tags or both"
        );
        let err = load("[[quota]]\nrepositories = \"*\"\nmax_tags = 0\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("[[quota]] rule 1, max_tags: 0 would refuse"),
            "{err}"
        );
    }

    #[test]
    fn bad_durations_sizes_and_patterns_name_their_rule_and_key() {
        let cases = [
            (
                "[[retention]]\nrepositories = \"a\"\nkeep_last = 1\n[[retention]]\nrepositories = \"b\"\nolder_than = \"30x\"\n",
                "[[retention]] rule 2, older_than: \"30x\" is not a duration such as 90s, 10m, 1h or 7d",
            ),
            (
                "[[retention]]\nrepositories = \"a\"\nkeep_last = 1\nkeep_pulled_within = \"soon\"\n",
                "[[retention]] rule 1, keep_pulled_within: \"soon\" is not a duration such as 90s, 10m, 1h or 7d",
            ),
            (
                "[[quota]]\nrepositories = \"a\"\nmax_bytes = \"10 gigs\"\n",
                "[[quota]] rule 1, max_bytes: \"10 gigs\" is not a size such as 512MiB, 10GiB or 2GB",
            ),
            (
                "[[immutable]]\nrepositories = []\n",
                "[[immutable]] rule 1, repositories: name at least one repository pattern",
            ),
            (
                "[[immutable]]\nrepositories = \"a\"\ntags = [\"\"]\n",
                "[[immutable]] rule 1, tags: a name pattern cannot be empty (use \"*\" for every name)",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(load(text).unwrap_err().to_string(), message, "{text}");
        }
    }

    #[test]
    fn unknown_keys_in_a_rule_are_refused() {
        for text in [
            "[[retention]]\nrepositories = \"a\"\nkeep_latest = 1\n",
            "[[immutable]]\nrepositories = \"a\"\ntag = [\"v*\"]\n",
            "[[quota]]\nrepositories = \"a\"\nmax_size = \"1GiB\"\n",
        ] {
            #[derive(Deserialize, Debug)]
            #[allow(dead_code)]
            struct File {
                retention: Option<Vec<RetentionConfig>>,
                immutable: Option<Vec<ImmutableConfig>>,
                quota: Option<Vec<QuotaConfig>>,
            }
            assert!(toml::from_str::<File>(text).is_err(), "{text}");
        }
    }
}

//! Access rules: who (users, groups, anonymous, authenticated) may do what on
//! which repositories. A union of every matching rule; no rules at all means
//! every htpasswd user may do everything and anonymous nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::{Identity, Resource};

/// A set of actions, as bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(1 << 1);
    pub const DELETE: Actions = Actions(1 << 2);
    pub const CATALOG: Actions = Actions(1 << 3);
    pub const ADMIN: Actions = Actions(1 << 4);
    /// What can be done on one repository.
    pub const REPOSITORY: Actions = Actions(1 | (1 << 1) | (1 << 2));
    pub const ALL: Actions = Actions(0b1_1111);

    /// One action name as written in the config: pull, push, delete,
    /// catalog, admin, or `*` for all.
    pub fn parse(name: &str) -> Option<Actions> {
        match name {
            "pull" => Some(Actions::PULL),
            "push" => Some(Actions::PUSH),
            "delete" => Some(Actions::DELETE),
            "catalog" => Some(Actions::CATALOG),
            "admin" => Some(Actions::ADMIN),
            "*" => Some(Actions::ALL),
            _ => None,
        }
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every action of `other` is in `self`.
    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersection(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// Names of the single actions in `self`, in a fixed order (config names).
    pub fn names(self) -> Vec<&'static str> {
        [
            (Actions::PULL, "pull"),
            (Actions::PUSH, "push"),
            (Actions::DELETE, "delete"),
            (Actions::CATALOG, "catalog"),
            (Actions::ADMIN, "admin"),
        ]
        .into_iter()
        .filter(|(a, _)| self.contains(*a))
        .map(|(_, n)| n)
        .collect()
    }

    /// Names as the Docker token spec writes them: pull, push, delete for a
    /// repository; `*` for the catalog.
    pub fn token_names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = [
            (Actions::PULL, "pull"),
            (Actions::PUSH, "push"),
            (Actions::DELETE, "delete"),
        ]
        .into_iter()
        .filter(|(a, _)| self.contains(*a))
        .map(|(_, n)| n)
        .collect();
        if self.contains(Actions::CATALOG) {
            names.push("*");
        }
        names
    }
}

impl std::ops::BitOr for Actions {
    type Output = Actions;
    fn bitor(self, rhs: Actions) -> Actions {
        self.union(rhs)
    }
}

impl std::ops::BitAnd for Actions {
    type Output = Actions;
    fn bitand(self, rhs: Actions) -> Actions {
        self.intersection(rhs)
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actions({})", self.names().join(","))
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// Who a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
    /// Requests without credentials. Rules for anonymous also apply to
    /// signed-in users: logging in never takes rights away.
    Anonymous,
    /// Every user with valid credentials.
    Authenticated,
}

impl Subject {
    pub fn parse(text: &str) -> Subject {
        match text {
            "anonymous" => Subject::Anonymous,
            "authenticated" => Subject::Authenticated,
            _ => match text.strip_prefix("group:") {
                Some(group) => Subject::Group(group.to_string()),
                None => Subject::User(text.to_string()),
            },
        }
    }
}

/// A repository name pattern: `*` matches any characters, `/` included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn new(text: &str) -> Option<Pattern> {
        (!text.is_empty()).then(|| Pattern(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Registry-wide: the pattern is exactly `*`.
    pub fn is_everything(&self) -> bool {
        self.0 == "*"
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

/// `*`-only glob, iterative with one backtrack point (linear-ish, no recursion).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One `[[access]]` table as written in the config.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub who: Vec<String>,
    pub repositories: Vec<String>,
    pub actions: Vec<String>,
}

/// The `[groups]` table and the `[[access]]` array as written in the config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RulesConfig {
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub access: Vec<RuleConfig>,
}

/// A validated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub who: Vec<Subject>,
    pub repositories: Vec<Pattern>,
    pub actions: Actions,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RulesError {
    #[error(
        "access rule {rule}: unknown action {action:?} (pull, push, delete, catalog, admin, *)"
    )]
    UnknownAction { rule: usize, action: String },
    #[error("access rule {rule}: empty repository pattern")]
    EmptyPattern { rule: usize },
    #[error("access rule {rule}: unknown group {group:?} (not in [groups])")]
    UnknownGroup { rule: usize, group: String },
    #[error("access rule {rule}: empty subject in `who`")]
    EmptySubject { rule: usize },
}

/// The validated rules. Deserializes from the config's `[groups]` and
/// `[[access]]` (see [`RulesConfig`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RulesConfig")]
pub struct AccessRules {
    groups: BTreeMap<String, Vec<String>>,
    rules: Vec<Rule>,
}

impl TryFrom<RulesConfig> for AccessRules {
    type Error = RulesError;
    fn try_from(config: RulesConfig) -> Result<Self, RulesError> {
        AccessRules::new(config.groups, config.access)
    }
}

impl AccessRules {
    /// Validates the rules: every action known, no empty pattern, every
    /// `group:NAME` defined. Rules are numbered from 1 in errors.
    pub fn new(
        groups: BTreeMap<String, Vec<String>>,
        access: Vec<RuleConfig>,
    ) -> Result<AccessRules, RulesError> {
        let mut rules = Vec::with_capacity(access.len());
        for (index, raw) in access.into_iter().enumerate() {
            let rule = index + 1;
            let mut who = Vec::with_capacity(raw.who.len());
            for text in &raw.who {
                let subject = Subject::parse(text);
                match &subject {
                    Subject::User(name) | Subject::Group(name) if name.is_empty() => {
                        return Err(RulesError::EmptySubject { rule })
                    }
                    Subject::Group(group) if !groups.contains_key(group) => {
                        return Err(RulesError::UnknownGroup {
                            rule,
                            group: group.clone(),
                        })
                    }
                    _ => {}
                }
                who.push(subject);
            }
            let mut repositories = Vec::with_capacity(raw.repositories.len());
            for text in &raw.repositories {
                repositories.push(Pattern::new(text).ok_or(RulesError::EmptyPattern { rule })?);
            }
            let mut actions = Actions::NONE;
            for name in &raw.actions {
                actions = actions
                    | Actions::parse(name).ok_or_else(|| RulesError::UnknownAction {
                        rule,
                        action: name.clone(),
                    })?;
            }
            rules.push(Rule {
                who,
                repositories,
                actions,
            });
        }
        Ok(AccessRules { groups, rules })
    }

    /// No `[[access]]` at all: the default applies.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether some rule gives anonymous callers a right (then `GET /v2/`
    /// answers them without a login).
    pub fn anonymous_has_rights(&self) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.who.contains(&Subject::Anonymous) && !rule.actions.is_empty())
    }

    fn applies(&self, subject: &Subject, who: &Identity) -> bool {
        match (subject, who) {
            (Subject::Anonymous, _) => true,
            (Subject::Authenticated, Identity::User { .. }) => true,
            (Subject::User(user), Identity::User { name }) => user == name,
            (Subject::Group(group), Identity::User { name }) => self
                .groups
                .get(group)
                .is_some_and(|members| members.iter().any(|m| m == name)),
            _ => false,
        }
    }

    /// What `who` may do on `resource`: the union of every matching rule.
    /// Catalog and admin come only from rules whose repositories include `*`.
    pub fn allowed(&self, who: &Identity, resource: &Resource) -> Actions {
        if self.rules.is_empty() {
            return match who {
                Identity::User { .. } => Actions::ALL.intersection(resource.possible_actions()),
                Identity::Anonymous => Actions::NONE,
            };
        }
        let mut actions = Actions::NONE;
        for rule in &self.rules {
            if !rule.who.iter().any(|s| self.applies(s, who)) {
                continue;
            }
            let matches = match resource {
                Resource::Repository(name) => rule.repositories.iter().any(|p| p.matches(name)),
                Resource::Catalog | Resource::Admin => {
                    rule.repositories.iter().any(Pattern::is_everything)
                }
            };
            if matches {
                actions = actions | rule.actions;
            }
        }
        actions.intersection(resource.possible_actions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_text: &str) -> Result<AccessRules, String> {
        toml::from_str::<AccessRules>(toml_text).map_err(|e| e.to_string())
    }

    fn repo(name: &str) -> Resource {
        Resource::Repository(name.to_string())
    }

    const TEAMS: &str = r#"
        [groups]
        team-a = ["alice", "bob"]
        admins = ["root"]

        [[access]]
        who = ["group:team-a", "carol"]
        repositories = ["team-a/*"]
        actions = ["pull", "push", "delete"]

        [[access]]
        who = ["anonymous"]
        repositories = ["public/*"]
        actions = ["pull"]

        [[access]]
        who = ["authenticated"]
        repositories = ["shared"]
        actions = ["pull"]

        [[access]]
        who = ["carol"]
        repositories = ["team-a/*", "team-b/*"]
        actions = ["pull"]

        [[access]]
        who = ["group:admins"]
        repositories = ["*"]
        actions = ["*"]
    "#;

    #[test]
    fn no_rules_give_users_everything_and_anonymous_nothing() {
        let rules = AccessRules::default();
        let alice = Identity::user("alice");
        assert_eq!(
            rules.allowed(&alice, &repo("any/thing")),
            Actions::REPOSITORY
        );
        assert_eq!(rules.allowed(&alice, &Resource::Catalog), Actions::CATALOG);
        assert_eq!(rules.allowed(&alice, &Resource::Admin), Actions::ADMIN);
        for resource in [repo("x"), Resource::Catalog, Resource::Admin] {
            assert_eq!(
                rules.allowed(&Identity::Anonymous, &resource),
                Actions::NONE
            );
        }
        assert!(!rules.anonymous_has_rights());
        // An empty [[access]] list in TOML is the same default.
        assert!(rules_from_empty_toml().is_empty());
    }

    fn rules_from_empty_toml() -> AccessRules {
        rules("[groups]\nx = []\n").unwrap()
    }

    #[test]
    fn rules_are_a_union_over_users_groups_and_special_subjects() {
        let rules = rules(TEAMS).unwrap();
        assert!(rules.anonymous_has_rights());
        let alice = Identity::user("alice");
        let carol = Identity::user("carol");
        let dave = Identity::user("dave");
        assert_eq!(
            rules.allowed(&alice, &repo("team-a/app")),
            Actions::REPOSITORY
        );
        assert_eq!(
            rules.allowed(&alice, &repo("team-a/deep/er/app")),
            Actions::REPOSITORY
        );
        assert_eq!(rules.allowed(&alice, &repo("team-b/app")), Actions::NONE);
        assert_eq!(rules.allowed(&alice, &repo("team-a")), Actions::NONE);
        assert_eq!(rules.allowed(&carol, &repo("team-b/app")), Actions::PULL);
        assert_eq!(
            rules.allowed(&carol, &repo("team-a/app")),
            Actions::REPOSITORY
        );
        // authenticated and anonymous rules apply to every signed-in user.
        assert_eq!(rules.allowed(&dave, &repo("shared")), Actions::PULL);
        assert_eq!(rules.allowed(&dave, &repo("public/img")), Actions::PULL);
        assert_eq!(rules.allowed(&dave, &repo("team-a/app")), Actions::NONE);
        assert_eq!(
            rules.allowed(&Identity::Anonymous, &repo("public/img")),
            Actions::PULL
        );
        assert_eq!(
            rules.allowed(&Identity::Anonymous, &repo("shared")),
            Actions::NONE
        );
        assert!(!rules
            .allowed(&Identity::Anonymous, &repo("public/img"))
            .contains(Actions::PUSH));
    }

    #[test]
    fn catalog_and_admin_come_only_from_rules_over_everything() {
        let rules = rules(TEAMS).unwrap();
        let root = Identity::user("root");
        assert_eq!(rules.allowed(&root, &Resource::Catalog), Actions::CATALOG);
        assert_eq!(rules.allowed(&root, &Resource::Admin), Actions::ADMIN);
        assert_eq!(rules.allowed(&root, &repo("team-a/x")), Actions::REPOSITORY);
        // "catalog" on a narrower pattern grants nothing registry-wide.
        let narrow = super::tests::rules(
            r#"
            [[access]]
            who = ["alice"]
            repositories = ["team-a/*"]
            actions = ["pull", "catalog", "admin"]
            "#,
        )
        .unwrap();
        assert!(!narrow.anonymous_has_rights());
        let alice = Identity::user("alice");
        assert_eq!(narrow.allowed(&alice, &Resource::Catalog), Actions::NONE);
        assert_eq!(narrow.allowed(&alice, &Resource::Admin), Actions::NONE);
        assert_eq!(narrow.allowed(&alice, &repo("team-a/x")), Actions::PULL);
        let alice_user = Identity::user("alice");
        assert_eq!(
            rules.allowed(&alice_user, &Resource::Catalog),
            Actions::NONE
        );
    }

    #[test]
    fn load_errors_name_what_is_wrong() {
        let error = rules(
            "[[access]]\nwho = [\"alice\"]\nrepositories = [\"*\"]\nactions = [\"pull\", \"write\"]\n",
        )
        .unwrap_err();
        assert!(error.contains("unknown action \"write\""), "{error}");
        let error = rules(
            "[[access]]\nwho = [\"group:ghosts\"]\nrepositories = [\"*\"]\nactions = [\"pull\"]\n",
        )
        .unwrap_err();
        assert!(error.contains("unknown group \"ghosts\""), "{error}");
        let error =
            rules("[[access]]\nwho = [\"alice\"]\nrepositories = [\"\"]\nactions = [\"pull\"]\n")
                .unwrap_err();
        assert!(error.contains("empty repository pattern"), "{error}");
        let error = rules("[[access]]\nwho = [\"alice\"]\nrepos = [\"x\"]\nactions = [\"pull\"]\n")
            .unwrap_err();
        assert!(error.contains("repos"), "{error}");
        assert_eq!(
            AccessRules::new(
                BTreeMap::new(),
                vec![
                    RuleConfig {
                        who: vec!["a".into()],
                        repositories: vec!["x".into()],
                        actions: vec!["pull".into()]
                    };
                    2
                ]
                .into_iter()
                .chain([RuleConfig {
                    who: vec!["a".into()],
                    repositories: vec!["x".into()],
                    actions: vec!["fly".into()]
                }])
                .collect()
            ),
            Err(RulesError::UnknownAction {
                rule: 3,
                action: "fly".into()
            })
        );
    }

    #[test]
    fn patterns_match_any_characters_including_slashes() {
        let p = |s: &str| Pattern::new(s).unwrap();
        assert!(p("*").matches("a/b/c"));
        assert!(p("team-a/*").matches("team-a/x/y"));
        assert!(!p("team-a/*").matches("team-ab/x"));
        assert!(!p("team-a/*").matches("team-a"));
        assert!(p("*/app").matches("x/y/app"));
        assert!(!p("*/app").matches("x/y/app2"));
        assert!(p("a*b*c").matches("aXXbYYbc"));
        assert!(!p("a*b*c").matches("aXXbYYb"));
        assert!(p("exact").matches("exact"));
        assert!(!p("exact").matches("exactly"));
        assert!(Pattern::new("").is_none());
        // No exponential blow-up on many stars.
        let many = format!("{}b", "a*".repeat(30));
        assert!(!p(&many).matches(&"a".repeat(200)));
    }

    #[test]
    fn actions_parse_and_name() {
        assert_eq!(Actions::parse("*"), Some(Actions::ALL));
        assert_eq!(Actions::parse("write"), None);
        let a = Actions::PULL | Actions::DELETE;
        assert!(a.contains(Actions::PULL));
        assert!(!a.contains(Actions::PULL | Actions::PUSH));
        assert_eq!(a.names(), ["pull", "delete"]);
        assert_eq!(
            (Actions::PULL | Actions::CATALOG).token_names(),
            ["pull", "*"]
        );
        assert_eq!(
            a.intersection(Actions::PUSH | Actions::DELETE),
            Actions::DELETE
        );
    }
}

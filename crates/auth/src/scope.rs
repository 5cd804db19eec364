//! Docker token scopes: `repository:NAME:pull,push`, `registry:catalog:*`.
//! Parsed from `/token`'s `scope` parameters and rendered into challenges.

use std::fmt;

use crate::{Actions, Resource};

/// One requested (or challenged) scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub resource: Resource,
    pub actions: Actions,
}

impl Scope {
    pub fn new(resource: Resource, actions: Actions) -> Scope {
        Scope { resource, actions }
    }

    /// One scope. `repository(plugin):NAME:...` is read as a repository;
    /// unknown types, unknown resources and malformed text give `None`.
    /// Unknown action names are dropped; `*` on a repository means all of
    /// pull, push, delete.
    pub fn parse(text: &str) -> Option<Scope> {
        let (kind, rest) = text.split_once(':')?;
        // The name may contain ':' only in theory (a port in a host name);
        // actions never do, so split at the last ':'.
        let (name, actions) = rest.rsplit_once(':')?;
        if name.is_empty() {
            return None;
        }
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        let resource = match (kind, name) {
            ("repository", _) => Resource::Repository(name.to_string()),
            ("registry", "catalog") => Resource::Catalog,
            _ => return None,
        };
        let mut parsed = Actions::NONE;
        for action in actions.split(',') {
            parsed = parsed
                | match (&resource, action) {
                    (Resource::Repository(_), "*") => Actions::REPOSITORY,
                    (Resource::Repository(_), "pull") => Actions::PULL,
                    (Resource::Repository(_), "push") => Actions::PUSH,
                    (Resource::Repository(_), "delete") => Actions::DELETE,
                    (Resource::Catalog, "*") => Actions::CATALOG,
                    _ => Actions::NONE,
                };
        }
        Some(Scope::new(resource, parsed))
    }

    /// Every scope in `/token`'s `scope` parameters: several parameters, each
    /// possibly holding several space-separated scopes. Unknown ones are skipped.
    pub fn parse_all<'a>(params: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        params
            .into_iter()
            .flat_map(str::split_whitespace)
            .filter_map(Scope::parse)
            .collect()
    }

    /// The token-spec type of the resource: `repository` or `registry`.
    pub fn type_name(&self) -> &'static str {
        self.resource.type_name()
    }
}

impl fmt::Display for Scope {
    /// `repository:team-a/app:pull,push` or `registry:catalog:*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.resource {
            Resource::Repository(name) => name.as_str(),
            Resource::Catalog => "catalog",
            Resource::Admin => "admin",
        };
        write!(
            f,
            "{}:{}:{}",
            self.type_name(),
            name,
            self.actions.token_names().join(",")
        )
    }
}

/// Renders several scopes space-separated, as a challenge's `scope` holds them.
pub fn render(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(Scope::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str, actions: Actions) -> Scope {
        Scope::new(Resource::Repository(name.to_string()), actions)
    }

    #[test]
    fn parses_repository_and_catalog_scopes() {
        assert_eq!(
            Scope::parse("repository:team-a/app:pull,push"),
            Some(repo("team-a/app", Actions::PULL | Actions::PUSH))
        );
        assert_eq!(
            Scope::parse("repository(plugin):team-a/app:pull"),
            Some(repo("team-a/app", Actions::PULL))
        );
        assert_eq!(
            Scope::parse("repository:x:*"),
            Some(repo("x", Actions::REPOSITORY))
        );
        assert_eq!(
            Scope::parse("registry:catalog:*"),
            Some(Scope::new(Resource::Catalog, Actions::CATALOG))
        );
        // Unknown action names grant nothing; unknown types are skipped.
        assert_eq!(
            Scope::parse("repository:x:pull,fly"),
            Some(repo("x", Actions::PULL))
        );
        assert_eq!(
            Scope::parse("registry:catalog:pull"),
            Some(Scope::new(Resource::Catalog, Actions::NONE))
        );
        for bad in [
            "",
            "repository",
            "repository:x",
            "repository::pull",
            "plugin:x:pull",
            "registry:other:*",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn parse_all_takes_repeated_and_space_separated_parameters() {
        let scopes = Scope::parse_all([
            "repository:a:pull repository:b:push",
            "bogus:x:y",
            "registry:catalog:*",
        ]);
        assert_eq!(
            scopes,
            [
                repo("a", Actions::PULL),
                repo("b", Actions::PUSH),
                Scope::new(Resource::Catalog, Actions::CATALOG)
            ]
        );
    }

    #[test]
    fn renders_for_challenges() {
        assert_eq!(
            repo("team-a/app", Actions::PUSH | Actions::PULL).to_string(),
            "repository:team-a/app:pull,push"
        );
        assert_eq!(
            Scope::new(Resource::Catalog, Actions::CATALOG).to_string(),
            "registry:catalog:*"
        );
        assert_eq!(
            render(&[repo("a", Actions::PULL), repo("b", Actions::DELETE)]),
            "repository:a:pull repository:b:delete"
        );
        let s = repo("x/y", Actions::REPOSITORY);
        assert_eq!(Scope::parse(&s.to_string()), Some(s));
    }
}

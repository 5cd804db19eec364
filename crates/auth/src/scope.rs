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

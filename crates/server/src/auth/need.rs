//! What each endpoint needs: the README's endpoint → right table as code.

use crate::api_route::ApiRoute;
use crate::request::Query;
use crate::route::Route;
use axum::http::Method;
use berth_auth::{Actions, Need, Resource};
use berth_oci::RepositoryName;

/// What a request must show before it is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `/healthz`, `/readyz`, `/token` (which checks credentials itself).
    Nothing,
    /// `GET /v2/`, `/api/v1/overview`, `/api/v1/repositories`: valid
    /// credentials of anyone; anonymous only when anonymous has some right
    /// (the listings show only what the caller may pull).
    AnyCredentials,
    /// `/metrics`: `admin`, or a loopback client.
    MetricsReader,
    /// Whole-registry actions (repository delete): `admin`, or the admin
    /// socket; see [`crate::caller::Caller::may_administer`].
    Admin,
    /// Rights on one resource.
    Rights(Need),
    /// Upload start with `?mount=`: `push`+`pull` on the target, and
    /// `pull` on `from` for the mount to happen (else a plain upload start;
    /// so too without a valid `from`: a mount from anywhere could reveal
    /// blobs of repositories the caller may not pull).
    Mount {
        target: Need,
        from: Option<RepositoryName>,
    },
}

fn on(name: &RepositoryName, actions: Actions) -> Requirement {
    Requirement::Rights(repository(name, actions))
}

/// A need on one repository.
pub fn repository(name: &RepositoryName, actions: Actions) -> Need {
    Need {
        resource: Resource::Repository(name.as_str().to_string()),
        actions,
    }
}

/// The `admin` right: registry-wide operations (GC).
pub fn admin() -> Need {
    Need {
        resource: Resource::Admin,
        actions: Actions::ADMIN,
    }
}

/// The requirement of a parsed request.
pub fn of(route: &Route, method: &Method, query: &Query) -> Requirement {
    let push = Actions::PUSH.union(Actions::PULL);
    match route {
        Route::Healthz | Route::Readyz | Route::Token => Requirement::Nothing,
        Route::Metrics => Requirement::MetricsReader,
        Route::Base => Requirement::AnyCredentials,
        Route::Catalog => Requirement::Rights(Need {
            resource: Resource::Catalog,
            actions: Actions::CATALOG,
        }),
        Route::Tags { name } | Route::Referrers { name, .. } => on(name, Actions::PULL),
        Route::Manifest { name, .. } | Route::Blob { name, .. } => match *method {
            Method::PUT => on(name, push),
            Method::DELETE => on(name, Actions::DELETE),
            _ => on(name, Actions::PULL),
        },
        Route::StartUpload { name } if query.get("mount").is_some() => Requirement::Mount {
            target: repository(name, push),
            from: query
                .get("from")
                .and_then(|from| from.parse::<RepositoryName>().ok()),
        },
        Route::StartUpload { name } => on(name, push),
        Route::Upload { name, .. } => on(name, push),
        Route::Api(api) => match api {
            ApiRoute::Overview | ApiRoute::Repositories => Requirement::AnyCredentials,
            ApiRoute::Tags { name }
            | ApiRoute::Manifest { name, .. }
            | ApiRoute::ManifestFiles { name, .. }
            | ApiRoute::BlobFiles { name, .. } => on(name, Actions::PULL),
            ApiRoute::Gc | ApiRoute::DeleteRepository { .. } => Requirement::Admin,
        },
    }
}

/// The scope a token needs for `need`, as challenges write it:
/// `repository:NAME:pull,push`, `registry:catalog:*`; none for admin,
/// which no token scope names.
pub fn scope_of(need: &Need) -> Option<String> {
    match need.resource {
        Resource::Admin => None,
        _ => Some(need.scope().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::parse;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn requirement(method: Method, path_and_query: &str) -> Requirement {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let route = parse(&method, path).unwrap();
        of(&route, &method, &Query::parse(Some(query)))
    }

    fn needs(method: Method, path: &str) -> (String, Actions) {
        match requirement(method.clone(), path) {
            Requirement::Rights(Need {
                resource: Resource::Repository(name),
                actions,
            }) => (name, actions),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn reads_need_pull() {
        let pull = Actions::PULL;
        for (method, path) in [
            (Method::GET, "/v2/team-a/app/tags/list".to_string()),
            (Method::GET, "/v2/team-a/app/manifests/latest".to_string()),
            (Method::HEAD, "/v2/team-a/app/manifests/latest".to_string()),
            (Method::GET, format!("/v2/team-a/app/blobs/{D}")),
            (Method::HEAD, format!("/v2/team-a/app/blobs/{D}")),
            (Method::GET, format!("/v2/team-a/app/referrers/{D}")),
            (
                Method::GET,
                "/api/v1/repositories/team-a/app/tags".to_string(),
            ),
            (
                Method::GET,
                "/api/v1/repositories/team-a/app/manifests/latest".to_string(),
            ),
        ] {
            assert_eq!(needs(method, &path), ("team-a/app".into(), pull), "{path}");
        }
    }

    #[test]
    fn writes_need_push_and_pull_deletes_need_delete() {
        let push = Actions::PUSH.union(Actions::PULL);
        assert_eq!(needs(Method::PUT, "/v2/a/manifests/v1").1, push);
        assert_eq!(needs(Method::POST, "/v2/a/blobs/uploads/").1, push);
        for method in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
            assert_eq!(needs(method, "/v2/a/blobs/uploads/some-id").1, push);
        }
        assert_eq!(
            needs(Method::DELETE, "/v2/a/manifests/v1").1,
            Actions::DELETE
        );
        assert_eq!(
            needs(Method::DELETE, &format!("/v2/a/blobs/{D}")).1,
            Actions::DELETE
        );
    }

    #[test]
    fn a_mount_names_its_source() {
        match requirement(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?mount={D}&from=team-b/base"),
        ) {
            Requirement::Mount { target, from } => {
                assert_eq!(target.resource, Resource::Repository("a".into()));
                assert_eq!(from.unwrap().as_str(), "team-b/base");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            requirement(Method::POST, &format!("/v2/a/blobs/uploads/?mount={D}")),
            Requirement::Mount { from: None, .. }
        ));
        assert!(matches!(
            requirement(Method::POST, "/v2/a/blobs/uploads/?from=b"),
            Requirement::Rights(_)
        ));
    }

    #[test]
    fn registry_wide_endpoints() {
        assert_eq!(requirement(Method::GET, "/healthz"), Requirement::Nothing);
        assert_eq!(requirement(Method::HEAD, "/readyz"), Requirement::Nothing);
        assert_eq!(requirement(Method::GET, "/token"), Requirement::Nothing);
        assert_eq!(requirement(Method::POST, "/token"), Requirement::Nothing);
        assert_eq!(
            requirement(Method::GET, "/metrics"),
            Requirement::MetricsReader
        );
        assert_eq!(
            requirement(Method::GET, "/v2/"),
            Requirement::AnyCredentials
        );
        assert_eq!(
            requirement(Method::GET, "/api/v1/overview"),
            Requirement::AnyCredentials
        );
        assert_eq!(
            requirement(Method::GET, "/api/v1/repositories"),
            Requirement::AnyCredentials
        );
        for method in [Method::GET, Method::POST] {
            assert_eq!(requirement(method, "/api/v1/gc"), Requirement::Admin);
        }
        assert_eq!(
            requirement(Method::DELETE, "/api/v1/repositories/team/app"),
            Requirement::Admin
        );
        assert_eq!(
            requirement(Method::GET, "/v2/_catalog"),
            Requirement::Rights(Need {
                resource: Resource::Catalog,
                actions: Actions::CATALOG
            })
        );
    }

    #[test]
    fn scopes_as_clients_ask_for_them() {
        let push = Actions::PUSH.union(Actions::PULL);
        assert_eq!(
            scope_of(&repository(&"team-a/app".parse().unwrap(), push)).unwrap(),
            "repository:team-a/app:pull,push"
        );
        assert_eq!(
            scope_of(&repository(&"a".parse().unwrap(), Actions::DELETE)).unwrap(),
            "repository:a:delete"
        );
        assert_eq!(
            scope_of(&Need {
                resource: Resource::Catalog,
                actions: Actions::CATALOG
            })
            .unwrap(),
            "registry:catalog:*"
        );
    }
}

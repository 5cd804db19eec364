//! Parsing `(method, path)` of `/v2/...` and of the operations endpoints
//! into a typed [`Route`].
//!
//! Repository names contain slashes, so the path is read from its end: the
//! last one to three segments say which endpoint it is, everything before them
//! is the name. Names, digests and references are validated here, so handlers
//! only ever see valid values.

use crate::api_route::{self, ApiRoute};
use axum::http::Method;
use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// `GET /v2/<name>/tags/list`
    Tags { name: RepositoryName },
    /// `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`
    Manifest {
        name: RepositoryName,
        reference: Reference,
    },
    /// `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`
    Blob {
        name: RepositoryName,
        digest: Digest,
    },
    /// `POST /v2/<name>/blobs/uploads/`
    StartUpload { name: RepositoryName },
    /// `GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<id>`
    Upload { name: RepositoryName, id: String },
    /// `GET /v2/<name>/referrers/<digest>`
    Referrers {
        name: RepositoryName,
        digest: Digest,
    },
    /// `GET|HEAD /healthz`: the process serves.
    Healthz,
    /// `GET|HEAD /readyz`: the stores answer.
    Readyz,
    /// `GET /metrics`: Prometheus metrics.
    Metrics,
    /// `GET|HEAD /api/v1/...`: JSON for the UI and tools; `POST /api/v1/gc`
    /// and `DELETE /api/v1/repositories/<name>`.
    Api(ApiRoute),
    /// `GET|POST /token`: the token service (when token auth is on).
    Token,
}

impl Route {
    /// The repository a `/v2/<name>/...` route names, for the dispatcher to
    /// replace by the registry's local name for it (the pull-through
    /// cache's `?ns=` and prefixes) before anything else reads it. `/api/v1`
    /// routes already name local repositories.
    pub fn repository_mut(&mut self) -> Option<&mut RepositoryName> {
        match self {
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::StartUpload { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
            Route::Base
            | Route::Catalog
            | Route::Healthz
            | Route::Readyz
            | Route::Metrics
            | Route::Api(_)
            | Route::Token => None,
        }
    }
}

/// Which endpoint a request went to, without its parameters: a label with
/// a fixed set of values, unlike the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Base,
    Catalog,
    Tags,
    Manifest,
    Blob,
    StartUpload,
    Upload,
    Referrers,
    Healthz,
    Readyz,
    Metrics,
    ApiOverview,
    ApiRepositories,
    ApiTags,
    ApiManifest,
    ApiManifestFiles,
    ApiBlobFiles,
    ApiGc,
    ApiDeleteRepository,
    Token,
    /// Any page or asset of the web UI (`/`, `/ui`, `/ui/...`).
    Ui,
    /// A path that named no endpoint, or had an invalid name, digest or
    /// reference. Stays last: the metrics size a table by it.
    Unmatched,
}

impl Endpoint {
    /// The endpoint's path template, as the spec and the README write it.
    pub fn template(self) -> &'static str {
        match self {
            Endpoint::Base => "/v2/",
            Endpoint::Catalog => "/v2/_catalog",
            Endpoint::Tags => "/v2/{name}/tags/list",
            Endpoint::Manifest => "/v2/{name}/manifests/{reference}",
            Endpoint::Blob => "/v2/{name}/blobs/{digest}",
            Endpoint::StartUpload => "/v2/{name}/blobs/uploads/",
            Endpoint::Upload => "/v2/{name}/blobs/uploads/{id}",
            Endpoint::Referrers => "/v2/{name}/referrers/{digest}",
            Endpoint::Healthz => "/healthz",
            Endpoint::Readyz => "/readyz",
            Endpoint::Metrics => "/metrics",
            Endpoint::ApiOverview => "/api/v1/overview",
            Endpoint::ApiRepositories => "/api/v1/repositories",
            Endpoint::ApiTags => "/api/v1/repositories/{name}/tags",
            Endpoint::ApiManifest => "/api/v1/repositories/{name}/manifests/{reference}",
            Endpoint::ApiManifestFiles => "/api/v1/repositories/{name}/manifests/{reference}/files",
            Endpoint::ApiBlobFiles => "/api/v1/repositories/{name}/blobs/{digest}/files",
            Endpoint::ApiGc => "/api/v1/gc",
            Endpoint::ApiDeleteRepository => "/api/v1/repositories/{name}",
            Endpoint::Token => "/token",
            Endpoint::Ui => "/ui/{page}",
            Endpoint::Unmatched => "unmatched",
        }
    }
}

impl Route {
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Route::Base => Endpoint::Base,
            Route::Catalog => Endpoint::Catalog,
            Route::Tags { .. } => Endpoint::Tags,
            Route::Manifest { .. } => Endpoint::Manifest,
            Route::Blob { .. } => Endpoint::Blob,
            Route::StartUpload { .. } => Endpoint::StartUpload,
            Route::Upload { .. } => Endpoint::Upload,
            Route::Referrers { .. } => Endpoint::Referrers,
            Route::Healthz => Endpoint::Healthz,
            Route::Readyz => Endpoint::Readyz,
            Route::Metrics => Endpoint::Metrics,
            Route::Token => Endpoint::Token,
            Route::Api(api) => match api {
                ApiRoute::Overview => Endpoint::ApiOverview,
                ApiRoute::Repositories => Endpoint::ApiRepositories,
                ApiRoute::Tags { .. } => Endpoint::ApiTags,
                ApiRoute::Manifest { .. } => Endpoint::ApiManifest,
                ApiRoute::ManifestFiles { .. } => Endpoint::ApiManifestFiles,
                ApiRoute::BlobFiles { .. } => Endpoint::ApiBlobFiles,
                ApiRoute::Gc => Endpoint::ApiGc,
                ApiRoute::DeleteRepository { .. } => Endpoint::ApiDeleteRepository,
            },
        }
    }
}

/// Why a request matched no endpoint.
#[derive(Debug)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed,
    /// The path has an endpoint's shape but an invalid name, digest or reference.
    Invalid(Error),
    /// A listing's path with a trailing slash (`/v2/_catalog/`): answered,
    /// as CNCF distribution does, with a redirect to this path without it.
    TrailingSlash(String),
}

impl From<Error> for RouteError {
    fn from(e: Error) -> Self {
        RouteError::Invalid(e)
    }
}

fn name(segments: &[&str]) -> Result<RepositoryName, RouteError> {
    Ok(segments.join("/").parse().map_err(Error::NameInvalid)?)
}

fn digest(s: &str) -> Result<Digest, RouteError> {
    Ok(s.parse().map_err(Error::DigestInvalid)?)
}

/// A manifest reference. A tag that cannot be valid is a client error on
/// PUT, but on reads and deletes it is simply a manifest that cannot exist:
/// 404 MANIFEST_UNKNOWN, as the OCI conformance suite (v1.1.1) expects.
fn reference(method: &Method, s: &str) -> Result<Reference, RouteError> {
    use berth_oci::reference::ReferenceError;
    Ok(s.parse().map_err(|e| match e {
        ReferenceError::Digest(d) => Error::DigestInvalid(d),
        ReferenceError::Tag(_) if method != Method::PUT => Error::ManifestUnknown(s.to_string()),
        ReferenceError::Tag(t) => Error::TagInvalid(t),
    })?)
}

/// Parses a request (the raw, undecoded path): an operations endpoint, one
/// under `/api/v1` or one under `/v2`.
pub fn parse(method: &Method, path: &str) -> Result<Route, RouteError> {
    if path.starts_with(api_route::PREFIX) {
        return api_route::parse(method, path).map(Route::Api);
    }
    let (route, allowed): (Route, &[Method]) = match path {
        "/healthz" => (Route::Healthz, &[Method::GET, Method::HEAD]),
        "/readyz" => (Route::Readyz, &[Method::GET, Method::HEAD]),
        "/metrics" => (Route::Metrics, &[Method::GET]),
        "/token" => (Route::Token, &[Method::GET, Method::POST]),
        _ => return parse_v2(method, path),
    };
    if allowed.contains(method) {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed)
    }
}

fn parse_v2(method: &Method, path: &str) -> Result<Route, RouteError> {
    let rest = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if let Some(listing) = rest.strip_suffix('/') {
        if listing == "_catalog" || listing.ends_with("/tags/list") {
            // Validate (name, method) as the path without the slash would.
            parse(method, &path[..path.len() - 1])?;
            return Err(RouteError::TrailingSlash(
                path[..path.len() - 1].to_string(),
            ));
        }
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let tail = |k: usize| if k <= n { segs[n - k] } else { "" };

    let (route, allowed): (Route, &[Method]) = if rest.is_empty() {
        (Route::Base, &[Method::GET, Method::HEAD])
    } else if rest == "_catalog" {
        (Route::Catalog, &[Method::GET])
    } else if n >= 3 && tail(2) == "tags" && tail(1) == "list" {
        (
            Route::Tags {
                name: name(&segs[..n - 2])?,
            },
            &[Method::GET, Method::HEAD],
        )
    } else if n >= 3 && tail(2) == "manifests" {
        let route = Route::Manifest {
            name: name(&segs[..n - 2])?,
            reference: reference(method, tail(1))?,
        };
        (
            route,
            &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
        )
    } else if n >= 3 && tail(2) == "referrers" {
        let route = Route::Referrers {
            name: name(&segs[..n - 2])?,
            digest: digest(tail(1))?,
        };
        (route, &[Method::GET])
    } else if n >= 4 && tail(3) == "blobs" && tail(2) == "uploads" && !tail(1).is_empty() {
        let route = Route::Upload {
            name: name(&segs[..n - 3])?,
            id: tail(1).to_string(),
        };
        (
            route,
            &[Method::GET, Method::PATCH, Method::PUT, Method::DELETE],
        )
    } else if n >= 4 && tail(3) == "blobs" && tail(2) == "uploads" && tail(1).is_empty()
        || n >= 3 && tail(2) == "blobs" && tail(1) == "uploads" && method == Method::POST
    {
        let k = if tail(1).is_empty() { 3 } else { 2 };
        (
            Route::StartUpload {
                name: name(&segs[..n - k])?,
            },
            &[Method::POST],
        )
    } else if n >= 3 && tail(2) == "blobs" {
        let route = Route::Blob {
            name: name(&segs[..n - 2])?,
            digest: digest(tail(1))?,
        };
        (route, &[Method::GET, Method::HEAD, Method::DELETE])
    } else {
        return Err(RouteError::NotFound);
    };
    if allowed.contains(method) {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn ok(method: Method, path: &str) -> Route {
        parse(&method, path).unwrap_or_else(|e| panic!("{path}: {e:?}"))
    }

    fn repo(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    #[test]
    fn base_and_catalog() {
        assert_eq!(ok(Method::GET, "/v2/"), Route::Base);
        assert_eq!(ok(Method::GET, "/v2"), Route::Base);
        assert_eq!(ok(Method::GET, "/v2/_catalog"), Route::Catalog);
    }

    #[test]
    fn names_with_slashes_and_endpoint_words() {
        assert_eq!(
            ok(Method::GET, "/v2/myorg/team/app/tags/list"),
            Route::Tags {
                name: repo("myorg/team/app")
            }
        );
        assert_eq!(
            ok(Method::GET, "/v2/a/blobs/b/manifests/latest"),
            Route::Manifest {
                name: repo("a/blobs/b"),
                reference: "latest".parse().unwrap()
            }
        );
        assert_eq!(
            ok(Method::HEAD, &format!("/v2/x/manifests/{D}")),
            Route::Manifest {
                name: repo("x"),
                reference: D.parse().unwrap()
            }
        );
    }

    #[test]
    fn blob_and_upload_routes() {
        assert_eq!(
            ok(Method::GET, &format!("/v2/a/b/blobs/{D}")),
            Route::Blob {
                name: repo("a/b"),
                digest: D.parse().unwrap()
            }
        );
        assert_eq!(
            ok(Method::POST, "/v2/a/b/blobs/uploads/"),
            Route::StartUpload { name: repo("a/b") }
        );
        assert_eq!(
            ok(Method::POST, "/v2/a/blobs/uploads"),
            Route::StartUpload { name: repo("a") }
        );
        assert_eq!(
            ok(Method::PATCH, "/v2/a/blobs/uploads/abc-123"),
            Route::Upload {
                name: repo("a"),
                id: "abc-123".into()
            }
        );
        assert_eq!(
            ok(Method::GET, &format!("/v2/a/referrers/{D}")),
            Route::Referrers {
                name: repo("a"),
                digest: D.parse().unwrap()
            }
        );
    }

    #[test]
    fn invalid_parts_are_typed_errors() {
        let code = |path: &str| match parse(&Method::GET, path) {
            Err(RouteError::Invalid(e)) => e.code().as_str(),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(code("/v2/../x/tags/list"), "NAME_INVALID");
        assert_eq!(code("/v2/a//b/tags/list"), "NAME_INVALID");
        assert_eq!(code("/v2/Busybox/manifests/latest"), "NAME_INVALID");
        assert_eq!(code("/v2/a/blobs/sha256:abc"), "DIGEST_INVALID");
        assert_eq!(
            code("/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"),
            "DIGEST_INVALID"
        );
        assert_eq!(code("/v2/a/manifests/-bad"), "MANIFEST_UNKNOWN");
    }

    #[test]
    fn an_invalid_tag_is_unknown_to_reads_and_invalid_to_writes() {
        let code = |method: Method, path: &str| match parse(&method, path) {
            Err(RouteError::Invalid(e)) => e.code().as_str(),
            other => panic!("{method} {path}: {other:?}"),
        };
        let path = "/v2/a/manifests/.INVALID_MANIFEST_NAME";
        assert_eq!(code(Method::GET, path), "MANIFEST_UNKNOWN");
        assert_eq!(code(Method::HEAD, path), "MANIFEST_UNKNOWN");
        assert_eq!(code(Method::DELETE, path), "MANIFEST_UNKNOWN");
        assert_eq!(code(Method::PUT, path), "MANIFEST_INVALID");
        // A malformed digest stays a digest error, whatever the method.
        assert_eq!(
            code(Method::GET, "/v2/a/manifests/sha256:abc"),
            "DIGEST_INVALID"
        );
    }

    #[test]
    fn listings_with_a_trailing_slash_redirect_to_the_path_without() {
        let redirect = |method: Method, path: &str| match parse(&method, path) {
            Err(RouteError::TrailingSlash(to)) => to,
            other => panic!("{method} {path}: {other:?}"),
        };
        assert_eq!(redirect(Method::GET, "/v2/_catalog/"), "/v2/_catalog");
        assert_eq!(
            redirect(Method::HEAD, "/v2/org/app/tags/list/"),
            "/v2/org/app/tags/list"
        );
        assert!(matches!(
            parse(&Method::GET, "/v2/Bad/tags/list/"),
            Err(RouteError::Invalid(_))
        ));
        assert!(matches!(
            parse(&Method::DELETE, "/v2/_catalog/"),
            Err(RouteError::MethodNotAllowed)
        ));
    }

    #[test]
    fn operations_endpoints_take_only_reads() {
        assert_eq!(ok(Method::GET, "/healthz"), Route::Healthz);
        assert_eq!(ok(Method::HEAD, "/readyz"), Route::Readyz);
        assert_eq!(ok(Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(ok(Method::GET, "/token"), Route::Token);
        assert_eq!(ok(Method::POST, "/token"), Route::Token);
        assert_eq!(Route::Token.endpoint().template(), "/token");
        assert!(matches!(
            parse(&Method::POST, "/metrics"),
            Err(RouteError::MethodNotAllowed)
        ));
        assert!(matches!(
            parse(&Method::GET, "/healthz/"),
            Err(RouteError::NotFound)
        ));
        assert_eq!(
            ok(Method::GET, "/v2/healthz/manifests/latest").endpoint(),
            Endpoint::Manifest
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert!(matches!(
            parse(&Method::GET, "/v2/a/unknown"),
            Err(RouteError::NotFound)
        ));
        assert!(matches!(
            parse(&Method::GET, "/v3/"),
            Err(RouteError::NotFound)
        ));
        assert!(matches!(
            parse(&Method::POST, "/v2/a/tags/list"),
            Err(RouteError::MethodNotAllowed)
        ));
        assert!(matches!(
            parse(&Method::PATCH, &format!("/v2/a/blobs/{D}")),
            Err(RouteError::MethodNotAllowed)
        ));
    }

    #[test]
    fn every_v2_route_with_a_name_exposes_it_for_the_local_name_and_no_other_does() {
        let named = [
            (Method::GET, "/v2/team/app/tags/list".to_string()),
            (Method::GET, "/v2/team/app/manifests/latest".to_string()),
            (Method::PUT, "/v2/team/app/manifests/latest".to_string()),
            (Method::GET, format!("/v2/team/app/blobs/{D}")),
            (Method::POST, "/v2/team/app/blobs/uploads/".to_string()),
            (Method::PATCH, "/v2/team/app/blobs/uploads/abc".to_string()),
            (Method::GET, format!("/v2/team/app/referrers/{D}")),
        ];
        for (method, path) in named {
            let mut route = ok(method.clone(), &path);
            let name = route.repository_mut().unwrap_or_else(|| panic!("{path}"));
            assert_eq!(name.as_str(), "team/app", "{path}");
            *name = repo("up.test/team/app");
            assert_eq!(
                route.repository_mut().map(|n| n.as_str().to_string()),
                Some("up.test/team/app".to_string()),
                "{method} {path}: the replaced name is the one handlers see"
            );
        }
        for path in ["/v2/", "/v2/_catalog", "/healthz", "/metrics", "/token"] {
            assert!(ok(Method::GET, path).repository_mut().is_none(), "{path}");
        }
        assert!(ok(Method::GET, "/api/v1/repositories/team/app/tags")
            .repository_mut()
            .is_none());
    }
}

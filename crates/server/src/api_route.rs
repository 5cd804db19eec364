//! Parsing `(method, path)` under `/api/v1/` into a typed [`ApiRoute`].
//!
//! As under `/v2`, repository names contain slashes, so a path is read from
//! its end: `/api/v1/repositories/<name>/<what>...`. Names, references and
//! digests are validated here, with the same errors as `/v2`.

use crate::route::RouteError;
use axum::http::Method;
use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::Error;

/// The prefix every route here lives under.
pub const PREFIX: &str = "/api/v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRoute {
    /// `GET /api/v1/overview`
    Overview,
    /// `GET /api/v1/repositories?q=&n=&last=`
    Repositories,
    /// `GET /api/v1/repositories/<name>/tags?n=&last=`
    Tags { name: RepositoryName },
    /// `GET /api/v1/repositories/<name>/manifests/<reference>`
    Manifest {
        name: RepositoryName,
        reference: Reference,
    },
    /// `GET /api/v1/repositories/<name>/manifests/<reference>/files`: the
    /// merged file tree of an image. A slot for the layer-listing work;
    /// answered 404 UNSUPPORTED until it lands.
    ManifestFiles {
        name: RepositoryName,
        reference: Reference,
    },
    /// `GET /api/v1/repositories/<name>/blobs/<digest>/files`: the files
    /// one layer adds, changes and deletes. Same slot as [`ApiRoute::ManifestFiles`].
    BlobFiles {
        name: RepositoryName,
        digest: Digest,
    },
    /// `GET /api/v1/gc`: the collector's state and what it could reclaim;
    /// `POST /api/v1/gc?dry_run=&grace=`: a pass now, its progress streamed.
    Gc,
    /// `DELETE /api/v1/repositories/<name>`: the repository, whole. For a
    /// DELETE the rest of the path is the name, whatever words end it.
    DeleteRepository { name: RepositoryName },
}

/// The methods of the read-only routes.
const READS: &[Method] = &[Method::GET, Method::HEAD];

fn name(segments: &[&str]) -> Result<RepositoryName, RouteError> {
    Ok(segments.join("/").parse().map_err(Error::NameInvalid)?)
}

/// A reference to read: a tag that cannot be valid names nothing (404
/// MANIFEST_UNKNOWN), a malformed digest is a client error (400).
fn reference(s: &str) -> Result<Reference, RouteError> {
    use berth_oci::reference::ReferenceError;
    Ok(s.parse().map_err(|e| match e {
        ReferenceError::Digest(d) => Error::DigestInvalid(d),
        ReferenceError::Tag(_) => Error::ManifestUnknown(s.to_string()),
    })?)
}

fn digest(s: &str) -> Result<Digest, RouteError> {
    Ok(s.parse().map_err(Error::DigestInvalid)?)
}

/// Parses a path under [`PREFIX`] (raw, undecoded): reads, and the admin
/// operations that take other methods.
pub fn parse(method: &Method, path: &str) -> Result<ApiRoute, RouteError> {
    let rest = path
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(RouteError::NotFound)?;
    if method == Method::DELETE {
        return delete_route(rest);
    }
    let (route, allowed) = match rest {
        "overview" => (ApiRoute::Overview, READS),
        "repositories" => (ApiRoute::Repositories, READS),
        "gc" => (ApiRoute::Gc, &[Method::GET, Method::HEAD, Method::POST][..]),
        _ => (repository_route(rest)?, READS),
    };
    if allowed.contains(method) {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed)
    }
}

/// `repositories/<name>`: the only thing `/api/v1` deletes.
fn delete_route(rest: &str) -> Result<ApiRoute, RouteError> {
    match rest.strip_prefix("repositories/") {
        Some(name) if !name.is_empty() => Ok(ApiRoute::DeleteRepository {
            name: name.parse().map_err(Error::NameInvalid)?,
        }),
        _ if matches!(rest, "overview" | "repositories" | "gc") => {
            Err(RouteError::MethodNotAllowed)
        }
        _ => Err(RouteError::NotFound),
    }
}

/// `repositories/<name>/...`, read from the end. `…/manifests/<ref>/files`
/// is checked before `…/manifests/<ref>`, so a tag named `files` of a
/// repository whose name ends in `/manifests/<x>` is not reachable here (it
/// is through `/v2`).
fn repository_route(rest: &str) -> Result<ApiRoute, RouteError> {
    let rest = rest
        .strip_prefix("repositories/")
        .ok_or(RouteError::NotFound)?;
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let tail = |k: usize| if k <= n { segs[n - k] } else { "" };
    if n >= 4 && tail(1) == "files" && tail(3) == "manifests" {
        Ok(ApiRoute::ManifestFiles {
            name: name(&segs[..n - 3])?,
            reference: reference(tail(2))?,
        })
    } else if n >= 4 && tail(1) == "files" && tail(3) == "blobs" {
        Ok(ApiRoute::BlobFiles {
            name: name(&segs[..n - 3])?,
            digest: digest(tail(2))?,
        })
    } else if n >= 3 && tail(2) == "manifests" {
        Ok(ApiRoute::Manifest {
            name: name(&segs[..n - 2])?,
            reference: reference(tail(1))?,
        })
    } else if n >= 2 && tail(1) == "tags" {
        Ok(ApiRoute::Tags {
            name: name(&segs[..n - 1])?,
        })
    } else {
        Err(RouteError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn ok(path: &str) -> ApiRoute {
        parse(&Method::GET, path).unwrap_or_else(|e| panic!("{path}: {e:?}"))
    }

    fn repo(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    #[test]
    fn every_route_with_names_containing_slashes_and_endpoint_words() {
        assert_eq!(ok("/api/v1/overview"), ApiRoute::Overview);
        assert_eq!(ok("/api/v1/repositories"), ApiRoute::Repositories);
        assert_eq!(
            ok("/api/v1/repositories/org/tags/tags"),
            ApiRoute::Tags {
                name: repo("org/tags")
            }
        );
        assert_eq!(
            ok("/api/v1/repositories/a/manifests/b/manifests/latest"),
            ApiRoute::Manifest {
                name: repo("a/manifests/b"),
                reference: "latest".parse().unwrap()
            }
        );
        assert_eq!(
            ok(&format!("/api/v1/repositories/a/b/manifests/{D}/files")),
            ApiRoute::ManifestFiles {
                name: repo("a/b"),
                reference: D.parse().unwrap()
            }
        );
        assert_eq!(
            ok(&format!("/api/v1/repositories/x/blobs/{D}/files")),
            ApiRoute::BlobFiles {
                name: repo("x"),
                digest: D.parse().unwrap()
            }
        );
        // A tag named `files` is still a manifest.
        assert_eq!(
            ok("/api/v1/repositories/x/manifests/files"),
            ApiRoute::Manifest {
                name: repo("x"),
                reference: "files".parse().unwrap()
            }
        );
    }

    #[test]
    fn endpoint_words_at_the_end_of_a_name_give_way_to_the_endpoint() {
        // `x/manifests` + `/tags` is the manifest `tags` of `x`, and
        // `x/manifests` + `/manifests/files` the files of `x:manifests`.
        assert_eq!(
            ok("/api/v1/repositories/x/manifests/tags"),
            ApiRoute::Manifest {
                name: repo("x"),
                reference: "tags".parse().unwrap()
            }
        );
        assert_eq!(
            ok("/api/v1/repositories/x/manifests/manifests/files"),
            ApiRoute::ManifestFiles {
                name: repo("x"),
                reference: "manifests".parse().unwrap()
            }
        );
    }

    #[test]
    fn invalid_parts_are_the_same_errors_as_v2() {
        let code = |path: &str| match parse(&Method::GET, path) {
            Err(RouteError::Invalid(e)) => e.code().as_str(),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(code("/api/v1/repositories/Bad/tags"), "NAME_INVALID");
        assert_eq!(
            code("/api/v1/repositories/a/manifests/sha256:abc"),
            "DIGEST_INVALID"
        );
        assert_eq!(
            code("/api/v1/repositories/a/manifests/-bad"),
            "MANIFEST_UNKNOWN"
        );
        assert_eq!(
            code("/api/v1/repositories/a/blobs/sha256:zz/files"),
            "DIGEST_INVALID"
        );
    }

    #[test]
    fn a_delete_names_a_whole_repository_whatever_ends_it() {
        let delete = |path: &str| parse(&Method::DELETE, path);
        for name in ["a", "team/app", "x/tags", "a/manifests/latest"] {
            assert_eq!(
                delete(&format!("/api/v1/repositories/{name}")).unwrap(),
                ApiRoute::DeleteRepository { name: repo(name) }
            );
        }
        assert!(matches!(
            delete("/api/v1/repositories/Bad"),
            Err(RouteError::Invalid(Error::NameInvalid(_)))
        ));
    }

    #[test]
    fn unknown_paths_and_writes_are_refused() {
        for path in [
            "/api/v1/",
            "/api/v1",
            "/api/v1/nothing",
            "/api/v1/repositories/",
            "/api/v1/repositories/a",
            "/api/v1/repositories/a/blobs/x",
            "/api/v2/overview",
        ] {
            assert!(
                matches!(parse(&Method::GET, path), Err(RouteError::NotFound)),
                "{path}"
            );
        }
        for method in [Method::PUT, Method::POST, Method::PATCH] {
            assert!(matches!(
                parse(&method, "/api/v1/repositories/a/manifests/latest"),
                Err(RouteError::MethodNotAllowed)
            ));
        }
        assert!(matches!(
            parse(&Method::DELETE, "/api/v1/overview"),
            Err(RouteError::MethodNotAllowed)
        ));
        for path in ["/api/v1/repositories/", "/api/v1/nothing"] {
            assert!(
                matches!(parse(&Method::DELETE, path), Err(RouteError::NotFound)),
                "{path}"
            );
        }
        assert!(parse(&Method::HEAD, "/api/v1/overview").is_ok());
        assert!(matches!(
            parse(&Method::POST, "/api/v1/overview"),
            Err(RouteError::MethodNotAllowed)
        ));
    }

    #[test]
    fn gc_is_read_with_get_and_run_with_post() {
        for method in [Method::GET, Method::HEAD, Method::POST] {
            assert_eq!(parse(&method, "/api/v1/gc").unwrap(), ApiRoute::Gc);
        }
        for method in [Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(matches!(
                parse(&method, "/api/v1/gc"),
                Err(RouteError::MethodNotAllowed)
            ));
        }
        assert!(matches!(
            parse(&Method::POST, "/api/v1/gc/"),
            Err(RouteError::NotFound)
        ));
    }
}

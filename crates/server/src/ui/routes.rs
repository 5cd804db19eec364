//! The UI's paths, parsed into a typed route.
//!
//! Repository names contain slashes, so a page below a repository is
//! written after a `/-/` separator: `/ui/r/<name>/-/m/<reference>`. A name's
//! path components start with a letter or digit, so `-` can never be one of
//! them and no name can reach into the page part.

use berth_oci::{Digest, Reference, RepositoryName};

/// Where the pages live; `/` redirects here.
pub const PREFIX: &str = "/ui/";
/// The login page (GET) and form (POST), when auth is on.
pub const LOGIN: &str = "/ui/login";
/// Ends a session (POST).
pub const LOGOUT: &str = "/ui/logout";

/// A page (or asset) of the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiRoute {
    /// The overview and the repository list.
    Home,
    /// An embedded stylesheet or script, by its content-hashed file name.
    Asset(String),
    Repository(RepositoryName),
    /// A manifest or index, by tag or digest.
    Image(RepositoryName, Reference),
    /// The merged file tree of an image.
    ImageFiles(RepositoryName, Reference),
    /// The files one layer adds, changes and deletes.
    Layer(RepositoryName, Digest),
    /// GET: the confirmation page; POST: the delete itself.
    Delete(RepositoryName, Reference),
    /// The whole repository: GET confirms, POST deletes.
    DeleteRepository(RepositoryName),
}

/// Why a UI path named no page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiRouteError {
    /// No page has this shape.
    NotFound,
    /// The page exists but the name, tag or digest in it is not valid.
    Invalid(String),
}

impl UiRoute {
    /// The path of this page, percent-free: names, tags and digests only
    /// hold characters that are safe in a URL path.
    pub fn path(&self) -> String {
        match self {
            UiRoute::Home => PREFIX.to_owned(),
            UiRoute::Asset(file) => format!("{PREFIX}assets/{file}"),
            UiRoute::Repository(name) => format!("{PREFIX}r/{name}"),
            UiRoute::Image(name, reference) => format!("{PREFIX}r/{name}/-/m/{reference}"),
            UiRoute::ImageFiles(name, reference) => {
                format!("{PREFIX}r/{name}/-/m/{reference}/files")
            }
            UiRoute::Layer(name, digest) => format!("{PREFIX}r/{name}/-/layer/{digest}"),
            UiRoute::Delete(name, reference) => format!("{PREFIX}r/{name}/-/delete/{reference}"),
            UiRoute::DeleteRepository(name) => format!("{PREFIX}r/{name}/-/delete"),
        }
    }
}

/// Parses a request path that starts with [`PREFIX`].
pub fn parse(path: &str) -> Result<UiRoute, UiRouteError> {
    let rest = path.strip_prefix(PREFIX).ok_or(UiRouteError::NotFound)?;
    if rest.is_empty() {
        return Ok(UiRoute::Home);
    }
    if let Some(file) = rest.strip_prefix("assets/") {
        if file.is_empty() || file.contains('/') {
            return Err(UiRouteError::NotFound);
        }
        return Ok(UiRoute::Asset(file.to_owned()));
    }
    let rest = rest.strip_prefix("r/").ok_or(UiRouteError::NotFound)?;
    let (name, page) = match rest.split_once("/-/") {
        Some((name, page)) => (name, Some(page)),
        None => (rest, None),
    };
    let name: RepositoryName = name
        .parse()
        .map_err(|e| UiRouteError::Invalid(format!("repository name: {e}")))?;
    let Some(page) = page else {
        return Ok(UiRoute::Repository(name));
    };
    if page == "delete" {
        return Ok(UiRoute::DeleteRepository(name));
    }
    let (kind, value) = page.split_once('/').ok_or(UiRouteError::NotFound)?;
    match kind {
        "m" => match value.strip_suffix("/files") {
            Some(reference) => Ok(UiRoute::ImageFiles(name, reference_of(reference)?)),
            None => Ok(UiRoute::Image(name, reference_of(value)?)),
        },
        "layer" => Ok(UiRoute::Layer(name, digest_of(value)?)),
        "delete" => Ok(UiRoute::Delete(name, reference_of(value)?)),
        _ => Err(UiRouteError::NotFound),
    }
}

fn reference_of(text: &str) -> Result<Reference, UiRouteError> {
    if text.contains('/') {
        return Err(UiRouteError::NotFound);
    }
    text.parse()
        .map_err(|e| UiRouteError::Invalid(format!("reference: {e}")))
}

fn digest_of(text: &str) -> Result<Digest, UiRouteError> {
    if text.contains('/') {
        return Err(UiRouteError::NotFound);
    }
    text.parse()
        .map_err(|e| UiRouteError::Invalid(format!("digest: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn name(text: &str) -> RepositoryName {
        text.parse().unwrap()
    }

    #[test]
    fn pages_parse_with_slashy_names() {
        assert_eq!(parse("/ui/"), Ok(UiRoute::Home));
        assert_eq!(
            parse("/ui/r/library/alpine"),
            Ok(UiRoute::Repository(name("library/alpine")))
        );
        assert_eq!(
            parse("/ui/r/a/b/c/-/m/latest"),
            Ok(UiRoute::Image(name("a/b/c"), "latest".parse().unwrap()))
        );
        assert_eq!(
            parse(&format!("/ui/r/a/b/-/m/{DIGEST}/files")),
            Ok(UiRoute::ImageFiles(name("a/b"), DIGEST.parse().unwrap()))
        );
        assert_eq!(
            parse(&format!("/ui/r/x/-/layer/{DIGEST}")),
            Ok(UiRoute::Layer(name("x"), DIGEST.parse().unwrap()))
        );
        assert_eq!(
            parse("/ui/r/x/y/-/delete/v1.0"),
            Ok(UiRoute::Delete(name("x/y"), "v1.0".parse().unwrap()))
        );
        assert_eq!(
            parse("/ui/r/x/y/-/delete"),
            Ok(UiRoute::DeleteRepository(name("x/y")))
        );
        assert_eq!(
            parse("/ui/assets/berth.0123.css"),
            Ok(UiRoute::Asset("berth.0123.css".into()))
        );
    }

    #[test]
    fn names_that_look_like_pages_stay_names() {
        // Components named like page kinds are ordinary names.
        for text in [
            "m",
            "files",
            "layer",
            "delete",
            "r/m/files",
            "ui/assets",
            "v2",
        ] {
            assert_eq!(
                parse(&format!("/ui/r/{text}")),
                Ok(UiRoute::Repository(name(text)))
            );
        }
        // A tag called "files" is an image, not a tree.
        assert_eq!(
            parse("/ui/r/a/-/m/files"),
            Ok(UiRoute::Image(name("a"), "files".parse().unwrap()))
        );
        // "a-b" contains a dash but not the "/-/" separator.
        assert_eq!(
            parse("/ui/r/a-b/c--d"),
            Ok(UiRoute::Repository(name("a-b/c--d")))
        );
    }

    #[test]
    fn every_route_parses_back_from_its_path() {
        let routes = [
            UiRoute::Home,
            UiRoute::Asset("berth.1.js".into()),
            UiRoute::Repository(name("a/b")),
            UiRoute::Image(name("a/b"), "t".parse().unwrap()),
            UiRoute::ImageFiles(name("a"), DIGEST.parse().unwrap()),
            UiRoute::Layer(name("a/b/c"), DIGEST.parse().unwrap()),
            UiRoute::Delete(name("a"), DIGEST.parse().unwrap()),
            UiRoute::DeleteRepository(name("a/b")),
        ];
        for route in routes {
            assert_eq!(parse(&route.path()), Ok(route.clone()), "{}", route.path());
        }
    }

    #[test]
    fn wrong_shapes_and_values_are_refused() {
        for path in [
            "/ui",
            "/ui/nope",
            "/ui/r/",
            "/ui/r/a/-/",
            "/ui/r/a/-/m",
            "/ui/r/a/-/x/latest",
            "/ui/r/a/-/m/latest/extra",
            "/ui/assets/",
            "/ui/assets/a/b.css",
        ] {
            assert!(parse(path).is_err(), "{path}");
        }
        assert!(matches!(
            parse("/ui/r/UPPER"),
            Err(UiRouteError::Invalid(_))
        ));
        assert!(matches!(
            parse("/ui/r/-/m/x"),
            Err(UiRouteError::Invalid(_))
        ));
        assert!(matches!(
            parse("/ui/r/a/-/layer/sha256:short"),
            Err(UiRouteError::Invalid(_))
        ));
        assert!(matches!(
            parse("/ui/r/a/-/m/bad tag"),
            Err(UiRouteError::Invalid(_))
        ));
    }
}

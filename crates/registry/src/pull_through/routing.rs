//! Which upstream a repository name belongs to: by a configured prefix
//! (`docker.io/library/busybox`), by containerd's `?ns=` (a mirror request
//! for `library/busybox` of `docker.io`), or through the fallback upstream
//! (registry:2's `REGISTRY_PROXY_REMOTEURL`). Pure: no I/O.

use super::Upstream;
use berth_oci::{NameError, RepositoryName};
use std::sync::Arc;

/// One configured upstream and how names under berth reach it.
#[derive(Clone)]
pub struct UpstreamRoute {
    /// How clients name it: containerd's `ns` value, and the metrics label.
    pub name: String,
    /// The first component(s) of local names cached from it.
    pub prefix: String,
    /// Docker Hub: a one-component remote name gets `library/`.
    pub docker_hub: bool,
    pub upstream: Arc<dyn Upstream>,
}

impl std::fmt::Debug for UpstreamRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRoute")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("docker_hub", &self.docker_hub)
            .finish_non_exhaustive()
    }
}

impl UpstreamRoute {
    /// The name on the upstream of `remote` as a client wrote it:
    /// `busybox` is `library/busybox` on Docker Hub.
    pub fn remote_name(&self, remote: &str) -> String {
        if self.docker_hub && !remote.contains('/') {
            format!("library/{remote}")
        } else {
            remote.to_string()
        }
    }
}

/// Whether an upstream is Docker Hub, by its configured name or URL: the
/// one registry whose official images live under an implicit `library/`.
pub fn is_docker_hub(name: &str, url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    name == "docker.io"
        || matches!(
            host,
            "registry-1.docker.io" | "index.docker.io" | "docker.io"
        )
}

/// Every configured upstream, and the fallback one.
#[derive(Clone, Default, Debug)]
pub struct UpstreamRoutes {
    routes: Vec<UpstreamRoute>,
    fallback: Option<UpstreamRoute>,
}

impl UpstreamRoutes {
    pub fn new(routes: Vec<UpstreamRoute>, fallback: Option<UpstreamRoute>) -> Self {
        UpstreamRoutes { routes, fallback }
    }

    /// The repository a request means: `ns` naming a configured upstream
    /// (by name) puts the name under that upstream's prefix, whatever the
    /// name looks like: containerd sent the image's registry there, so the
    /// name is that registry's (`library/busybox?ns=docker.io` →
    /// `docker.io/library/busybox`; `busybox?ns=docker.io` →
    /// `docker.io/library/busybox`; `team/app?ns=reg.test` stays reg.test's
    /// even when another upstream's prefix is `team`). Without such an
    /// `ns`, a name under a prefix is normalised (`docker.io/busybox` →
    /// `docker.io/library/busybox`) and anything else is unchanged
    /// (`?ns=localhost:5000` is served locally).
    /// A name too long once under its prefix is `NameError` (never the
    /// request's own name: that would serve a local repository as the
    /// upstream's).
    pub fn local_name(
        &self,
        name: &RepositoryName,
        ns: Option<&str>,
    ) -> Result<RepositoryName, NameError> {
        let by_ns = ns.and_then(|ns| self.routes.iter().find(|r| r.name == ns));
        match (by_ns, self.by_prefix(name)) {
            (Some(route), _) => under(route, &route.remote_name(name.as_str())),
            (None, Some((route, remote))) => under(route, &remote),
            (None, None) => Ok(name.clone()),
        }
    }

    /// The upstream and remote name for a local name under a prefix
    /// (`docker.io/library/busybox` → (docker.io's route, `library/busybox`)).
    /// The longest matching prefix wins.
    pub fn by_prefix(&self, local: &RepositoryName) -> Option<(&UpstreamRoute, String)> {
        self.routes
            .iter()
            .filter_map(|route| {
                let rest = local
                    .as_str()
                    .strip_prefix(route.prefix.as_str())?
                    .strip_prefix('/')?;
                Some((route, rest))
            })
            .max_by_key(|(route, _)| route.prefix.len())
            .map(|(route, rest)| (route, route.remote_name(rest)))
    }

    pub fn fallback(&self) -> Option<&UpstreamRoute> {
        self.fallback.as_ref()
    }

    /// Every upstream, the fallback last.
    pub fn all(&self) -> impl Iterator<Item = &UpstreamRoute> {
        self.routes.iter().chain(self.fallback.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.fallback.is_none()
    }
}

/// `<prefix>/<remote>` as a repository name; `None` if that is no valid
/// name (too long), and then the request keeps its own name.
fn under(route: &UpstreamRoute, remote: &str) -> Result<RepositoryName, NameError> {
    format!("{}/{remote}", route.prefix).parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull_through::{UpstreamBlob, UpstreamError, UpstreamManifest};
    use async_trait::async_trait;
    use berth_oci::Digest;

    struct Nowhere;

    #[async_trait]
    impl Upstream for Nowhere {
        async fn manifest(&self, _: &str, _: &str) -> Result<UpstreamManifest, UpstreamError> {
            Err(UpstreamError::NotFound)
        }
        async fn manifest_digest(&self, _: &str, _: &str) -> Result<Digest, UpstreamError> {
            Err(UpstreamError::NotFound)
        }
        async fn blob(&self, _: &str, _: &Digest) -> Result<UpstreamBlob, UpstreamError> {
            Err(UpstreamError::NotFound)
        }
        async fn blob_size(&self, _: &str, _: &Digest) -> Result<u64, UpstreamError> {
            Err(UpstreamError::NotFound)
        }
    }

    fn route(name: &str, prefix: &str, docker_hub: bool) -> UpstreamRoute {
        UpstreamRoute {
            name: name.into(),
            prefix: prefix.into(),
            docker_hub,
            upstream: Arc::new(Nowhere),
        }
    }

    fn routes() -> UpstreamRoutes {
        UpstreamRoutes::new(
            vec![
                route("docker.io", "docker.io", true),
                route("ghcr.io", "ghcr.io", false),
                route("quay.example:8443", "quay", false),
            ],
            None,
        )
    }

    fn name(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    fn local(routes: &UpstreamRoutes, n: &str, ns: Option<&str>) -> String {
        routes.local_name(&name(n), ns).unwrap().to_string()
    }

    #[test]
    fn an_ns_naming_an_upstream_puts_the_name_under_its_prefix() {
        let r = routes();
        assert_eq!(
            local(&r, "library/busybox", Some("docker.io")),
            "docker.io/library/busybox"
        );
        assert_eq!(local(&r, "owner/app", Some("ghcr.io")), "ghcr.io/owner/app");
        assert_eq!(
            local(&r, "team/app", Some("quay.example:8443")),
            "quay/team/app",
            "an upstream whose name has a port is reached by name, stored under its prefix"
        );
    }

    #[test]
    fn docker_hub_names_get_library_whichever_way_they_arrive() {
        let r = routes();
        assert_eq!(
            local(&r, "busybox", Some("docker.io")),
            "docker.io/library/busybox"
        );
        assert_eq!(
            local(&r, "docker.io/busybox", None),
            "docker.io/library/busybox"
        );
        assert_eq!(
            local(&r, "ghcr.io/app", None),
            "ghcr.io/app",
            "only Docker Hub has library/"
        );
        assert_eq!(local(&r, "app", Some("ghcr.io")), "ghcr.io/app");
    }

    #[test]
    fn unknown_ns_and_unprefixed_names_stay_local() {
        let r = routes();
        assert_eq!(
            local(&r, "library/app", Some("localhost:5000")),
            "library/app"
        );
        assert_eq!(local(&r, "library/app", None), "library/app");
        assert_eq!(local(&r, "busybox", None), "busybox");
        assert_eq!(
            local(&r, "docker.io", None),
            "docker.io",
            "the prefix alone names no upstream repository"
        );
        assert_eq!(
            local(&r, "docker.iox/app", None),
            "docker.iox/app",
            "a prefix matches whole components"
        );
    }

    #[test]
    fn an_upstream_named_by_ns_wins_over_prefixes_in_the_name() {
        let r = routes();
        assert_eq!(
            local(&r, "docker.io/library/busybox", None),
            "docker.io/library/busybox",
            "already under its prefix"
        );
        assert_eq!(
            local(&r, "ghcr.io/owner/app", Some("docker.io")),
            "docker.io/ghcr.io/owner/app",
            "containerd asking docker.io for an image named ghcr.io/owner/app"
        );
        assert_eq!(
            local(&r, "ghcr.io/owner/app", Some("localhost:5000")),
            "ghcr.io/owner/app",
            "an ns naming no upstream leaves the prefix to decide"
        );
        assert_eq!(
            local(&r, "quay/team/app", Some("ghcr.io")),
            "ghcr.io/quay/team/app",
            "ghcr.io's quay/team/app, not the quay upstream's team/app"
        );
        let long = format!("team/{}", "a".repeat(250));
        assert!(
            r.local_name(&name(&long), Some("docker.io")).is_err(),
            "too long under docker.io/: refused, never served as the local {long}"
        );
    }

    #[test]
    fn by_prefix_finds_the_upstream_and_the_remote_name() {
        let r = routes();
        let (route, remote) = r.by_prefix(&name("docker.io/library/busybox")).unwrap();
        assert_eq!(
            (route.name.as_str(), remote.as_str()),
            ("docker.io", "library/busybox")
        );
        let (route, remote) = r.by_prefix(&name("docker.io/busybox")).unwrap();
        assert_eq!(
            (route.name.as_str(), remote.as_str()),
            ("docker.io", "library/busybox")
        );
        let (route, remote) = r.by_prefix(&name("quay/team/app")).unwrap();
        assert_eq!(
            (route.name.as_str(), remote.as_str()),
            ("quay.example:8443", "team/app")
        );
        assert!(r.by_prefix(&name("library/app")).is_none());
        assert!(r.by_prefix(&name("docker.io")).is_none());
    }

    #[test]
    fn the_longest_prefix_wins() {
        let r = UpstreamRoutes::new(
            vec![
                route("a", "mirror", false),
                route("b", "mirror/special", false),
            ],
            None,
        );
        let (route, remote) = r.by_prefix(&name("mirror/special/app")).unwrap();
        assert_eq!((route.name.as_str(), remote.as_str()), ("b", "app"));
        let (route, remote) = r.by_prefix(&name("mirror/other")).unwrap();
        assert_eq!((route.name.as_str(), remote.as_str()), ("a", "other"));
    }

    #[test]
    fn the_fallback_is_no_prefix_and_counts_as_configured() {
        let r = UpstreamRoutes::new(vec![], Some(route("proxy", "proxy", true)));
        assert!(!r.is_empty());
        assert_eq!(
            r.fallback().unwrap().remote_name("busybox"),
            "library/busybox"
        );
        assert_eq!(local(&r, "busybox", Some("docker.io")), "busybox");
        assert!(UpstreamRoutes::default().is_empty());
    }

    #[test]
    fn docker_hub_is_known_by_name_or_url_host() {
        assert!(is_docker_hub("docker.io", "https://mirror.example"));
        assert!(is_docker_hub("hub", "https://registry-1.docker.io"));
        assert!(is_docker_hub("hub", "https://index.docker.io/v1/"));
        assert!(is_docker_hub("proxy", "docker.io"));
        assert!(!is_docker_hub("ghcr.io", "https://ghcr.io"));
        assert!(!is_docker_hub("evil", "https://docker.io.evil.example"));
    }
}

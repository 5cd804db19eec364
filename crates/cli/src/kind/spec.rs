//! Pure generation of what a KinD cluster needs to use a local registry: the
//! cluster config, the `hosts.toml` each node's containerd reads, and the
//! KEP-1755 `local-registry-hosting` ConfigMap. No I/O here.

use std::fmt;

/// Where containerd on a KinD node looks for per-registry `hosts.toml` files.
pub const CERTS_D: &str = "/etc/containerd/certs.d";

/// The port berth listens on inside its container (the image's default).
pub const CONTAINER_PORT: u16 = 5000;

/// KEP-1755's documentation link for the ConfigMap's `help` field.
const HELP_URL: &str = "https://kind.sigs.k8s.io/docs/user/local-registry/";

/// A name that `kind` or `docker` accepts, checked once at the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{what} name {0:?} is empty", what = .1)]
    Empty(String, &'static str),
    #[error("{what} name {0:?} holds a space: {what} names cannot hold spaces (use e.g. {suggestion:?})", what = .1, suggestion = .2)]
    Space(String, &'static str, String),
    #[error("{what} name {0:?} is not allowed: {rule}", what = .1, rule = .2)]
    Invalid(String, &'static str, &'static str),
}

impl Name {
    /// A KinD cluster name: it becomes part of container and context names, so
    /// lower-case letters, digits, `-` and `.`, starting with a letter or digit.
    pub fn cluster(s: &str) -> Result<Name, NameError> {
        Self::check(
            s,
            "cluster",
            "use lower-case letters, digits, '-' and '.', starting with a letter or digit (at most 50)",
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.',
        )
    }

    /// A docker container or volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
    pub fn container(s: &str) -> Result<Name, NameError> {
        Self::check(
            s,
            "container",
            "use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 50)",
            |c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-',
        )
    }

    fn check(
        s: &str,
        what: &'static str,
        rule: &'static str,
        allowed: impl Fn(char) -> bool,
    ) -> Result<Name, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty(s.into(), what));
        }
        if s.contains(char::is_whitespace) {
            let suggestion = s.split_whitespace().collect::<Vec<_>>().join("-");
            return Err(NameError::Space(s.into(), what, suggestion));
        }
        let starts_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !starts_ok || s.len() > 50 || !s.chars().all(allowed) {
            return Err(NameError::Invalid(s.into(), what, rule));
        }
        Ok(Name(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A registry berth caches for the cluster (`--mirror REGISTRY[=URL]`): its
/// name as images spell it (the `certs.d` folder and containerd's `?ns=`
/// value) and the URL berth fetches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub registry: String,
    pub url: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MirrorError {
    #[error("--mirror {0:?} is not a registry host name: give the name images use, in lower case (docker.io, ghcr.io, registry.k8s.io, myhost:5001); a URL goes after '=': --mirror NAME=https://HOST")]
    NotAHost(String),
    #[error(
        "--mirror {0:?}: the URL after '=' must start with http:// or https:// and name a host"
    )]
    BadUrl(String),
    #[error("--mirror {0} is the cluster's own registry (localhost:PORT): its images are pushed to berth, not cached")]
    OwnRegistry(String),
    #[error("--mirror {0} is given twice")]
    Twice(String),
}

impl Mirror {
    /// `REGISTRY` or `REGISTRY=URL`; without a URL, Docker Hub's API host
    /// for `docker.io`, else `https://REGISTRY`.
    pub fn parse(arg: &str) -> Result<Mirror, MirrorError> {
        let (registry, url) = match arg.split_once('=') {
            Some((r, u)) => (r, Some(u)),
            None => (arg, None),
        };
        if !is_registry_host(registry) {
            return Err(MirrorError::NotAHost(registry.into()));
        }
        let url = match url {
            Some(u) => {
                let u = u.trim_end_matches('/');
                let host = u
                    .strip_prefix("https://")
                    .or_else(|| u.strip_prefix("http://"));
                if host.is_none_or(|h| h.is_empty() || h.contains(['/', ' ', '"', ','])) {
                    return Err(MirrorError::BadUrl(arg.into()));
                }
                u.to_string()
            }
            None if registry == "docker.io" => "https://registry-1.docker.io".into(),
            None => format!("https://{registry}"),
        };
        Ok(Mirror {
            registry: registry.into(),
            url,
        })
    }

    /// The repository prefix under berth: the name, unless it holds a port
    /// (`:` is not allowed in a repository name), then `HOST-PORT`.
    pub fn prefix(&self) -> Option<String> {
        self.registry
            .contains(':')
            .then(|| self.registry.replace(':', "-"))
    }
}

/// `host[:port]` as an image reference's registry part, lower case: DNS
/// labels of letters, digits and `-`, separated by dots.
fn is_registry_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    port_ok && !host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok)
}

/// The `--mirror` arguments, checked against each other and the cluster's
/// own `localhost:PORT`.
pub fn mirrors(args: &[String], local_host: &str) -> Result<Vec<Mirror>, MirrorError> {
    let mut out: Vec<Mirror> = Vec::new();
    for arg in args {
        let m = Mirror::parse(arg)?;
        if m.registry == local_host {
            return Err(MirrorError::OwnRegistry(m.registry));
        }
        if out.iter().any(|o| o.registry == m.registry) {
            return Err(MirrorError::Twice(m.registry));
        }
        out.push(m);
    }
    Ok(out)
}

/// One `hosts.toml` a node's containerd reads: `certs.d/<registry>/hosts.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsToml {
    /// The image registry it is for (`localhost:5000`, `docker.io`).
    pub registry: String,
    pub content: String,
}

impl HostsToml {
    pub fn dir(&self) -> String {
        hosts_dir_of(&self.registry)
    }

    pub fn path(&self) -> String {
        format!("{}/hosts.toml", self.dir())
    }
}

/// The folder under [`CERTS_D`] holding `registry`'s `hosts.toml`.
pub fn hosts_dir_of(registry: &str) -> String {
    format!("{CERTS_D}/{registry}")
}

/// The user and password the nodes' containerd sends to berth when auth is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// Everything the generated files depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub cluster: Name,
    pub registry: Name,
    /// Host port: images are named `localhost:PORT/...` everywhere.
    pub port: u16,
    /// The URL containerd on a node uses to reach the registry.
    pub endpoint: String,
    pub workers: u32,
    /// `Some` under `--auth`: written into every node's containerd config.
    pub credentials: Option<Credentials>,
    /// `--mirror`: registries berth caches, each with a hosts.toml on every node.
    pub mirrors: Vec<Mirror>,
}

impl Spec {
    /// The default endpoint: the registry container by name on the `kind`
    /// network, where it listens on its container port.
    pub fn default_endpoint(registry: &Name) -> String {
        format!("http://{registry}:{CONTAINER_PORT}")
    }

    /// `localhost:PORT`, the name users push to and pods pull from.
    pub fn local_host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// The kubectl context kind creates for the cluster.
    pub fn context(&self) -> String {
        format!("kind-{}", self.cluster)
    }

    /// The endpoint without its scheme: how the container runtime reaches us,
    /// and the host containerd looks up credentials for.
    pub fn endpoint_host(&self) -> &str {
        let e = self.endpoint.as_str();
        let e = e.split_once("://").map_or(e, |(_, rest)| rest);
        e.trim_end_matches('/')
    }

    /// KinD `Cluster` (v1alpha4): one control plane, `workers` workers, and
    /// [`Spec::containerd_patch`] for every node.
    pub fn cluster_config(&self) -> String {
        let mut s = format!(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: {}\nnodes:\n- role: control-plane\n",
            self.cluster
        );
        for _ in 0..self.workers {
            s.push_str("- role: worker\n");
        }
        s.push_str("containerdConfigPatches:\n- |-\n");
        for line in self.containerd_patch().lines() {
            s.push_str("  ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// What kind merges into each node's containerd config: `config_path`, so
    /// nodes read [`CERTS_D`] (kind's images before v0.27 do not; on later ones
    /// it restates the default), and under `--auth` the credentials for the
    /// endpoint's host. They go here, not in a pod's imagePullSecret, because
    /// containerd drops a request's credentials when the mirror's host differs
    /// from the image's (`localhost:PORT` vs the registry container;
    /// containerd#10996); with no credentials in the request the CRI plugin
    /// looks up `registry.configs."HOST".auth` for the host it contacts.
    pub fn containerd_patch(&self) -> String {
        let mut s = format!(
            "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{CERTS_D}\"\n"
        );
        if let Some(c) = &self.credentials {
            s.push_str(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"{host}\".auth]\n  username = {user}\n  password = {password}\n",
                host = self.endpoint_host(),
                user = toml_string(&c.user),
                password = toml_string(&c.password),
            ));
        }
        s
    }

    /// `hosts.toml` for `localhost:PORT`: inside a node `localhost` is the node
    /// itself, so pulls are sent to the registry container instead. `server`
    /// names the registry too: containerd falls back to it after the hosts and
    /// reports the last failure, so a missing tag reads "not found", not
    /// "connection refused" from the node's own localhost. The `[host]` table
    /// must stay: containerd 1.6 ignores a file with `server` alone.
    pub fn hosts_toml(&self) -> String {
        format!(
            "server = \"{endpoint}\"\n\n[host.\"{endpoint}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            endpoint = self.endpoint
        )
    }

    /// `hosts.toml` for a mirrored registry: containerd asks berth first
    /// (adding `?ns=<registry>`, which tells berth which upstream is meant),
    /// and the registry itself when berth cannot answer.
    pub fn mirror_hosts_toml(&self, mirror: &Mirror) -> String {
        format!(
            "server = {server}\n\n[host.\"{endpoint}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            server = toml_string(&mirror.url),
            endpoint = self.endpoint
        )
    }

    /// Every hosts.toml each node gets: `localhost:PORT` first, then one per
    /// mirror.
    pub fn hosts_tomls(&self) -> Vec<HostsToml> {
        let mut files = vec![HostsToml {
            registry: self.local_host(),
            content: self.hosts_toml(),
        }];
        files.extend(self.mirrors.iter().map(|m| HostsToml {
            registry: m.registry.clone(),
            content: self.mirror_hosts_toml(m),
        }));
        files
    }

    /// berth's config file for the registry container: one `[[upstream]]`
    /// per mirror. `None` without mirrors (the container needs no file).
    pub fn berth_config(&self) -> Option<String> {
        if self.mirrors.is_empty() {
            return None;
        }
        let mut s = String::from(
            "# Written by berth kind up --mirror: the registries this berth caches.\n",
        );
        for m in &self.mirrors {
            s.push_str(&format!(
                "\n[[upstream]]\nname = {}\nurl = {}\n",
                toml_string(&m.registry),
                toml_string(&m.url)
            ));
            if let Some(prefix) = m.prefix() {
                s.push_str(&format!("prefix = {}\n", toml_string(&prefix)));
            }
        }
        Some(s)
    }

    /// The mirrors as the registry container's label records them, to tell
    /// whether a running container was started for the same ones: sorted
    /// `REGISTRY=URL`, comma-separated; empty without mirrors.
    pub fn mirrors_label(&self) -> String {
        let mut pairs: Vec<String> = self
            .mirrors
            .iter()
            .map(|m| format!("{}={}", m.registry, m.url))
            .collect();
        pairs.sort();
        pairs.join(",")
    }

    /// The value of `localRegistryHosting.v1` (KEP-1755), itself YAML.
    pub fn local_registry_hosting(&self) -> String {
        let inside = self.endpoint_host();
        format!(
            "host: \"{}\"\nhostFromContainerRuntime: \"{inside}\"\nhostFromClusterNetwork: \"{inside}\"\nhelp: \"{HELP_URL}\"\n",
            self.local_host()
        )
    }

    /// ConfigMap `kube-public/local-registry-hosting` that tools (Tilt,
    /// ctlptl, Skaffold) read to find the cluster's registry.
    pub fn configmap(&self) -> String {
        let mut s = String::from(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local-registry-hosting\n  namespace: kube-public\ndata:\n  localRegistryHosting.v1: |\n",
        );
        for line in self.local_registry_hosting().lines() {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The defaults of `berth kind`: cluster `kind`, `kind-registry` on port 5000.
    pub fn spec() -> Spec {
        let registry = Name::container("kind-registry").unwrap();
        Spec {
            cluster: Name::cluster("kind").unwrap(),
            endpoint: Spec::default_endpoint(&registry),
            registry,
            port: 5000,
            workers: 1,
            credentials: None,
            mirrors: Vec::new(),
        }
    }

    fn with_mirrors(args: &[&str]) -> Spec {
        let mut s = spec();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        s.mirrors = mirrors(&args, &s.local_host()).unwrap();
        s
    }

    #[test]
    fn mirror_urls_default_to_docker_hubs_api_host_or_https_name() {
        let m = Mirror::parse("docker.io").unwrap();
        assert_eq!(m.url, "https://registry-1.docker.io");
        assert_eq!(m.prefix(), None);
        assert_eq!(Mirror::parse("ghcr.io").unwrap().url, "https://ghcr.io");
        let m = Mirror::parse("up.test=http://127.0.0.1:5001/").unwrap();
        assert_eq!(
            (m.registry.as_str(), m.url.as_str()),
            ("up.test", "http://127.0.0.1:5001")
        );
        let m = Mirror::parse("myhost:5001").unwrap();
        assert_eq!(m.url, "https://myhost:5001");
        assert_eq!(m.prefix().as_deref(), Some("myhost-5001"));
    }

    #[test]
    fn a_mirror_that_is_not_a_host_name_is_refused_with_the_form_to_use() {
        for bad in [
            "",
            "https://docker.io",
            "docker.io/library",
            "Docker.io",
            "docker hub",
            "-x.io",
            "x..io",
            "x.io:",
            "x.io:port",
        ] {
            let err = Mirror::parse(bad).unwrap_err();
            assert!(matches!(err, MirrorError::NotAHost(_)), "{bad:?}: {err:?}");
            assert!(err.to_string().contains("docker.io, ghcr.io"), "{err}");
        }
        for bad in [
            "x.io=ftp://x",
            "x.io=https://",
            "x.io=x.io",
            "x.io=https://a b",
        ] {
            assert!(
                matches!(Mirror::parse(bad), Err(MirrorError::BadUrl(_))),
                "{bad:?}"
            );
        }
        let own = mirrors(&["localhost:5000".into()], "localhost:5000").unwrap_err();
        assert_eq!(own, MirrorError::OwnRegistry("localhost:5000".into()));
        let twice = mirrors(
            &["docker.io".into(), "docker.io=https://m.example".into()],
            "localhost:5000",
        );
        assert_eq!(twice, Err(MirrorError::Twice("docker.io".into())));
    }

    #[test]
    fn mirror_hosts_toml_asks_berth_first_then_the_registry() {
        let s = with_mirrors(&["docker.io", "ghcr.io"]);
        let files = s.hosts_tomls();
        assert_eq!(files.len(), 3);
        assert_eq!(
            files[0].path(),
            "/etc/containerd/certs.d/localhost:5000/hosts.toml"
        );
        assert_eq!(files[0].content, s.hosts_toml());
        assert_eq!(
            files[1].path(),
            "/etc/containerd/certs.d/docker.io/hosts.toml"
        );
        assert_eq!(
            files[1].content,
            "server = \"https://registry-1.docker.io\"\n\n[host.\"http://kind-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        assert_eq!(files[2].dir(), "/etc/containerd/certs.d/ghcr.io");
        let parsed: toml::Value = toml::from_str(&files[2].content).unwrap();
        assert_eq!(parsed["server"].as_str(), Some("https://ghcr.io"));
        assert_eq!(
            parsed["host"]["http://kind-registry:5000"]["capabilities"],
            toml::Value::Array(vec!["pull".into(), "resolve".into()])
        );
        // Without mirrors, only the cluster's own registry.
        assert_eq!(spec().hosts_tomls().len(), 1);
    }

    #[test]
    fn berth_config_has_one_upstream_per_mirror() {
        assert_eq!(spec().berth_config(), None);
        let s = with_mirrors(&["docker.io", "myhost:5001=http://10.0.0.2:5001"]);
        let text = s.berth_config().unwrap();
        assert_eq!(
            text,
            "# Written by berth kind up --mirror: the registries this berth caches.\n\
             \n[[upstream]]\nname = \"docker.io\"\nurl = \"https://registry-1.docker.io\"\n\
             \n[[upstream]]\nname = \"myhost:5001\"\nurl = \"http://10.0.0.2:5001\"\nprefix = \"myhost-5001\"\n"
        );
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let ups = parsed["upstream"].as_array().unwrap();
        assert_eq!(ups.len(), 2);
        assert_eq!(ups[0]["name"].as_str(), Some("docker.io"));
        assert_eq!(ups[1]["prefix"].as_str(), Some("myhost-5001"));
        // The label is independent of the order mirrors were given in.
        let other = with_mirrors(&["myhost:5001=http://10.0.0.2:5001", "docker.io"]);
        assert_eq!(s.mirrors_label(), other.mirrors_label());
        assert_eq!(
            s.mirrors_label(),
            "docker.io=https://registry-1.docker.io,myhost:5001=http://10.0.0.2:5001"
        );
        assert_eq!(spec().mirrors_label(), "");
    }

    #[test]
    fn names_with_spaces_or_odd_characters_are_refused() {
        assert!(matches!(
            Name::cluster("my cluster"),
            Err(NameError::Space(_, "cluster", s)) if s == "my-cluster"
        ));
        assert!(Name::cluster("Kind").is_err());
        assert!(Name::cluster("-kind").is_err());
        assert!(Name::cluster("").is_err());
        assert!(Name::container("kind registry").is_err());
        assert!(Name::container("reg/istry").is_err());
        assert!(Name::container("Kind_Registry.2").is_ok());
        assert!(Name::cluster("dev.1-a").is_ok());
    }

    #[test]
    fn hosts_toml_sends_localhost_pulls_to_the_endpoint() {
        let mut s = spec();
        assert_eq!(
            s.hosts_toml(),
            "server = \"http://kind-registry:5000\"\n\n[host.\"http://kind-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        s.port = 5999;
        s.endpoint = "http://127.0.0.1:41234".into();
        assert!(s
            .hosts_toml()
            .starts_with("server = \"http://127.0.0.1:41234\"\n"));
        assert!(s.hosts_toml().contains("[host.\"http://127.0.0.1:41234\"]"));
        assert_eq!(
            s.hosts_tomls()[0].path(),
            "/etc/containerd/certs.d/localhost:5999/hosts.toml"
        );
    }

    #[test]
    fn cluster_config_has_one_control_plane_and_the_workers_asked_for() {
        let mut s = spec();
        s.workers = 2;
        let c = s.cluster_config();
        assert_eq!(c.matches("- role: control-plane").count(), 1);
        assert_eq!(c.matches("- role: worker").count(), 2);
        assert!(c.contains("config_path = \"/etc/containerd/certs.d\""));
        assert!(c.contains("name: kind\n"));
    }

    #[test]
    fn without_auth_the_patch_only_sets_config_path() {
        let s = spec();
        assert_eq!(
            s.containerd_patch(),
            "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
        );
        assert!(!s.cluster_config().contains("auth"));
    }

    #[test]
    fn with_auth_the_nodes_get_credentials_for_the_registry_containers_host() {
        let mut s = spec();
        s.credentials = Some(Credentials {
            user: "kind".into(),
            password: "0123abcd".into(),
        });
        let patch = s.containerd_patch();
        assert_eq!(
            patch,
            "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"kind-registry:5000\".auth]\n  username = \"kind\"\n  password = \"0123abcd\"\n"
        );
        // The patch is valid TOML and names the endpoint's host, not localhost:PORT.
        let parsed: toml::Value = toml::from_str(&patch).unwrap();
        let auth = &parsed["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["configs"]
            ["kind-registry:5000"]["auth"];
        assert_eq!(auth["username"].as_str(), Some("kind"));
        assert_eq!(auth["password"].as_str(), Some("0123abcd"));
        // Inside the cluster config, indented under the block scalar.
        let c = s.cluster_config();
        assert!(c.contains("\n  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"kind-registry:5000\".auth]\n    username = \"kind\"\n    password = \"0123abcd\"\n"), "{c}");
        s.endpoint = "http://127.0.0.1:41234/".into();
        assert!(s
            .containerd_patch()
            .contains(".configs.\"127.0.0.1:41234\".auth]"));
    }

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
        let v: toml::Value = toml::from_str(&format!("x = {}", toml_string("a\"b\\c\n"))).unwrap();
        assert_eq!(v["x"].as_str(), Some("a\"b\\c\n"));
    }

    #[test]
    fn configmap_names_the_registry_from_inside_and_outside() {
        let c = spec().configmap();
        assert!(c.contains("  namespace: kube-public\n"));
        assert!(c.contains("    host: \"localhost:5000\"\n"));
        assert!(c.contains("    hostFromContainerRuntime: \"kind-registry:5000\"\n"));
        assert!(c.contains("    hostFromClusterNetwork: \"kind-registry:5000\"\n"));
    }
}

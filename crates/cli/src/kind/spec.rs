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

    /// The folder under [`CERTS_D`] holding this registry's `hosts.toml`.
    pub fn hosts_dir(&self) -> String {
        format!("{CERTS_D}/{}", self.local_host())
    }

    pub fn hosts_toml_path(&self) -> String {
        format!("{}/hosts.toml", self.hosts_dir())
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
        }
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
            s.hosts_toml_path(),
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

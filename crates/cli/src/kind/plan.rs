//! Pure decisions: from what `up`/`down` observed to the list of actions.
//! Every action is taken only when the observation says it is still needed,
//! which is what makes a second `up` change nothing.

use super::record::Record;
use super::spec::{Credentials, HostsToml};
use std::collections::BTreeMap;

/// How the registry container reaches the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Published on 127.0.0.1:PORT and connected to the `kind` network.
    Kind,
    /// Linux only: host networking, no `kind` network (the tests' mode).
    Host,
}

/// The registry container as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    Absent,
    /// Created by `berth kind up` (it carries our labels).
    Ours {
        running: bool,
        port: u16,
        on_kind_network: bool,
        /// The user `up --auth` made it for; `None`: it serves without auth.
        auth_user: Option<String>,
        /// The mirrors it caches, as [`super::spec::Spec::mirrors_label`]
        /// spells them; empty: none.
        mirrors: String,
    },
    /// A container with that name that berth did not create.
    Foreign,
}

/// One node of an existing cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// The node's current `hosts.toml` files among those berth writes
    /// (`localhost:PORT` and each mirror), by registry.
    pub hosts_tomls: BTreeMap<String, String>,
    /// Whether its containerd reads `/etc/containerd/certs.d` (config_path).
    pub reads_certs_d: bool,
    /// The credentials its containerd has for the registry's host, if any.
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cluster {
    Absent,
    Present { nodes: Vec<Node> },
}

/// What `up` found before doing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpObserved {
    pub image_present: bool,
    pub registry: Registry,
    /// Whether 127.0.0.1:PORT can be bound (only asked when we need it).
    pub port_free: bool,
    /// A port that was free when asked, for the error message.
    pub free_port_hint: Option<u16>,
    pub cluster: Cluster,
    /// The current `localRegistryHosting.v1` value, if the ConfigMap exists.
    pub configmap: Option<String>,
    pub record: Option<Record>,
    /// Under `--auth`, for a registry running with auth: whether it accepts
    /// the saved credentials (its htpasswd may predate a new password).
    pub password_accepted: bool,
}

/// What `up` wants in the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpWanted {
    pub port: u16,
    pub network: NetworkMode,
    /// Every hosts.toml each node must hold: `localhost:PORT`'s and the mirrors'.
    pub hosts_tomls: Vec<HostsToml>,
    pub registry_hosting: String,
    /// `Some` under `--auth`: the registry serves with auth for this user,
    /// and every node's containerd has these credentials.
    pub credentials: Option<Credentials>,
    /// The mirrors the registry container caches ([`super::spec::Spec::mirrors_label`]).
    pub mirrors: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpAction {
    /// Before `RunRegistry` under `--auth`: the user into the data's htpasswd.
    AddUser,
    RunRegistry,
    StartRegistry,
    /// The user into the htpasswd of a registry that already runs with auth.
    AddUserInRegistry,
    CreateCluster,
    /// After `CreateCluster`: the nodes are known only then.
    WriteHostsTomlOnNewNodes,
    WriteHostsToml {
        node: String,
    },
    ConnectNetwork,
    ApplyConfigMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpPlan {
    pub actions: Vec<UpAction>,
    /// Steps found already done, said so to the user.
    pub already: Vec<String>,
    /// The record to save before acting: what this and earlier `up`s created.
    pub record_created_cluster: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the image {0} is not in the local docker: build it from a berth checkout with deploy/build-image.sh {0}, or pass --image")]
    ImageMissing(String),
    #[error("port {port} on 127.0.0.1 is taken by another process: pass a free one, e.g. --port {hint}", hint = .hint.map_or_else(|| "PORT".to_string(), |p| p.to_string()))]
    PortTaken { port: u16, hint: Option<u16> },
    #[error("a container named {0} exists that berth did not create: remove it (docker rm -f {0}) or pass another --registry-name")]
    ForeignContainer(String),
    #[error("the registry container {name} already serves port {running}, not {wanted}: pass --port {running}, or run berth kind down first")]
    OtherPort {
        name: String,
        running: u16,
        wanted: u16,
    },
    #[error("the registry container {name} serves {running}, not {wanted}: remove it (docker rm -f {name}; its data is kept) and run berth kind up again", running = auth_words(.running), wanted = auth_words(.wanted))]
    AuthDiffers {
        name: String,
        running: Option<String>,
        wanted: Option<String>,
    },
    #[error("cluster {cluster}: containerd on {nodes} has no credentials for the registry, so pulls would be refused; they can only be set when the cluster is created: berth kind config --name {cluster} --auth{user_flag} --only cluster > cluster.yaml; kind delete cluster --name {cluster}; kind create cluster --config cluster.yaml; then run berth kind up again")]
    NodesWithoutCredentials {
        cluster: String,
        nodes: String,
        /// ` --user NAME` unless the user is the default.
        user_flag: String,
    },
    #[error("cluster {cluster}: containerd on {nodes} does not read /etc/containerd/certs.d (config_path is unset), so it would ignore the registry. Recreate the cluster with kind v0.27+ or with the config that sets it: berth kind config --name {cluster} --only cluster > cluster.yaml; kind delete cluster --name {cluster}; kind create cluster --config cluster.yaml")]
    NoConfigPath { cluster: String, nodes: String },
    #[error("the registry container {name} caches {running}, not {wanted}: its upstreams are set when it starts, so remove it (docker rm -f {name}; its data is kept) and run berth kind up again", running = mirror_words(.running), wanted = mirror_words(.wanted))]
    MirrorsDiffer {
        name: String,
        running: String,
        wanted: String,
    },
}

fn mirror_words(label: &str) -> String {
    if label.is_empty() {
        "no mirrors".into()
    } else {
        format!("mirrors {}", label.replace(',', ", "))
    }
}

fn auth_words(user: &Option<String>) -> String {
    match user {
        Some(u) => format!("with auth for user {u}"),
        None => "without auth".into(),
    }
}

/// Decides what `up` does. `image`/`registry`/`cluster` name things in messages.
pub fn plan_up(
    seen: &UpObserved,
    want: &UpWanted,
    image: &str,
    registry: &str,
    cluster: &str,
) -> Result<UpPlan, PlanError> {
    let mut actions = Vec::new();
    let mut already = Vec::new();

    // The registry container.
    let want_user = want.credentials.as_ref().map(|c| c.user.clone());
    match &seen.registry {
        Registry::Foreign => return Err(PlanError::ForeignContainer(registry.into())),
        Registry::Ours { port, .. } if *port != want.port => {
            return Err(PlanError::OtherPort {
                name: registry.into(),
                running: *port,
                wanted: want.port,
            })
        }
        Registry::Ours { auth_user, .. } if *auth_user != want_user => {
            return Err(PlanError::AuthDiffers {
                name: registry.into(),
                running: auth_user.clone(),
                wanted: want_user,
            })
        }
        Registry::Ours { mirrors, .. } if *mirrors != want.mirrors => {
            return Err(PlanError::MirrorsDiffer {
                name: registry.into(),
                running: mirrors.clone(),
                wanted: want.mirrors.clone(),
            })
        }
        Registry::Ours { running: true, .. } => {
            already.push(format!("registry container {registry} is running"));
            if want_user.is_some() {
                if seen.password_accepted {
                    already.push("the registry accepts the saved password".into());
                } else {
                    actions.push(UpAction::AddUserInRegistry);
                }
            }
        }
        Registry::Ours { running: false, .. } | Registry::Absent => {
            if !seen.port_free {
                return Err(PlanError::PortTaken {
                    port: want.port,
                    hint: seen.free_port_hint,
                });
            }
            if seen.registry == Registry::Absent {
                if !seen.image_present {
                    return Err(PlanError::ImageMissing(image.into()));
                }
                if want_user.is_some() {
                    actions.push(UpAction::AddUser);
                }
                actions.push(UpAction::RunRegistry);
            } else {
                actions.push(UpAction::StartRegistry);
                // Not asked while it was stopped: set it again (idempotent).
                if want_user.is_some() {
                    actions.push(UpAction::AddUserInRegistry);
                }
            }
        }
    }

    // The cluster and its nodes' hosts.toml.
    let mut record_created_cluster = seen.record.as_ref().is_some_and(|r| r.created_cluster);
    match &seen.cluster {
        Cluster::Absent => {
            actions.push(UpAction::CreateCluster);
            actions.push(UpAction::WriteHostsTomlOnNewNodes);
            record_created_cluster = true;
        }
        Cluster::Present { nodes } => {
            let deaf: Vec<&str> = nodes
                .iter()
                .filter(|n| !n.reads_certs_d)
                .map(|n| n.name.as_str())
                .collect();
            if !deaf.is_empty() {
                return Err(PlanError::NoConfigPath {
                    cluster: cluster.into(),
                    nodes: deaf.join(", "),
                });
            }
            if let Some(wanted) = &want.credentials {
                let lacking: Vec<&str> = nodes
                    .iter()
                    .filter(|n| n.credentials.as_ref() != Some(wanted))
                    .map(|n| n.name.as_str())
                    .collect();
                if !lacking.is_empty() {
                    return Err(PlanError::NodesWithoutCredentials {
                        cluster: cluster.into(),
                        nodes: lacking.join(", "),
                        user_flag: match wanted.user.as_str() {
                            super::DEFAULT_USER => String::new(),
                            other => format!(" --user {other}"),
                        },
                    });
                }
                already.push(format!(
                    "the nodes have the credentials of user {}",
                    wanted.user
                ));
            }
            already.push(format!("cluster {cluster} exists"));
            for node in nodes {
                let current = want
                    .hosts_tomls
                    .iter()
                    .all(|f| node.hosts_tomls.get(&f.registry) == Some(&f.content));
                if current {
                    let what = match want.hosts_tomls.len() {
                        1 => "the hosts.toml".to_string(),
                        n => format!("the {n} hosts.toml files"),
                    };
                    already.push(format!("node {} has {what}", node.name));
                } else {
                    actions.push(UpAction::WriteHostsToml {
                        node: node.name.clone(),
                    });
                }
            }
        }
    }

    // The kind network (only exists once the cluster does).
    if want.network == NetworkMode::Kind {
        match seen.registry {
            Registry::Ours {
                on_kind_network: true,
                ..
            } => already.push(format!("{registry} is on the kind network")),
            _ => actions.push(UpAction::ConnectNetwork),
        }
    }

    // KEP-1755 ConfigMap.
    let current = seen.configmap.as_deref().map(str::trim_end);
    if seen.cluster != Cluster::Absent && current == Some(want.registry_hosting.trim_end()) {
        already.push("ConfigMap kube-public/local-registry-hosting is current".into());
    } else {
        actions.push(UpAction::ApplyConfigMap);
    }

    Ok(UpPlan {
        actions,
        already,
        record_created_cluster,
    })
}

/// What `down` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownObserved {
    pub registry: Registry,
    /// Whether the recorded cluster still exists, and its nodes.
    pub cluster: Cluster,
    /// Whether the recorded data volume exists.
    pub volume_exists: bool,
    /// Other clusters whose records name the same registry container: while
    /// they use it, the container and its data stay.
    pub registry_users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownAction {
    /// On a cluster berth attached to (not created): undo the node files.
    RemoveHostsToml {
        node: String,
    },
    DeleteConfigMap,
    DisconnectNetwork,
    RemoveRegistry,
    /// The registry container's config file `up --mirror` wrote on this host.
    RemoveBerthConfig,
    DeleteCluster,
    RemoveVolume,
    ForgetRecord,
}

/// Decides what `down` removes: only what the record says `up` created.
pub fn plan_down(record: &Record, seen: &DownObserved, purge: bool) -> Vec<DownAction> {
    let mut actions = Vec::new();
    if let Cluster::Present { nodes } = &seen.cluster {
        if record.created_cluster {
            // Deleting the cluster takes the node files and ConfigMap with it.
        } else {
            for node in nodes {
                if record.patched_nodes.contains(&node.name) && !node.hosts_tomls.is_empty() {
                    actions.push(DownAction::RemoveHostsToml {
                        node: node.name.clone(),
                    });
                }
            }
            if record.applied_configmap {
                actions.push(DownAction::DeleteConfigMap);
            }
        }
    }
    let shared = !seen.registry_users.is_empty();
    if let (
        Registry::Ours {
            on_kind_network, ..
        },
        false,
    ) = (&seen.registry, shared)
    {
        if *on_kind_network {
            actions.push(DownAction::DisconnectNetwork);
        }
        actions.push(DownAction::RemoveRegistry);
    }
    // Also when the container is already gone: the file is ours either way.
    if !shared && !record.mirrors.is_empty() {
        actions.push(DownAction::RemoveBerthConfig);
    }
    if record.created_cluster && seen.cluster != Cluster::Absent {
        actions.push(DownAction::DeleteCluster);
    }
    if purge && !shared && record.volume.is_some() && seen.volume_exists {
        actions.push(DownAction::RemoveVolume);
    }
    actions.push(DownAction::ForgetRecord);
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "server = \"http://kind-registry:5000\"\n";

    fn local_hosts() -> Vec<HostsToml> {
        vec![HostsToml {
            registry: "localhost:5000".into(),
            content: HOSTS.into(),
        }]
    }
    const HOSTING: &str = "host: \"localhost:5000\"\n";

    fn want(network: NetworkMode) -> UpWanted {
        UpWanted {
            port: 5000,
            network,
            hosts_tomls: local_hosts(),
            registry_hosting: HOSTING.into(),
            credentials: None,
            mirrors: String::new(),
        }
    }

    fn nothing() -> UpObserved {
        UpObserved {
            image_present: true,
            registry: Registry::Absent,
            port_free: true,
            free_port_hint: Some(5001),
            cluster: Cluster::Absent,
            configmap: None,
            record: None,
            password_accepted: true,
        }
    }

    fn node(name: &str, hosts: Option<&str>, reads_certs_d: bool) -> Node {
        Node {
            name: name.into(),
            hosts_tomls: hosts
                .map(|h| BTreeMap::from([("localhost:5000".to_string(), h.to_string())]))
                .unwrap_or_default(),
            reads_certs_d,
            credentials: None,
        }
    }

    fn everything() -> UpObserved {
        UpObserved {
            registry: Registry::Ours {
                running: true,
                port: 5000,
                on_kind_network: true,
                auth_user: None,
                mirrors: String::new(),
            },
            // Our own container holds the port.
            port_free: false,
            cluster: Cluster::Present {
                nodes: vec![
                    node("kind-control-plane", Some(HOSTS), true),
                    node("kind-worker", Some(HOSTS), true),
                ],
            },
            configmap: Some(HOSTING.into()),
            record: Some(record(true)),
            ..nothing()
        }
    }

    fn record(created_cluster: bool) -> Record {
        Record {
            cluster: "kind".into(),
            created_cluster,
            registry: "kind-registry".into(),
            port: 5000,
            volume: Some("kind-registry-data".into()),
            data_dir: None,
            patched_nodes: if created_cluster {
                vec![]
            } else {
                vec!["dev-control-plane".into()]
            },
            applied_configmap: true,
            auth_user: None,
            mirrors: Vec::new(),
        }
    }

    fn up(seen: &UpObserved, network: NetworkMode) -> Result<UpPlan, PlanError> {
        plan_up(
            seen,
            &want(network),
            "berth:latest",
            "kind-registry",
            "kind",
        )
    }

    #[test]
    fn first_up_on_nothing_does_every_step_in_order() {
        let plan = up(&nothing(), NetworkMode::Kind).unwrap();
        use UpAction::*;
        assert_eq!(
            plan.actions,
            [
                RunRegistry,
                CreateCluster,
                WriteHostsTomlOnNewNodes,
                ConnectNetwork,
                ApplyConfigMap
            ]
        );
        assert!(plan.record_created_cluster);
        assert!(plan.already.is_empty());
    }

    #[test]
    fn host_network_mode_skips_the_kind_network() {
        let plan = up(&nothing(), NetworkMode::Host).unwrap();
        assert!(!plan.actions.contains(&UpAction::ConnectNetwork));
    }

    #[test]
    fn second_up_on_everything_present_changes_nothing_and_says_so() {
        let plan = up(&everything(), NetworkMode::Kind).unwrap();
        assert_eq!(plan.actions, []);
        assert_eq!(plan.already.len(), 6, "{:?}", plan.already);
        // The record keeps saying the first up created the cluster.
        assert!(plan.record_created_cluster);
    }

    #[test]
    fn stopped_registry_is_started_and_stale_files_rewritten() {
        let mut seen = everything();
        seen.registry = Registry::Ours {
            running: false,
            port: 5000,
            on_kind_network: true,
            auth_user: None,
            mirrors: String::new(),
        };
        seen.port_free = true;
        seen.cluster = Cluster::Present {
            nodes: vec![node("kind-control-plane", Some("old"), true)],
        };
        seen.configmap = Some("host: \"localhost:5999\"\n".into());
        let plan = up(&seen, NetworkMode::Kind).unwrap();
        use UpAction::*;
        assert_eq!(
            plan.actions,
            [
                StartRegistry,
                WriteHostsToml {
                    node: "kind-control-plane".into()
                },
                ApplyConfigMap
            ]
        );
    }

    #[test]
    fn up_attaching_to_an_existing_cluster_does_not_claim_it() {
        let mut seen = nothing();
        seen.cluster = Cluster::Present {
            nodes: vec![node("dev-control-plane", None, true)],
        };
        let plan = up(&seen, NetworkMode::Kind).unwrap();
        use UpAction::*;
        assert_eq!(
            plan.actions,
            [
                RunRegistry,
                WriteHostsToml {
                    node: "dev-control-plane".into()
                },
                ConnectNetwork,
                ApplyConfigMap
            ]
        );
        assert!(!plan.record_created_cluster);
    }

    #[test]
    fn existing_cluster_whose_containerd_ignores_certs_d_is_refused() {
        let mut seen = nothing();
        seen.cluster = Cluster::Present {
            nodes: vec![
                node("old-control-plane", None, false),
                node("old-worker", None, true),
            ],
        };
        let err = up(&seen, NetworkMode::Kind).unwrap_err();
        assert!(
            matches!(&err, PlanError::NoConfigPath { nodes, .. } if nodes == "old-control-plane")
        );
        assert!(err.to_string().contains("--only cluster"));
    }

    #[test]
    fn refusals_name_the_way_out() {
        let mut seen = nothing();
        seen.port_free = false;
        let err = up(&seen, NetworkMode::Kind).unwrap_err();
        assert!(err.to_string().contains("--port 5001"), "{err}");

        let mut seen = nothing();
        seen.image_present = false;
        let err = up(&seen, NetworkMode::Kind).unwrap_err();
        assert!(err.to_string().contains("deploy/build-image.sh"), "{err}");

        let mut seen = nothing();
        seen.registry = Registry::Foreign;
        assert!(matches!(
            up(&seen, NetworkMode::Kind),
            Err(PlanError::ForeignContainer(_))
        ));

        let mut seen = everything();
        seen.registry = Registry::Ours {
            running: true,
            port: 5999,
            on_kind_network: true,
            auth_user: None,
            mirrors: String::new(),
        };
        assert!(matches!(
            up(&seen, NetworkMode::Kind),
            Err(PlanError::OtherPort { running: 5999, .. })
        ));
    }

    fn creds(user: &str) -> Credentials {
        Credentials {
            user: user.into(),
            password: "pw".into(),
        }
    }

    fn up_auth(seen: &UpObserved, user: &str) -> Result<UpPlan, PlanError> {
        let want = UpWanted {
            credentials: Some(creds(user)),
            ..want(NetworkMode::Kind)
        };
        plan_up(seen, &want, "berth:latest", "kind-registry", "kind")
    }

    /// `everything()` as a first `up --auth` for `user` leaves it.
    fn everything_with_auth(user: &str) -> UpObserved {
        let mut seen = everything();
        seen.registry = Registry::Ours {
            running: true,
            port: 5000,
            on_kind_network: true,
            auth_user: Some(user.into()),
            mirrors: String::new(),
        };
        if let Cluster::Present { nodes } = &mut seen.cluster {
            for n in nodes {
                n.credentials = Some(creds(user));
            }
        }
        seen
    }

    #[test]
    fn first_up_with_auth_writes_the_user_before_the_registry_starts() {
        let seen = nothing();
        let plan = up_auth(&seen, "kind").unwrap();
        use UpAction::*;
        assert_eq!(
            plan.actions,
            [
                AddUser,
                RunRegistry,
                CreateCluster,
                WriteHostsTomlOnNewNodes,
                ConnectNetwork,
                ApplyConfigMap
            ]
        );
    }

    #[test]
    fn second_up_with_auth_changes_nothing_unless_the_registry_refuses_the_password() {
        let seen = everything_with_auth("kind");
        let plan = up_auth(&seen, "kind").unwrap();
        assert_eq!(plan.actions, []);
        assert!(plan
            .already
            .contains(&"the nodes have the credentials of user kind".to_string()));
        // A new password (the file was removed, then the cluster recreated
        // with it): the running registry's htpasswd learns it.
        let mut seen = everything_with_auth("kind");
        seen.password_accepted = false;
        let plan = up_auth(&seen, "kind").unwrap();
        assert_eq!(plan.actions, [UpAction::AddUserInRegistry]);
        // A stopped registry could not be asked: started, then told again.
        let mut seen = everything_with_auth("kind");
        seen.registry = Registry::Ours {
            running: false,
            port: 5000,
            on_kind_network: true,
            auth_user: Some("kind".into()),
            mirrors: String::new(),
        };
        seen.port_free = true;
        let plan = up_auth(&seen, "kind").unwrap();
        assert_eq!(
            plan.actions,
            [UpAction::StartRegistry, UpAction::AddUserInRegistry]
        );
    }

    #[test]
    fn a_registry_running_with_other_auth_is_refused_with_the_way_out() {
        // Running without auth, asked for auth.
        let err = up_auth(&everything(), "kind").unwrap_err();
        assert!(
            matches!(&err, PlanError::AuthDiffers { running: None, wanted: Some(u), .. } if u == "kind")
        );
        assert!(
            err.to_string().contains("docker rm -f kind-registry"),
            "{err}"
        );
        // Running with auth, asked without.
        let err = up(&everything_with_auth("kind"), NetworkMode::Kind).unwrap_err();
        assert!(
            err.to_string()
                .contains("serves with auth for user kind, not without auth"),
            "{err}"
        );
        // Running for another user.
        assert!(matches!(
            up_auth(&everything_with_auth("kind"), "ci"),
            Err(PlanError::AuthDiffers { .. })
        ));
    }

    #[test]
    fn an_existing_cluster_whose_nodes_lack_the_credentials_is_refused() {
        let mut seen = everything_with_auth("ci");
        if let Cluster::Present { nodes } = &mut seen.cluster {
            nodes[1].credentials = None;
            nodes[0].credentials = Some(Credentials {
                user: "ci".into(),
                password: "old".into(),
            });
        }
        let err = up_auth(&seen, "ci").unwrap_err();
        assert!(
            matches!(&err, PlanError::NodesWithoutCredentials { nodes, .. } if nodes == "kind-control-plane, kind-worker"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("berth kind config --name kind --auth --user ci --only cluster"),
            "{err}"
        );
        // Without --auth, credentials on the nodes (or none) do not matter.
        let mut seen = everything();
        if let Cluster::Present { nodes } = &mut seen.cluster {
            nodes[0].credentials = Some(creds("old"));
        }
        assert_eq!(up(&seen, NetworkMode::Kind).unwrap().actions, []);
    }

    const MIRRORS: &str = "docker.io=https://registry-1.docker.io";
    const DOCKER_HOSTS: &str = "server = \"https://registry-1.docker.io\"\n";

    fn want_mirrors() -> UpWanted {
        let mut w = want(NetworkMode::Kind);
        w.hosts_tomls.push(HostsToml {
            registry: "docker.io".into(),
            content: DOCKER_HOSTS.into(),
        });
        w.mirrors = MIRRORS.into();
        w
    }

    fn up_mirrors(seen: &UpObserved) -> Result<UpPlan, PlanError> {
        plan_up(
            seen,
            &want_mirrors(),
            "berth:latest",
            "kind-registry",
            "kind",
        )
    }

    /// `everything()` as a first `up --mirror docker.io` leaves it.
    fn everything_with_mirrors() -> UpObserved {
        let mut seen = everything();
        if let Registry::Ours { mirrors, .. } = &mut seen.registry {
            *mirrors = MIRRORS.into();
        }
        if let Cluster::Present { nodes } = &mut seen.cluster {
            for n in nodes {
                n.hosts_tomls
                    .insert("docker.io".into(), DOCKER_HOSTS.into());
            }
        }
        seen
    }

    #[test]
    fn up_with_mirrors_takes_the_same_steps_and_a_second_changes_nothing() {
        let plan = up_mirrors(&nothing()).unwrap();
        assert_eq!(
            plan.actions,
            up(&nothing(), NetworkMode::Kind).unwrap().actions
        );
        let plan = up_mirrors(&everything_with_mirrors()).unwrap();
        assert_eq!(plan.actions, []);
        assert!(plan
            .already
            .contains(&"node kind-worker has the 2 hosts.toml files".to_string()));
    }

    #[test]
    fn a_node_missing_or_holding_another_mirror_hosts_toml_is_rewritten() {
        let mut seen = everything_with_mirrors();
        if let Cluster::Present { nodes } = &mut seen.cluster {
            nodes[0].hosts_tomls.remove("docker.io");
            nodes[1].hosts_tomls.insert(
                "docker.io".into(),
                "server = \"https://elsewhere\"\n".into(),
            );
        }
        let plan = up_mirrors(&seen).unwrap();
        use UpAction::*;
        assert_eq!(
            plan.actions,
            [
                WriteHostsToml {
                    node: "kind-control-plane".into()
                },
                WriteHostsToml {
                    node: "kind-worker".into()
                }
            ]
        );
    }

    #[test]
    fn a_registry_started_for_other_mirrors_is_refused_with_the_way_out() {
        // Running without mirrors, asked for docker.io.
        let err = up_mirrors(&everything()).unwrap_err();
        assert_eq!(
            err,
            PlanError::MirrorsDiffer {
                name: "kind-registry".into(),
                running: String::new(),
                wanted: MIRRORS.into(),
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("caches no mirrors, not mirrors docker.io=https://registry-1.docker.io")
                && text.contains("docker rm -f kind-registry"),
            "{text}"
        );
        // Running with docker.io, asked for none: refused too, even stopped.
        let mut seen = everything_with_mirrors();
        if let Registry::Ours { running, .. } = &mut seen.registry {
            *running = false;
        }
        assert!(matches!(
            up(&seen, NetworkMode::Kind),
            Err(PlanError::MirrorsDiffer { wanted, .. }) if wanted.is_empty()
        ));
    }

    fn down_seen(cluster: Cluster) -> DownObserved {
        DownObserved {
            registry: Registry::Ours {
                running: true,
                port: 5000,
                on_kind_network: true,
                auth_user: None,
                mirrors: String::new(),
            },
            cluster,
            volume_exists: true,
            registry_users: vec![],
        }
    }

    #[test]
    fn down_after_a_first_up_removes_the_cluster_and_registry_but_keeps_data() {
        let seen = down_seen(Cluster::Present {
            nodes: vec![node("kind-control-plane", Some(HOSTS), true)],
        });
        use DownAction::*;
        assert_eq!(
            plan_down(&record(true), &seen, false),
            [
                DisconnectNetwork,
                RemoveRegistry,
                DeleteCluster,
                ForgetRecord
            ]
        );
        assert_eq!(
            plan_down(&record(true), &seen, true),
            [
                DisconnectNetwork,
                RemoveRegistry,
                DeleteCluster,
                RemoveVolume,
                ForgetRecord
            ]
        );
    }

    #[test]
    fn down_after_attaching_leaves_the_cluster_and_undoes_our_files() {
        let seen = down_seen(Cluster::Present {
            nodes: vec![
                node("dev-control-plane", Some(HOSTS), true),
                node("dev-worker", Some(HOSTS), true),
            ],
        });
        use DownAction::*;
        assert_eq!(
            plan_down(&record(false), &seen, false),
            [
                RemoveHostsToml {
                    node: "dev-control-plane".into()
                },
                DeleteConfigMap,
                DisconnectNetwork,
                RemoveRegistry,
                ForgetRecord
            ]
        );
    }

    #[test]
    fn down_removes_the_mirrors_config_file_unless_the_registry_stays() {
        let mut rec = record(true);
        rec.mirrors = vec!["docker.io".into()];
        let seen = down_seen(Cluster::Absent);
        use DownAction::*;
        assert_eq!(
            plan_down(&rec, &seen, false),
            [
                DisconnectNetwork,
                RemoveRegistry,
                RemoveBerthConfig,
                ForgetRecord
            ]
        );
        // The container removed by hand already: the file still goes.
        let gone = DownObserved {
            registry: Registry::Absent,
            ..down_seen(Cluster::Absent)
        };
        assert_eq!(
            plan_down(&rec, &gone, false),
            [RemoveBerthConfig, ForgetRecord]
        );
        // Another cluster's up still uses the registry, so it keeps its file.
        let mut shared = down_seen(Cluster::Absent);
        shared.registry_users = vec!["other".into()];
        assert_eq!(plan_down(&rec, &shared, false), [ForgetRecord]);
    }

    #[test]
    fn down_keeps_a_registry_another_cluster_still_uses() {
        let mut seen = down_seen(Cluster::Present { nodes: vec![] });
        seen.registry_users = vec!["other".into()];
        use DownAction::*;
        assert_eq!(
            plan_down(&record(true), &seen, true),
            [DeleteCluster, ForgetRecord]
        );
    }

    #[test]
    fn down_when_things_are_already_gone_only_forgets() {
        let seen = DownObserved {
            registry: Registry::Absent,
            cluster: Cluster::Absent,
            volume_exists: false,
            registry_users: vec![],
        };
        assert_eq!(
            plan_down(&record(true), &seen, true),
            [DownAction::ForgetRecord]
        );
        // A same-named container berth did not create is never removed.
        let seen = DownObserved {
            registry: Registry::Foreign,
            ..seen
        };
        assert_eq!(
            plan_down(&record(true), &seen, false),
            [DownAction::ForgetRecord]
        );
    }
}

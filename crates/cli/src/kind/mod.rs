//! `berth kind up | down | config`: berth as the local registry of a KinD
//! cluster, the way kind's local-registry recipe sets one up, in one
//! idempotent command. Portable: no Linux-only calls (macOS users run it).
//!
//! `spec` generates the files, `plan` decides, `observe`/`up`/`down` talk to
//! docker, kind and kubectl through `tools`; `record` remembers what `up` made.

mod berth_config;
mod commands;
mod credentials;
mod down;
mod observe;
mod plan;
mod record;
mod spec;
mod tools;
mod up;

use clap::{Args, Subcommand, ValueEnum};
use commands::Storage;
use spec::{Credentials, MirrorError, Name, NameError, Spec};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KindCommand {
    /// Start berth as the cluster's registry: the registry container, the
    /// cluster (created if absent), hosts.toml on every node, the kind
    /// network, the local-registry-hosting ConfigMap. Safe to run again.
    Up(UpArgs),
    /// Remove what `up` created: the registry container and its network
    /// connection, and the cluster only if `up` created it. Data is kept.
    Down(DownArgs),
    /// Print the cluster config, hosts.toml and ConfigMap for your own scripts.
    Config(ConfigArgs),
}

/// The user `--auth` makes when `--user` is not given.
pub const DEFAULT_USER: &str = "kind";

/// `--auth [--user NAME]`, shared by `up` and `config`.
#[derive(Args, Clone)]
pub struct AuthArgs {
    /// Turn auth on: berth serves with an htpasswd file in its data folder
    /// holding one user with a random password (kept on this host, 0600), and
    /// every node's containerd gets those credentials, so pods pull without
    /// an imagePullSecret
    #[arg(long)]
    auth: bool,
    /// The user `--auth` makes
    #[arg(long, default_value = DEFAULT_USER, requires = "auth")]
    user: String,
}

#[derive(Args, Clone)]
pub struct Common {
    /// KinD cluster name (lower-case letters, digits, '-', '.')
    #[arg(long, default_value = "kind")]
    name: String,
    /// Registry container name
    #[arg(long, default_value = "kind-registry")]
    registry_name: String,
}

#[derive(Args)]
pub struct UpArgs {
    #[command(flatten)]
    common: Common,
    /// Host port: images are pushed and pulled as localhost:PORT/...
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Worker nodes of a new cluster (besides its control plane)
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// berth's container image (deploy/build-image.sh builds berth:latest)
    #[arg(long, default_value = "berth:latest")]
    image: String,
    /// Keep the registry's data in this host folder instead of a named volume
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `kind`: publish on 127.0.0.1:PORT and join the kind network.
    /// `host` (Linux only): host networking, no kind network; for tests.
    #[arg(long, value_enum, default_value_t = Network::Kind)]
    network: Network,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    mirrors: MirrorArgs,
}

/// `--mirror REGISTRY[=URL]`, shared by `up` and `config`.
#[derive(Args, Clone)]
pub struct MirrorArgs {
    /// Cache this registry's images in berth (repeatable): berth gets an
    /// [[upstream]] for it, every node a certs.d/REGISTRY/hosts.toml sending
    /// its pulls to berth first. URL defaults to https://REGISTRY
    /// (https://registry-1.docker.io for docker.io)
    #[arg(long = "mirror", value_name = "REGISTRY[=URL]")]
    mirror: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Network {
    Kind,
    Host,
}

#[derive(Args)]
pub struct DownArgs {
    #[command(flatten)]
    common: Common,
    /// Also remove the registry's data volume (every image pushed to it)
    #[arg(long)]
    purge: bool,
}

#[derive(Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    common: Common,
    /// Host port: images are named localhost:PORT/...
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// URL containerd on the nodes uses for the registry
    /// [default: http://REGISTRY-NAME:5000]
    #[arg(long)]
    endpoint: Option<String>,
    /// Print only one piece, exactly as the file's content
    #[arg(long, value_enum)]
    only: Option<Piece>,
    /// Include the credentials `up --auth` gives the nodes (made and saved
    /// now if `up --auth` has not made them yet)
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    mirrors: MirrorArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Piece {
    /// The hosts.toml for localhost:PORT (the cluster's own registry)
    HostsToml,
    Cluster,
    Configmap,
    /// What kind merges into each node's containerd config.toml
    ContainerdPatch,
    /// The hosts.toml of the one --mirror given
    MirrorHostsToml,
    /// berth's config file with an [[upstream]] per --mirror (what the
    /// registry container reads)
    BerthConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Tool(#[from] tools::ToolError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    BerthConfig(#[from] berth_config::BerthConfigError),
    #[error("--only {0} needs {1}")]
    OnlyNeeds(&'static str, &'static str),
    #[error("cannot use data folder {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("the registry container {name} does not answer on http://127.0.0.1:{port}/v2/ after 30 s: see docker logs {name}")]
    RegistryNotAnswering { name: String, port: u16 },
}

fn spec(
    common: &Common,
    port: u16,
    workers: u32,
    endpoint: Option<String>,
    mirrors: &MirrorArgs,
) -> Result<Spec, KindError> {
    let registry = Name::container(&common.registry_name)?;
    let mut s = Spec {
        cluster: Name::cluster(&common.name)?,
        endpoint: endpoint.unwrap_or_else(|| Spec::default_endpoint(&registry)),
        registry,
        port,
        workers,
        credentials: None,
        mirrors: Vec::new(),
    };
    s.mirrors = spec::mirrors(&mirrors.mirror, &s.local_host())?;
    Ok(s)
}

fn state_dir() -> Result<PathBuf, KindError> {
    Ok(record::dir(|k| std::env::var(k).ok())?)
}

fn record_path(cluster: &Name) -> Result<PathBuf, KindError> {
    Ok(record::path(&state_dir()?, cluster.as_str()))
}

/// Under `--auth`: the saved credentials of the registry's user, or new ones;
/// the bool says they are new.
fn credentials(auth: &AuthArgs, registry: &Name) -> Result<Option<(Credentials, bool)>, KindError> {
    if !auth.auth {
        return Ok(None);
    }
    Ok(Some(credentials::load_or_create(
        &state_dir()?,
        registry.as_str(),
        &auth.user,
    )?))
}

/// A host data folder, created if needed, absolute (docker wants that), with
/// the owner the container runs as.
fn data_dir_storage(dir: &std::path::Path) -> Result<Storage, KindError> {
    let err = |e| KindError::DataDir(dir.to_path_buf(), e);
    std::fs::create_dir_all(dir).map_err(err)?;
    let abs = std::fs::canonicalize(dir).map_err(err)?;
    #[cfg(unix)]
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&abs).map_err(err)?;
        Some(format!("{}:{}", m.uid(), m.gid()))
    };
    #[cfg(not(unix))]
    let owner = None;
    Ok(Storage::Dir(abs, owner))
}

fn execute(cmd: KindCommand) -> Result<(), KindError> {
    match cmd {
        KindCommand::Config(a) => {
            let mut s = spec(&a.common, a.port, a.workers, a.endpoint, &a.mirrors)?;
            if let Some((creds, new)) = credentials(&a.auth, &s.registry)? {
                if new {
                    eprintln!(
                        "# new password for user {} saved in {} (berth kind up --auth uses it)",
                        creds.user,
                        credentials::password_path(&state_dir()?, s.registry.as_str(), &creds.user)
                            .display()
                    );
                }
                s.credentials = Some(creds);
            }
            match a.only {
                Some(Piece::HostsToml) => print!("{}", s.hosts_toml()),
                Some(Piece::Cluster) => print!("{}", s.cluster_config()),
                Some(Piece::Configmap) => print!("{}", s.configmap()),
                Some(Piece::ContainerdPatch) => print!("{}", s.containerd_patch()),
                Some(Piece::MirrorHostsToml) => match s.mirrors.as_slice() {
                    [m] => print!("{}", s.mirror_hosts_toml(m)),
                    _ => {
                        return Err(KindError::OnlyNeeds(
                            "mirror-hosts-toml",
                            "exactly one --mirror",
                        ))
                    }
                },
                Some(Piece::BerthConfig) => match s.berth_config() {
                    Some(text) => print!("{text}"),
                    None => return Err(KindError::OnlyNeeds("berth-config", "a --mirror")),
                },
                None => {
                    println!(
                        "# kind create cluster --config FILE\n{}",
                        s.cluster_config()
                    );
                    for file in s.hosts_tomls() {
                        println!("# {} on every node\n{}", file.path(), file.content);
                    }
                    if let Some(text) = s.berth_config() {
                        println!(
                            "# the registry container's config file (BERTH_CONFIG={})\n{text}",
                            berth_config::IN_CONTAINER
                        );
                    }
                    print!(
                        "# kubectl --context {} apply -f FILE\n{}",
                        s.context(),
                        s.configmap()
                    );
                }
            }
            Ok(())
        }
        KindCommand::Up(a) => {
            let network = match a.network {
                Network::Kind => plan::NetworkMode::Kind,
                Network::Host => plan::NetworkMode::Host,
            };
            let mut s = spec(&a.common, a.port, a.workers, None, &a.mirrors)?;
            if network == plan::NetworkMode::Host {
                // Nodes would share the host's network: the registry is on loopback.
                s.endpoint = format!("http://127.0.0.1:{}", a.port);
            }
            let storage = match &a.data_dir {
                Some(d) => data_dir_storage(d)?,
                None => Storage::Volume(format!("{}-data", s.registry)),
            };
            let path = record_path(&s.cluster)?;
            if let Some((creds, _)) = credentials(&a.auth, &s.registry)? {
                s.credentials = Some(creds);
            }
            up::run(
                &up::Up {
                    spec: s,
                    image: a.image,
                    network,
                    storage,
                },
                &path,
            )
        }
        KindCommand::Down(a) => {
            let s = spec(&a.common, 5000, 0, None, &MirrorArgs { mirror: Vec::new() })?;
            let path = record_path(&s.cluster)?;
            down::run(&s, a.purge, &path)
        }
    }
}

pub fn run(cmd: KindCommand) -> ExitCode {
    match execute(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth kind: {e}");
            ExitCode::FAILURE
        }
    }
}

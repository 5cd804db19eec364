//! The `berth` binary: parses the command line, loads configuration, sets up
//! logging and runs a command. It owns no registry logic.
#![deny(unsafe_code)]

mod admin_client;
mod allocator;
mod backends;
mod cert;
mod config;
mod data_dir;
mod fd_limit;
mod fsck;
mod gc;
mod import;
mod kind;
mod pull_through;
mod repo;
mod serve;
mod user;

use berth_registry::{IoMode, PORTABLE_IO_ENV};
use clap::{Parser, Subcommand};
use config::{Config, RawConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A private OCI container image registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (default 127.0.0.1:5000, data in ./berth-data).
    Serve {
        /// Address to listen on, HOST:PORT [env: BERTH_ADDR]
        #[arg(long)]
        addr: Option<String>,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key; see
        /// `berth cert`) [env: BERTH_TLS_CERTIFICATE]
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert [env: BERTH_TLS_KEY]
        #[arg(long, value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Folder holding blobs and the metadata database [env: BERTH_DATA_DIR]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file [env: BERTH_CONFIG]
        #[arg(long)]
        config: Option<PathBuf>,
        /// PostgreSQL URL of the metadata store (postgres://user@host/db);
        /// default: <data-dir>/meta.db [env: BERTH_METADATA_URL]
        #[arg(long, value_name = "URL")]
        metadata_url: Option<String>,
        /// A browser origin (scheme://host[:port]) whose pages may call the
        /// API (CORS), e.g. a separate registry UI; repeatable; added to
        /// cors_allowed_origins from the file and environment
        #[arg(long = "cors-origin", value_name = "ORIGIN")]
        cors_origins: Vec<String>,
        /// htpasswd file of users (bcrypt, as `berth user add` or
        /// `htpasswd -B` writes): turns auth on [env: BERTH_HTPASSWD]
        #[arg(long, value_name = "FILE")]
        htpasswd: Option<PathBuf>,
        /// Challenge with Bearer and serve /token (Basic credentials still
        /// accepted); needs --htpasswd [env: BERTH_TOKEN_AUTH]
        #[arg(long)]
        token_auth: bool,
        /// A registry:2 YAML config, as `registry serve FILE` takes: accepted
        /// so scripts written for registry:2 run, but not read (a warning
        /// says so); berth reads REGISTRY_* variables and its own TOML
        #[arg(value_name = "REGISTRY_CONFIG_YML", hide = true)]
        registry_config: Option<PathBuf>,
    },
    /// Check a data folder: blob digests and sizes, manifests' references,
    /// tags and metadata, leftover uploads. Exits 1 if anything is wrong.
    Fsck {
        /// Folder holding blobs and the metadata database [env: BERTH_DATA_DIR]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file [env: BERTH_CONFIG]
        #[arg(long)]
        config: Option<PathBuf>,
        /// PostgreSQL URL of the metadata store (postgres://user@host/db);
        /// default: <data-dir>/meta.db [env: BERTH_METADATA_URL]
        #[arg(long, value_name = "URL")]
        metadata_url: Option<String>,
        /// Move what is wrong into <data-dir>/quarantine/ and drop the rows
        /// that point at it (refused while a server uses the folder)
        #[arg(long)]
        repair: bool,
    },
    /// Collect garbage now: unreferenced blobs, expired uploads.
    ///
    /// Removes blobs no manifest references (unreferenced for longer than
    /// the grace), expired uploads, and untagged manifests when [gc]
    /// untagged_after says so. Runs inside the server when one uses the
    /// data folder (through <data-dir>/admin.sock), else here. Exits 1 if
    /// the pass failed, 2 if it could not run.
    Gc {
        /// Folder holding blobs and the metadata database [env: BERTH_DATA_DIR]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file [env: BERTH_CONFIG]
        #[arg(long)]
        config: Option<PathBuf>,
        /// PostgreSQL URL of the metadata store (postgres://user@host/db);
        /// default: <data-dir>/meta.db [env: BERTH_METADATA_URL]
        #[arg(long, value_name = "URL")]
        metadata_url: Option<String>,
        /// Remove nothing: list what a pass would remove
        #[arg(long)]
        dry_run: bool,
        /// Keep what was wanted more recently than this (90s, 10m, 1h, 7d);
        /// default: the server's [gc] grace
        #[arg(long, value_name = "DURATION", value_parser = berth_registry::units::parse_duration)]
        grace: Option<std::time::Duration>,
    },
    /// Make a local CA and a server certificate signed by it, for
    /// `berth serve --tls-cert/--tls-key`. The CA is kept and reused, so
    /// clients that trust it keep trusting new server certificates.
    Cert {
        /// Where to write ca.crt, ca.key, server.crt and server.key
        /// [default: <data-dir>/tls]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Another DNS name or IP address the server is reached by
        /// (besides localhost, 127.0.0.1, ::1 and this host's name); repeatable
        #[arg(long = "name", value_name = "HOST")]
        names: Vec<String>,
        /// Days the server certificate is valid
        #[arg(long, default_value_t = cert::DEFAULT_DAYS)]
        days: u32,
        /// Folder holding blobs and the metadata database [env: BERTH_DATA_DIR]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file [env: BERTH_CONFIG]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run berth as the registry of a local KinD cluster (up, down, config).
    Kind {
        #[command(subcommand)]
        command: kind::KindCommand,
    },
    /// Manage repositories (delete).
    Repo {
        #[command(subcommand)]
        command: repo::RepoCommand,
    },
    /// Manage the htpasswd file of users (add, remove, list).
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Import a registry:2 (CNCF distribution) filesystem tree: repositories,
    /// tags, manifests and blobs, each verified by digest. Exits 1 if
    /// anything could not be imported (the rest is), 2 if it cannot run.
    ImportDistribution {
        /// The folder registry:2 stored into (holding docker/registry/v2),
        /// or the v2 folder itself; may be the data folder
        src: PathBuf,
        /// Folder holding blobs and the metadata database [env: BERTH_DATA_DIR]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file [env: BERTH_CONFIG]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Copy every blob; by default blobs are hard-linked when SRC is on
        /// the data folder's filesystem (no second copy on disk)
        #[arg(long)]
        copy: bool,
    },
}

/// Logs to stderr, filtered by `BERTH_LOG`, else `RUST_LOG`, else the
/// configured level (`REGISTRY_LOG_LEVEL`), else `info`.
fn init_logging(config_level: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config_level.unwrap_or("info")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// registry:2's image takes a config file as its only argument (`docker
/// run registry:2 /etc/docker/registry/config.yml`) and serves with it;
/// berth's image does the same by reading such arguments as `serve FILE`.
fn registry_2_args(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let is_yaml = |arg: &std::ffi::OsString| {
        let arg = arg.to_string_lossy();
        arg.ends_with(".yml") || arg.ends_with(".yaml")
    };
    if args.get(1).is_some_and(is_yaml) {
        args.insert(1, "serve".into());
    }
    args
}

fn main() -> ExitCode {
    // Read once, before any thread exists: BERTH_PORTABLE_IO=1 forces the
    // paths non-Linux systems take, so that tests on Linux cover them.
    let io = IoMode::from_env_value(std::env::var(PORTABLE_IO_ENV).ok().as_deref());
    allocator::limit_arenas(io);
    let cli = Cli::parse_from(registry_2_args(std::env::args_os().collect()));
    match cli.command {
        Command::Serve {
            addr,
            tls_cert,
            tls_key,
            data_dir,
            config,
            cors_origins,
            htpasswd,
            token_auth,
            registry_config,
            metadata_url,
        } => {
            let flags = RawConfig {
                metadata: metadata_flag(metadata_url),
                addr,
                tls_certificate: tls_cert,
                tls_key,
                data_dir,
                cors_allowed_origins: (!cors_origins.is_empty()).then_some(cors_origins),
                htpasswd,
                token_auth: token_auth.then_some(true),
                ..Default::default()
            };
            let Some(config) = load_config(config, flags) else {
                return ExitCode::from(2);
            };
            if let Some(path) = registry_config {
                tracing::warn!(
                    path = %path.display(),
                    "a registry:2 YAML config is not read: berth takes REGISTRY_* variables and its own TOML (--config)"
                );
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(serve::run(config, io));
            // Connections still open after the grace period must not keep the process alive.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    if e.is::<data_dir::Refused>() {
                        ExitCode::from(2)
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
        Command::Fsck {
            data_dir,
            config,
            repair,
            metadata_url,
        } => {
            let flags = RawConfig {
                metadata: metadata_flag(metadata_url),
                data_dir,
                ..Default::default()
            };
            match load_config(config, flags) {
                Some(config) if !fsck::covers(&config) => {
                    eprintln!(
                        "berth fsck: checks a data folder's own stores (blobs under it and \
                         meta.db); with S3 storage or PostgreSQL metadata, check them with \
                         their own tools: berth does not check them yet"
                    );
                    ExitCode::from(2)
                }
                Some(config) => fsck::run(&config.data_dir, repair),
                None => ExitCode::from(2),
            }
        }
        Command::Gc {
            data_dir,
            config,
            dry_run,
            grace,
            metadata_url,
        } => {
            let flags = RawConfig {
                metadata: metadata_flag(metadata_url),
                data_dir,
                ..Default::default()
            };
            match load_config(config, flags) {
                Some(config) => gc::run(
                    &config,
                    io,
                    berth_registry::gc::GcRequest { dry_run, grace },
                ),
                None => ExitCode::from(2),
            }
        }
        Command::Cert {
            out,
            names,
            days,
            data_dir,
            config,
        } => {
            let flags = RawConfig {
                data_dir,
                ..Default::default()
            };
            match load_config(config, flags) {
                Some(config) => {
                    let out = out.unwrap_or_else(|| config.data_dir.join("tls"));
                    cert::run(&out, &names, days, config.addr.port())
                }
                None => ExitCode::from(2),
            }
        }
        Command::Kind { command } => {
            init_logging(None);
            kind::run(command)
        }
        Command::Repo { command } => {
            let (data_dir, config, metadata_url) = command.folder_args();
            let flags = RawConfig {
                metadata: metadata_flag(metadata_url),
                data_dir,
                ..Default::default()
            };
            match load_config(config, flags) {
                Some(config) => repo::run(command, &config, io),
                None => ExitCode::from(2),
            }
        }
        Command::User { command } => {
            let args = command.file_args();
            let file = match &args.htpasswd {
                Some(file) => file.clone(),
                None => {
                    let flags = RawConfig {
                        data_dir: args.data_dir.clone(),
                        ..Default::default()
                    };
                    match load_config(args.config.clone(), flags) {
                        // The file the server reads, else the data folder's.
                        Some(config) => config.auth.as_ref().map_or_else(
                            || config.data_dir.join("htpasswd"),
                            |auth| auth.htpasswd.clone(),
                        ),
                        None => return ExitCode::from(2),
                    }
                }
            };
            user::run(command, &file)
        }
        Command::ImportDistribution {
            src,
            data_dir,
            config,
            copy,
        } => {
            let flags = RawConfig {
                data_dir,
                ..Default::default()
            };
            match load_config(config, flags) {
                Some(config) => import::run(&src, &config, !copy),
                None => ExitCode::from(2),
            }
        }
    }
}

/// Loads the configuration from the process environment, sets up logging
/// at its level and logs what loading noticed; `None` after logging why it
/// failed.
/// `--metadata-url` as the flags layer of `[metadata]`.
fn metadata_flag(url: Option<String>) -> Option<config::storage::RawMetadata> {
    url.map(|url| config::storage::RawMetadata {
        url: Some(config::pull_through::Secret::new(url)),
        password_file: None,
    })
}

fn load_config(file: Option<PathBuf>, flags: RawConfig) -> Option<Config> {
    let env = std::env::vars().collect();
    match Config::load(file, &env, flags) {
        Ok(config) => {
            init_logging(config.log_level.as_deref());
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            Some(config)
        }
        Err(e) => {
            init_logging(None);
            tracing::error!("{e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args = args.iter().map(std::ffi::OsString::from).collect();
        Cli::try_parse_from(registry_2_args(args))
    }

    #[test]
    fn registry_2_command_lines_serve() {
        for args in [
            &["berth", "/etc/docker/registry/config.yml"][..],
            &["berth", "serve", "/etc/docker/registry/config.yml"],
            &["berth", "config.yaml"],
        ] {
            let cli = parse(args).unwrap();
            assert!(
                matches!(
                    cli.command,
                    Command::Serve {
                        registry_config: Some(_),
                        ..
                    }
                ),
                "{args:?}"
            );
        }
        assert!(matches!(
            parse(&["berth", "serve"]).unwrap().command,
            Command::Serve {
                registry_config: None,
                ..
            }
        ));
        assert!(matches!(
            parse(&["berth", "fsck"]).unwrap().command,
            Command::Fsck { .. }
        ));
        assert!(parse(&["berth", "config.json"]).is_err());
    }

    #[test]
    fn tls_flags_and_cert_names_parse() {
        let cli = parse(&[
            "berth",
            "serve",
            "--tls-cert",
            "/t/server.crt",
            "--tls-key=/t/server.key",
        ])
        .unwrap();
        let Command::Serve {
            tls_cert, tls_key, ..
        } = cli.command
        else {
            panic!("not serve");
        };
        assert_eq!(tls_cert, Some(PathBuf::from("/t/server.crt")));
        assert_eq!(tls_key, Some(PathBuf::from("/t/server.key")));
        let cli = parse(&["berth", "cert", "--name", "a", "--name=10.0.0.1"]).unwrap();
        let Command::Cert { names, days, .. } = cli.command else {
            panic!("not cert");
        };
        assert_eq!(names, ["a", "10.0.0.1"]);
        assert_eq!(days, cert::DEFAULT_DAYS);
    }

    #[test]
    fn gc_takes_a_dry_run_and_a_grace_duration() {
        let cli = parse(&["berth", "gc", "--dry-run", "--grace", "90s"]).unwrap();
        let Command::Gc { dry_run, grace, .. } = cli.command else {
            panic!("not gc");
        };
        assert!(dry_run);
        assert_eq!(grace, Some(std::time::Duration::from_secs(90)));
        assert!(parse(&["berth", "gc", "--grace", "soon"]).is_err());
        let cli = parse(&["berth", "gc"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Gc {
                dry_run: false,
                grace: None,
                ..
            }
        ));
    }

    #[test]
    fn cors_origin_is_repeatable() {
        let cli = parse(&[
            "berth",
            "serve",
            "--cors-origin",
            "http://a:8080",
            "--cors-origin=http://b",
        ])
        .unwrap();
        let Command::Serve { cors_origins, .. } = cli.command else {
            panic!("not serve");
        };
        assert_eq!(cors_origins, ["http://a:8080", "http://b"]);
    }
}

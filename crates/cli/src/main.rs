//! The `berth` binary: parses the command line, loads configuration, sets up
//! logging and runs a command. It owns no registry logic.
#![deny(unsafe_code)]

mod allocator;
mod config;
mod data_dir;
mod fd_limit;
mod fsck;
mod import;
mod kind;
mod serve;

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
        /// Folder holding blobs and the metadata database [env: BERTH_DATA_DIR]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file [env: BERTH_CONFIG]
        #[arg(long)]
        config: Option<PathBuf>,
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
        /// Move what is wrong into <data-dir>/quarantine/ and drop the rows
        /// that point at it (refused while a server uses the folder)
        #[arg(long)]
        repair: bool,
    },
    /// Run berth as the registry of a local KinD cluster (up, down, config).
    Kind {
        #[command(subcommand)]
        command: kind::KindCommand,
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    // Read once, before any thread exists: BERTH_PORTABLE_IO=1 forces the
    // paths non-Linux systems take, so that tests on Linux cover them.
    let io = IoMode::from_env_value(std::env::var(PORTABLE_IO_ENV).ok().as_deref());
    allocator::limit_arenas(io);
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve {
            addr,
            data_dir,
            config,
        } => {
            let env = std::env::vars().collect();
            let flags = RawConfig {
                addr,
                data_dir,
                ..Default::default()
            };
            let config = match Config::load(config, &env, flags) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::from(2);
                }
            };
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
        } => {
            let env = std::env::vars().collect();
            let flags = RawConfig {
                data_dir,
                ..Default::default()
            };
            match Config::load(config, &env, flags) {
                Ok(config) => fsck::run(&config.data_dir, repair),
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Kind { command } => kind::run(command),
        Command::ImportDistribution {
            src,
            data_dir,
            config,
            copy,
        } => {
            let env = std::env::vars().collect();
            let flags = RawConfig {
                data_dir,
                ..Default::default()
            };
            match Config::load(config, &env, flags) {
                Ok(config) => import::run(&src, &config, !copy),
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

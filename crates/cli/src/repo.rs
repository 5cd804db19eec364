//! `berth repo delete NAME`: deletes a repository whole. When a server
//! holds the data folder, the server does it (through its admin socket, so
//! its caches and the registry it serves stay the one truth); otherwise
//! this process takes the folder's lock and does it itself.

use crate::admin_client::{self, AdminClient, AdminError, Target};
use crate::config::Config;
use berth_oci::RepositoryName;
use berth_registry::{Error, IoMode};
use clap::Subcommand;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// A line on stdout; a closed stdout is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Exit code when the delete was refused or failed.
const FAILED: u8 = 1;
/// Exit code when the command could not run at all.
const CANNOT_RUN: u8 = 2;

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Delete a repository: all its tags and manifests, at once. Its blobs
    /// no other repository uses are reclaimed by the next GC pass after the
    /// grace period.
    Delete {
        /// The repository, e.g. team/app
        name: String,
        /// Folder holding blobs and the metadata database [env: BERTH_DATA_DIR]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file [env: BERTH_CONFIG]
        #[arg(long)]
        config: Option<PathBuf>,
        /// PostgreSQL URL of the metadata store [env: BERTH_METADATA_URL]
        #[arg(long, value_name = "URL")]
        metadata_url: Option<String>,
    },
}

impl RepoCommand {
    /// The `--data-dir`, `--config` and `--metadata-url` given.
    pub fn folder_args(&self) -> (Option<PathBuf>, Option<PathBuf>, Option<String>) {
        match self {
            RepoCommand::Delete {
                data_dir,
                config,
                metadata_url,
                ..
            } => (data_dir.clone(), config.clone(), metadata_url.clone()),
        }
    }
}

/// What a repository delete removed, as the API answers it.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Deleted {
    pub repository: String,
    pub tags: u64,
    pub manifests: u64,
}

/// Why a delete did not happen.
#[derive(Debug, thiserror::Error)]
enum RepoError {
    /// Nothing was changed, and nothing could be: exit 2.
    #[error("{0}")]
    CannotRun(String),
    /// The registry refused or failed: exit 1.
    #[error("{0}")]
    Failed(String),
}

pub fn run(command: RepoCommand, config: &Config, io: IoMode) -> ExitCode {
    let grace = berth_registry::units::format_duration(config.gc.grace);
    let RepoCommand::Delete { name, .. } = command;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("berth repo delete: cannot start runtime: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    match runtime.block_on(delete(&name, config, io)) {
        Ok(deleted) => {
            say!(
                "deleted repository {}: {} tag(s), {} manifest(s)",
                deleted.repository,
                deleted.tags,
                deleted.manifests
            );
            say!(
                "space returns at the next GC pass after the grace period ({grace}): \
                 blobs no other repository uses are removed then"
            );
            ExitCode::SUCCESS
        }
        Err(RepoError::CannotRun(why)) => {
            eprintln!("berth repo delete: {why}");
            ExitCode::from(CANNOT_RUN)
        }
        Err(RepoError::Failed(why)) => {
            eprintln!("berth repo delete: {why}");
            ExitCode::from(FAILED)
        }
    }
}

async fn delete(name: &str, config: &Config, io: IoMode) -> Result<Deleted, RepoError> {
    let name: RepositoryName = name
        .parse()
        .map_err(|e| RepoError::CannotRun(format!("{name:?}: {e}")))?;
    match admin_client::locate_for(config).map_err(|e| RepoError::CannotRun(e.0))? {
        Target::Server(client) => through_server(&client, &name).await,
        Target::Offline(_lock) => {
            let registry = crate::serve::open_registry(config, io)
                .await
                .map_err(|e| RepoError::CannotRun(e.to_string()))?;
            let deleted = registry
                .delete_repository(&name)
                .await
                .map_err(|e| RepoError::Failed(describe(&name, &e)))?;
            Ok(Deleted {
                repository: name.to_string(),
                tags: deleted.tags,
                manifests: deleted.manifests,
            })
        }
    }
}

/// The registry's refusal in the words of this command.
fn describe(name: &RepositoryName, e: &Error) -> String {
    match e {
        Error::NameUnknown(_) => format!("no repository {name}"),
        Error::DeleteDisabled => DELETES_DISABLED.to_string(),
        other => other.to_string(),
    }
}

const DELETES_DISABLED: &str = "deletes are disabled on this registry (delete_enabled = false)";

/// Asks the server holding the folder to delete `name`, over its admin socket.
async fn through_server(client: &AdminClient, name: &RepositoryName) -> Result<Deleted, RepoError> {
    let path = format!("/api/v1/repositories/{name}");
    match client.send(Method::DELETE, &path).await {
        Ok(response) => response
            .json()
            .await
            .map_err(|e| RepoError::Failed(e.to_string())),
        Err(AdminError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
            Err(RepoError::Failed(format!("no repository {name}")))
        }
        Err(AdminError::Status { status, .. }) if status == StatusCode::METHOD_NOT_ALLOWED => {
            Err(RepoError::Failed(DELETES_DISABLED.to_string()))
        }
        Err(e @ AdminError::Status { .. }) => Err(RepoError::Failed(e.to_string())),
        Err(e) => Err(RepoError::CannotRun(e.to_string())),
    }
}

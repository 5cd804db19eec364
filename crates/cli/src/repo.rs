//! `berth repo delete NAME`: deletes a repository whole. When a server
//! holds the data folder, the server does it (through its admin socket, so
//! its caches and the registry it serves stay the one truth); otherwise
//! this process takes the folder's lock and does it itself.

use crate::config::Config;
use berth_oci::RepositoryName;
use berth_registry::{Error, IoMode};
use clap::Subcommand;
use serde::Deserialize;
use std::path::{Path, PathBuf};
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

/// The socket a running server answers admin requests on, in its data folder.
pub const ADMIN_SOCKET: &str = "admin.sock";

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
    },
}

impl RepoCommand {
    /// The `--data-dir` and `--config` given.
    pub fn folder_args(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        match self {
            RepoCommand::Delete {
                data_dir, config, ..
            } => (data_dir.clone(), config.clone()),
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
                "its blobs that no other repository uses are reclaimed by the next GC pass \
                 after the grace period"
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
    let dir = &config.data_dir;
    if !dir.join("meta.db").is_file() {
        return Err(RepoError::CannotRun(format!(
            "{} holds no berth data (no meta.db); give the folder `berth serve` uses \
             (--data-dir or --config)",
            dir.display()
        )));
    }
    if lock_is_held(dir) {
        return through_server(dir, &name).await;
    }
    let opened =
        crate::serve::open_data(config, io).map_err(|e| RepoError::CannotRun(e.to_string()))?;
    let deleted = opened
        .registry
        .delete_repository(&name)
        .await
        .map_err(|e| RepoError::Failed(describe(&name, &e)))?;
    Ok(Deleted {
        repository: name.to_string(),
        tags: deleted.tags,
        manifests: deleted.manifests,
    })
}

/// The registry's refusal in the words of this command.
fn describe(name: &RepositoryName, e: &Error) -> String {
    match e {
        Error::NameUnknown(_) => format!("no repository {name}"),
        Error::DeleteDisabled => {
            "deletes are disabled on this registry (delete_enabled = false)".to_string()
        }
        other => other.to_string(),
    }
}

/// Whether another process (a running `berth serve`) holds the folder's lock.
fn lock_is_held(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join("berth.lock")) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Asks the server holding `dir` to delete `name`, over its admin socket.
async fn through_server(dir: &Path, name: &RepositoryName) -> Result<Deleted, RepoError> {
    let socket = dir.join(ADMIN_SOCKET);
    let path = format!("/api/v1/repositories/{name}");
    let (status, body) = admin_request(&socket, "DELETE", &path).await.map_err(|e| {
        RepoError::CannotRun(format!(
            "a berth server is using {} but its admin socket {} does not answer ({e}); \
                 stop the server, or ask it over HTTP: DELETE {path}",
            dir.display(),
            socket.display()
        ))
    })?;
    if status == 200 {
        return serde_json::from_slice(&body).map_err(|e| {
            RepoError::Failed(format!("the server's answer was not understood: {e}"))
        });
    }
    Err(RepoError::Failed(server_refusal(name, status, &body)))
}

/// The message of an OCI error body, phrased for this command.
fn server_refusal(name: &RepositoryName, status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        code: String,
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(errors) => match errors.errors.first() {
            Some(e) if e.code == "NAME_UNKNOWN" => format!("no repository {name}"),
            Some(e) if e.code == "UNSUPPORTED" && status == 405 => {
                "deletes are disabled on this registry (delete_enabled = false)".to_string()
            }
            Some(e) => format!("the server refused ({status} {}): {}", e.code, e.message),
            None => format!("the server answered {status}"),
        },
        Err(_) => format!("the server answered {status}"),
    }
}

/// One HTTP/1.1 request over the unix socket at `socket`, read to its end
/// (`Connection: close`): the status and the body.
async fn admin_request(socket: &Path, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    parse_response(&answer)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

/// Status and body of a whole HTTP/1.1 response (its body sized by
/// `Content-Length` or chunked).
fn parse_response(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..split]).ok()?;
    let body = &answer[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|line| {
        line.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some((status, body))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_with_either_body_framing() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((200, b"{}".to_vec())));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((404, b"abcde".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn refusals_say_what_to_do() {
        let name: RepositoryName = "team/app".parse().unwrap();
        let unknown = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"x","detail":null}]}"#;
        assert_eq!(
            server_refusal(&name, 404, unknown),
            "no repository team/app"
        );
        let disabled = br#"{"errors":[{"code":"UNSUPPORTED","message":"x","detail":null}]}"#;
        assert!(server_refusal(&name, 405, disabled).contains("delete_enabled"));
    }
}

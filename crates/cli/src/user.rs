//! `berth user add|remove|list`: manages the htpasswd file the server
//! authenticates against. Passwords come from a no-echo prompt (asked twice)
//! or from stdin, never from the command line.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_auth::htpasswd::{self, Htpasswd, HtpasswdError};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user, or set the password of an existing one. The password is
    /// asked twice without echo, or read from stdin with --password-stdin.
    Add {
        /// The user name (no ':', spaces or control characters)
        name: String,
        #[command(flatten)]
        file: FileArgs,
        /// Read the password from stdin (one line) instead of a prompt
        #[arg(long)]
        password_stdin: bool,
        /// bcrypt cost (4-31); each step doubles the time of a check
        #[arg(long, default_value_t = htpasswd::DEFAULT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
    /// Remove a user.
    Remove {
        /// The user name
        name: String,
        #[command(flatten)]
        file: FileArgs,
    },
    /// List the users, one per line.
    List {
        #[command(flatten)]
        file: FileArgs,
    },
}

/// Which htpasswd file: `--htpasswd`, else `<data_dir>/htpasswd`.
#[derive(clap::Args)]
pub struct FileArgs {
    /// The htpasswd file [default: <data-dir>/htpasswd]
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// Folder holding blobs and the metadata database [env: BERTH_DATA_DIR]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file [env: BERTH_CONFIG]
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
enum UserError {
    #[error(transparent)]
    Htpasswd(#[from] HtpasswdError),
    #[error("reading the password: {0}")]
    Read(std::io::Error),
    #[error("the passwords do not match")]
    Mismatch,
    #[error("empty password")]
    Empty,
    #[error("no terminal to ask for the password: use --password-stdin")]
    NoTerminal,
    #[error("{file}: no user {name:?}")]
    NoSuchUser { file: String, name: String },
}

/// Runs a user command against `file`.
pub fn run(command: UserCommand, file: &Path) -> ExitCode {
    let result = match command {
        UserCommand::Add {
            name,
            password_stdin,
            cost,
            ..
        } => add(file, &name, password_stdin, cost),
        UserCommand::Remove { name, .. } => remove(file, &name),
        UserCommand::List { .. } => list(file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth user: {e}");
            ExitCode::FAILURE
        }
    }
}

impl UserCommand {
    pub fn file_args(&self) -> &FileArgs {
        match self {
            UserCommand::Add { file, .. }
            | UserCommand::Remove { file, .. }
            | UserCommand::List { file } => file,
        }
    }
}

fn add(file: &Path, name: &str, password_stdin: bool, cost: u32) -> Result<(), UserError> {
    if !htpasswd::valid_user(name) {
        return Err(HtpasswdError::InvalidUser(name.to_string()).into());
    }
    // Read (and validate) the file before asking, so a bad file fails first.
    let mut users = Htpasswd::load_or_empty(file)?;
    let password = if password_stdin {
        password_from(std::io::stdin().lock())?
    } else {
        password_from_prompt()?
    };
    let existed = users.contains(name);
    users.set_password(name, &password, cost)?;
    // The default file lives in the data folder, which may not exist yet.
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| HtpasswdError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    users.write_atomic(file)?;
    let verb = if existed {
        "changed the password of"
    } else {
        "added"
    };
    eprintln!("{verb} {name} in {}", file.display());
    Ok(())
}

/// One line: the trailing newline (and a CR before it) is not part of it.
fn password_from(mut input: impl BufRead) -> Result<String, UserError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(UserError::Read)?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        return Err(UserError::Empty);
    }
    Ok(password.to_string())
}

fn password_from_prompt() -> Result<String, UserError> {
    if !std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
        return Err(UserError::NoTerminal);
    }
    let first = rpassword::prompt_password("Password: ").map_err(UserError::Read)?;
    if first.is_empty() {
        return Err(UserError::Empty);
    }
    let second = rpassword::prompt_password("Repeat the password: ").map_err(UserError::Read)?;
    if first != second {
        return Err(UserError::Mismatch);
    }
    Ok(first)
}

fn remove(file: &Path, name: &str) -> Result<(), UserError> {
    let mut users = Htpasswd::load(file)?;
    if !users.remove(name) {
        return Err(UserError::NoSuchUser {
            file: file.display().to_string(),
            name: name.to_string(),
        });
    }
    users.write_atomic(file)?;
    eprintln!("removed {name} from {}", file.display());
    Ok(())
}

fn list(file: &Path) -> Result<(), UserError> {
    for user in Htpasswd::load_or_empty(file)?.users() {
        println!("{user}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stdin_password_is_one_line_without_its_newline() {
        assert_eq!(password_from(&b"s3cret pw\n"[..]).unwrap(), "s3cret pw");
        assert_eq!(password_from(&b"pw\r\nmore\n"[..]).unwrap(), "pw");
        assert_eq!(password_from(&b"no newline"[..]).unwrap(), "no newline");
        assert!(matches!(password_from(&b"\n"[..]), Err(UserError::Empty)));
        assert!(matches!(password_from(&b""[..]), Err(UserError::Empty)));
    }
}

//! The htpasswd file: `user:$2y$...` lines (bcrypt only, as `htpasswd -B`
//! writes them), re-read when it changes, written atomically.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// bcrypt cost for new hashes, as `htpasswd -B` would use with `-C 12`.
pub const DEFAULT_COST: u32 = 12;

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: no ':' between user and hash")]
    NoSeparator { line: usize },
    #[error("line {line}: empty user name")]
    EmptyUser { line: usize },
    #[error("line {line}: user {user:?} appears twice")]
    DuplicateUser { line: usize, user: String },
    #[error("line {line}: user {user:?} has a hash berth does not accept: only bcrypt ($2y$, $2a$, $2b$; `htpasswd -B`)")]
    UnsupportedHash { line: usize, user: String },
    #[error("invalid user name {0:?}: it must be non-empty, without ':' or whitespace")]
    InvalidUser(String),
    #[error("bcrypt: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
}

/// The parsed contents: users in file order with their bcrypt hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Htpasswd {
    entries: Vec<(String, String)>,
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60
}

/// A user name that fits one htpasswd line.
pub fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(':')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Htpasswd {
    /// Parses the file's text. Blank lines and `#` comments are skipped; any
    /// non-bcrypt hash is an error naming its line, never silently ignored.
    pub fn parse(text: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut entries: Vec<(String, String)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (user, hash) = trimmed
                .split_once(':')
                .ok_or(HtpasswdError::NoSeparator { line })?;
            if user.is_empty() {
                return Err(HtpasswdError::EmptyUser { line });
            }
            if !is_bcrypt(hash) {
                return Err(HtpasswdError::UnsupportedHash {
                    line,
                    user: user.to_string(),
                });
            }
            if entries.iter().any(|(u, _)| u == user) {
                return Err(HtpasswdError::DuplicateUser {
                    line,
                    user: user.to_string(),
                });
            }
            entries.push((user.to_string(), hash.to_string()));
        }
        Ok(Htpasswd { entries })
    }

    /// The file's text: one `user:hash` line per user.
    pub fn render(&self) -> String {
        self.entries
            .iter()
            .map(|(u, h)| format!("{u}:{h}\n"))
            .collect()
    }

    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(u, _)| u.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.hash_of(user).is_some()
    }

    /// The bcrypt hash on the user's line.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, h)| h.as_str())
    }

    /// Runs bcrypt: false for an unknown user or a wrong password.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.hash_of(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }

    /// Adds the user or replaces their password; hashes as `$2y$` like Apache's tool.
    pub fn set_password(
        &mut self,
        user: &str,
        password: &str,
        cost: u32,
    ) -> Result<(), HtpasswdError> {
        if !valid_user(user) {
            return Err(HtpasswdError::InvalidUser(user.to_string()));
        }
        let hash =
            bcrypt::hash_with_result(password, cost)?.format_for_version(bcrypt::Version::TwoY);
        match self.entries.iter_mut().find(|(u, _)| u == user) {
            Some(entry) => entry.1 = hash,
            None => self.entries.push((user.to_string(), hash)),
        }
        Ok(())
    }

    /// Removes the user; false if they were not there.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(u, _)| u != user);
        self.entries.len() != before
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let text = fs::read_to_string(path).map_err(|source| HtpasswdError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Htpasswd::parse(&text)
    }

    /// Reads a file, or an empty set when it does not exist yet (for `berth user add`).
    pub fn load_or_empty(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Htpasswd::default()),
            _ => Htpasswd::load(path),
        }
    }

    /// Writes the file atomically (temp file in the same folder, fsync,
    /// rename), mode 0600, so a reader never sees half a file.
    pub fn write_atomic(&self, path: &Path) -> Result<(), HtpasswdError> {
        let io = |source| HtpasswdError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(self.render().as_bytes())?;
            file.sync_all()?;
            fs::rename(&temp, path)?;
            fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map_err(io)
    }
}

/// What identifies one version of the file: a change in any of these
/// makes it re-read. Nanosecond times catch edits within one second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            inode: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

struct Loaded {
    /// The stamp last looked at (even if that version failed to parse, so
    /// the error is logged once per change, not per request).
    stamp: Option<Stamp>,
    contents: Arc<Htpasswd>,
}

/// The htpasswd file as the server sees it: stat on every lookup, re-read
/// when it changed; a version that fails to parse keeps the last good one.
pub struct HtpasswdFile {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

impl HtpasswdFile {
    /// Loads the file; it must exist and parse.
    pub fn open(path: &Path) -> Result<HtpasswdFile, HtpasswdError> {
        let io = |source| HtpasswdError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::metadata(path).map_err(io)?;
        let contents = Htpasswd::load(path)?;
        Ok(HtpasswdFile {
            path: path.to_path_buf(),
            loaded: RwLock::new(Loaded {
                stamp: Some(Stamp::of(&meta)),
                contents: Arc::new(contents),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current contents, re-read first if the file changed.
    pub fn current(&self) -> Arc<Htpasswd> {
        let stamp = fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        if let Ok(loaded) = self.loaded.read() {
            if loaded.stamp == stamp {
                return Arc::clone(&loaded.contents);
            }
        }
        let mut loaded = match self.loaded.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if loaded.stamp != stamp {
            loaded.stamp = stamp;
            match (stamp, Htpasswd::load(&self.path)) {
                (Some(_), Ok(contents)) => {
                    tracing::info!(path = %self.path.display(), users = contents.len(), "htpasswd file re-read");
                    loaded.contents = Arc::new(contents);
                }
                (None, _) => tracing::error!(
                    path = %self.path.display(),
                    "htpasswd file is gone; keeping the last good contents"
                ),
                (Some(_), Err(error)) => tracing::error!(
                    path = %self.path.display(),
                    %error,
                    "htpasswd file does not parse; keeping the last good contents"
                ),
            }
        }
        Arc::clone(&loaded.contents)
    }
}

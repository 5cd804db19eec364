//! The htpasswd file: `user:$2y$...` lines (bcrypt only, as `htpasswd -B`
//! writes them), re-read when it changes, written atomically.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// bcrypt reads 72 bytes of key: the password and its terminating NUL.
pub const MAX_PASSWORD_BYTES: usize = 71;

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
    #[error("password longer than {MAX_PASSWORD_BYTES} bytes: bcrypt would ignore the rest")]
    PasswordTooLong,
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

    /// Adds the user or replaces their password; hashes as `$2y$` like Apache's
    /// tool. Longer passwords than bcrypt reads are refused, not cut short.
    pub fn set_password(
        &mut self,
        user: &str,
        password: &str,
        cost: u32,
    ) -> Result<(), HtpasswdError> {
        if !valid_user(user) {
            return Err(HtpasswdError::InvalidUser(user.to_string()));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(HtpasswdError::PasswordTooLong);
        }
        let hash = bcrypt::non_truncating_hash_with_result(password, cost)?
            .format_for_version(bcrypt::Version::TwoY);
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
    /// rename), mode 0600, so a reader never sees half a file. A file that
    /// existed keeps its owner when we may set it, so `sudo berth user add`
    /// does not leave the server unable to read its own file.
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
        let owner = fs::metadata(path).ok().map(|m| (m.uid(), m.gid()));
        let _ = fs::remove_file(&temp);
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            if let Some((uid, gid)) = owner {
                // Only root may give a file away; others keep their own.
                let _ = std::os::unix::fs::fchown(&file, Some(uid), Some(gid));
            }
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
/// makes it re-read. Nanosecond times catch most edits within one second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// File times tick coarsely (a few ms); a file changed this recently may
/// change again without its stamp changing, so it is re-read until older.
const RACY: Duration = Duration::from_secs(2);

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

/// True while `meta`'s change time is too recent to trust the stamp.
fn is_racy(meta: &fs::Metadata) -> bool {
    let changed = [meta.modified().ok(), Some(ctime_of(meta))]
        .into_iter()
        .flatten()
        .max();
    changed.is_some_and(|t| {
        SystemTime::now()
            .duration_since(t)
            .map_or(true, |age| age < RACY)
    })
}

fn ctime_of(meta: &fs::Metadata) -> SystemTime {
    let secs = u64::try_from(meta.ctime()).unwrap_or(0);
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

struct Loaded {
    /// The stamp last looked at (even if that version failed to parse, so
    /// the error is logged once per change, not per request).
    stamp: Option<Stamp>,
    /// The stamp was too fresh to trust: read again on the next lookup.
    racy: bool,
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
                racy: is_racy(&meta),
                contents: Arc::new(contents),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current contents, re-read first if the file changed.
    pub fn current(&self) -> Arc<Htpasswd> {
        let meta = fs::metadata(&self.path).ok();
        let stamp = meta.as_ref().map(Stamp::of);
        if let Ok(loaded) = self.loaded.read() {
            if loaded.stamp == stamp && !loaded.racy {
                return Arc::clone(&loaded.contents);
            }
        }
        let mut loaded = match self.loaded.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if loaded.stamp == stamp && !loaded.racy {
            return Arc::clone(&loaded.contents);
        }
        let changed = loaded.stamp != stamp;
        loaded.stamp = stamp;
        loaded.racy = meta.as_ref().is_some_and(is_racy);
        match (meta, Htpasswd::load(&self.path)) {
            (Some(_), Ok(contents)) if *loaded.contents != contents => {
                tracing::info!(path = %self.path.display(), users = contents.len(), "htpasswd file re-read");
                loaded.contents = Arc::new(contents);
            }
            (None, _) if changed => tracing::error!(
                path = %self.path.display(),
                "htpasswd file is gone; keeping the last good contents"
            ),
            (Some(_), Err(error)) if changed => tracing::error!(
                path = %self.path.display(),
                %error,
                "htpasswd file does not parse; keeping the last good contents"
            ),
            _ => {}
        }
        Arc::clone(&loaded.contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by Apache's `htpasswd -nbB -C 4 alice 's3cret pw'` (and -C 5 for bob).
    const ALICE: &str = "alice:$2y$04$5NI7LcRsnsVVs34w5CpboeMHGtn07.ssQm121h/7XmK0A3K9n0682";
    const BOB: &str = "bob:$2y$05$r8601WKbzglhe9zjZu6eNe3GnoKhuZTCRShQFSM6tjgkS6gDjNY4.";

    #[test]
    fn apache_bcrypt_lines_verify_with_comments_and_blank_lines() {
        let text = format!("# team\n\n{ALICE}\n   \n{BOB}\n");
        let file = Htpasswd::parse(&text).unwrap();
        assert_eq!(file.users().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(file.verify("alice", "s3cret pw"));
        assert!(file.verify("bob", "hunter2"));
        assert!(!file.verify("alice", "hunter2"));
        assert!(!file.verify("carol", "s3cret pw"));
    }

    #[test]
    fn all_bcrypt_prefixes_are_accepted() {
        let hash = bcrypt::hash_with_result("pw", 4).unwrap();
        for version in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let line = format!("u:{}", hash.format_for_version(version));
            let file = Htpasswd::parse(&line).unwrap();
            assert!(file.verify("u", "pw"), "{line}");
        }
    }

    #[test]
    fn other_hash_schemes_are_refused_naming_the_line() {
        for (line, bad) in [
            ("carol:$apr1$8wAYurVA$YDjjFQ9HgtnxdgibZGHP00", "carol"),
            ("dave:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=", "dave"),
            ("erin:plaintext", "erin"),
            ("frank:$2y$04$tooshort", "frank"),
        ] {
            let text = format!("{ALICE}\n# comment\n{line}\n");
            let error = Htpasswd::parse(&text).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("line 3"), "{message}");
            assert!(message.contains(bad), "{message}");
            assert!(matches!(
                error,
                HtpasswdError::UnsupportedHash { line: 3, .. }
            ));
        }
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert!(matches!(
            Htpasswd::parse("nocolon"),
            Err(HtpasswdError::NoSeparator { line: 1 })
        ));
        assert!(matches!(
            Htpasswd::parse(&format!(
                "{ALICE}\n:$2y$04$5NI7LcRsnsVVs34w5CpboeMHGtn07.ssQm121h/7XmK0A3K9n0682"
            )),
            Err(HtpasswdError::EmptyUser { line: 2 })
        ));
        assert!(matches!(
            Htpasswd::parse(&format!("{ALICE}\n{ALICE}")),
            Err(HtpasswdError::DuplicateUser { line: 2, .. })
        ));
    }

    #[test]
    fn set_password_adds_replaces_and_remove_removes() {
        let mut file = Htpasswd::parse(ALICE).unwrap();
        file.set_password("bob", "one", 4).unwrap();
        assert!(file.verify("bob", "one"));
        assert!(file.hash_of("bob").unwrap().starts_with("$2y$04$"));
        file.set_password("alice", "two", 4).unwrap();
        assert!(file.verify("alice", "two"));
        assert!(!file.verify("alice", "s3cret pw"));
        assert_eq!(file.users().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(file.remove("alice"));
        assert!(!file.remove("alice"));
        assert_eq!(file.users().collect::<Vec<_>>(), ["bob"]);
        assert!(matches!(
            file.set_password("bob", &"x".repeat(72), 4),
            Err(HtpasswdError::PasswordTooLong)
        ));
        file.set_password("carol", &"x".repeat(71), 4).unwrap();
        assert!(file.remove("carol"));
        let reparsed = Htpasswd::parse(&file.render()).unwrap();
        assert_eq!(reparsed, file);
        for bad in ["", "a:b", "a b", "a\nb"] {
            assert!(matches!(
                file.set_password(bad, "x", 4),
                Err(HtpasswdError::InvalidUser(_))
            ));
        }
    }

    #[test]
    fn write_atomic_is_mode_0600_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let mut file = Htpasswd::default();
        file.set_password("alice", "pw", 4).unwrap();
        file.write_atomic(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Htpasswd::load(&path).unwrap(), file);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["htpasswd"]);
        assert_eq!(
            Htpasswd::load_or_empty(&dir.path().join("missing")).unwrap(),
            Htpasswd::default()
        );
    }

    #[test]
    fn a_rewrite_keeps_the_files_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        fs::write(&path, format!("{ALICE}\n")).unwrap();
        let before = fs::metadata(&path).unwrap();
        // As root, hand the file to the uid berth's image runs as first.
        let owner = if before.uid() == 0 {
            std::os::unix::fs::chown(&path, Some(65532), Some(65532)).unwrap();
            (65532, 65532)
        } else {
            (before.uid(), before.gid())
        };
        let mut file = Htpasswd::load(&path).unwrap();
        file.set_password("bob", "pw", 4).unwrap();
        file.write_atomic(&path).unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!((after.uid(), after.gid()), owner);
        assert!(Htpasswd::load(&path).unwrap().contains("bob"));
    }

    #[test]
    fn file_is_reread_when_it_changes_even_in_place_with_the_same_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let mut changed = Htpasswd::default();
        changed.set_password("alice", "new pw", 4).unwrap();
        let text = changed.render();
        assert_eq!(text.len(), ALICE.len() + 1);
        fs::write(&path, format!("{ALICE}\n")).unwrap();
        let file = HtpasswdFile::open(&path).unwrap();
        assert!(file.current().verify("alice", "s3cret pw"));
        // Same size, same inode, within one tick of the file clock: the
        // stamp alone cannot tell, the fresh-file re-read must.
        fs::write(&path, &text).unwrap();
        assert!(!file.current().verify("alice", "s3cret pw"));
        assert!(file.current().verify("alice", "new pw"));
        // Replaced by rename (as `berth user` writes): a new inode.
        Htpasswd::parse(BOB).unwrap().write_atomic(&path).unwrap();
        assert!(!file.current().contains("alice"));
    }

    #[test]
    fn a_reload_that_fails_to_parse_keeps_the_last_good_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        fs::write(&path, format!("{ALICE}\n")).unwrap();
        let file = HtpasswdFile::open(&path).unwrap();
        fs::write(&path, "alice:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=\n").unwrap();
        assert!(file.current().verify("alice", "s3cret pw"));
        fs::remove_file(&path).unwrap();
        assert!(file.current().verify("alice", "s3cret pw"));
        fs::write(&path, format!("{BOB}\n")).unwrap();
        assert!(!file.current().contains("alice"));
        assert!(file.current().verify("bob", "hunter2"));
    }

    #[test]
    fn open_refuses_a_missing_or_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        assert!(matches!(
            HtpasswdFile::open(&path),
            Err(HtpasswdError::Io { .. })
        ));
        fs::write(&path, "x:$apr1$8wAYurVA$YDjjFQ9HgtnxdgibZGHP00\n").unwrap();
        assert!(matches!(
            HtpasswdFile::open(&path),
            Err(HtpasswdError::UnsupportedHash { line: 1, .. })
        ));
    }
}

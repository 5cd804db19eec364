//! The user `berth kind up --auth` creates for the cluster's nodes, and the
//! file on the host that keeps its password (0600) so the user can
//! `docker login` and a second `up` reuses it.

use super::spec::Credentials;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("user name {0:?} is not allowed: use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 64)")]
    BadUser(String),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0} is empty: remove it and run berth kind up --auth again for a new password")]
    Empty(PathBuf),
}

/// An htpasswd user name that is also safe in TOML and on a command line.
pub fn check_user(user: &str) -> Result<(), CredentialsError> {
    let ok = user.len() <= 64
        && user
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CredentialsError::BadUser(user.into()))
    }
}

/// `<state>/<registry>-<user>.password`: one per registry container and user,
/// beside the records (which are `*.toml`, so never mistaken for one).
pub fn password_path(state_dir: &Path, registry: &str, user: &str) -> PathBuf {
    state_dir.join(format!("{registry}-{user}.password"))
}

/// 244 random bits (two v4 UUIDs from the OS's generator), as 64 hex digits:
/// nothing in it needs quoting in TOML, htpasswd or a shell.
pub fn new_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The saved credentials for `user`, or new ones saved first (mode 0600).
/// The bool says whether they were made now (`config` tells the user where).
pub fn load_or_create(
    state_dir: &Path,
    registry: &str,
    user: &str,
) -> Result<(Credentials, bool), CredentialsError> {
    check_user(user)?;
    let path = password_path(state_dir, registry, user);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let password = text.trim().to_string();
            if password.is_empty() {
                return Err(CredentialsError::Empty(path));
            }
            let creds = Credentials {
                user: user.into(),
                password,
            };
            Ok((creds, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let creds = Credentials {
                user: user.into(),
                password: new_password(),
            };
            write_private(&path, &format!("{}\n", creds.password))?;
            Ok((creds, true))
        }
        Err(e) => Err(CredentialsError::Read(path, e)),
    }
}

/// Removes the password file; absent is fine.
pub fn forget(state_dir: &Path, registry: &str, user: &str) -> Result<(), CredentialsError> {
    let path = password_path(state_dir, registry, user);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CredentialsError::Write(path, e)),
    }
}

/// Creates `path` readable by its owner only, from the first byte on.
fn write_private(path: &Path, text: &str) -> Result<(), CredentialsError> {
    use std::io::Write;
    let err = |e| CredentialsError::Write(path.to_path_buf(), e);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_made_once_kept_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state dir");
        let (first, new) = load_or_create(&dir, "kind-registry", "kind").unwrap();
        assert!(new);
        assert_eq!(first.user, "kind");
        assert_eq!(first.password.len(), 64);
        assert!(first.password.chars().all(|c| c.is_ascii_hexdigit()));
        let path = dir.join("kind-registry-kind.password");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", first.password)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, new) = load_or_create(&dir, "kind-registry", "kind").unwrap();
        assert!(!new);
        assert_eq!(again, first);
        // Another user gets its own password.
        let (other, new) = load_or_create(&dir, "kind-registry", "ci").unwrap();
        assert!(new);
        assert_ne!(other.password, first.password);
        forget(&dir, "kind-registry", "kind").unwrap();
        assert!(!path.exists());
        forget(&dir, "kind-registry", "kind").unwrap();
    }

    #[test]
    fn user_names_that_would_need_quoting_are_refused() {
        for bad in ["", "a:b", "a b", "-a", "a\"b", "a\nb", &"x".repeat(65)] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
        for good in ["kind", "ci-bot", "A.b_c-1"] {
            assert!(check_user(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn passwords_differ_each_time() {
        assert_ne!(new_password(), new_password());
    }
}

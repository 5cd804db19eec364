//! The config file `berth kind up --mirror` gives the registry container (its
//! `[[upstream]]` tables): kept in the state folder, bind-mounted read-only,
//! removed by `down` with the container.

use std::path::{Path, PathBuf};

/// Where the file is inside the container (`BERTH_CONFIG` points there).
pub const IN_CONTAINER: &str = "/etc/berth/kind.toml";

#[derive(Debug, thiserror::Error)]
pub enum BerthConfigError {
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// `<state>/<registry>.d/berth.toml`: in a folder of its own, since every
/// `*.toml` directly in the state folder is read as a cluster record.
pub fn path(state_dir: &Path, registry: &str) -> PathBuf {
    state_dir.join(format!("{registry}.d")).join("berth.toml")
}

/// Writes `text` in place (a bind mount of a file follows its inode, so a
/// rename would leave the container with the old one), readable by the
/// container's user: it holds no secret.
pub fn write(path: &Path, text: &str) -> Result<(), BerthConfigError> {
    let err = |e| BerthConfigError::Write(path.to_path_buf(), e);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, text).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(err)?;
    }
    Ok(())
}

/// Removes the file and its folder; absent is fine.
pub fn forget(path: &Path) -> Result<(), BerthConfigError> {
    let err = |e| BerthConfigError::Write(path.to_path_buf(), e);
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(parent) = path.parent() {
        // Only when empty: anything else in it is not ours to remove.
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_lives_beside_the_records_without_being_one_and_goes_with_forget() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state dir");
        let p = path(&dir, "kind-registry");
        assert_eq!(p, dir.join("kind-registry.d/berth.toml"));
        write(&p, "[[upstream]]\nname = \"docker.io\"\n").unwrap();
        write(&p, "[[upstream]]\nname = \"ghcr.io\"\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "[[upstream]]\nname = \"ghcr.io\"\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        // Records in the same folder are still read without tripping on it.
        assert_eq!(
            super::super::record::other_users(&dir, "kind", "kind-registry").unwrap(),
            Vec::<String>::new()
        );
        forget(&p).unwrap();
        assert!(!p.exists() && !p.parent().unwrap().exists());
        forget(&p).unwrap();
    }
}

//! Start-up checks on the data folder shared by `serve` and
//! `import-distribution`: that berth can write it, that it holds no
//! registry:2 data berth has not imported, and the lock that keeps a
//! second process out.

use berth_registry::import::DistributionTree;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Written into the data folder after `import-distribution` ran, so that a
/// registry:2 tree left beside berth's data no longer stops `serve`.
pub const IMPORTED_MARKER: &str = "imported-from-distribution";

/// A reason not to start, for the user to act on; exits with code 2.
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Takes `berth.lock` in `dir` for as long as the file is held: the SQLite
/// metadata and the manifest cache assume one process owns the folder.
pub fn lock(dir: &Path) -> Result<File, Box<dyn std::error::Error>> {
    let file = File::create(dir.join("berth.lock"))?;
    file.try_lock().map_err(|_| {
        Refused(format!(
            "{} is in use by another berth process; stop it first",
            dir.display()
        ))
    })?;
    Ok(file)
}

/// Who holds a data folder's lock.
pub enum Holder {
    /// Nobody did: this process does now, for as long as the file lives.
    Us(File),
    /// Another process: a running server.
    Another,
}

/// Takes `berth.lock` in `dir` if it is free; says so when another process
/// (a server) holds it, so that a command can ask that server instead.
pub fn try_lock(dir: &Path) -> std::io::Result<Holder> {
    let file = File::create(dir.join("berth.lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(Holder::Us(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Holder::Another),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Refuses a data folder (or, when it does not exist yet, the folder it
/// would be created in) that this process cannot write, saying who owns
/// it and how to fix that: a non-root container on a root-owned volume is
/// the usual case, and failing later on the first push helps nobody.
pub fn check_writable(dir: &Path) -> Result<(), Refused> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if dir.exists() {
        paths.push(dir.to_path_buf());
        for entry in ["meta.db", "meta.db-wal", "blobs", "uploads", "berth.lock"] {
            let path = dir.join(entry);
            if path.exists() {
                paths.push(path);
            }
        }
    } else if let Some(parent) = dir.ancestors().skip(1).find(|p| p.exists()) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        paths.push(parent.to_path_buf());
    }
    for path in paths {
        if let Err(errno) = writable(&path) {
            return Err(Refused(explain(dir, &path, errno)));
        }
    }
    Ok(())
}

/// Whether this process (its effective ids) may change `path`; folders must
/// also be searchable.
fn writable(path: &Path) -> rustix::io::Result<()> {
    use rustix::fs::{accessat, Access, AtFlags, CWD};
    let mut wanted = Access::WRITE_OK;
    if path.is_dir() {
        wanted |= Access::EXEC_OK;
    }
    accessat(CWD, path, wanted, AtFlags::EACCESS)
}

fn explain(dir: &Path, path: &Path, errno: rustix::io::Errno) -> String {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    if errno == rustix::io::Errno::ROFS {
        return format!(
            "berth cannot write {}: it is on a read-only filesystem. Give berth a \
             writable data folder (--data-dir, BERTH_DATA_DIR), e.g. a volume mounted \
             without :ro",
            path.display()
        );
    }
    let owner = match std::fs::metadata(path) {
        Ok(m) => format!(
            "is owned by uid {} gid {} with mode {:o}",
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ),
        Err(e) => format!("cannot be inspected ({e})"),
    };
    let target = if dir.exists() { dir } else { path };
    format!(
        "berth cannot write its data folder: {} {owner}, and berth runs as uid {uid} \
         gid {gid} ({errno}). Fix the ownership: `chown -R {uid}:{gid} {}`; with \
         docker, either run the container as the folder's owner (`docker run --user \
         UID:GID ...`) or keep the data in a named volume (`-v berth-data:/var/lib/registry`), \
         which docker creates owned by the image's user",
        path.display(),
        target.display(),
    )
}

/// Refuses to serve a folder holding registry:2 repositories while berth's
/// own metadata has none and no import has run: serving it would look like
/// every image had been lost.
pub fn check_not_unimported_distribution(
    dir: &Path,
    berth_has_repositories: bool,
) -> Result<(), Refused> {
    if berth_has_repositories || dir.join(IMPORTED_MARKER).exists() {
        return Ok(());
    }
    let Ok(tree) = DistributionTree::locate(dir) else {
        return Ok(());
    };
    if !tree.has_repositories() {
        return Ok(());
    }
    Err(Refused(format!(
        "{} holds registry:2 data ({}) that berth has not imported, so berth would \
         serve an empty registry. Import it once, with the same --config or \
         --data-dir as serve (berth must be stopped): `berth import-distribution {} \
         --data-dir {}`; then start berth again",
        dir.display(),
        tree.v2().display(),
        dir.display(),
        dir.display(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unimported_registry2_data_is_refused_and_names_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("docker/registry/v2/repositories/busybox");
        std::fs::create_dir_all(repo.join("_manifests")).unwrap();
        let err = check_not_unimported_distribution(dir.path(), false).unwrap_err();
        assert!(err.0.contains("berth import-distribution"), "{err}");
        // berth has repositories of its own, or an import ran: serve.
        assert!(check_not_unimported_distribution(dir.path(), true).is_ok());
        std::fs::write(dir.path().join(IMPORTED_MARKER), "").unwrap();
        assert!(check_not_unimported_distribution(dir.path(), false).is_ok());
    }

    #[test]
    fn an_empty_registry2_tree_or_none_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_not_unimported_distribution(dir.path(), false).is_ok());
        std::fs::create_dir_all(dir.path().join("docker/registry/v2/repositories")).unwrap();
        assert!(check_not_unimported_distribution(dir.path(), false).is_ok());
    }

    #[test]
    fn a_writable_folder_or_a_missing_one_in_a_writable_parent_passes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_writable(dir.path()).is_ok());
        assert!(check_writable(&dir.path().join("new/deeper")).is_ok());
    }
}

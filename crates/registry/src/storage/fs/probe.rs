//! The readiness check of the filesystem store: both folders are where the
//! store was opened, are folders, and take a new file.

use std::io;
use std::path::Path;

/// Fails, naming the folder, when the store could not work right now.
pub(super) fn check(root: &Path) -> io::Result<()> {
    for name in ["blobs", "uploads"] {
        let dir = root.join(name);
        let about = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
        let meta = std::fs::metadata(&dir).map_err(about)?;
        if !meta.is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a folder",
                dir.display()
            )));
        }
        rustix::fs::access(
            &dir,
            rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        )
        .map_err(|e| about(e.into()))?;
    }
    // Root passes `access` whatever the permissions; creating a file also
    // catches a read-only mount or a folder that refuses entries.
    let probe = root
        .join("uploads")
        .join(format!(".ready-{}", uuid::Uuid::new_v4()));
    std::fs::File::create_new(&probe)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", probe.display())))?;
    std::fs::remove_file(&probe)
}

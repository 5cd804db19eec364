//! The admin socket: a unix socket in the data folder (`admin.sock`, mode
//! 0600) through which the machine's own operator (`berth gc`, `berth repo
//! delete`) reaches a running server without credentials. Who may open the
//! file is who may act: the file's mode is the access check, so requests
//! arriving here carry [`LocalAdmin`] and are granted every right.
//!
//! The socket is created under a temporary name, given its mode, then
//! renamed into place, so it is never reachable with looser permissions.
//! A file left by a server that died is replaced (the caller holds the data
//! folder's lock, so no live server owns it); the socket is removed when
//! the [`AdminSocket`] is dropped, if it is still ours.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};

/// The file name of the socket in the data folder.
pub const FILE_NAME: &str = "admin.sock";

/// Where the socket is made before it is renamed into place; no longer than
/// [`FILE_NAME`], so a path that fits one fits the other.
const TEMPORARY_NAME: &str = "admin.tmp";

/// Longest path a unix socket address holds (`sun_path` is 108 bytes with
/// its terminating NUL on Linux).
pub const MAX_PATH_BYTES: usize = 107;

/// In a request's extensions: it came through the admin socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAdmin;

/// The listening admin socket; removes its file when dropped.
#[derive(Debug)]
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the file we bound: another's file is never removed.
    identity: (u64, u64),
}

impl AdminSocket {
    /// Listens on `path` with mode 0600, replacing a socket a dead server
    /// left there. Refuses a path too long for a socket address, and a path
    /// holding anything but a socket.
    pub fn bind(path: &Path) -> io::Result<AdminSocket> {
        let length = path.as_os_str().len();
        if length > MAX_PATH_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the path is {length} bytes; a unix socket's is at most {MAX_PATH_BYTES}"),
            ));
        }
        let temporary = path.with_file_name(TEMPORARY_NAME);
        remove_stale_socket(&temporary)?;
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(&temporary)?;
        let made = (|| {
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&temporary, path)?;
            std::fs::symlink_metadata(path)
        })();
        let metadata = match made {
            Ok(metadata) => metadata,
            Err(e) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(e);
            }
        };
        Ok(AdminSocket {
            listener,
            path: path.to_path_buf(),
            identity: (metadata.dev(), metadata.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn accept(&self) -> io::Result<UnixStream> {
        self.listener.accept().await.map(|(stream, _)| stream)
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes `path` if it is a socket (a dead server's); leaves nothing else.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_is_private_replaces_a_stale_one_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        // What a killed server leaves: a socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let socket = AdminSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert!(!dir.path().join(TEMPORARY_NAME).exists());
        let client = tokio::spawn({
            let path = path.clone();
            async move { UnixStream::connect(path).await }
        });
        socket.accept().await.unwrap();
        client.await.unwrap().unwrap();
        drop(socket);
        assert!(!path.exists(), "removed when dropped");
    }

    #[tokio::test]
    async fn long_paths_and_other_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("x".repeat(120)).join(FILE_NAME);
        let e = AdminSocket::bind(&long).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("107"), "{e}");
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(AdminSocket::bind(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    }

    #[tokio::test]
    async fn a_socket_replaced_by_another_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let socket = AdminSocket::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let other = AdminSocket::bind(&path).unwrap();
        drop(socket);
        assert!(path.exists(), "the newer socket stays");
        drop(other);
        assert!(!path.exists());
    }
}

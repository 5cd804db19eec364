//! Fills the file listing pages from the registry's layer listings.

use super::view::{FileKind, FileRow, Files, FilesOf, FilesPage, Unreadable};
use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::layers::{EntryKind, LayerEntry};
use berth_registry::{Error, Registry, Result};

/// The files of one layer; a blob that is not a readable tar gives the
/// page its reason instead of files.
pub async fn layer(registry: &Registry, name: RepositoryName, digest: Digest) -> Result<FilesPage> {
    let files = match registry.layer_files(&name, &digest).await {
        Ok(listing) => Ok(Files {
            rows: listing.entries.iter().map(|e| file_row(e, None)).collect(),
            truncated: listing.truncated,
        }),
        Err(Error::Layer { reason, .. }) => Err(Unreadable(reason.to_string())),
        Err(e) => return Err(e),
    };
    Ok(FilesPage {
        name,
        subject: FilesOf::Layer(digest),
        files,
    })
}

/// The merged tree of an image; an index, or a layer that cannot be read,
/// gives the page its reason instead of files.
pub async fn image_files(
    registry: &Registry,
    name: RepositoryName,
    reference: Reference,
) -> Result<FilesPage> {
    let files = match registry.image_files(&name, &reference).await {
        Ok(tree) => Ok(Files {
            rows: tree
                .entries
                .iter()
                .map(|e| file_row(&e.entry, Some(e.layer)))
                .collect(),
            truncated: tree.truncated,
        }),
        Err(e @ (Error::Layer { .. } | Error::IndexHasNoFiles { .. })) => {
            Err(Unreadable(e.to_string()))
        }
        Err(e) => return Err(e),
    };
    Ok(FilesPage {
        name,
        subject: FilesOf::Image(reference),
        files,
    })
}

fn file_row(entry: &LayerEntry, layer: Option<usize>) -> FileRow {
    let kind = match entry.kind {
        EntryKind::File => FileKind::File,
        EntryKind::Dir => FileKind::Directory,
        EntryKind::Symlink => FileKind::Symlink,
        EntryKind::Hardlink => FileKind::Hardlink,
        EntryKind::Whiteout => FileKind::Deleted,
        EntryKind::OpaqueWhiteout => FileKind::Opaque,
        EntryKind::Other(_) => FileKind::Other,
    };
    FileRow {
        path: format!("/{}", entry.path),
        kind,
        size: entry.size,
        mode: entry.mode,
        link_target: entry.link_target.clone(),
        layer,
    }
}

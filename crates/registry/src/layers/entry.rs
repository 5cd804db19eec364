//! One line of a layer listing, and how a tar member's name becomes one.

use serde::Serialize;

/// Prefix of an AUFS-style whiteout: `dir/.wh.NAME` deletes `dir/NAME`.
const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of an opaque whiteout: every lower-layer entry in its folder is hidden.
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// Prefix of AUFS's own metadata, which also starts like a whiteout.
const AUFS_META_PREFIX: &str = ".wh..wh.";

/// What a layer does at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "typeflag")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A hard link to `link_target`, a path in the same layer.
    Hardlink,
    /// Deletes the path (and everything under it) from lower layers.
    Whiteout,
    /// Hides everything lower layers put in this folder.
    OpaqueWhiteout,
    /// Devices, FIFOs and other tar types, with their typeflag.
    Other(char),
}

/// A file, folder, link or deletion in one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerEntry {
    /// Relative to the image root, without a leading `./` or `/` or a
    /// trailing `/`; for whiteouts, the path deleted. The root is `""`.
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Bytes of content (the logical size for sparse files); 0 if none.
    pub size: u64,
    /// Permission bits and setuid/setgid/sticky, without the file type.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the Unix epoch.
    pub mtime: u64,
    /// Target of a symbolic or hard link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// `./a//b/./c/` → `a/b/c`; `/` and `./` → `""`.
pub fn normalize_path(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for part in raw.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(part);
    }
    out
}

/// AUFS bookkeeping (`.wh..wh.plnk/`, `.wh..wh.aufs`): not files of the
/// image, so runtimes skip them when applying a layer, and so does a listing.
pub(super) fn is_aufs_metadata(path: &str) -> bool {
    path.split('/')
        .any(|part| part.starts_with(AUFS_META_PREFIX) && part != OPAQUE_WHITEOUT)
}

/// Splits a whiteout marker into what it deletes: `Some((kind, path))`
/// for `.wh.` names (the path already normalised), `None` otherwise.
pub(super) fn whiteout_of(path: &str) -> Option<(EntryKind, String)> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    };
    if name == OPAQUE_WHITEOUT {
        return Some((EntryKind::OpaqueWhiteout, dir.to_string()));
    }
    let deleted = name.strip_prefix(WHITEOUT_PREFIX)?;
    if deleted.is_empty() {
        return None;
    }
    let path = if dir.is_empty() {
        deleted.to_string()
    } else {
        format!("{dir}/{deleted}")
    };
    Some((EntryKind::Whiteout, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_dot_and_slash_prefixes_and_empty_parts() {
        assert_eq!(normalize_path("./usr/bin/"), "usr/bin");
        assert_eq!(normalize_path("/etc//passwd"), "etc/passwd");
        assert_eq!(normalize_path("a/./b"), "a/b");
        assert_eq!(normalize_path("./"), "");
        assert_eq!(normalize_path("/"), "");
    }

    #[test]
    fn whiteouts_name_what_they_delete() {
        assert_eq!(
            whiteout_of("etc/.wh.motd"),
            Some((EntryKind::Whiteout, "etc/motd".into()))
        );
        assert_eq!(
            whiteout_of(".wh.tmp"),
            Some((EntryKind::Whiteout, "tmp".into()))
        );
        assert_eq!(
            whiteout_of("var/cache/.wh..wh..opq"),
            Some((EntryKind::OpaqueWhiteout, "var/cache".into()))
        );
        assert_eq!(
            whiteout_of(".wh..wh..opq"),
            Some((EntryKind::OpaqueWhiteout, String::new()))
        );
        assert_eq!(whiteout_of("etc/motd.wh.x"), None);
        assert_eq!(whiteout_of("etc/.wh."), None);
    }

    #[test]
    fn aufs_metadata_is_told_from_whiteouts() {
        assert!(is_aufs_metadata(".wh..wh.plnk"));
        assert!(is_aufs_metadata(".wh..wh.plnk/1234.5678"));
        assert!(is_aufs_metadata(".wh..wh.aufs"));
        assert!(!is_aufs_metadata("var/.wh..wh..opq"));
        assert!(!is_aufs_metadata("etc/.wh.motd"));
    }
}

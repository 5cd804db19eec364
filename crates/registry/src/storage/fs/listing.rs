//! Listing stored blobs in digest order, a page at a time, by walking
//! `blobs/<alg>/<ab>/<hex>` in sorted order and skipping what precedes the
//! cursor without reading it.

use crate::storage::StoredBlob;
use berth_oci::Digest;
use std::io;
use std::path::Path;

/// Names of the entries of `dir`, sorted; an absent folder has none.
fn sorted_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    for entry in entries {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Up to `limit` blobs under `root` (the `blobs` folder) after `after`.
/// Files whose names are not a digest of their folder are not blobs and are
/// left out.
pub(super) fn list(
    root: &Path,
    after: Option<&Digest>,
    limit: usize,
) -> io::Result<Vec<StoredBlob>> {
    let mut found = Vec::new();
    for alg in sorted_names(root)? {
        if after.is_some_and(|a| alg.as_str() < a.algorithm().as_str()) {
            continue;
        }
        for fan in sorted_names(&root.join(&alg))? {
            let same_alg = after.filter(|a| a.algorithm().as_str() == alg);
            if same_alg.is_some_and(|a| fan.as_str() < &a.hex()[..2]) {
                continue;
            }
            let dir = root.join(&alg).join(&fan);
            for hex in sorted_names(&dir)? {
                let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
                    continue;
                };
                if !hex.starts_with(&fan) || after.is_some_and(|a| &digest <= a) {
                    continue;
                }
                // Gone since the folder was read: a concurrent delete.
                let meta = match std::fs::metadata(dir.join(&hex)) {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                found.push(StoredBlob {
                    digest,
                    size: meta.len(),
                    modified: meta.modified()?,
                });
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
    }
    Ok(found)
}

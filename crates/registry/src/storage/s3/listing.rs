//! Listing what an S3 store holds: blobs by digest, uploads by age.

use super::{storage, S3BlobStore};
use crate::error::Result;
use crate::storage::StoredBlob;
use berth_oci::Digest;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

impl S3BlobStore {
    /// Up to `limit` blobs after `after`, by digest. Keys sort as digests
    /// do (`blobs/<alg>/<ab>/<hex>`, `ab` a prefix of `hex`), so the bucket's
    /// own listing order is digest order and a page starts after a key.
    pub(super) async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredBlob>> {
        let prefix = self.blobs_prefix();
        let listing = match after {
            Some(digest) => self
                .client
                .list_with_offset(Some(&prefix), &self.blob_path(digest)),
            None => self.client.list(Some(&prefix)),
        };
        let mut blobs = Vec::new();
        let mut listing = listing.map_err(storage);
        while blobs.len() < limit {
            let Some(meta) = listing.next().await.transpose()? else {
                break;
            };
            if let Some(digest) = digest_of(&meta.location) {
                blobs.push(StoredBlob {
                    digest,
                    size: meta.size,
                    modified: meta.last_modified.into(),
                });
            }
        }
        Ok(blobs)
    }

    /// Ids of uploads whose newest object is older than `age`.
    pub(super) async fn old_uploads(&self, age: Duration) -> Result<Vec<String>> {
        let prefix = self.uploads_prefix();
        let depth = prefix.parts().count();
        let mut newest: BTreeMap<String, SystemTime> = BTreeMap::new();
        let mut listing = self.client.list(Some(&prefix)).map_err(storage);
        while let Some(meta) = listing.next().await.transpose()? {
            let Some(id) = meta.location.parts().nth(depth) else {
                continue;
            };
            let modified: SystemTime = meta.last_modified.into();
            let entry = newest
                .entry(id.as_ref().to_string())
                .or_insert(SystemTime::UNIX_EPOCH);
            *entry = (*entry).max(modified);
        }
        let now = SystemTime::now();
        Ok(newest
            .into_iter()
            .filter(|(_, modified)| now.duration_since(*modified).unwrap_or_default() > age)
            .map(|(id, _)| id)
            .collect())
    }
}

/// The digest a `…/blobs/<alg>/<ab>/<hex>` key holds; None for any other key.
fn digest_of(path: &Path) -> Option<Digest> {
    let parts: Vec<_> = path.parts().collect();
    let [.., alg, ab, hex] = parts.as_slice() else {
        return None;
    };
    let digest: Digest = format!("{}:{}", alg.as_ref(), hex.as_ref()).parse().ok()?;
    (digest.hex().get(..2) == Some(ab.as_ref())).then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blob_keys_name_digests() {
        let digest = Digest::sha256_of(b"x");
        let hex = digest.hex();
        let key = Path::from(format!("root/blobs/sha256/{}/{hex}", &hex[..2]));
        assert_eq!(digest_of(&key), Some(digest.clone()));
        let misplaced = Path::from(format!("root/blobs/sha256/zz/{hex}"));
        assert_eq!(digest_of(&misplaced), None);
        assert_eq!(digest_of(&Path::from("root/blobs/sha256/ab/nothex")), None);
    }
}

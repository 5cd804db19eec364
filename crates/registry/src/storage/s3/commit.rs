//! Committing and deleting S3 uploads.
//!
//! Without a whole part the upload is one plain PUT of its tails (also for
//! zero bytes: never a multipart upload without parts). With parts, the
//! tails become the last part, the multipart upload completes at the
//! upload's `data` key with the ETags the state recorded, and `data` is
//! copied to the blob's key.

use super::state::UploadRecord;
use super::{storage, S3BlobStore};
use crate::error::{Error, Result};
use berth_oci::Digest;
use futures_util::TryStreamExt;
use md5::{Digest as _, Md5};
use object_store::multipart::{MultipartStore, PartId};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

impl S3BlobStore {
    /// Makes upload `id` readable under `digest` and removes its objects.
    pub(super) async fn commit(&self, id: &str, state: &[u8], digest: &Digest) -> Result<()> {
        let state = UploadRecord::decode(state)?;
        self.require_upload(id).await?;
        let dest = self.blob_path(digest);
        match &state.multipart {
            Some(multipart) if !state.parts.is_empty() => {
                self.complete(id, multipart, &state).await?;
                self.client
                    .copy(&self.data_path(id), &dest)
                    .await
                    .map_err(storage)?;
            }
            _ => {
                let pieces = self.read_tails(id, &state.tails).await?;
                self.client
                    .put(&dest, PutPayload::from_iter(pieces))
                    .await
                    .map_err(storage)?;
            }
        }
        // The blob is published: leftovers are swept with old uploads.
        if let Err(e) = self.remove_upload(id, Some(&state)).await {
            tracing::warn!(upload = id, error = %e, "s3: upload objects left after commit");
        }
        Ok(())
    }

    /// Sends the tails as the last part, completes the multipart upload with
    /// the recorded ETags and checks that the result is what was recorded.
    async fn complete(&self, id: &str, multipart: &String, state: &UploadRecord) -> Result<()> {
        let data = self.data_path(id);
        let mut parts: Vec<PartId> = state
            .parts
            .iter()
            .map(|(_, etag)| PartId {
                content_id: etag.clone(),
            })
            .collect();
        if !state.tails.is_empty() {
            let pieces = self.read_tails(id, &state.tails).await?;
            let last = self
                .client
                .put_part(&data, multipart, parts.len(), PutPayload::from_iter(pieces))
                .await
                .map_err(storage)?;
            parts.push(last);
        }
        let expected_etag = multipart_etag(&parts);
        match self
            .client
            .complete_multipart(&data, multipart, parts)
            .await
        {
            Ok(done) => {
                if let (Some(expected), Some(got)) = (expected_etag, done.e_tag) {
                    let got = got.trim_matches('"');
                    if got.contains('-') && got != expected {
                        return Err(Error::Storage(format!(
                            "s3: upload {id} completed as {got}, its recorded parts make {expected}: \
                             a part was overwritten"
                        )));
                    }
                }
            }
            // Completed by an earlier attempt whose copy failed: the size
            // check below decides whether `data` is this upload.
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage(e)),
        }
        let meta = match self.client.head(&data).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Err(Error::BlobUploadUnknown),
            Err(e) => return Err(storage(e)),
        };
        if meta.size != state.len() {
            return Err(Error::Storage(format!(
                "s3: upload {id} completed with {} bytes, its state holds {}",
                meta.size,
                state.len()
            )));
        }
        Ok(())
    }

    /// Removes upload `id`: aborts its multipart uploads (the one `state`
    /// names and any recorded beside it) and deletes its objects, the
    /// marker last so that a failure leaves it to be swept again.
    pub(super) async fn remove_upload(&self, id: &str, state: Option<&UploadRecord>) -> Result<()> {
        let data = self.data_path(id);
        if let Some(multipart) = state.and_then(|s| s.multipart.as_ref()) {
            abort(self, &data, multipart).await?;
        }
        let prefix = self.key(&format!("_uploads/{id}"));
        let objects: Vec<_> = self
            .client
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(storage)?;
        let marker = self.marker_path(id);
        for path in &objects {
            if path.filename().is_some_and(|f| f.starts_with("multipart-")) {
                if let Ok(bytes) = self.read_small(path).await {
                    abort(self, &data, &String::from_utf8_lossy(&bytes)).await?;
                }
            }
        }
        for path in objects.iter().filter(|p| **p != marker) {
            delete_quietly(self, path).await?;
        }
        delete_quietly(self, &marker).await
    }

    /// Removes upload `id` whose state may be unknown (an orphan).
    pub(super) async fn delete_upload_objects(&self, id: &str, state: Option<&[u8]>) -> Result<()> {
        let state = state.and_then(|s| UploadRecord::decode(s).ok());
        self.remove_upload(id, state.as_ref()).await
    }
}

async fn abort(
    store: &S3BlobStore,
    data: &object_store::path::Path,
    multipart: &str,
) -> Result<()> {
    match store
        .client
        .abort_multipart(data, &multipart.to_string())
        .await
    {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(storage(e)),
    }
}

async fn delete_quietly(store: &S3BlobStore, path: &object_store::path::Path) -> Result<()> {
    match store.client.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(storage(e)),
    }
}

/// The ETag S3 gives a completed multipart upload, `md5(part md5s)-n`, when
/// every part's ETag is an MD5: a store that assembled other parts than the
/// recorded ones answers another.
fn multipart_etag(parts: &[PartId]) -> Option<String> {
    let mut md5 = Md5::new();
    for part in parts {
        let raw = hex::decode(part.content_id.trim_matches('"')).ok()?;
        if raw.len() != 16 {
            return None;
        }
        md5.update(&raw);
    }
    Some(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multipart_etag_is_the_md5_of_the_part_md5s() {
        let part = |bytes: &[u8]| PartId {
            content_id: format!("\"{}\"", hex::encode(Md5::digest(bytes))),
        };
        let parts = [part(b"one"), part(b"two")];
        let mut joined = Md5::digest(b"one").to_vec();
        joined.extend(Md5::digest(b"two"));
        let expected = format!("{}-2", hex::encode(Md5::digest(&joined)));
        assert_eq!(multipart_etag(&parts).unwrap(), expected);
        let opaque = [PartId {
            content_id: "not-an-md5".into(),
        }];
        assert_eq!(multipart_etag(&opaque), None);
    }
}

//! Expiry of abandoned uploads and removal of files no upload owns: only ever
//! by whoever holds the upload's lock, so that no request loses its upload
//! underneath itself.

use super::{unix_now, Registry};
use crate::error::Result;
use std::collections::HashSet;

impl Registry {
    /// Removes uploads untouched for longer than the configured expiry, and
    /// upload files that outlived their request or session (after a crash).
    /// An upload a request is working on is never stale, however long that
    /// request takes: each is checked again under its lock, and skipped if
    /// the lock is held.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let cutoff = unix_now() - self.options.upload_expiry.as_secs() as i64;
        let mut removed = 0;
        for id in self.meta.stale_uploads(cutoff).await? {
            let Some(_held) = self.turns.try_lock(&id) else {
                continue; // a request is on it: alive
            };
            let still_stale = self.meta.upload(&id).await?.filter(|s| self.is_expired(s));
            if let Some(session) = still_stale {
                self.forget_upload(&id, Some(&session.store_state)).await?;
                removed += 1;
            } else {
                self.turns.remove(&id);
            }
        }
        let old_files = self
            .blobs
            .uploads_older_than(self.options.upload_expiry)
            .await?;
        removed += self.remove_unowned(old_files).await?;
        Ok(removed)
    }

    /// Removes every upload file no session owns, whatever its age: the temp
    /// files of monolithic pushes and manifest PUTs a kill interrupted, and
    /// upload files whose session is gone; and every session whose file is
    /// gone (a crash can keep the row but lose the file's name), since it
    /// can never be resumed. Run at start-up, before serving.
    ///
    /// On stores other processes share, their uploads in progress look
    /// just like leftovers: then only what has expired is removed.
    pub async fn sweep_leftovers(&self) -> Result<usize> {
        if self.options.shared_stores {
            return self.expire_uploads().await;
        }
        let files = self
            .blobs
            .uploads_older_than(std::time::Duration::ZERO)
            .await?;
        let with_file: HashSet<&str> = files.iter().map(String::as_str).collect();
        let mut removed = 0;
        for id in self.meta.stale_uploads(i64::MAX).await? {
            if !with_file.contains(id.as_str()) && !self.turns.is_busy(&id) {
                self.meta.delete_upload(&id).await?;
                removed += 1;
            }
        }
        Ok(removed + self.remove_unowned(files).await?)
    }

    /// Deletes those of `ids` that have no session and no request on them.
    async fn remove_unowned(&self, ids: Vec<String>) -> Result<usize> {
        let mut removed = 0;
        for id in ids {
            if self.turns.is_busy(&id) || self.meta.upload(&id).await?.is_some() {
                continue;
            }
            self.blobs.delete_upload(&id, None).await?;
            removed += 1;
        }
        Ok(removed)
    }
}

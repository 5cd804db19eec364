//! Deletes of blobs, manifests, tags and whole repositories, when the
//! registry allows them.

use super::Registry;
use crate::error::{Error, Result};
use crate::storage::RepositoryDeleted;
use berth_oci::{Digest, Reference, RepositoryName};

impl Registry {
    /// Unlinks a blob from `repo`; refused while a manifest there names it.
    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if !self.options.delete_enabled {
            return Err(Error::DeleteDisabled);
        }
        if self.meta.unlink_blob(repo, digest).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown(digest.clone()))
        }
    }

    /// Deletes a manifest (by digest, with all its tags) or just one tag.
    /// A manifest that an index of `repo` names is refused; tags never are.
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        if !self.options.delete_enabled {
            return Err(Error::DeleteDisabled);
        }
        let deleted = match reference {
            Reference::Tag(tag) => self.meta.delete_tag(repo, tag).await?,
            Reference::Digest(digest) => self.meta.delete_manifest(repo, digest).await?,
        };
        if deleted {
            Ok(())
        } else {
            Err(Error::ManifestUnknown(format!("{repo}:{reference}")))
        }
    }

    /// Deletes `repo` whole: its tags, manifests and blob links, in one
    /// metadata transaction. The bytes stay until a GC pass after the grace
    /// period finds them unreferenced; a layer another repository shares
    /// stays for good. Manifest bytes cached by digest are no risk: every
    /// read asks the metadata store whether the repository holds the
    /// manifest first.
    pub async fn delete_repository(&self, repo: &RepositoryName) -> Result<RepositoryDeleted> {
        if !self.options.delete_enabled {
            return Err(Error::DeleteDisabled);
        }
        self.meta
            .delete_repository(repo)
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.to_string()))
    }
}

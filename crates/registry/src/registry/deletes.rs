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
        self.refuse_cached_write(repo).await?;
        if self.meta.unlink_blob(repo, digest).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown(digest.clone()))
        }
    }

    /// Deletes a manifest (by digest, with all its tags) or just one tag.
    /// A manifest that an index of `repo` names is refused, and so is an
    /// immutable tag or a manifest one points at.
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        if !self.options.delete_enabled {
            return Err(Error::DeleteDisabled);
        }
        self.refuse_cached_write(repo).await?;
        self.refuse_immutable_delete(repo, reference).await?;
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

    /// `Error::ImmutableTagDelete` if the delete would remove a tag an
    /// `[[immutable]]` rule covers. Checked before the delete, not in its
    /// transaction: a tag made immutable in between is the one gap.
    async fn refuse_immutable_delete(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        let policies = &self.options.policies;
        let tags = match reference {
            Reference::Tag(tag) => vec![tag.to_string()],
            Reference::Digest(_) if !policies.has_immutable() => return Ok(()),
            Reference::Digest(digest) => match self.meta.manifest_facts(repo, digest).await? {
                Some(facts) => facts.tags,
                None => return Ok(()),
            },
        };
        match tags
            .into_iter()
            .find(|t| policies.is_immutable(repo.as_str(), t))
        {
            Some(tag) => Err(Error::ImmutableTagDelete {
                repository: repo.to_string(),
                tag,
            }),
            None => Ok(()),
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

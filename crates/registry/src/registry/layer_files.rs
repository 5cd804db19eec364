//! "Inside a layer": the files of one layer blob, and the merged tree of an
//! image, for the UI. Listings come from [`crate::layers`] and are cached by
//! digest; access follows the same rule as a blob GET.

use super::blob_reader::{blob_reader, StoreFailure};
use super::digest_lru::Listed;
use super::Registry;
use crate::error::{Error, Result};
use crate::layers::{list_layer, LayerListing, LayerRef, MergedTree};
use berth_oci::media_type::is_non_distributable;
use berth_oci::{Descriptor, Digest, ManifestKind, ParsedManifest, Reference, RepositoryName};
use std::sync::Arc;

/// Listings decompressed at once: each keeps a core busy.
pub(super) const CONCURRENT_LISTINGS: usize = 2;

/// Entries kept over all cached listings (a few hundred bytes each).
pub(super) const LAYER_CACHE_ENTRIES: usize = 400_000;

/// Entries kept over all cached merged trees: a couple of large images.
pub(super) const TREE_CACHE_ENTRIES: usize = 200_000;

/// An image manifest's layers, the only part the merged tree needs.
#[derive(serde::Deserialize)]
struct ImageLayers {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl Registry {
    /// The files layer `digest` adds, changes and deletes. The blob must be
    /// linked in `repo`; a blob that is not a (gzip or zstd) tar is
    /// [`Error::Layer`].
    pub async fn layer_files(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Arc<LayerListing>> {
        self.meta
            .blob_size(repo, digest)
            .await?
            .ok_or_else(|| Error::BlobUnknown(digest.clone()))?;
        let listed = match self.layer_cache.get(digest) {
            Some(listed) => listed,
            None => self.list_uncached(digest).await?,
        };
        listed.map_err(|reason| Error::Layer {
            digest: digest.clone(),
            reason,
        })
    }

    async fn list_uncached(&self, digest: &Digest) -> Result<Listed> {
        let _this_layer = self.listings_in_flight.enter(digest).await;
        // Whoever was listing this layer before us has just cached it.
        if let Some(listed) = self.layer_cache.get(digest) {
            return Ok(listed);
        }
        let _turn = self.listing_turns.acquire().await.map_err(Error::storage)?;
        let content = self
            .blobs
            .read(digest, None)
            .await?
            .ok_or_else(|| Error::Storage(format!("blob {digest} is linked but missing")))?;
        let runtime = tokio::runtime::Handle::current();
        let limits = self.listing_limits;
        let (cache, key) = (self.layer_cache.clone(), digest.clone());
        // Cached from the blocking task itself, so that a listing finishes
        // and is kept even if the request that started it has gone.
        tokio::task::spawn_blocking(move || {
            let failure = StoreFailure::default();
            let reader = blob_reader(content, runtime, failure.clone()).map_err(Error::storage)?;
            let listed = list_layer(reader, &limits);
            // A failing disk is the registry's problem, not the layer's.
            if let (Some(cause), Err(_)) = (failure.take(), &listed) {
                return Err(Error::Storage(cause));
            }
            let listed = listed.map(Arc::new);
            cache.insert(&key, listed.clone());
            Ok(listed)
        })
        .await
        .map_err(Error::storage)?
    }

    /// The file tree of image `reference` in `repo`: its layers' listings
    /// applied bottom to top. An index has no files of its own:
    /// [`Error::IndexHasNoFiles`] names its platform manifests.
    pub async fn image_files(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Arc<MergedTree>> {
        let manifest = self.find_manifest(repo, reference, &[], true).await?;
        if let Some(tree) = self.tree_cache.get(&manifest.digest) {
            return Ok(tree);
        }
        let body = manifest
            .body
            .ok_or_else(|| Error::Storage(format!("manifest {} has no body", manifest.digest)))?;
        let parsed = ParsedManifest::parse(&body, Some(&manifest.media_type))?;
        if parsed.kind == ManifestKind::Index {
            return Err(Error::IndexHasNoFiles {
                digest: manifest.digest,
                manifests: parsed.manifests.into_iter().map(|d| d.digest).collect(),
            });
        }
        let image: ImageLayers = serde_json::from_slice(&body)
            .map_err(|e| Error::ManifestInvalid(berth_oci::ManifestError::Json(e.to_string())))?;
        let mut listings = Vec::with_capacity(image.layers.len());
        let mut skipped = Vec::new();
        for layer in image.layers {
            let layer_ref = LayerRef {
                digest: layer.digest,
                media_type: layer.media_type,
                size: layer.size,
            };
            if is_non_distributable(&layer_ref.media_type)
                && self
                    .meta
                    .blob_size(repo, &layer_ref.digest)
                    .await?
                    .is_none()
            {
                skipped.push(layer_ref);
                continue;
            }
            let listing = self.layer_files(repo, &layer_ref.digest).await?;
            listings.push((layer_ref, listing));
        }
        let max_entries = self.listing_limits.max_entries;
        let layers = listings.iter().map(|(r, l)| (r.clone(), l.as_ref()));
        let tree = Arc::new(MergedTree::merge(layers, skipped, max_entries));
        // Which foreign layers a repository holds is its own: such a tree is not shared.
        if tree.skipped_layers.is_empty() {
            self.tree_cache.insert(&manifest.digest, tree.clone());
        }
        Ok(tree)
    }
}

//! Browsing: what the web UI and `/api/v1` show of the registry. Counts,
//! sizes and times come from the metadata store's indexed queries; only an
//! image's own manifest and config (and an index's body, for platforms) are
//! read from the blob store, and manifests through the manifest cache.

use super::discovery::into_page_by;
use super::{Page, Registry};
use crate::error::{Error, Result};
use crate::storage::{Overview, RepositorySummary, TagCursor, TagRow};
use berth_oci::media_type::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use berth_oci::{Digest, ImageConfig, ManifestContents, Platform, Reference, RepositoryName};
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use serde::Serialize;

/// Largest page of repository summaries or tag details, whatever is asked:
/// each row costs a few index lookups.
pub const MAX_BROWSE_PAGE: usize = 1_000;

/// Largest config blob read for [`ImageDetail`]; a bigger one is shown as
/// no config rather than held in memory.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Most referrers listed on one [`ImageDetail`].
const MAX_DETAIL_REFERRERS: usize = 100;

/// A tag in a repository's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagDetail {
    pub tag: String,
    pub digest: Digest,
    pub media_type: String,
    /// `artifactType`, or an artifact's config type; `None` for images.
    pub artifact_type: Option<String>,
    /// Manifest + config + layers; for an index also its children and
    /// their blobs. Each blob counted once.
    pub size_bytes: u64,
    /// Unix seconds when the tag was last pushed (pointed at this manifest).
    pub pushed_at: i64,
    /// For an index, its children's platforms (from its body), without
    /// BuildKit's `unknown/unknown` attestations; else empty.
    pub platforms: Vec<Platform>,
}

/// A blob an image manifest names (its config or a layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobSummary {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A child of an index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexChild {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub platform: Option<Platform>,
    /// Its annotations in the index; BuildKit's attestations say
    /// `"vnd.docker.reference.type": "attestation-manifest"` here.
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A manifest whose subject is the one shown (signature, SBOM, attestation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferrerSummary {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: u64,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What a manifest lists. Serialized with a `"kind"` of `"manifest"` or `"index"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageContents {
    Manifest {
        /// The config descriptor, when the manifest has one.
        config_blob: Option<BlobSummary>,
        /// The parsed config; `None` for artifacts, odd or oversized
        /// configs. Boxed: it is most of the variant's size.
        config: Option<Box<ImageConfig>>,
        layers: Vec<BlobSummary>,
    },
    Index {
        manifests: Vec<IndexChild>,
    },
    /// Bytes that are neither shape (accepted once, unreadable now).
    Unknown,
}

/// One manifest, everything the image page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageDetail {
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    /// `artifactType`, or an artifact's config type; `None` for images.
    pub artifact_type: Option<String>,
    pub size: u64,
    /// Unix seconds of its first push into this repository.
    pub pushed_at: i64,
    /// Tags pointing at it, sorted.
    pub tags: Vec<String>,
    #[serde(flatten)]
    pub contents: ImageContents,
    /// The first 100 referrers, by digest.
    pub referrers: Vec<ReferrerSummary>,
    /// The manifest exactly as pushed; serialized as its parsed JSON
    /// (`"manifest"`), so a client can pretty-print it.
    #[serde(rename = "manifest", serialize_with = "as_json")]
    pub raw: Bytes,
}

/// The manifest's own JSON text, verbatim (key order and all), or a string
/// if it is somehow not JSON.
fn as_json<S: serde::Serializer>(raw: &Bytes, s: S) -> std::result::Result<S::Ok, S::Error> {
    let verbatim = std::str::from_utf8(raw)
        .ok()
        .and_then(|text| serde_json::from_str::<&serde_json::value::RawValue>(text).ok());
    match verbatim {
        Some(json) => json.serialize(s),
        None => String::from_utf8_lossy(raw).serialize(s),
    }
}

/// An artifact type worth showing: the stored one falls back to the
/// config's media type (as the referrers API wants), which for an ordinary
/// image says nothing.
fn shown_artifact_type(artifact_type: Option<String>) -> Option<String> {
    artifact_type.filter(|t| !ImageConfig::is_config_type(t))
}

fn browse_limit(limit: usize) -> usize {
    limit.min(MAX_BROWSE_PAGE)
}

/// The key of a tag page: `<pushed_at>.<tag>`. Tags start with a letter,
/// digit or `_`, so the first `.` ends the time.
fn tag_key(t: &TagDetail) -> String {
    format!("{}.{}", t.pushed_at, t.tag)
}

fn parse_tag_key(s: &str) -> Result<TagCursor> {
    let bad = || Error::Unsupported(format!("last={s} is not a key a tag page gave"));
    let (time, name) = s.split_once('.').ok_or_else(bad)?;
    Ok(TagCursor {
        pushed_at: time.parse().map_err(|_| bad())?,
        name: name.to_string(),
    })
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

impl Registry {
    /// Whether deletes are allowed, so that pages can hide what would be refused.
    pub fn deletes_enabled(&self) -> bool {
        self.options.delete_enabled
    }

    /// A page of repositories holding manifests, by name after `last`,
    /// whose names contain `filter` (any case), with counts, size and last push.
    pub async fn repository_summaries(
        &self,
        filter: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Page<RepositorySummary>> {
        let limit = browse_limit(limit);
        let filter = filter
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_lowercase);
        let rows = self
            .meta
            .repository_summaries(filter.as_deref(), last, limit + 1)
            .await?;
        Ok(into_page_by(rows, limit, |r| r.name.clone()))
    }

    /// One repository's counts, size and last push; `NameUnknown` if it
    /// holds no manifest.
    pub async fn repository_summary(&self, repo: &RepositoryName) -> Result<RepositorySummary> {
        self.meta
            .repository_summary(repo)
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.to_string()))
    }

    /// A page of `repo`'s tags, newest first then by name; `last` is the
    /// `next` of the previous page.
    pub async fn tag_details(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Page<TagDetail>> {
        let limit = browse_limit(limit);
        let after = last.map(parse_tag_key).transpose()?;
        let rows = self
            .meta
            .tag_details(repo, after.as_ref(), limit + 1)
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.to_string()))?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            items.push(self.tag_detail(row).await?);
        }
        Ok(into_page_by(items, limit, tag_key))
    }

    async fn tag_detail(&self, row: TagRow) -> Result<TagDetail> {
        let platforms = if is_index(&row.media_type) {
            let body = self.manifest_bytes(&row.digest, 0).await?;
            ManifestContents::read(&body)
                .map(|c| c.platforms())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(TagDetail {
            tag: row.tag,
            digest: row.digest,
            media_type: row.media_type,
            artifact_type: shown_artifact_type(row.artifact_type),
            size_bytes: row.size_bytes,
            pushed_at: row.pushed_at,
            platforms,
        })
    }

    /// Totals over the registry, and what shared blobs save.
    pub async fn overview(&self) -> Result<Overview> {
        self.meta.overview().await
    }

    /// A manifest by tag or digest with its contents, config, tags and
    /// referrers. An unknown repository is `NameUnknown`, an unknown
    /// reference in a known one `ManifestUnknown`.
    pub async fn image_detail(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ImageDetail> {
        let content = match self.find_manifest(repo, reference, &[], true).await {
            Err(Error::ManifestUnknown(what)) => {
                return Err(match self.meta.list_tags(repo, None, 1).await? {
                    None => Error::NameUnknown(repo.to_string()),
                    Some(_) => Error::ManifestUnknown(what),
                })
            }
            other => other?,
        };
        let facts = self
            .meta
            .manifest_facts(repo, &content.digest)
            .await?
            .ok_or_else(|| Error::ManifestUnknown(format!("{repo}:{reference}")))?;
        let raw = content.body.unwrap_or_default();
        let contents = match ManifestContents::read(&raw) {
            Some(ManifestContents::Image { config, layers }) => {
                let parsed = match &config {
                    Some(c) => self.image_config(c).await?,
                    None => None,
                };
                ImageContents::Manifest {
                    config_blob: config.map(blob_summary),
                    config: parsed.map(Box::new),
                    layers: layers.into_iter().map(blob_summary).collect(),
                }
            }
            Some(ManifestContents::Index { manifests }) => ImageContents::Index {
                manifests: manifests
                    .into_iter()
                    .map(|m| IndexChild {
                        digest: m.digest,
                        media_type: m.media_type,
                        size: m.size,
                        platform: m.platform,
                        annotations: m.annotations,
                    })
                    .collect(),
            },
            None => ImageContents::Unknown,
        };
        let referrers = self
            .referrers(
                repo,
                &content.digest,
                None,
                None,
                Some(MAX_DETAIL_REFERRERS),
            )
            .await?
            .manifests
            .into_iter()
            .map(|d| ReferrerSummary {
                digest: d.digest,
                media_type: d.media_type,
                artifact_type: d.artifact_type,
                size: d.size,
                annotations: d.annotations,
            })
            .collect();
        Ok(ImageDetail {
            repository: repo.to_string(),
            digest: content.digest,
            media_type: content.media_type,
            artifact_type: shown_artifact_type(facts.artifact_type),
            size: content.size,
            pushed_at: facts.pushed_at,
            tags: facts.tags,
            contents,
            referrers,
            raw,
        })
    }

    /// The config a descriptor names, if it is an image config of a
    /// readable size that parses; a missing blob is no config.
    async fn image_config(&self, config: &berth_oci::Descriptor) -> Result<Option<ImageConfig>> {
        if !ImageConfig::is_config_type(&config.media_type) || config.size > MAX_CONFIG_BYTES {
            return Ok(None);
        }
        let Some(content) = self.blobs.read(&config.digest, None).await? else {
            return Ok(None);
        };
        let mut stream = content.into_stream();
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.try_next().await? {
            if (buf.len() + chunk.len()) as u64 > MAX_CONFIG_BYTES {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(ImageConfig::parse(&config.media_type, &buf))
    }
}

fn blob_summary(d: berth_oci::Descriptor) -> BlobSummary {
    BlobSummary {
        digest: d.digest,
        media_type: d.media_type,
        size: d.size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_round_trip_and_garbage_is_refused() {
        let t = TagDetail {
            tag: "v1.2".into(),
            digest: Digest::sha256_of(b"x"),
            media_type: OCI_INDEX.into(),
            artifact_type: None,
            size_bytes: 0,
            pushed_at: 1_700_000_000,
            platforms: vec![],
        };
        let key = tag_key(&t);
        assert_eq!(key, "1700000000.v1.2");
        assert_eq!(
            parse_tag_key(&key).unwrap(),
            TagCursor {
                pushed_at: 1_700_000_000,
                name: "v1.2".into()
            }
        );
        assert!(parse_tag_key("v1").is_err());
        assert!(parse_tag_key("soon.v1").is_err());
    }

    #[test]
    fn a_detail_serializes_its_kind_and_manifest_json() {
        let d = ImageDetail {
            repository: "r".into(),
            digest: Digest::sha256_of(b"{}"),
            media_type: OCI_INDEX.into(),
            artifact_type: None,
            size: 2,
            pushed_at: 1,
            tags: vec!["t".into()],
            contents: ImageContents::Index { manifests: vec![] },
            referrers: vec![],
            raw: Bytes::from_static(b"{\"schemaVersion\":2,\"b\":1,\"a\":0}\n"),
        };
        let text = serde_json::to_string(&d).unwrap();
        assert!(
            text.contains(r#""manifest":{"schemaVersion":2,"b":1,"a":0}"#),
            "the manifest verbatim, keys unsorted: {text}"
        );
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["kind"], "index");
        assert!(json["manifests"].is_array());
    }
}

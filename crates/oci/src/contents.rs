//! What a stored manifest lists, read for people: an image's config and
//! layers, or an index's children with their platforms.
//!
//! Unlike [`crate::ParsedManifest`], which decides whether a push is
//! accepted, this reads bytes the registry already accepted and keeps only
//! what a listing shows; fields that do not parse are left out.

use crate::digest::Digest;
use crate::manifest::Descriptor;
use serde::{Deserialize, Serialize};

/// The platform an index entry (or an image config) is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// One child of an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Platform {
    /// BuildKit lists its attestation manifests (provenance, SBOM) in an
    /// index under the platform `unknown/unknown`: not a platform to run.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

/// What a manifest lists.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestContents {
    Image {
        config: Option<Descriptor>,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<IndexEntry>,
    },
}

#[derive(Deserialize)]
struct Raw {
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<IndexEntry>>,
}

impl ManifestContents {
    /// The contents of a stored manifest; `None` if it is not JSON of
    /// either shape.
    pub fn read(bytes: &[u8]) -> Option<ManifestContents> {
        let raw: Raw = serde_json::from_slice(bytes).ok()?;
        match (raw.manifests, raw.config, raw.layers) {
            (Some(manifests), _, _) => Some(ManifestContents::Index { manifests }),
            (None, None, None) => None,
            (None, config, layers) => Some(ManifestContents::Image {
                config,
                layers: layers.unwrap_or_default(),
            }),
        }
    }

    /// The platforms an index's children are for, in order, without
    /// repeats or `unknown/unknown` (attestations); empty for an image.
    pub fn platforms(&self) -> Vec<Platform> {
        let mut out: Vec<Platform> = Vec::new();
        if let ManifestContents::Index { manifests } = self {
            let platforms = manifests.iter().filter_map(|m| m.platform.as_ref());
            for p in platforms.filter(|p| !p.is_unknown()) {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn an_index_lists_children_and_their_platforms() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"m","digest":"{a}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"m","digest":"{b}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"m","digest":"{a}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"m","digest":"{c}","size":3}},
              {{"mediaType":"m","digest":"{c}","size":3,"platform":{{"os":"unknown","architecture":"unknown"}},
                "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#,
            a = d('a'),
            b = d('b'),
            c = d('c')
        );
        let contents = ManifestContents::read(json.as_bytes()).unwrap();
        let ManifestContents::Index { manifests } = &contents else {
            panic!("{contents:?}")
        };
        assert_eq!(manifests.len(), 5);
        assert_eq!(manifests[3].platform, None);
        assert_eq!(
            manifests[4].annotations.as_ref().unwrap()["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        let platforms = contents.platforms();
        assert_eq!(platforms.len(), 2, "repeats and attestations are dropped");
        assert_eq!(platforms[1].variant.as_deref(), Some("v8"));
    }

    #[test]
    fn an_image_lists_config_and_layers() {
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{a}","size":5}},
               "layers":[{{"mediaType":"l","digest":"{b}","size":7}}]}}"#,
            a = d('a'),
            b = d('b')
        );
        let contents = ManifestContents::read(json.as_bytes()).unwrap();
        let ManifestContents::Image { config, layers } = &contents else {
            panic!("{contents:?}")
        };
        assert_eq!(config.as_ref().map(|c| c.size), Some(5));
        assert_eq!(layers[0].size, 7);
        assert!(contents.platforms().is_empty());
    }

    #[test]
    fn other_shapes_are_none() {
        assert_eq!(ManifestContents::read(b"{}"), None);
        assert_eq!(ManifestContents::read(b"not json"), None);
    }
}

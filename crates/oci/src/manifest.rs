//! Parsing and validating pushed manifests.
//!
//! The registry stores the exact bytes a client pushed; this module only reads
//! them to learn what they reference (blobs, child manifests, a subject) and
//! which media type to serve them with. It never re-serialises.

use crate::digest::Digest;
use crate::media_type::{self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest manifest accepted, as the distribution spec recommends.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Most descriptors (config, layers, child manifests) one manifest may name:
/// each becomes a row checked and written in the pushing transaction, which
/// every other writer waits for. Real images have tens, indexes hundreds.
pub const MAX_DESCRIPTORS: usize = 10_000;

/// Most bytes (keys and values) of a manifest's own annotations: they are
/// stored and repeated in every referrers answer that lists the manifest.
pub const MAX_ANNOTATION_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error(
        "Docker schema 1 manifests are not supported; push with a current client (schema 2 or OCI)"
    )]
    Schema1,
    #[error("manifest schemaVersion must be 2")]
    SchemaVersion,
    #[error("Content-Type {header} does not match the manifest's mediaType {body}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("mediaType {0:?} is not a media type (type/subtype)")]
    MediaTypeInvalid(String),
    #[error("manifest has neither a known mediaType nor config/layers or manifests")]
    UnknownShape,
    #[error("{kind} manifest lacks its required field {field:?}")]
    MissingField {
        kind: &'static str,
        field: &'static str,
    },
    #[error("manifest names {count} descriptors; at most {limit} are accepted")]
    TooManyDescriptors { count: usize, limit: usize },
    #[error("manifest annotations take {bytes} bytes; at most {limit} are accepted")]
    AnnotationsTooLarge { bytes: usize, limit: usize },
}

/// Bytes of an annotation map's keys and values as they appear in JSON text.
fn annotation_bytes(annotations: &Map<String, Value>) -> usize {
    annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or_else(|| v.to_string().len(), str::len))
        .sum()
}

/// A content descriptor as found in manifests and indexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
}

/// Whether a manifest points at blobs (an image) or at other manifests (an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

/// What the registry needs to know about a manifest it is about to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    /// The type to serve it with: the client's Content-Type, else the body's mediaType.
    pub media_type: String,
    pub kind: ManifestKind,
    /// Blobs that must already be in the repository (config and distributable layers).
    pub blobs: Vec<Descriptor>,
    /// Manifests that must already be in the repository (children of an index).
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// `artifactType`, else the config's media type: what the referrers API reports.
    pub artifact_type: Option<String>,
    pub annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<Map<String, Value>>,
}

/// Content types that say nothing about which manifest format follows.
fn is_generic_content_type(ct: &str) -> bool {
    ct.is_empty() || ct == "application/json" || ct == "application/octet-stream"
}

impl ParsedManifest {
    /// Parses `bytes` pushed with the given `Content-Type` header (if any).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        let content_type = content_type
            .map(|ct| ct.split(';').next().unwrap_or("").trim())
            .filter(|ct| !is_generic_content_type(ct));
        if content_type.is_some_and(media_type::is_schema1) {
            return Err(ManifestError::Schema1);
        }
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        // Read like the header: a blank type says nothing, so the shape decides.
        let body_type = raw
            .media_type
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if raw.schema_version == Some(1) || body_type.is_some_and(media_type::is_schema1) {
            return Err(ManifestError::Schema1);
        }
        if raw.schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion);
        }
        if let (Some(header), Some(body)) = (content_type, body_type) {
            if header != body {
                return Err(ManifestError::MediaTypeMismatch {
                    header: header.to_string(),
                    body: body.to_string(),
                });
            }
        }
        let declared = content_type.or(body_type);
        if let Some(declared) = declared.filter(|t| !media_type::is_well_formed(t)) {
            return Err(ManifestError::MediaTypeInvalid(declared.to_string()));
        }
        let kind = match declared {
            Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => ManifestKind::Index,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => ManifestKind::Image,
            _ if raw.manifests.is_some() => ManifestKind::Index,
            _ if raw.config.is_some() || raw.layers.is_some() => ManifestKind::Image,
            _ => return Err(ManifestError::UnknownShape),
        };
        let missing = |field| match kind {
            ManifestKind::Image => ManifestError::MissingField {
                kind: "image",
                field,
            },
            ManifestKind::Index => ManifestError::MissingField {
                kind: "index",
                field,
            },
        };
        match kind {
            ManifestKind::Image if raw.config.is_none() => return Err(missing("config")),
            ManifestKind::Image if raw.layers.is_none() => return Err(missing("layers")),
            ManifestKind::Index if raw.manifests.is_none() => return Err(missing("manifests")),
            _ => {}
        }
        let count = usize::from(raw.config.is_some())
            + raw.layers.as_ref().map_or(0, Vec::len)
            + raw.manifests.as_ref().map_or(0, Vec::len);
        if count > MAX_DESCRIPTORS {
            return Err(ManifestError::TooManyDescriptors {
                count,
                limit: MAX_DESCRIPTORS,
            });
        }
        let bytes = raw.annotations.as_ref().map_or(0, annotation_bytes);
        if bytes > MAX_ANNOTATION_BYTES {
            return Err(ManifestError::AnnotationsTooLarge {
                bytes,
                limit: MAX_ANNOTATION_BYTES,
            });
        }
        let media_type = declared
            .unwrap_or(match kind {
                ManifestKind::Index => OCI_INDEX,
                ManifestKind::Image => OCI_MANIFEST,
            })
            .to_string();

        let artifact_type = raw
            .artifact_type
            .or_else(|| raw.config.as_ref().map(|c| c.media_type.clone()));
        let blobs = raw
            .config
            .into_iter()
            .chain(
                raw.layers
                    .into_iter()
                    .flatten()
                    .filter(|l| !media_type::is_non_distributable(&l.media_type)),
            )
            .collect();
        Ok(ParsedManifest {
            media_type,
            kind,
            blobs,
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            artifact_type,
            annotations: raw.annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}},
                      {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{}","size":4}}]
            {extra}}}"#,
            d('a'),
            d('b'),
            d('c')
        )
    }

    fn index_of(children: usize) -> String {
        let child = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10}}"#,
            d('e')
        );
        let children = vec![child; children].join(",");
        format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{children}]}}"#)
    }

    #[test]
    fn too_many_descriptors_are_refused_before_anything_is_stored() {
        assert!(ParsedManifest::parse(index_of(MAX_DESCRIPTORS).as_bytes(), None).is_ok());
        let err = ParsedManifest::parse(index_of(30_000).as_bytes(), None).unwrap_err();
        assert_eq!(
            err,
            ManifestError::TooManyDescriptors {
                count: 30_000,
                limit: MAX_DESCRIPTORS
            }
        );
    }

    #[test]
    fn oversized_annotations_are_refused() {
        let value = "x".repeat(MAX_ANNOTATION_BYTES);
        let extra = format!(r#","annotations":{{"k":"{value}"}}"#);
        let err = ParsedManifest::parse(image(&extra).as_bytes(), None).unwrap_err();
        assert!(
            matches!(err, ManifestError::AnnotationsTooLarge { bytes, .. } if bytes == value.len() + 1),
            "{err}"
        );
        let fits = format!(r#","annotations":{{"k":"{}"}}"#, &value[1..]);
        assert!(ParsedManifest::parse(image(&fits).as_bytes(), None).is_ok());
    }

    #[test]
    fn image_requires_config_and_distributable_layers_only() {
        let m = ParsedManifest::parse(image("").as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        let blobs: Vec<String> = m.blobs.iter().map(|b| b.digest.to_string()).collect();
        assert_eq!(blobs, vec![d('a'), d('b')]);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn subject_and_artifact_type_are_read() {
        let extra = format!(
            r#","artifactType":"application/x.sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}}"#,
            d('e')
        );
        let m = ParsedManifest::parse(image(&extra).as_bytes(), None).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.sig"));
        assert_eq!(m.subject.unwrap().digest.to_string(), d('e'));
    }

    #[test]
    fn index_lists_child_manifests() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('f')
        );
        let m = ParsedManifest::parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.media_type, DOCKER_MANIFEST_LIST);
        assert_eq!(m.manifests.len(), 1);
        assert!(m.blobs.is_empty());
    }

    #[test]
    fn content_type_wins_and_falls_back_to_body() {
        let body = image("").replace(&format!(r#""mediaType":"{OCI_MANIFEST}","#), "");
        let m = ParsedManifest::parse(body.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        let m = ParsedManifest::parse(body.as_bytes(), Some("application/json")).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
    }

    /// `"mediaType": ""` was taken as the type, so the manifest was stored and
    /// served with an empty Content-Type that no client can pull.
    #[test]
    fn an_empty_body_media_type_is_inferred_from_the_shape() {
        let body = image("").replace(OCI_MANIFEST, " ");
        let m = ParsedManifest::parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        let m = ParsedManifest::parse(body.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        let index = br#"{"schemaVersion":2,"mediaType":"","manifests":[]}"#;
        let m = ParsedManifest::parse(index, None).unwrap();
        assert_eq!(
            (m.kind, m.media_type.as_str()),
            (ManifestKind::Index, OCI_INDEX)
        );
    }

    /// Found by the `manifest` fuzz target: a body type with `;` in it was
    /// stored, and sending it back as the Content-Type named another type.
    #[test]
    fn a_media_type_that_is_not_type_slash_subtype_is_refused() {
        let body = image("").replace(OCI_MANIFEST, "application;;/vnd.oci.image.manifest.v1+json");
        assert!(matches!(
            ParsedManifest::parse(body.as_bytes(), None),
            Err(ManifestError::MediaTypeInvalid(_))
        ));
        let plain = image("").replace(&format!(r#""mediaType":"{OCI_MANIFEST}","#), "");
        assert!(matches!(
            ParsedManifest::parse(plain.as_bytes(), Some("application")),
            Err(ManifestError::MediaTypeInvalid(_))
        ));
    }

    #[test]
    fn rejects_schema1_bad_json_mismatch_and_bad_digests() {
        let schema1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(
            ParsedManifest::parse(schema1, None),
            Err(ManifestError::Schema1)
        );
        assert_eq!(
            ParsedManifest::parse(b"{}", Some(media_type::DOCKER_SCHEMA1_SIGNED)),
            Err(ManifestError::Schema1)
        );
        assert!(matches!(
            ParsedManifest::parse(b"{not json", None),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            ParsedManifest::parse(image("").as_bytes(), Some(OCI_INDEX)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        let bad_digest = image("").replace(&d('b'), "sha256:BAD");
        assert!(matches!(
            ParsedManifest::parse(bad_digest.as_bytes(), None),
            Err(ManifestError::Json(_))
        ));
        assert_eq!(
            ParsedManifest::parse(br#"{"schemaVersion":2}"#, None),
            Err(ManifestError::UnknownShape)
        );
        assert_eq!(
            ParsedManifest::parse(br#"{"schemaVersion":2,"layers":[]}"#, Some(OCI_MANIFEST)),
            Err(ManifestError::MissingField {
                kind: "image",
                field: "config"
            })
        );
        assert_eq!(
            ParsedManifest::parse(br#"{"schemaVersion":2}"#, Some(OCI_INDEX)),
            Err(ManifestError::MissingField {
                kind: "index",
                field: "manifests"
            })
        );
    }
}

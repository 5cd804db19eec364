//! What tests push: media types, digests, random bytes and manifest builders.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The 2-byte `{}` blob that OCI artifacts use as their config.
pub const EMPTY_JSON: &[u8] = b"{}";
/// Manifests up to this size must be accepted; anything larger is refused with 413.
pub const MANIFEST_LIMIT: usize = 4 * 1024 * 1024;

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn sha512_digest(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
}

/// `len` pseudo-random bytes, different on every call (xorshift seeded by time and a counter).
pub fn random_bytes(len: usize) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut state = nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    state |= 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A unique, valid-looking image config.
pub fn random_config() -> Vec<u8> {
    let salt = hex::encode(random_bytes(8));
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex::encode(Sha256::digest(salt.as_bytes())))]},
        "config": {"Labels": {"salt": salt}}
    }))
    .unwrap()
}

#[derive(Clone, Debug)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
        }
    }

    pub fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// Builds image manifests, artifacts and indexes as JSON bytes.
pub struct ManifestBuilder {
    doc: serde_json::Map<String, Value>,
}

impl ManifestBuilder {
    /// An OCI image manifest (`mediaType` set) with a config and layers.
    pub fn image(config: &Descriptor, layers: &[Descriptor]) -> Self {
        let mut doc = serde_json::Map::new();
        doc.insert("schemaVersion".into(), json!(2));
        doc.insert("mediaType".into(), json!(OCI_MANIFEST));
        doc.insert("config".into(), config.json());
        doc.insert(
            "layers".into(),
            Value::Array(layers.iter().map(Descriptor::json).collect()),
        );
        ManifestBuilder { doc }
    }

    /// An OCI artifact: empty `{}` config and the given `artifactType`.
    pub fn artifact(artifact_type: &str, layers: &[Descriptor]) -> Self {
        Self::image(&Descriptor::of(OCI_EMPTY, EMPTY_JSON), layers).artifact_type(artifact_type)
    }

    /// An OCI image index over `manifests`.
    pub fn index(manifests: &[Descriptor]) -> Self {
        let mut doc = serde_json::Map::new();
        doc.insert("schemaVersion".into(), json!(2));
        doc.insert("mediaType".into(), json!(OCI_INDEX));
        doc.insert(
            "manifests".into(),
            Value::Array(manifests.iter().map(Descriptor::json).collect()),
        );
        ManifestBuilder { doc }
    }

    pub fn media_type(mut self, media_type: &str) -> Self {
        self.doc.insert("mediaType".into(), json!(media_type));
        self
    }

    pub fn without_media_type(mut self) -> Self {
        self.doc.remove("mediaType");
        self
    }

    pub fn artifact_type(mut self, artifact_type: &str) -> Self {
        self.doc.insert("artifactType".into(), json!(artifact_type));
        self
    }

    pub fn subject(mut self, subject: &Descriptor) -> Self {
        self.doc.insert("subject".into(), subject.json());
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        let annotations = self.doc.entry("annotations").or_insert_with(|| json!({}));
        annotations
            .as_object_mut()
            .unwrap()
            .insert(key.into(), json!(value));
        self
    }

    pub fn build(&self) -> Vec<u8> {
        serde_json::to_vec(&self.doc).unwrap()
    }
}

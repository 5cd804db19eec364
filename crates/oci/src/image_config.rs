//! Reading an image's config blob for people: platform, run settings and
//! build history.
//!
//! Tolerant on purpose: every field may be missing, and a blob that is not
//! an image config (an artifact's empty `{}` config, a signature's payload,
//! anything not JSON) is simply no config, never an error, since it is shown
//! and never trusted.

use crate::media_type::{DOCKER_CONFIG, OCI_CONFIG};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The parts of an image config (OCI image spec `config.json`, or Docker's
/// equivalent) that describe what running the image does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
    /// RFC 3339 time the image was built, as the builder wrote it.
    pub created: Option<String>,
    #[serde(deserialize_with = "null_is_empty")]
    pub config: RunConfig,
    #[serde(deserialize_with = "null_is_empty")]
    pub history: Vec<HistoryEntry>,
    pub rootfs: RootFs,
}

/// How a container of the image starts. Field names as the spec spells them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RunConfig {
    pub user: Option<String>,
    #[serde(deserialize_with = "null_is_empty")]
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    #[serde(deserialize_with = "null_is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Keys such as `80/tcp`, sorted: read from the spec's object of empty
    /// objects, written as a list.
    #[serde(deserialize_with = "port_keys")]
    pub exposed_ports: Vec<String>,
}

/// One step of the build, in order; `empty_layer` steps added no layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryEntry {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub empty_layer: bool,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RootFs {
    /// Digests of the uncompressed layers, in order.
    #[serde(deserialize_with = "null_is_empty")]
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    /// The config in `bytes` of a blob declared as `media_type`; `None` when
    /// the type is not an image config's or the bytes do not parse as one.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Option<ImageConfig> {
        if !Self::is_config_type(media_type) {
            return None;
        }
        serde_json::from_slice::<ImageConfig>(bytes).ok()
    }

    /// Whether a config descriptor's type is that of an image config.
    pub fn is_config_type(media_type: &str) -> bool {
        media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
    }
}

/// Docker writes `null` for an absent list or map (`"Env": null`).
fn null_is_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The keys of `ExposedPorts` (`{"80/tcp": {}}`); `null` is none.
fn port_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let map: Option<BTreeMap<String, serde::de::IgnoredAny>> = Option::deserialize(d)?;
    Ok(map.map(|m| m.into_keys().collect()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_is_read() {
        let json = br#"{
            "created": "2024-01-02T03:04:05Z",
            "architecture": "arm64", "os": "linux", "variant": "v8",
            "config": {
                "User": "app", "Env": ["PATH=/bin", "A=b"],
                "Entrypoint": ["/entry"], "Cmd": ["serve", "--port=80"],
                "WorkingDir": "/srv", "Labels": {"org.opencontainers.image.title": "t"},
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}}
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa", "sha256:bb"]},
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /"},
                {"created_by": "ENV A=b", "empty_layer": true, "comment": "buildkit"}
            ]
        }"#;
        let c = ImageConfig::parse(OCI_CONFIG, json).unwrap();
        assert_eq!(
            (
                c.os.as_deref(),
                c.architecture.as_deref(),
                c.variant.as_deref()
            ),
            (Some("linux"), Some("arm64"), Some("v8"))
        );
        assert_eq!(c.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(c.config.user.as_deref(), Some("app"));
        assert_eq!(c.config.env, ["PATH=/bin", "A=b"]);
        assert_eq!(
            c.config.entrypoint.as_deref(),
            Some(&["/entry".to_string()][..])
        );
        assert_eq!(c.config.cmd.as_ref().map(Vec::len), Some(2));
        assert_eq!(c.config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.config.labels["org.opencontainers.image.title"], "t");
        assert_eq!(c.config.exposed_ports, ["53/udp", "80/tcp"]);
        assert_eq!(c.rootfs.diff_ids, ["sha256:aa", "sha256:bb"]);
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.history[0].created_by.as_deref(), Some("ADD rootfs.tar /"));
        assert!(!c.history[0].empty_layer);
        assert!(c.history[1].empty_layer);
        assert_eq!(c.history[1].comment.as_deref(), Some("buildkit"));
    }

    #[test]
    fn missing_and_null_fields_are_empty() {
        let json = br#"{"config": {"Env": null, "Labels": null, "ExposedPorts": null,
            "Cmd": null}, "history": null, "rootfs": {"diff_ids": null}}"#;
        let c = ImageConfig::parse(DOCKER_CONFIG, json).unwrap();
        assert!(c.config.env.is_empty() && c.config.labels.is_empty());
        assert!(c.config.exposed_ports.is_empty());
        assert!(c.history.is_empty() && c.rootfs.diff_ids.is_empty());
        assert_eq!(c.config.cmd, None);
        let empty = ImageConfig::parse(OCI_CONFIG, b"{}").unwrap();
        assert_eq!(empty, ImageConfig::default());
    }

    #[test]
    fn artifacts_and_garbage_are_no_config() {
        assert_eq!(
            ImageConfig::parse(crate::media_type::OCI_EMPTY, b"{}"),
            None
        );
        assert_eq!(ImageConfig::parse(OCI_CONFIG, b"\x00\x01 not json"), None);
        assert_eq!(ImageConfig::parse(OCI_CONFIG, b"[1, 2]"), None);
    }

    #[test]
    fn exposed_ports_are_written_as_a_list() {
        let mut c = ImageConfig::default();
        c.config.exposed_ports = vec!["80/tcp".into()];
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["config"]["ExposedPorts"],
            serde_json::json!(["80/tcp"])
        );
    }
}

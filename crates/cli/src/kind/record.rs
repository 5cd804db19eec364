//! What `berth kind up` created, kept in a small TOML file per cluster so that
//! `down` removes exactly that and nothing else.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub cluster: String,
    /// True only when `up` created the cluster; `down` deletes it only then.
    pub created_cluster: bool,
    pub registry: String,
    pub port: u16,
    /// The named data volume, kept by `down` unless `--purge`.
    pub volume: Option<String>,
    /// A host folder holding the data instead; never deleted.
    pub data_dir: Option<PathBuf>,
    /// Nodes of a cluster `up` attached to whose hosts.toml it wrote.
    #[serde(default)]
    pub patched_nodes: Vec<String>,
    /// Whether `up` applied the ConfigMap to a cluster it attached to.
    #[serde(default)]
    pub applied_configmap: bool,
    /// The user `up --auth` made; `down` removes its password file with the
    /// registry container.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// Registries `up --mirror` wrote a `certs.d/<registry>` folder for on
    /// the patched nodes, and gave the registry container a config file for
    /// (every `up`'s, so `down` undoes them all).
    #[serde(default)]
    pub mirrors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0} is not a berth kind record: {1}")]
    Parse(PathBuf, String),
    #[error("no place for berth's state: set XDG_STATE_HOME or HOME")]
    NoHome,
}

/// `$XDG_STATE_HOME/berth/kind`, else `~/.local/state/berth/kind` (macOS too:
/// one place to look is simpler than a per-OS one).
pub fn dir(env: impl Fn(&str) -> Option<String>) -> Result<PathBuf, RecordError> {
    let base = match env("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(env("HOME").ok_or(RecordError::NoHome)?).join(".local/state"),
    };
    Ok(base.join("berth").join("kind"))
}

pub fn path(dir: &Path, cluster: &str) -> PathBuf {
    dir.join(format!("{cluster}.toml"))
}

/// The record, or `None` when `up` never ran for this cluster.
pub fn load(path: &Path) -> Result<Option<Record>, RecordError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| RecordError::Parse(path.into(), e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RecordError::Read(path.into(), e)),
    }
}

/// Clusters other than `cluster` whose records name the registry `registry`.
pub fn other_users(dir: &Path, cluster: &str, registry: &str) -> Result<Vec<String>, RecordError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RecordError::Read(dir.into(), e)),
    };
    let mut users = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        if let Some(r) = load(&p)? {
            if r.cluster != cluster && r.registry == registry {
                users.push(r.cluster);
            }
        }
    }
    users.sort();
    Ok(users)
}

pub fn save(path: &Path, record: &Record) -> Result<(), RecordError> {
    let text =
        toml::to_string(record).map_err(|e| RecordError::Parse(path.into(), e.to_string()))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| RecordError::Write(parent.into(), e))?;
    }
    std::fs::write(path, text).map_err(|e| RecordError::Write(path.into(), e))
}

pub fn forget(path: &Path) -> Result<(), RecordError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RecordError::Write(path.into(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_round_trip_through_a_folder_with_spaces() {
        let tmp = tempfile::tempdir().unwrap();
        let p = path(&tmp.path().join("state with spaces"), "kind");
        assert_eq!(load(&p).unwrap(), None);
        let r = Record {
            cluster: "kind".into(),
            created_cluster: true,
            registry: "kind-registry".into(),
            port: 5000,
            volume: None,
            data_dir: Some("/data with spaces".into()),
            patched_nodes: vec!["a".into()],
            applied_configmap: false,
            auth_user: Some("kind".into()),
            mirrors: vec!["docker.io".into()],
        };
        save(&p, &r).unwrap();
        assert_eq!(load(&p).unwrap(), Some(r.clone()));
        let dir = tmp.path().join("state with spaces");
        assert_eq!(
            other_users(&dir, "kind", "kind-registry").unwrap(),
            Vec::<String>::new()
        );
        let other = Record {
            cluster: "dev".into(),
            ..r.clone()
        };
        save(&path(&dir, "dev"), &other).unwrap();
        assert_eq!(other_users(&dir, "kind", "kind-registry").unwrap(), ["dev"]);
        assert_eq!(
            other_users(&dir, "kind", "elsewhere").unwrap(),
            Vec::<String>::new()
        );
        forget(&p).unwrap();
        assert_eq!(load(&p).unwrap(), None);
    }

    #[test]
    fn a_record_written_before_mirrors_existed_still_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let p = path(tmp.path(), "kind");
        std::fs::write(
            &p,
            "cluster = \"kind\"\ncreated_cluster = true\nregistry = \"kind-registry\"\nport = 5000\n",
        )
        .unwrap();
        let r = load(&p).unwrap().unwrap();
        assert!(r.mirrors.is_empty() && r.patched_nodes.is_empty());
    }

    #[test]
    fn state_folder_follows_xdg_then_home() {
        let env = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            dir(env).unwrap(),
            PathBuf::from("/home/u/.local/state/berth/kind")
        );
        let env = |k: &str| Some(format!("/x/{k}"));
        assert_eq!(
            dir(env).unwrap(),
            PathBuf::from("/x/XDG_STATE_HOME/berth/kind")
        );
    }
}

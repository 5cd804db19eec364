//! `[storage]`, `[storage.s3]` and `[metadata]`: where blobs and metadata
//! live. The filesystem and the embedded SQLite database under the data
//! folder are the defaults; S3-compatible storage and PostgreSQL let
//! several `berth serve` replicas share one registry.
//!
//! Secrets (the S3 secret key, the PostgreSQL password) come from the file,
//! the environment or a `*_file`; they are kept in [`Secret`] and shown by
//! no `Debug` or `Display` here: a PostgreSQL URL is printed without its
//! password.

use super::pull_through::Secret;
use super::ConfigError;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// The region when none is configured, as AWS's own tools assume.
pub const DEFAULT_REGION: &str = "us-east-1";

/// `[storage]` as written.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub backend: Option<String>,
    pub s3: Option<RawS3>,
}

/// `[storage.s3]` as written.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub secret_key_file: Option<PathBuf>,
    pub force_path_style: Option<bool>,
    pub root: Option<String>,
    pub redirect: Option<bool>,
}

/// `[metadata]` as written.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawMetadata {
    /// May hold a password: kept as a secret until it is redacted.
    pub url: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

impl RawStorage {
    /// Keys set in `over` replace ours, key by key.
    pub fn overlay(self, over: RawStorage) -> RawStorage {
        RawStorage {
            backend: over.backend.or(self.backend),
            s3: match (self.s3, over.s3) {
                (Some(under), Some(over)) => Some(under.overlay(over)),
                (under, over) => over.or(under),
            },
        }
    }

    /// `BERTH_STORAGE` and `BERTH_S3_*`.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Option<RawStorage>, ConfigError> {
        let get = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
        let flag = |key: &'static str| -> Result<Option<bool>, ConfigError> {
            get(key)
                .map(|v| v.parse().map_err(|_| ConfigError::Invalid(key, v)))
                .transpose()
        };
        let s3 = RawS3 {
            endpoint: get("BERTH_S3_ENDPOINT"),
            bucket: get("BERTH_S3_BUCKET"),
            region: get("BERTH_S3_REGION"),
            access_key: get("BERTH_S3_ACCESS_KEY"),
            secret_key: get("BERTH_S3_SECRET_KEY").map(Secret::new),
            secret_key_file: get("BERTH_S3_SECRET_KEY_FILE").map(PathBuf::from),
            force_path_style: flag("BERTH_S3_FORCE_PATH_STYLE")?,
            root: get("BERTH_S3_ROOT"),
            redirect: flag("BERTH_S3_REDIRECT")?,
        };
        let storage = RawStorage {
            backend: get("BERTH_STORAGE"),
            s3: (s3 != RawS3::default()).then_some(s3),
        };
        Ok((storage != RawStorage::default()).then_some(storage))
    }
}

impl RawS3 {
    pub fn overlay(self, over: RawS3) -> RawS3 {
        // A secret given one way in a higher layer replaces the other way
        // in a lower one: the file under an env value would otherwise be
        // refused as "both".
        let (secret_key, secret_key_file) =
            if over.secret_key.is_some() || over.secret_key_file.is_some() {
                (over.secret_key, over.secret_key_file)
            } else {
                (self.secret_key, self.secret_key_file)
            };
        RawS3 {
            endpoint: over.endpoint.or(self.endpoint),
            bucket: over.bucket.or(self.bucket),
            region: over.region.or(self.region),
            access_key: over.access_key.or(self.access_key),
            secret_key,
            secret_key_file,
            force_path_style: over.force_path_style.or(self.force_path_style),
            root: over.root.or(self.root),
            redirect: over.redirect.or(self.redirect),
        }
    }
}

impl RawMetadata {
    pub fn overlay(self, over: RawMetadata) -> RawMetadata {
        RawMetadata {
            url: over.url.or(self.url),
            password_file: over.password_file.or(self.password_file),
        }
    }

    /// `BERTH_METADATA_URL` and `BERTH_METADATA_PASSWORD_FILE`.
    pub fn from_env(env: &HashMap<String, String>) -> Option<RawMetadata> {
        let get = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
        let metadata = RawMetadata {
            url: get("BERTH_METADATA_URL").map(Secret::new),
            password_file: get("BERTH_METADATA_PASSWORD_FILE").map(PathBuf::from),
        };
        (metadata != RawMetadata::default()).then_some(metadata)
    }
}

/// A secret given inline or as a file read when the stores open (so that
/// commands that never open them, such as `berth user`, do not need it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Value(Secret),
    /// Trailing newline trimmed when read.
    File(PathBuf),
}

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// `<data_dir>/blobs`.
    Filesystem,
    S3(S3Config),
}

/// `[storage.s3]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `None`: AWS's own endpoint for the region.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Both or neither; neither: the S3 client's own credential chain
    /// (`AWS_*` variables, instance roles).
    pub credentials: Option<(String, SecretSource)>,
    /// `bucket` in the path rather than the host name (Garage, MinIO).
    pub force_path_style: bool,
    /// Key prefix inside the bucket, without leading or trailing `/`;
    /// empty: the bucket's top.
    pub root: String,
    /// Presigned redirects for blob GETs.
    pub redirect: bool,
}

/// Where metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataConfig {
    /// `<data_dir>/meta.db`.
    Sqlite,
    Postgres(PostgresConfig),
}

impl MetadataConfig {
    /// Whether other processes (replicas) may share this metadata store.
    pub fn is_shared(&self) -> bool {
        matches!(self, MetadataConfig::Postgres(_))
    }
}

/// A PostgreSQL connection URL, shown only with its password replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    url: Secret,
    /// From `password_file`, replacing any password in the URL.
    pub password_file: Option<PathBuf>,
}

impl PostgresConfig {
    /// The URL as configured, password included: for the one place that connects.
    pub fn url(&self) -> &str {
        self.url.expose()
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        redact_url(self.url.expose())
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted())
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `url` with the password of its user-info (`user:password@`) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    // A password may hold `@` and even an unescaped `/`: the user info ends
    // at the last `@` before the query, so that no part of it is shown.
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..before_query].rfind('@') else {
        return url.to_string();
    };
    let user_info = &rest[..at];
    match user_info.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..authority_start],
            &user_info[..colon],
            &url[authority_start + at..]
        ),
        None => url.to_string(),
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Storage {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Validates `[storage]`.
pub fn validate_storage(raw: Option<RawStorage>) -> Result<StorageConfig, ConfigError> {
    let raw = raw.unwrap_or_default();
    let backend = raw.backend.as_deref().unwrap_or("filesystem");
    match backend.to_ascii_lowercase().as_str() {
        "filesystem" => Ok(StorageConfig::Filesystem),
        "s3" => validate_s3(raw.s3.unwrap_or_default()).map(StorageConfig::S3),
        other => Err(invalid(
            "storage.backend (REGISTRY_STORAGE, BERTH_STORAGE)",
            format!("{other:?} is not a backend: \"filesystem\" or \"s3\""),
        )),
    }
}

fn validate_s3(raw: RawS3) -> Result<S3Config, ConfigError> {
    let bucket = raw.bucket.filter(|b| !b.trim().is_empty()).ok_or_else(|| {
        invalid(
            "storage.s3.bucket (REGISTRY_STORAGE_S3_BUCKET, BERTH_S3_BUCKET)",
            "required when storage.backend is \"s3\"",
        )
    })?;
    if bucket.contains('/') {
        return Err(invalid(
            "storage.s3.bucket",
            format!("{bucket:?} is a bucket name, not a path: use storage.s3.root for a prefix"),
        ));
    }
    if let Some(endpoint) = &raw.endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid(
                "storage.s3.endpoint (REGISTRY_STORAGE_S3_REGIONENDPOINT, BERTH_S3_ENDPOINT)",
                format!("{endpoint:?} is not an http:// or https:// URL"),
            ));
        }
    }
    let secret = match (raw.secret_key, raw.secret_key_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "storage.s3.secret_key_file",
                "give secret_key or secret_key_file, not both",
            ))
        }
        (Some(value), None) => Some(SecretSource::Value(value)),
        (None, Some(path)) => Some(SecretSource::File(path)),
        (None, None) => None,
    };
    let credentials = match (raw.access_key, secret) {
        (Some(access), Some(secret)) => Some((access, secret)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "storage.s3.access_key",
                "needs secret_key or secret_key_file (REGISTRY_STORAGE_S3_SECRETKEY, BERTH_S3_SECRET_KEY, BERTH_S3_SECRET_KEY_FILE)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "storage.s3.secret_key",
                "needs access_key (REGISTRY_STORAGE_S3_ACCESSKEY, BERTH_S3_ACCESS_KEY)",
            ))
        }
    };
    let root = raw.root.unwrap_or_default().trim_matches('/').to_string();
    if root.split('/').any(|part| part == "." || part == "..") {
        return Err(invalid(
            "storage.s3.root",
            format!("{root:?} holds . or .."),
        ));
    }
    Ok(S3Config {
        endpoint: raw.endpoint.map(|e| e.trim_end_matches('/').to_string()),
        bucket,
        region: raw.region.unwrap_or_else(|| DEFAULT_REGION.to_string()),
        credentials,
        force_path_style: raw.force_path_style.unwrap_or(false),
        root,
        redirect: raw.redirect.unwrap_or(false),
    })
}

/// Validates `[metadata]`.
pub fn validate_metadata(raw: Option<RawMetadata>) -> Result<MetadataConfig, ConfigError> {
    let raw = raw.unwrap_or_default();
    let Some(url) = raw.url else {
        if raw.password_file.is_some() {
            return Err(invalid(
                "metadata.password_file",
                "needs metadata.url (--metadata-url, BERTH_METADATA_URL)",
            ));
        }
        return Ok(MetadataConfig::Sqlite);
    };
    let text = url.expose();
    let scheme = text.split("://").next().unwrap_or_default();
    if !text.contains("://") || !matches!(scheme, "postgres" | "postgresql") {
        return Err(invalid(
            "metadata.url (--metadata-url, BERTH_METADATA_URL)",
            format!(
                "{:?} is not a postgres:// or postgresql:// URL",
                redact_url(text)
            ),
        ));
    }
    Ok(MetadataConfig::Postgres(PostgresConfig {
        url,
        password_file: raw.password_file,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_cut_out_of_urls() {
        for (url, shown) in [
            (
                "postgres://berth:s3cret@db:5432/berth",
                "postgres://berth:***@db:5432/berth",
            ),
            (
                "postgres://berth:p@ss/w@db/berth?sslmode=disable",
                "postgres://berth:***@db/berth?sslmode=disable",
            ),
            ("postgres://berth@db/berth", "postgres://berth@db/berth"),
            ("postgres://db/berth", "postgres://db/berth"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_postgres_config_never_shows_its_password() {
        let config = validate_metadata(Some(RawMetadata {
            url: Some(Secret::new("postgres://u:hunter2@h/d")),
            password_file: None,
        }))
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://u:***@h/d"), "{shown}");
        let MetadataConfig::Postgres(pg) = config else {
            panic!("not postgres")
        };
        assert_eq!(pg.url(), "postgres://u:hunter2@h/d");
    }

    #[test]
    fn bad_storage_settings_name_their_key() {
        let s3 = |raw: RawS3| {
            validate_storage(Some(RawStorage {
                backend: Some("s3".into()),
                s3: Some(raw),
            }))
            .unwrap_err()
            .to_string()
        };
        assert!(s3(RawS3::default()).starts_with("storage.s3.bucket"));
        let bucket = || Some("b".to_string());
        let err = s3(RawS3 {
            bucket: bucket(),
            endpoint: Some("localhost:3900".into()),
            ..Default::default()
        });
        assert!(err.starts_with("storage.s3.endpoint"), "{err}");
        let err = s3(RawS3 {
            bucket: bucket(),
            access_key: Some("GK1".into()),
            ..Default::default()
        });
        assert!(err.starts_with("storage.s3.access_key"), "{err}");
        let err = s3(RawS3 {
            bucket: bucket(),
            access_key: Some("GK1".into()),
            secret_key: Some(Secret::new("top")),
            secret_key_file: Some("/s".into()),
            ..Default::default()
        });
        assert!(err.starts_with("storage.s3.secret_key_file"), "{err}");
        assert!(!err.contains("top"));
        let err = validate_storage(Some(RawStorage {
            backend: Some("gcs".into()),
            s3: None,
        }))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("storage.backend"), "{err}");
        let err = validate_metadata(Some(RawMetadata {
            url: Some(Secret::new("mysql://u:pw@h/d")),
            password_file: None,
        }))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("metadata.url"), "{err}");
        assert!(!err.contains("pw@"), "{err}");
    }

    #[test]
    fn s3_defaults_and_root_normalisation() {
        let storage = validate_storage(Some(RawStorage {
            backend: Some("S3".into()),
            s3: Some(RawS3 {
                bucket: Some("berth".into()),
                root: Some("/registry/".into()),
                endpoint: Some("http://127.0.0.1:3900/".into()),
                ..Default::default()
            }),
        }))
        .unwrap();
        assert_eq!(
            storage,
            StorageConfig::S3(S3Config {
                endpoint: Some("http://127.0.0.1:3900".into()),
                bucket: "berth".into(),
                region: DEFAULT_REGION.into(),
                credentials: None,
                force_path_style: false,
                root: "registry".into(),
                redirect: false,
            })
        );
    }
}

//! Configuration in two steps: raw values from a TOML file, the environment
//! and flags (flags win over environment, environment over file), then one
//! validated [`Config`] that the server starts from.
//!
//! The environment layer is `BERTH_*` over `registry:2`'s `REGISTRY_*`
//! (see [`registry_env`]), so berth's image runs where `registry:2` did.

mod gc;
mod policies;
pub mod pull_through;
mod registry_env;
pub mod storage;

pub use gc::GcConfig;

use berth_auth::{AccessRules, ExternalIssuerConfig, RuleConfig, RulesError};
use berth_registry::policy::Policies;
use berth_server::{CorsError, CorsPolicy, CorsSettings, TlsSettings};
pub use policies::{ImmutableConfig, PolicyError, QuotaConfig, RetentionConfig};
pub use pull_through::PullThroughConfig;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
pub use storage::{MetadataConfig, S3Config, SecretSource, StorageConfig};

pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";
pub const DEFAULT_DATA_DIR: &str = "./berth-data";

/// Longest upload expiry accepted (ten years): beyond it time arithmetic overflows.
const MAX_UPLOAD_EXPIRY_SECS: u64 = 10 * 365 * 24 * 3600;

/// Longest timeout accepted (a day): a client holding a connection longer is not slow but gone.
const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// A timeout setting: `default` when unset; 0 and values above a day are refused.
fn seconds(key: &'static str, value: Option<u64>, default: u64) -> Result<Duration, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(ConfigError::Invalid(key, "0".into())),
        n if n > MAX_TIMEOUT_SECS => Err(ConfigError::Invalid(key, n.to_string())),
        n => Ok(Duration::from_secs(n)),
    }
}

/// Settings as written in the file, the environment or flags; all optional.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub addr: Option<String>,
    /// HTTPS: the certificate chain and key (PEM files), both or neither.
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub delete_enabled: Option<bool>,
    pub upload_expiry_secs: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub body_idle_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    pub manifest_body_budget_mib: Option<usize>,
    /// Pushes are refused while free space is under the smaller of these two.
    pub min_free_bytes: Option<u64>,
    pub min_free_percent: Option<u8>,
    /// Upload sessions open at once, in total and per client address.
    pub max_upload_sessions: Option<usize>,
    pub max_upload_sessions_per_client: Option<usize>,
    /// Browser origins answered with CORS headers (`*` for any).
    pub cors_allowed_origins: Option<Vec<String>>,
    pub cors_allowed_methods: Option<Vec<String>>,
    pub cors_allowed_headers: Option<Vec<String>>,
    pub cors_expose_headers: Option<Vec<String>>,
    pub cors_allow_credentials: Option<bool>,
    /// Whether `/metrics` answers clients beyond loopback.
    pub metrics_public: Option<bool>,
    /// The htpasswd file of users; setting it turns auth on.
    pub htpasswd: Option<PathBuf>,
    /// The Basic challenge's realm.
    pub auth_realm: Option<String>,
    /// Bearer challenges and the `/token` service (Basic still accepted).
    pub token_auth: Option<bool>,
    /// Absolute URL of `/token` for challenges; default: the request's scheme and Host.
    pub token_realm: Option<String>,
    pub token_service: Option<String>,
    pub token_ttl_secs: Option<u64>,
    /// ES256 private key (PEM) signing tokens; default `<data_dir>/auth/token-key.pem`.
    pub token_key: Option<PathBuf>,
    /// `[groups]`: group name → user names.
    pub groups: Option<BTreeMap<String, Vec<String>>>,
    /// `[[access]]`: who may do what on which repositories.
    pub access: Option<Vec<RuleConfig>>,
    /// `[[token_issuers]]`: external token services whose tokens are accepted.
    pub token_issuers: Option<Vec<ExternalIssuerConfig>>,
    /// `[gc]`: garbage collection's grace, interval and untagged manifests.
    pub gc: Option<gc::RawGc>,
    /// `[[retention]]`, `[[immutable]]`, `[[quota]]`: see [`policies`].
    pub retention: Option<Vec<RetentionConfig>>,
    pub immutable: Option<Vec<ImmutableConfig>>,
    pub quota: Option<Vec<QuotaConfig>>,
    /// `[cache]`, `[[upstream]]`, `[proxy]`: see [`pull_through`].
    pub cache: Option<pull_through::RawCache>,
    pub upstream: Option<Vec<pull_through::RawUpstream>>,
    pub proxy: Option<pull_through::RawProxy>,
    /// `[storage]` (and `[storage.s3]`), `[metadata]`: see [`storage`].
    pub storage: Option<storage::RawStorage>,
    pub metadata: Option<storage::RawMetadata>,
}

impl RawConfig {
    /// Values set in `over` replace ours.
    fn overlay(self, over: RawConfig) -> RawConfig {
        RawConfig {
            addr: over.addr.or(self.addr),
            tls_certificate: over.tls_certificate.or(self.tls_certificate),
            tls_key: over.tls_key.or(self.tls_key),
            data_dir: over.data_dir.or(self.data_dir),
            delete_enabled: over.delete_enabled.or(self.delete_enabled),
            upload_expiry_secs: over.upload_expiry_secs.or(self.upload_expiry_secs),
            header_read_timeout_secs: over
                .header_read_timeout_secs
                .or(self.header_read_timeout_secs),
            idle_timeout_secs: over.idle_timeout_secs.or(self.idle_timeout_secs),
            body_idle_timeout_secs: over.body_idle_timeout_secs.or(self.body_idle_timeout_secs),
            max_connections: over.max_connections.or(self.max_connections),
            shutdown_grace_secs: over.shutdown_grace_secs.or(self.shutdown_grace_secs),
            manifest_body_budget_mib: over
                .manifest_body_budget_mib
                .or(self.manifest_body_budget_mib),
            min_free_bytes: over.min_free_bytes.or(self.min_free_bytes),
            min_free_percent: over.min_free_percent.or(self.min_free_percent),
            max_upload_sessions: over.max_upload_sessions.or(self.max_upload_sessions),
            max_upload_sessions_per_client: over
                .max_upload_sessions_per_client
                .or(self.max_upload_sessions_per_client),
            cors_allowed_origins: over.cors_allowed_origins.or(self.cors_allowed_origins),
            cors_allowed_methods: over.cors_allowed_methods.or(self.cors_allowed_methods),
            cors_allowed_headers: over.cors_allowed_headers.or(self.cors_allowed_headers),
            cors_expose_headers: over.cors_expose_headers.or(self.cors_expose_headers),
            cors_allow_credentials: over.cors_allow_credentials.or(self.cors_allow_credentials),
            metrics_public: over.metrics_public.or(self.metrics_public),
            htpasswd: over.htpasswd.or(self.htpasswd),
            auth_realm: over.auth_realm.or(self.auth_realm),
            token_auth: over.token_auth.or(self.token_auth),
            token_realm: over.token_realm.or(self.token_realm),
            token_service: over.token_service.or(self.token_service),
            token_ttl_secs: over.token_ttl_secs.or(self.token_ttl_secs),
            token_key: over.token_key.or(self.token_key),
            groups: over.groups.or(self.groups),
            access: over.access.or(self.access),
            token_issuers: over.token_issuers.or(self.token_issuers),
            gc: match (self.gc, over.gc) {
                (Some(under), Some(over)) => Some(under.overlay(over)),
                (under, over) => over.or(under),
            },
            retention: over.retention.or(self.retention),
            immutable: over.immutable.or(self.immutable),
            quota: over.quota.or(self.quota),
            cache: match (self.cache, over.cache) {
                (Some(under), Some(over)) => Some(under.overlay(over)),
                (under, over) => over.or(under),
            },
            upstream: over.upstream.or(self.upstream),
            proxy: match (self.proxy, over.proxy) {
                (Some(under), Some(over)) => Some(under.overlay(over)),
                (under, over) => over.or(under),
            },
            storage: match (self.storage, over.storage) {
                (Some(under), Some(over)) => Some(under.overlay(over)),
                (under, over) => over.or(under),
            },
            metadata: match (self.metadata, over.metadata) {
                (Some(under), Some(over)) => Some(under.overlay(over)),
                (under, over) => over.or(under),
            },
        }
    }

    /// Reads `BERTH_*` variables from `env`.
    fn from_env(env: &HashMap<String, String>) -> Result<RawConfig, ConfigError> {
        fn parse<T: std::str::FromStr>(
            env: &HashMap<String, String>,
            key: &'static str,
        ) -> Result<Option<T>, ConfigError> {
            env.get(key)
                .filter(|v| !v.is_empty())
                .map(|v| v.parse().map_err(|_| ConfigError::Invalid(key, v.clone())))
                .transpose()
        }
        /// A comma-separated list.
        fn list(env: &HashMap<String, String>, key: &str) -> Option<Vec<String>> {
            env.get(key).filter(|v| !v.is_empty()).map(|v| {
                v.split(',')
                    .map(|item| item.trim().to_string())
                    .filter(|item| !item.is_empty())
                    .collect()
            })
        }
        Ok(RawConfig {
            addr: parse(env, "BERTH_ADDR")?,
            tls_certificate: parse(env, "BERTH_TLS_CERTIFICATE")?,
            tls_key: parse(env, "BERTH_TLS_KEY")?,
            data_dir: parse(env, "BERTH_DATA_DIR")?,
            delete_enabled: parse(env, "BERTH_DELETE_ENABLED")?,
            upload_expiry_secs: parse(env, "BERTH_UPLOAD_EXPIRY_SECS")?,
            header_read_timeout_secs: parse(env, "BERTH_HEADER_READ_TIMEOUT_SECS")?,
            idle_timeout_secs: parse(env, "BERTH_IDLE_TIMEOUT_SECS")?,
            body_idle_timeout_secs: parse(env, "BERTH_BODY_IDLE_TIMEOUT_SECS")?,
            max_connections: parse(env, "BERTH_MAX_CONNECTIONS")?,
            shutdown_grace_secs: parse(env, "BERTH_SHUTDOWN_GRACE_SECS")?,
            manifest_body_budget_mib: parse(env, "BERTH_MANIFEST_BODY_BUDGET_MIB")?,
            min_free_bytes: parse(env, "BERTH_MIN_FREE_BYTES")?,
            min_free_percent: parse(env, "BERTH_MIN_FREE_PERCENT")?,
            max_upload_sessions: parse(env, "BERTH_MAX_UPLOAD_SESSIONS")?,
            max_upload_sessions_per_client: parse(env, "BERTH_MAX_UPLOAD_SESSIONS_PER_CLIENT")?,
            cors_allowed_origins: list(env, "BERTH_CORS_ALLOWED_ORIGINS"),
            cors_allowed_methods: list(env, "BERTH_CORS_ALLOWED_METHODS"),
            cors_allowed_headers: list(env, "BERTH_CORS_ALLOWED_HEADERS"),
            cors_expose_headers: list(env, "BERTH_CORS_EXPOSE_HEADERS"),
            cors_allow_credentials: parse(env, "BERTH_CORS_ALLOW_CREDENTIALS")?,
            metrics_public: parse(env, "BERTH_METRICS_PUBLIC")?,
            htpasswd: parse(env, "BERTH_HTPASSWD")?,
            auth_realm: parse(env, "BERTH_AUTH_REALM")?,
            token_auth: parse(env, "BERTH_TOKEN_AUTH")?,
            token_realm: parse(env, "BERTH_TOKEN_REALM")?,
            token_service: parse(env, "BERTH_TOKEN_SERVICE")?,
            token_ttl_secs: parse(env, "BERTH_TOKEN_TTL_SECS")?,
            token_key: parse(env, "BERTH_TOKEN_KEY")?,
            // Tables live in the file only.
            groups: None,
            access: None,
            token_issuers: None,
            gc: gc::RawGc::from_env(env)?,
            retention: None,
            immutable: None,
            quota: None,
            cache: pull_through::RawCache::from_env(env)?,
            upstream: None,
            // REGISTRY_PROXY_*: see `registry_env`.
            proxy: None,
            storage: storage::RawStorage::from_env(env)?,
            metadata: storage::RawMetadata::from_env(env),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("{0}={1:?} is not valid")]
    Invalid(&'static str, String),
    #[error("address {0:?} is not HOST:PORT")]
    Addr(String),
    #[error(transparent)]
    Cors(#[from] CorsError),
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error("{0} needs htpasswd (the users): without it auth is off")]
    NeedsHtpasswd(&'static str),
    #[error("token issuer {0:?}: give exactly one of public_key and jwks")]
    IssuerKey(String),
    #[error("{key}: {reason}")]
    Gc { key: &'static str, reason: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A pull-through setting; `key` says where (`[[upstream]] 2 ("ghcr.io") prefix`).
    #[error("{key}: {reason}")]
    PullThrough { key: String, reason: String },
    /// A `[storage]` or `[metadata]` setting; `key` names it (and its variables).
    #[error("{key}: {reason}")]
    Storage { key: String, reason: String },
    #[error("TLS needs both a certificate and a key (tls_certificate and tls_key, or --tls-cert and --tls-key); only the {0} is set")]
    TlsHalf(&'static str),
}

/// What loading noticed but did not refuse; logged once logging is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    /// A `REGISTRY_*` variable berth does not understand (its value is
    /// never shown: it may be a secret).
    Ignored(String),
    /// A `REGISTRY_*` and a `BERTH_*` variable set the same thing.
    Overridden {
        registry: String,
        berth: &'static str,
    },
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigWarning::Ignored(name) => {
                write!(f, "{name} is not understood by berth and is ignored")
            }
            ConfigWarning::Overridden { registry, berth } => {
                write!(f, "{berth} and {registry} are both set: using {berth}")
            }
        }
    }
}

/// Validated settings, ready to start the server with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub addr: SocketAddr,
    /// HTTPS with this certificate and key; plain HTTP when `None`.
    pub tls: Option<TlsSettings>,
    pub data_dir: PathBuf,
    pub delete_enabled: bool,
    pub upload_expiry: Duration,
    /// Deadline for a request head, from its first byte (or the connection's start).
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Longest pause inside a request body.
    pub body_idle_timeout: Duration,
    /// Connections held at once; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// How long requests in flight may take after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Bytes all manifest bodies being received may hold together.
    pub manifest_body_budget: usize,
    pub min_free_bytes: u64,
    pub min_free_percent: u8,
    pub max_upload_sessions: usize,
    pub max_upload_sessions_per_client: usize,
    pub cors: CorsSettings,
    /// A `tracing` filter from `REGISTRY_LOG_LEVEL`, used when neither
    /// `BERTH_LOG` nor `RUST_LOG` is set.
    pub log_level: Option<String>,
    pub warnings: Vec<ConfigWarning>,
    pub metrics_public: bool,
    /// Users, rules and tokens; `None`: auth is off.
    pub auth: Option<AuthSettings>,
    pub gc: GcConfig,
    /// Retention, immutable tags and quotas.
    pub policies: Policies,
    /// The pull-through cache: upstreams, the fallback, freshness, size.
    pub pull_through: PullThroughConfig,
    /// Where blobs live: `<data_dir>/blobs` or an S3 bucket.
    pub storage: StorageConfig,
    /// Where metadata lives: `<data_dir>/meta.db` or PostgreSQL.
    pub metadata: MetadataConfig,
}

/// The auth settings, validated; the key files are read when serving starts.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSettings {
    pub htpasswd: PathBuf,
    /// Realm of Basic challenges.
    pub realm: String,
    /// The token service, when `token_auth` is on.
    pub token: Option<TokenSettings>,
    pub rules: AccessRules,
    pub issuers: Vec<ExternalIssuerConfig>,
    /// `token_key`, which signs web UI sessions in Basic mode too; `None`:
    /// `<data_dir>/auth/token-key.pem`, generated on first start.
    pub key: Option<PathBuf>,
}

/// The token service's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// `None`: `<scheme>://<Host>/token` of each request.
    pub realm: Option<String>,
    pub service: String,
    pub ttl: Duration,
    /// `None`: `<data_dir>/auth/token-key.pem`, generated on first start.
    pub key: Option<PathBuf>,
}

/// Token lifetimes accepted: a token outliving a day is a password.
const MAX_TOKEN_TTL_SECS: u64 = 24 * 3600;

/// Reads the auth keys of `raw`; `None` without `htpasswd`.
fn auth_settings(raw: &mut RawConfig) -> Result<Option<AuthSettings>, ConfigError> {
    let token_auth = raw.token_auth.unwrap_or(false);
    let Some(htpasswd) = raw.htpasswd.take() else {
        if token_auth {
            return Err(ConfigError::NeedsHtpasswd("token_auth"));
        }
        if raw.access.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(ConfigError::NeedsHtpasswd("[[access]]"));
        }
        return Ok(None);
    };
    let rules = AccessRules::new(
        raw.groups.take().unwrap_or_default(),
        raw.access.take().unwrap_or_default(),
    )?;
    let issuers = raw.token_issuers.take().unwrap_or_default();
    for issuer in &issuers {
        if issuer.public_key.is_some() == issuer.jwks.is_some() {
            return Err(ConfigError::IssuerKey(issuer.issuer.clone()));
        }
    }
    let key = raw.token_key.clone();
    let token = if token_auth {
        let ttl = raw.token_ttl_secs.unwrap_or(300);
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
            return Err(ConfigError::Invalid("token_ttl_secs", ttl.to_string()));
        }
        if let Some(realm) = &raw.token_realm {
            if !(realm.starts_with("http://") || realm.starts_with("https://")) {
                return Err(ConfigError::Invalid("token_realm", realm.clone()));
            }
        }
        Some(TokenSettings {
            realm: raw.token_realm.take(),
            service: raw.token_service.take().unwrap_or_else(|| "berth".into()),
            ttl: Duration::from_secs(ttl),
            key: raw.token_key.take(),
        })
    } else {
        None
    };
    Ok(Some(AuthSettings {
        htpasswd,
        realm: raw.auth_realm.take().unwrap_or_else(|| "berth".into()),
        token,
        rules,
        issuers,
        key,
    }))
}

impl Config {
    /// Merges file (if any), environment and flags, then validates.
    pub fn load(
        file: Option<PathBuf>,
        env: &HashMap<String, String>,
        flags: RawConfig,
    ) -> Result<Config, ConfigError> {
        let file = file.or_else(|| env.get("BERTH_CONFIG").map(PathBuf::from));
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(path, e))?
            }
            None => RawConfig::default(),
        };
        let registry = registry_env::read(env)?;
        let mut warnings: Vec<ConfigWarning> = registry
            .ignored
            .into_iter()
            .map(ConfigWarning::Ignored)
            .collect();
        for (variable, berth) in registry.read {
            if env.get(berth).is_some_and(|v| !v.is_empty()) {
                warnings.push(ConfigWarning::Overridden {
                    registry: variable,
                    berth,
                });
            }
        }
        let env_layer = registry.raw.overlay(RawConfig::from_env(env)?);
        // `--cors-origin` adds to the origins set below it rather than
        // replacing them: allowing one more UI must not lock out the others.
        let mut flags = flags;
        let flag_origins = flags.cors_allowed_origins.take();
        let mut raw = from_file.overlay(env_layer).overlay(flags);
        if let Some(extra) = flag_origins {
            let origins = raw.cors_allowed_origins.get_or_insert_with(Vec::new);
            for origin in extra {
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
        }
        let auth = auth_settings(&mut raw)?;
        let gc = raw.gc.take().unwrap_or_default().validate()?;
        let policies = policies::take(&mut raw)?;
        let pull_through =
            pull_through::validate(raw.cache.take(), raw.upstream.take(), raw.proxy.take())?;
        let storage = storage::validate_storage(raw.storage.take())?;
        let metadata = storage::validate_metadata(raw.metadata.take())?;
        let addr = raw.addr.unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let addr = resolve_addr(&addr).ok_or(ConfigError::Addr(addr))?;
        let upload_expiry_secs = raw.upload_expiry_secs.unwrap_or(24 * 3600);
        // 0 would expire every upload between its requests.
        if !(1..=MAX_UPLOAD_EXPIRY_SECS).contains(&upload_expiry_secs) {
            let value = upload_expiry_secs.to_string();
            return Err(ConfigError::Invalid("upload_expiry_secs", value));
        }
        let min_free_percent = raw.min_free_percent.unwrap_or(5);
        if min_free_percent > 100 {
            let value = min_free_percent.to_string();
            return Err(ConfigError::Invalid("min_free_percent", value));
        }
        let max_upload_sessions = raw.max_upload_sessions.unwrap_or(10_000);
        let max_upload_sessions_per_client = raw.max_upload_sessions_per_client.unwrap_or(100);
        for (key, value) in [
            ("max_upload_sessions", max_upload_sessions),
            (
                "max_upload_sessions_per_client",
                max_upload_sessions_per_client,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(key, value.to_string()));
            }
        }
        let cors = CorsSettings {
            allowed_origins: raw.cors_allowed_origins.unwrap_or_default(),
            allowed_methods: raw.cors_allowed_methods,
            allowed_headers: raw.cors_allowed_headers,
            expose_headers: raw.cors_expose_headers,
            allow_credentials: raw.cors_allow_credentials.unwrap_or(false),
        };
        // Refused here, with the other bad values, rather than when serving starts.
        CorsPolicy::new(&cors)?;
        let tls = match (raw.tls_certificate, raw.tls_key) {
            (Some(certificate), Some(key)) => Some(TlsSettings::new(certificate, key)),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::TlsHalf("certificate")),
            (None, Some(_)) => return Err(ConfigError::TlsHalf("key")),
        };
        Ok(Config {
            addr,
            tls,
            data_dir: raw
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            delete_enabled: raw.delete_enabled.unwrap_or(true),
            upload_expiry: Duration::from_secs(upload_expiry_secs),
            header_read_timeout: seconds(
                "header_read_timeout_secs",
                raw.header_read_timeout_secs,
                30,
            )?,
            idle_timeout: seconds("idle_timeout_secs", raw.idle_timeout_secs, 60)?,
            body_idle_timeout: seconds("body_idle_timeout_secs", raw.body_idle_timeout_secs, 60)?,
            max_connections: match raw.max_connections {
                Some(0) => return Err(ConfigError::Invalid("max_connections", "0".into())),
                n => n,
            },
            manifest_body_budget: match raw.manifest_body_budget_mib.unwrap_or(64) {
                // Below one manifest's limit, large manifests could never be pushed.
                mib @ 0..4 => {
                    return Err(ConfigError::Invalid(
                        "manifest_body_budget_mib",
                        mib.to_string(),
                    ))
                }
                mib => mib.saturating_mul(1 << 20),
            },
            shutdown_grace: Duration::from_secs(
                raw.shutdown_grace_secs.unwrap_or(30).min(MAX_TIMEOUT_SECS),
            ),
            min_free_bytes: raw.min_free_bytes.unwrap_or(1 << 30),
            min_free_percent,
            max_upload_sessions,
            max_upload_sessions_per_client,
            cors,
            log_level: registry.log_level,
            warnings,
            metrics_public: raw.metrics_public.unwrap_or(false),
            auth,
            gc,
            policies,
            pull_through,
            storage,
            metadata,
        })
    }
}

/// `HOST:PORT`, where HOST may be a name such as `localhost`; `:5000` means all interfaces.
fn resolve_addr(addr: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let addr = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    addr.to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pull_through::Secret;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_serve_localhost_5000_from_a_local_folder() {
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:5000");
        assert_eq!(c.data_dir, PathBuf::from("./berth-data"));
        assert!(c.delete_enabled);
        assert_eq!(c.upload_expiry, Duration::from_secs(86400));
        assert_eq!(c.header_read_timeout, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.body_idle_timeout, Duration::from_secs(60));
        assert_eq!(c.max_connections, None);
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert_eq!(c.manifest_body_budget, 64 << 20);
        assert_eq!((c.min_free_bytes, c.min_free_percent), (1 << 30, 5));
        assert_eq!(
            (c.max_upload_sessions, c.max_upload_sessions_per_client),
            (10_000, 100)
        );
    }

    #[test]
    fn connection_settings_come_from_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            "header_read_timeout_secs = 5\nidle_timeout_secs = 6\nmax_connections = 100\n",
        )
        .unwrap();
        let e = env(&[
            ("BERTH_BODY_IDLE_TIMEOUT_SECS", "7"),
            ("BERTH_SHUTDOWN_GRACE_SECS", "0"),
            ("BERTH_MAX_CONNECTIONS", "200"),
        ]);
        let c = Config::load(Some(file), &e, RawConfig::default()).unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.idle_timeout, Duration::from_secs(6));
        assert_eq!(c.body_idle_timeout, Duration::from_secs(7));
        assert_eq!(c.shutdown_grace, Duration::ZERO);
        assert_eq!(c.max_connections, Some(200));
        for (key, value) in [
            ("BERTH_HEADER_READ_TIMEOUT_SECS", "0"),
            ("BERTH_BODY_IDLE_TIMEOUT_SECS", "999999999"),
            ("BERTH_MAX_CONNECTIONS", "0"),
            ("BERTH_MANIFEST_BODY_BUDGET_MIB", "3"),
        ] {
            let result = Config::load(None, &env(&[(key, value)]), RawConfig::default());
            assert!(
                matches!(result, Err(ConfigError::Invalid(..))),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn flags_win_over_environment_which_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            "addr = \"127.0.0.1:7000\"\ndata_dir = \"/from/file\"\ndelete_enabled = false\nupload_expiry_secs = 5\n",
        )
        .unwrap();
        let e = env(&[
            ("BERTH_ADDR", "127.0.0.1:8000"),
            ("BERTH_DATA_DIR", "/from/env"),
        ]);
        let flags = RawConfig {
            addr: Some("127.0.0.1:9000".into()),
            ..Default::default()
        };
        let c = Config::load(Some(file), &e, flags).unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert!(!c.delete_enabled);
        assert_eq!(c.upload_expiry, Duration::from_secs(5));
    }

    #[test]
    fn tls_takes_a_certificate_and_a_key_from_file_environment_or_flags() {
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.tls, None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            "tls_certificate = \"/file/server.crt\"\ntls_key = \"/file/server.key\"\n",
        )
        .unwrap();
        let c = Config::load(Some(file.clone()), &env(&[]), RawConfig::default()).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.certificate, PathBuf::from("/file/server.crt"));
        assert_eq!(tls.key, PathBuf::from("/file/server.key"));

        let e = env(&[("BERTH_TLS_CERTIFICATE", "/env/server.crt")]);
        let flags = RawConfig {
            tls_key: Some("/flag/server.key".into()),
            ..Default::default()
        };
        let tls = Config::load(Some(file), &e, flags).unwrap().tls.unwrap();
        assert_eq!(tls.certificate, PathBuf::from("/env/server.crt"));
        assert_eq!(tls.key, PathBuf::from("/flag/server.key"));

        let e = env(&[("REGISTRY_HTTP_TLS_CERTIFICATE", "/registry/domain.crt")]);
        assert!(matches!(
            Config::load(None, &e, RawConfig::default()),
            Err(ConfigError::TlsHalf("certificate"))
        ));
        let e = env(&[
            ("REGISTRY_HTTP_TLS_CERTIFICATE", "/registry/domain.crt"),
            ("REGISTRY_HTTP_TLS_KEY", "/registry/domain.key"),
        ]);
        let c = Config::load(None, &e, RawConfig::default()).unwrap();
        assert_eq!(c.tls.unwrap().key, PathBuf::from("/registry/domain.key"));
        assert_eq!(
            c.warnings,
            vec![],
            "registry:2's TLS variables are understood"
        );
        let flags = RawConfig {
            tls_key: Some("/flag/server.key".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::load(None, &env(&[]), flags),
            Err(ConfigError::TlsHalf("key"))
        ));
    }

    #[test]
    fn gc_settings_come_from_the_file_with_the_environment_winning_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            "[gc]\ngrace = \"2h\"\ninterval = \"30m\"\nuntagged_after = \"7d\"\n",
        )
        .unwrap();
        let c = Config::load(Some(file.clone()), &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.gc.grace, Duration::from_secs(7200));
        assert_eq!(c.gc.interval, Some(Duration::from_secs(1800)));
        assert_eq!(c.gc.untagged_after, Some(Duration::from_secs(7 * 86_400)));
        let e = env(&[("BERTH_GC_INTERVAL", "off"), ("BERTH_GC_GRACE", "90s")]);
        let c = Config::load(Some(file.clone()), &e, RawConfig::default()).unwrap();
        assert_eq!(c.gc.grace, Duration::from_secs(90));
        assert_eq!(c.gc.interval, None);
        assert_eq!(
            c.gc.untagged_after,
            Some(Duration::from_secs(7 * 86_400)),
            "a key the environment does not set stays the file's"
        );
        std::fs::write(&file, "[gc]\ngrace = \"an hour\"\n").unwrap();
        let err = Config::load(Some(file.clone()), &env(&[]), RawConfig::default()).unwrap_err();
        assert!(err.to_string().starts_with("[gc] grace:"), "{err}");
        std::fs::write(&file, "[gc]\ngrce = \"1h\"\n").unwrap();
        assert!(matches!(
            Config::load(Some(file), &env(&[]), RawConfig::default()),
            Err(ConfigError::Parse(..))
        ));
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.gc, GcConfig::default());
    }

    #[test]
    fn metrics_are_private_unless_the_file_or_environment_says_public() {
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert!(!c.metrics_public);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "metrics_public = true\n").unwrap();
        let c = Config::load(Some(file.clone()), &env(&[]), RawConfig::default()).unwrap();
        assert!(c.metrics_public);
        let off = env(&[("BERTH_METRICS_PUBLIC", "false")]);
        let c = Config::load(Some(file), &off, RawConfig::default()).unwrap();
        assert!(!c.metrics_public, "the environment wins over the file");
        let bad = env(&[("BERTH_METRICS_PUBLIC", "yes")]);
        assert!(matches!(
            Config::load(None, &bad, RawConfig::default()),
            Err(ConfigError::Invalid("BERTH_METRICS_PUBLIC", _))
        ));
    }

    #[test]
    fn bad_values_are_reported_not_ignored() {
        assert!(matches!(
            Config::load(
                None,
                &env(&[("BERTH_DELETE_ENABLED", "maybe")]),
                RawConfig::default()
            ),
            Err(ConfigError::Invalid("BERTH_DELETE_ENABLED", _))
        ));
        let over = env(&[("BERTH_MIN_FREE_PERCENT", "101")]);
        assert!(matches!(
            Config::load(None, &over, RawConfig::default()),
            Err(ConfigError::Invalid("min_free_percent", _))
        ));
        let none = env(&[("BERTH_MAX_UPLOAD_SESSIONS_PER_CLIENT", "0")]);
        assert!(matches!(
            Config::load(None, &none, RawConfig::default()),
            Err(ConfigError::Invalid("max_upload_sessions_per_client", _))
        ));
        let never = env(&[("BERTH_UPLOAD_EXPIRY_SECS", "0")]);
        assert!(matches!(
            Config::load(None, &never, RawConfig::default()),
            Err(ConfigError::Invalid("upload_expiry_secs", _))
        ));
        let forever = env(&[("BERTH_UPLOAD_EXPIRY_SECS", "18446744073709551615")]);
        assert!(matches!(
            Config::load(None, &forever, RawConfig::default()),
            Err(ConfigError::Invalid("upload_expiry_secs", _))
        ));
        let flags = RawConfig {
            addr: Some("nonsense".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::load(None, &env(&[]), flags),
            Err(ConfigError::Addr(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "adr = \"typo\"\n").unwrap();
        assert!(matches!(
            Config::load(Some(file), &env(&[]), RawConfig::default()),
            Err(ConfigError::Parse(..))
        ));
    }

    #[test]
    fn registry_variables_join_the_environment_layer_below_berth_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            "addr = \"0.0.0.0:5000\"\ndata_dir = \"/var/lib/registry\"\ndelete_enabled = false\n",
        )
        .unwrap();
        let e = env(&[
            ("REGISTRY_HTTP_ADDR", ":6000"),
            ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/registry"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("BERTH_DATA_DIR", "/berth"),
            ("REGISTRY_HTTP_SECRET", "not-for-logs"),
        ]);
        let c = Config::load(Some(file.clone()), &e, RawConfig::default()).unwrap();
        // Over the file...
        assert_eq!(c.addr.to_string(), "0.0.0.0:6000");
        assert!(c.delete_enabled);
        // ...under BERTH_*, with a warning...
        assert_eq!(c.data_dir, PathBuf::from("/berth"));
        assert_eq!(
            c.warnings,
            [
                ConfigWarning::Ignored("REGISTRY_HTTP_SECRET".into()),
                ConfigWarning::Overridden {
                    registry: "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY".into(),
                    berth: "BERTH_DATA_DIR"
                }
            ]
        );
        let shown: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
        assert!(shown.iter().all(|w| !w.contains("not-for-logs")));
        assert!(shown[1].contains("using BERTH_DATA_DIR"));
        // ...and under flags.
        let flags = RawConfig {
            addr: Some("127.0.0.1:7000".into()),
            ..Default::default()
        };
        let c = Config::load(Some(file), &e, flags).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:7000");
    }

    #[test]
    fn cors_comes_from_file_berth_and_registry_variables() {
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.cors, CorsSettings::default());
        assert_eq!((c.log_level, c.warnings), (None, vec![]));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "cors_allowed_origins = [\"http://ui\"]\n").unwrap();
        let c = Config::load(Some(file.clone()), &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.cors.allowed_origins, ["http://ui"]);

        let e = env(&[
            ("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", "['*']"),
            ("REGISTRY_LOG_LEVEL", "warn"),
        ]);
        let c = Config::load(Some(file.clone()), &e, RawConfig::default()).unwrap();
        assert_eq!(c.cors.allowed_origins, ["*"]);
        assert_eq!(c.log_level.as_deref(), Some("warn"));

        let e = env(&[
            ("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", "['*']"),
            ("BERTH_CORS_ALLOWED_ORIGINS", "http://a, http://b"),
            ("BERTH_CORS_ALLOW_CREDENTIALS", "true"),
        ]);
        let c = Config::load(Some(file), &e, RawConfig::default()).unwrap();
        assert_eq!(c.cors.allowed_origins, ["http://a", "http://b"]);
        assert!(c.cors.allow_credentials);
        assert_eq!(c.warnings.len(), 1);

        // `--cors-origin` joins whatever the file or environment allowed.
        let e = env(&[(
            "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin",
            "[http://a]",
        )]);
        let flags = RawConfig {
            cors_allowed_origins: Some(vec!["http://b".into(), "http://a".into()]),
            ..Default::default()
        };
        let c = Config::load(None, &e, flags.clone()).unwrap();
        assert_eq!(c.cors.allowed_origins, ["http://a", "http://b"]);
        let c = Config::load(None, &env(&[]), flags).unwrap();
        assert_eq!(c.cors.allowed_origins, ["http://b", "http://a"]);

        let bad = env(&[("BERTH_CORS_ALLOWED_HEADERS", "Accept,\u{7f}")]);
        assert!(matches!(
            Config::load(None, &bad, RawConfig::default()),
            Err(ConfigError::Cors(_))
        ));
    }

    #[test]
    fn any_origin_with_credentials_is_refused_wherever_it_comes_from() {
        let any_with_credentials = [
            env(&[
                ("BERTH_CORS_ALLOWED_ORIGINS", "*"),
                ("BERTH_CORS_ALLOW_CREDENTIALS", "true"),
            ]),
            env(&[
                ("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", "['*']"),
                (
                    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Credentials",
                    "[true]",
                ),
            ]),
        ];
        for e in any_with_credentials {
            let err = Config::load(None, &e, RawConfig::default()).unwrap_err();
            assert!(
                matches!(err, ConfigError::Cors(CorsError::AnyOriginWithCredentials)),
                "{err}"
            );
        }
        // `*` from the command line counts too.
        let e = env(&[("BERTH_CORS_ALLOW_CREDENTIALS", "true")]);
        let flags = RawConfig {
            cors_allowed_origins: Some(vec!["*".into()]),
            ..Default::default()
        };
        assert!(Config::load(None, &e, flags).is_err());
        // Listed origins with credentials are fine.
        let e = env(&[
            ("BERTH_CORS_ALLOWED_ORIGINS", "http://ui"),
            ("BERTH_CORS_ALLOW_CREDENTIALS", "true"),
        ]);
        assert!(Config::load(None, &e, RawConfig::default()).is_ok());
    }

    #[test]
    fn auth_is_off_without_htpasswd_and_refuses_settings_that_need_it() {
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.auth, None);
        let token_only = env(&[("BERTH_TOKEN_AUTH", "true")]);
        assert!(matches!(
            Config::load(None, &token_only, RawConfig::default()),
            Err(ConfigError::NeedsHtpasswd("token_auth"))
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            "[[access]]\nwho = [\"anonymous\"]\nrepositories = [\"*\"]\nactions = [\"pull\"]\n",
        )
        .unwrap();
        assert!(matches!(
            Config::load(Some(file), &env(&[]), RawConfig::default()),
            Err(ConfigError::NeedsHtpasswd(_))
        ));
    }

    #[test]
    fn auth_settings_come_from_file_environment_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            r#"
htpasswd = "/file/htpasswd"
token_realm = "https://registry.example/token"
token_ttl_secs = 600

[groups]
team-a = ["alice", "bob"]

[[access]]
who = ["group:team-a", "carol"]
repositories = ["team-a/*"]
actions = ["pull", "push"]

[[token_issuers]]
issuer = "https://auth.example"
audience = "berth"
jwks = "/etc/berth/jwks.json"
"#,
        )
        .unwrap();
        let e = env(&[
            ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry Realm"),
            ("BERTH_TOKEN_SERVICE", "registry.example"),
        ]);
        let flags = RawConfig {
            htpasswd: Some(PathBuf::from("/flag/htpasswd")),
            token_auth: Some(true),
            ..Default::default()
        };
        let auth = Config::load(Some(file), &e, flags).unwrap().auth.unwrap();
        assert_eq!(auth.htpasswd, PathBuf::from("/flag/htpasswd"));
        assert_eq!(auth.realm, "Registry Realm");
        let token = auth.token.unwrap();
        assert_eq!(
            token.realm.as_deref(),
            Some("https://registry.example/token")
        );
        assert_eq!(token.service, "registry.example");
        assert_eq!(token.ttl, Duration::from_secs(600));
        assert_eq!(token.key, None);
        assert_eq!(auth.rules.rules().len(), 1);
        assert_eq!(auth.issuers.len(), 1);
        assert_eq!(auth.issuers[0].issuer, "https://auth.example");
    }

    #[test]
    fn the_token_key_signs_ui_sessions_in_basic_mode_too() {
        let e = env(&[("BERTH_TOKEN_KEY", "/keys/berth.pem")]);
        let flags = RawConfig {
            htpasswd: Some(PathBuf::from("/h")),
            ..Default::default()
        };
        let auth = Config::load(None, &e, flags).unwrap().auth.unwrap();
        assert!(auth.token.is_none());
        assert_eq!(auth.key, Some(PathBuf::from("/keys/berth.pem")));
    }

    #[test]
    fn bad_auth_settings_are_refused_when_loading() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            "htpasswd = \"h\"\ntoken_auth = true\ntoken_ttl_secs = 0\n",
            "htpasswd = \"h\"\ntoken_auth = true\ntoken_realm = \"/token\"\n",
            "htpasswd = \"h\"\n[[access]]\nwho = [\"group:nobody\"]\nrepositories = [\"*\"]\nactions = [\"pull\"]\n",
            "htpasswd = \"h\"\n[[access]]\nwho = [\"a\"]\nrepositories = [\"*\"]\nactions = [\"fly\"]\n",
            "htpasswd = \"h\"\n[[token_issuers]]\nissuer = \"i\"\naudience = \"a\"\n",
            "htpasswd = \"h\"\nhtpasswd_typo = 1\n",
        ];
        for (n, text) in cases.iter().enumerate() {
            let file = dir.path().join(format!("{n}.toml"));
            std::fs::write(&file, text).unwrap();
            assert!(
                Config::load(Some(file), &env(&[]), RawConfig::default()).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn policy_tables_are_read_from_the_file_and_bad_rules_refused() {
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.policies, Policies::default());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            "addr = \"127.0.0.1:7000\"\n[[retention]]\nrepositories = \"ci/*\"\nkeep_last = 3\n[[immutable]]\nrepositories = \"prod/*\"\n[[quota]]\nrepositories = \"*\"\nmax_bytes = \"1GiB\"\n",
        )
        .unwrap();
        let c = Config::load(Some(file.clone()), &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.policies.retention_for("ci/x").unwrap().keep_last, Some(3));
        assert!(c.policies.is_immutable("prod/x", "anything"));
        assert_eq!(
            c.policies.quota_for("x").unwrap().quota.max_bytes,
            Some(1 << 30)
        );
        std::fs::write(&file, "[[quota]]\nrepositories = \"*\"\n").unwrap();
        let err = Config::load(Some(file), &env(&[]), RawConfig::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Policy(_)), "{err}");
        assert!(err.to_string().contains("limits nothing"), "{err}");
    }

    #[test]
    fn pull_through_settings_come_from_the_file_and_the_environment() {
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert!(!c.pull_through.is_enabled());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            "[cache]\nfreshness = \"10m\"\n\n[[upstream]]\nname = \"docker.io\"\n\n[proxy]\nremoteurl = \"https://mirror.example\"\n",
        )
        .unwrap();
        let e = env(&[
            ("BERTH_CACHE_MAX_SIZE", "1GiB"),
            ("REGISTRY_PROXY_USERNAME", "me"),
            ("REGISTRY_PROXY_PASSWORD", "pw"),
        ]);
        let c = Config::load(Some(file.clone()), &e, RawConfig::default()).unwrap();
        let p = &c.pull_through;
        assert_eq!(p.cache.freshness, Duration::from_secs(600));
        assert_eq!(p.cache.max_size, Some(1 << 30));
        assert_eq!(p.upstreams[0].url, "https://registry-1.docker.io");
        let proxy = p.proxy.as_ref().unwrap();
        assert_eq!(proxy.remoteurl, "https://mirror.example");
        assert_eq!(proxy.username.as_deref(), Some("me"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let e = env(&[("REGISTRY_PROXY_REMOTEURL", "https://other.example")]);
        let c = Config::load(Some(file.clone()), &e, RawConfig::default()).unwrap();
        let proxy = c.pull_through.proxy.unwrap();
        assert_eq!(
            proxy.remoteurl, "https://other.example",
            "the environment wins"
        );
        std::fs::write(&file, "[[upstream]]\nname = \"a.io\"\nprefix = \"A\"\n").unwrap();
        let err = Config::load(Some(file), &env(&[]), RawConfig::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("[[upstream]] 1 (\"a.io\") prefix:"),
            "{err}"
        );
    }

    #[test]
    fn storage_and_metadata_default_to_the_data_folder() {
        let c = Config::load(None, &env(&[]), RawConfig::default()).unwrap();
        assert_eq!(c.storage, StorageConfig::Filesystem);
        assert_eq!(c.metadata, MetadataConfig::Sqlite);
        let e = env(&[("REGISTRY_STORAGE", "filesystem")]);
        let c = Config::load(None, &e, RawConfig::default()).unwrap();
        assert_eq!((c.storage, c.warnings), (StorageConfig::Filesystem, vec![]));
    }

    #[test]
    fn s3_and_postgres_come_from_file_registry_berth_variables_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(
            &file,
            r#"
[storage]
backend = "s3"
[storage.s3]
endpoint = "http://file:3900"
bucket = "from-file"
region = "garage"
access_key = "GKfile"
secret_key_file = "/run/secrets/s3"
force_path_style = true
root = "registry"
[metadata]
url = "postgres://berth:file-pw@file/berth"
"#,
        )
        .unwrap();
        let c = Config::load(Some(file.clone()), &env(&[]), RawConfig::default()).unwrap();
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("not s3: {:?}", c.storage)
        };
        assert_eq!(s3.endpoint.as_deref(), Some("http://file:3900"));
        assert_eq!(
            (s3.bucket.as_str(), s3.region.as_str()),
            ("from-file", "garage")
        );
        assert_eq!(
            s3.credentials,
            Some((
                "GKfile".into(),
                SecretSource::File("/run/secrets/s3".into())
            ))
        );
        assert!(s3.force_path_style && !s3.redirect);
        assert_eq!(s3.root, "registry");
        let MetadataConfig::Postgres(pg) = &c.metadata else {
            panic!("not postgres")
        };
        assert_eq!(pg.redacted(), "postgres://berth:***@file/berth");
        assert!(!format!("{c:?}").contains("file-pw"));

        // REGISTRY_* over the file, BERTH_* over REGISTRY_*, key by key;
        // a secret given inline in the environment replaces the file's path.
        let e = env(&[
            ("REGISTRY_STORAGE_S3_BUCKET", "from-registry"),
            ("REGISTRY_STORAGE_S3_REGIONENDPOINT", "http://registry:3900"),
            ("REGISTRY_STORAGE_S3_SECRETKEY", "registry-secret"),
            ("BERTH_S3_BUCKET", "from-berth"),
            ("BERTH_S3_SECRET_KEY", "berth-secret"),
            ("BERTH_METADATA_URL", "postgres://env@env/berth"),
        ]);
        let c = Config::load(Some(file.clone()), &e, RawConfig::default()).unwrap();
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("not s3")
        };
        assert_eq!(s3.bucket, "from-berth");
        assert_eq!(s3.endpoint.as_deref(), Some("http://registry:3900"));
        assert_eq!(
            s3.region, "garage",
            "a key nobody overrides stays the file's"
        );
        assert_eq!(
            s3.credentials,
            Some((
                "GKfile".into(),
                SecretSource::Value(Secret::new("berth-secret"))
            ))
        );
        assert!(c.warnings.contains(&ConfigWarning::Overridden {
            registry: "REGISTRY_STORAGE_S3_BUCKET".into(),
            berth: "BERTH_S3_BUCKET"
        }));
        let shown = format!("{c:?}");
        assert!(!shown.contains("berth-secret") && !shown.contains("registry-secret"));
        // --metadata-url over BERTH_METADATA_URL.
        let flags = RawConfig {
            metadata: Some(storage::RawMetadata {
                url: Some(Secret::new("postgresql://flag@flag/berth")),
                password_file: None,
            }),
            ..Default::default()
        };
        let c = Config::load(Some(file), &e, flags).unwrap();
        let MetadataConfig::Postgres(pg) = &c.metadata else {
            panic!("not postgres")
        };
        assert_eq!(pg.url(), "postgresql://flag@flag/berth");
    }

    #[test]
    fn bad_storage_values_in_the_environment_name_the_variable() {
        let e = env(&[("BERTH_STORAGE", "s3")]);
        let err = Config::load(None, &e, RawConfig::default()).unwrap_err();
        assert!(err.to_string().contains("BERTH_S3_BUCKET"), "{err}");
        let e = env(&[("BERTH_S3_REDIRECT", "sometimes")]);
        assert!(matches!(
            Config::load(None, &e, RawConfig::default()),
            Err(ConfigError::Invalid("BERTH_S3_REDIRECT", _))
        ));
        let e = env(&[("BERTH_METADATA_URL", "sqlite:///x:pw@y")]);
        let err = Config::load(None, &e, RawConfig::default()).unwrap_err();
        assert!(err.to_string().contains("BERTH_METADATA_URL"), "{err}");
    }
}

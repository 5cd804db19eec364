//! The pull-through cache's settings: `[cache]` (how often a cached tag is
//! checked upstream, how much cached content GC keeps), `[[upstream]]` (the
//! registries berth caches, each reached under a prefix or by containerd's
//! `?ns=`) and `[proxy]`, registry:2's single fallback upstream, also set by
//! `REGISTRY_PROXY_REMOTEURL`/`_USERNAME`/`_PASSWORD`.
//!
//! Everything a typo could turn into a wrong route is refused when loading,
//! naming the key: duplicate names or prefixes, a prefix that is not a
//! repository path component, a password given twice. Secrets are kept in
//! [`Secret`], whose `Debug` never shows them.

use super::policies::Amount;
use super::ConfigError;
use berth_registry::units::{parse_duration, parse_size};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// How often a cached tag is checked upstream when `[cache] freshness` is unset.
pub const DEFAULT_FRESHNESS: Duration = Duration::from_secs(300);

/// The name of the fallback upstream (`[proxy]`, `REGISTRY_PROXY_*`).
pub const PROXY_NAME: &str = "proxy";

/// Docker Hub's registry host: the default URL of an upstream named `docker.io`.
const DOCKER_HUB_URL: &str = "https://registry-1.docker.io";

/// Longest duration accepted (ten years), as for `[gc]`.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

/// A password or token: compared and cloned like a string, never shown by
/// `Debug` (configs are printed in errors and tests).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[cache]` as written.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub freshness: Option<Amount>,
    pub max_size: Option<Amount>,
}

impl RawCache {
    /// Keys set in `over` replace ours.
    pub fn overlay(self, over: RawCache) -> RawCache {
        RawCache {
            freshness: over.freshness.or(self.freshness),
            max_size: over.max_size.or(self.max_size),
        }
    }

    /// `BERTH_CACHE_FRESHNESS` and `BERTH_CACHE_MAX_SIZE`, checked here so
    /// that an error names the variable.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Option<RawCache>, ConfigError> {
        let get = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
        let freshness = get("BERTH_CACHE_FRESHNESS");
        if let Some(value) = &freshness {
            freshness_of("BERTH_CACHE_FRESHNESS", &Amount::Text(value.clone()))?;
        }
        let max_size = get("BERTH_CACHE_MAX_SIZE");
        if let Some(value) = &max_size {
            size_of("BERTH_CACHE_MAX_SIZE", &Amount::Text(value.clone()))?;
        }
        let raw = RawCache {
            freshness: freshness.map(Amount::Text),
            max_size: max_size.map(Amount::Text),
        };
        Ok((raw != RawCache::default()).then_some(raw))
    }

    pub fn validate(self) -> Result<CacheConfig, ConfigError> {
        Ok(CacheConfig {
            freshness: match &self.freshness {
                Some(value) => freshness_of("[cache] freshness", value)?,
                None => DEFAULT_FRESHNESS,
            },
            max_size: match &self.max_size {
                Some(value) => Some(size_of("[cache] max_size", value)?),
                None => None,
            },
        })
    }
}

fn freshness_of(key: &str, value: &Amount) -> Result<Duration, ConfigError> {
    let duration = match value {
        Amount::Number(secs) => Duration::from_secs(*secs),
        Amount::Text(text) => parse_duration(text).map_err(|e| invalid(key, e.to_string()))?,
    };
    if duration.as_secs() > MAX_SECS {
        return Err(invalid(key, "is over ten years".into()));
    }
    Ok(duration)
}

fn size_of(key: &str, value: &Amount) -> Result<u64, ConfigError> {
    let bytes = match value {
        Amount::Number(bytes) => *bytes,
        Amount::Text(text) => parse_size(text).map_err(|e| invalid(key, e.to_string()))?,
    };
    if bytes == 0 {
        return Err(invalid(
            key,
            "0 would evict everything cached; leave it unset for no limit".into(),
        ));
    }
    Ok(bytes)
}

/// `[cache]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// A cached tag is checked upstream (a HEAD) at most this often; 0: every pull.
    pub freshness: Duration,
    /// Cached bytes above this are evicted by GC; `None`: no limit.
    pub max_size: Option<u64>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            freshness: DEFAULT_FRESHNESS,
            max_size: None,
        }
    }
}

/// One `[[upstream]]` as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: String,
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub credential_helper: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// `[proxy]` as written (registry:2's `proxy:` section).
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub remoteurl: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl RawProxy {
    /// Keys set in `over` replace ours.
    pub fn overlay(self, over: RawProxy) -> RawProxy {
        RawProxy {
            remoteurl: over.remoteurl.or(self.remoteurl),
            username: over.username.or(self.username),
            password: over.password.or(self.password),
        }
    }
}

/// How berth signs in to an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Password {
        username: String,
        password: Secret,
    },
    /// Read at start-up from a file (trailing newline trimmed).
    PasswordFile {
        username: String,
        path: PathBuf,
    },
    /// `docker-credential-<helper> get`, given the upstream's host on stdin.
    Helper(String),
}

/// One `[[upstream]]`, validated: defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// How clients name it: containerd's `?ns=` value, the metrics label.
    pub name: String,
    /// Without a trailing slash.
    pub url: String,
    /// The first path component of its repositories under berth.
    pub prefix: String,
    pub credentials: Credentials,
    /// Trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
}

impl UpstreamConfig {
    /// Docker Hub's one-component names (`busybox`) live under `library/`.
    pub fn is_docker_hub(&self) -> bool {
        berth_registry::pull_through::is_docker_hub(&self.name, &self.url)
    }
}

/// `[proxy]`, validated: the fallback upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub remoteurl: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl ProxyConfig {
    /// The fallback as an upstream like the others, named [`PROXY_NAME`]
    /// (its prefix is never routed: the fallback is reached by absence).
    pub fn as_upstream(&self) -> UpstreamConfig {
        UpstreamConfig {
            name: PROXY_NAME.to_string(),
            url: self.remoteurl.clone(),
            prefix: PROXY_NAME.to_string(),
            credentials: match (&self.username, &self.password) {
                (Some(username), Some(password)) => Credentials::Password {
                    username: username.clone(),
                    password: password.clone(),
                },
                _ => Credentials::Anonymous,
            },
            ca_file: None,
        }
    }
}

/// The pull-through settings, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PullThroughConfig {
    pub cache: CacheConfig,
    pub upstreams: Vec<UpstreamConfig>,
    pub proxy: Option<ProxyConfig>,
}

impl PullThroughConfig {
    /// Whether any upstream is configured (else berth is a plain registry).
    pub fn is_enabled(&self) -> bool {
        !self.upstreams.is_empty() || self.proxy.is_some()
    }
}

fn invalid(key: &str, reason: String) -> ConfigError {
    ConfigError::PullThrough {
        key: key.to_string(),
        reason,
    }
}

/// An `http://` or `https://` URL with a host, no credentials, no query;
/// returned without its trailing slash.
fn url_of(key: &str, url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Err(invalid(
            key,
            format!("{url:?} is not an http:// or https:// URL"),
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid(key, format!("{url:?} has no host")));
    }
    if authority.contains('@') {
        // Not echoed: the part before @ is a secret.
        return Err(invalid(
            key,
            "credentials in the URL are refused: use username and password".into(),
        ));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(invalid(
            key,
            format!("{url:?} has a query, fragment or space"),
        ));
    }
    Ok(trimmed.to_string())
}

/// A single repository path component (`docker.io`, `ghcr.io`, `quay`).
fn is_path_component(prefix: &str) -> bool {
    !prefix.contains('/') && prefix.parse::<berth_oci::RepositoryName>().is_ok()
}

/// A credential helper's name: appended to `docker-credential-`, so no
/// path or shell characters.
fn is_helper_name(helper: &str) -> bool {
    !helper.is_empty()
        && helper
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !helper.starts_with('.')
}

fn upstream(n: usize, raw: RawUpstream) -> Result<UpstreamConfig, ConfigError> {
    let key = |k: &str| format!("[[upstream]] {n} ({:?}) {k}", raw.name);
    if raw.name.trim().is_empty() || raw.name.contains(['/', ' ', '?', '&', '#']) {
        return Err(invalid(
            &format!("[[upstream]] {n} name"),
            format!(
                "{:?} is not a registry name such as docker.io or ghcr.io",
                raw.name
            ),
        ));
    }
    let url = match &raw.url {
        Some(url) => url_of(&key("url"), url)?,
        None if raw.name == "docker.io" => DOCKER_HUB_URL.to_string(),
        None => url_of(&key("url"), &format!("https://{}", raw.name))?,
    };
    let prefix = match &raw.prefix {
        Some(prefix) => prefix.clone(),
        None if is_path_component(&raw.name) => raw.name.clone(),
        None => {
            return Err(invalid(
                &key("prefix"),
                format!(
                    "the name {:?} is not a repository path component (lower-case letters, digits, '.', '_', '-'); give a prefix",
                    raw.name
                ),
            ))
        }
    };
    if !is_path_component(&prefix) {
        return Err(invalid(
            &key("prefix"),
            format!("{prefix:?} is not a repository path component (lower-case letters, digits, '.', '_', '-', no '/')"),
        ));
    }
    if raw.password.is_some() && raw.password_file.is_some() {
        return Err(invalid(
            &key("password_file"),
            "give password or password_file, not both".into(),
        ));
    }
    let credentials = match (
        raw.username,
        raw.password,
        raw.password_file,
        raw.credential_helper,
    ) {
        (None, None, None, None) => Credentials::Anonymous,
        (None, None, None, Some(helper)) if is_helper_name(&helper) => Credentials::Helper(helper),
        (None, None, None, Some(helper)) => {
            return Err(invalid(
                &key("credential_helper"),
                format!("{helper:?} is not a helper name such as pass, secretservice or ecr-login"),
            ))
        }
        (_, _, _, Some(_)) => {
            return Err(invalid(
                &key("credential_helper"),
                "a credential helper supplies the username and password: remove username, password and password_file".into(),
            ))
        }
        (Some(username), Some(password), None, None) => Credentials::Password { username, password },
        (Some(username), None, Some(path), None) => Credentials::PasswordFile { username, path },
        (Some(_), None, None, None) => {
            return Err(invalid(
                &key("username"),
                "needs password or password_file".into(),
            ))
        }
        (None, _, _, None) | (Some(_), Some(_), Some(_), None) => {
            return Err(invalid(
                &key("username"),
                "a password needs a username".into(),
            ))
        }
    };
    Ok(UpstreamConfig {
        name: raw.name,
        url,
        prefix,
        credentials,
        ca_file: raw.ca_file,
    })
}

fn proxy(raw: RawProxy) -> Result<Option<ProxyConfig>, ConfigError> {
    if raw == RawProxy::default() {
        return Ok(None);
    }
    let Some(remoteurl) = &raw.remoteurl else {
        return Err(invalid(
            "[proxy] remoteurl",
            "is missing (REGISTRY_PROXY_REMOTEURL): username and password need the upstream's URL"
                .into(),
        ));
    };
    let remoteurl = url_of("[proxy] remoteurl", remoteurl)?;
    match (&raw.username, &raw.password) {
        (Some(_), None) => Err(invalid(
            "[proxy] password",
            "is missing (REGISTRY_PROXY_PASSWORD): the username needs it".into(),
        )),
        (None, Some(_)) => Err(invalid(
            "[proxy] username",
            "is missing (REGISTRY_PROXY_USERNAME): the password needs it".into(),
        )),
        _ => Ok(Some(ProxyConfig {
            remoteurl,
            username: raw.username,
            password: raw.password,
        })),
    }
}

/// Validates `[cache]`, `[[upstream]]` and `[proxy]` as the layers merged them.
pub fn validate(
    cache: Option<RawCache>,
    upstreams: Option<Vec<RawUpstream>>,
    raw_proxy: Option<RawProxy>,
) -> Result<PullThroughConfig, ConfigError> {
    let cache = cache.unwrap_or_default().validate()?;
    let proxy = proxy(raw_proxy.unwrap_or_default())?;
    let mut validated: Vec<UpstreamConfig> = Vec::new();
    for (i, raw) in upstreams.unwrap_or_default().into_iter().enumerate() {
        let n = i + 1;
        let upstream = upstream(n, raw)?;
        if upstream.name == PROXY_NAME && proxy.is_some() {
            return Err(invalid(
                &format!("[[upstream]] {n} name"),
                format!(
                    "{PROXY_NAME:?} is the name of the [proxy] fallback upstream; choose another"
                ),
            ));
        }
        if let Some(other) = validated.iter().position(|u| u.name == upstream.name) {
            return Err(invalid(
                &format!("[[upstream]] {n} name"),
                format!(
                    "{:?} is already the name of [[upstream]] {}",
                    upstream.name,
                    other + 1
                ),
            ));
        }
        if let Some(other) = validated.iter().position(|u| u.prefix == upstream.prefix) {
            return Err(invalid(
                &format!("[[upstream]] {n} ({:?}) prefix", upstream.name),
                format!(
                    "{:?} is already the prefix of [[upstream]] {} ({:?})",
                    upstream.prefix,
                    other + 1,
                    validated[other].name
                ),
            ));
        }
        validated.push(upstream);
    }
    Ok(PullThroughConfig {
        cache,
        upstreams: validated,
        proxy,
    })
}

/// Why an upstream's credentials could not be read at start-up.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("upstream {upstream:?}: cannot read password_file {path}: {error}")]
    File {
        upstream: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("upstream {upstream:?}: password_file {path} is empty")]
    EmptyFile { upstream: String, path: PathBuf },
}

impl UpstreamConfig {
    /// The credentials to sign in with, a password file read now (at
    /// start-up); a credential helper is left to the upstream client, which
    /// asks it on first use.
    pub fn resolve_credentials(&self) -> Result<berth_upstream::Credentials, CredentialError> {
        use berth_upstream::Credentials as Client;
        match &self.credentials {
            Credentials::Anonymous => Ok(Client::Anonymous),
            Credentials::Password { username, password } => Ok(Client::Basic {
                username: username.clone(),
                password: password.expose().to_string(),
            }),
            Credentials::Helper(helper) => Ok(Client::Helper(helper.clone())),
            Credentials::PasswordFile { username, path } => {
                let text =
                    std::fs::read_to_string(path).map_err(|error| CredentialError::File {
                        upstream: self.name.clone(),
                        path: path.clone(),
                        error,
                    })?;
                let password = text.trim_end_matches(['\n', '\r']);
                if password.is_empty() {
                    return Err(CredentialError::EmptyFile {
                        upstream: self.name.clone(),
                        path: path.clone(),
                    });
                }
                Ok(Client::Basic {
                    username: username.clone(),
                    password: password.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(toml_text: &str) -> Result<PullThroughConfig, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            cache: Option<RawCache>,
            upstream: Option<Vec<RawUpstream>>,
            proxy: Option<RawProxy>,
        }
        let file: File = toml::from_str(toml_text).unwrap();
        validate(file.cache, file.upstream, file.proxy)
    }

    fn refused(toml_text: &str) -> String {
        match upstreams(toml_text) {
            Err(ConfigError::PullThrough { key, reason }) => format!("{key}: {reason}"),
            other => panic!("{toml_text}\naccepted or other error: {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_url_and_prefix_and_docker_hub_is_recognised() {
        let config = upstreams(
            r#"
[[upstream]]
name = "docker.io"

[[upstream]]
name = "ghcr.io"

[[upstream]]
name = "localhost:5001"
url = "http://127.0.0.1:5001/"
prefix = "local5001"

[[upstream]]
name = "hub-mirror"
url = "https://index.docker.io"
"#,
        )
        .unwrap();
        let [hub, ghcr, local, mirror] = &config.upstreams[..] else {
            panic!("{config:?}");
        };
        assert_eq!(
            (hub.url.as_str(), hub.prefix.as_str()),
            ("https://registry-1.docker.io", "docker.io")
        );
        assert_eq!(
            (ghcr.url.as_str(), ghcr.prefix.as_str()),
            ("https://ghcr.io", "ghcr.io")
        );
        assert_eq!(local.url, "http://127.0.0.1:5001", "trailing slash trimmed");
        assert!(hub.is_docker_hub() && mirror.is_docker_hub());
        assert!(!ghcr.is_docker_hub() && !local.is_docker_hub());
        assert_eq!(config.cache, CacheConfig::default());
        assert!(config.proxy.is_none() && config.is_enabled());
        assert!(!upstreams("").unwrap().is_enabled());
    }

    #[test]
    fn cache_durations_and_sizes_are_read_and_bad_ones_name_their_key() {
        let config = upstreams("[cache]\nfreshness = \"30s\"\nmax_size = \"20GiB\"\n").unwrap();
        assert_eq!(config.cache.freshness, Duration::from_secs(30));
        assert_eq!(config.cache.max_size, Some(20 << 30));
        let config = upstreams("[cache]\nfreshness = 0\nmax_size = 4096\n").unwrap();
        assert_eq!(config.cache.freshness, Duration::ZERO);
        assert_eq!(config.cache.max_size, Some(4096));
        assert!(refused("[cache]\nfreshness = \"soon\"\n").starts_with("[cache] freshness:"));
        assert!(refused("[cache]\nmax_size = \"lots\"\n").starts_with("[cache] max_size:"));
        assert!(refused("[cache]\nmax_size = 0\n").starts_with("[cache] max_size:"));
        let env: HashMap<String, String> = [
            ("BERTH_CACHE_FRESHNESS", "1m"),
            ("BERTH_CACHE_MAX_SIZE", "1GB"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let raw = RawCache::from_env(&env).unwrap().unwrap();
        let from_file = RawCache {
            freshness: Some(Amount::Text("1h".into())),
            max_size: None,
        };
        let cache = from_file.overlay(raw).validate().unwrap();
        assert_eq!(cache.freshness, Duration::from_secs(60));
        assert_eq!(cache.max_size, Some(1_000_000_000));
        let bad: HashMap<String, String> =
            [("BERTH_CACHE_MAX_SIZE".to_string(), "big".to_string())].into();
        assert!(matches!(
            RawCache::from_env(&bad),
            Err(ConfigError::PullThrough { key, .. }) if key == "BERTH_CACHE_MAX_SIZE"
        ));
        assert_eq!(RawCache::from_env(&HashMap::new()).unwrap(), None);
    }

    #[test]
    fn routes_that_would_collide_or_not_parse_are_refused_naming_the_key() {
        let two = |a: &str, b: &str| format!("[[upstream]]\n{a}\n[[upstream]]\n{b}\n");
        let e = refused(&two(
            "name = \"ghcr.io\"",
            "name = \"ghcr.io\"\nprefix = \"g\"",
        ));
        assert!(e.starts_with("[[upstream]] 2 name:"), "{e}");
        assert!(e.contains("already the name of [[upstream]] 1"), "{e}");
        let e = refused(&two(
            "name = \"ghcr.io\"",
            "name = \"ghcr.example\"\nprefix = \"ghcr.io\"",
        ));
        assert!(
            e.starts_with("[[upstream]] 2 (\"ghcr.example\") prefix:"),
            "{e}"
        );
        let e = refused("[[upstream]]\nname = \"localhost:5000\"\n");
        assert!(e.contains("prefix:") && e.contains("give a prefix"), "{e}");
        for prefix in ["a/b", "Docker", "", "-x", "a..b"] {
            let e = refused(&format!(
                "[[upstream]]\nname = \"x.io\"\nprefix = {prefix:?}\n"
            ));
            assert!(
                e.starts_with("[[upstream]] 1 (\"x.io\") prefix:"),
                "{prefix}: {e}"
            );
        }
        let e = refused("[[upstream]]\nname = \"x.io\"\nurl = \"ftp://x.io\"\n");
        assert!(e.contains(") url:"), "{e}");
        let e = refused("[[upstream]]\nname = \"x.io\"\nurl = \"https://me:hunter2@x.io\"\n");
        assert!(!e.contains("hunter2"), "a URL's password is echoed: {e}");
        let e = refused("[[upstream]]\nname = \"\"\n");
        assert!(e.starts_with("[[upstream]] 1 name:"), "{e}");
        let e = refused("[proxy]\nremoteurl = \"https://r.io\"\n[[upstream]]\nname = \"proxy\"\nurl = \"https://p.io\"\n");
        assert!(e.starts_with("[[upstream]] 1 name:"), "{e}");
        assert!(toml::from_str::<RawUpstream>("name = \"x\"\npasword = \"typo\"\n").is_err());
    }

    #[test]
    fn credentials_come_from_one_place_only() {
        let one = |keys: &str| upstreams(&format!("[[upstream]]\nname = \"x.io\"\n{keys}\n"));
        let credentials = |keys: &str| one(keys).unwrap().upstreams[0].credentials.clone();
        assert_eq!(credentials(""), Credentials::Anonymous);
        assert_eq!(
            credentials("username = \"me\"\npassword = \"pw\""),
            Credentials::Password {
                username: "me".into(),
                password: Secret::new("pw")
            }
        );
        assert_eq!(
            credentials("username = \"me\"\npassword_file = \"/run/pw\""),
            Credentials::PasswordFile {
                username: "me".into(),
                path: "/run/pw".into()
            }
        );
        assert_eq!(
            credentials("credential_helper = \"pass\""),
            Credentials::Helper("pass".into())
        );
        let refusals = [
            (
                "username = \"me\"\npassword = \"pw\"\npassword_file = \"/f\"",
                "password_file:",
            ),
            (
                "password = \"pw\"\npassword_file = \"/f\"",
                "password_file:",
            ),
            ("password = \"pw\"", "username:"),
            ("username = \"me\"", "username:"),
            (
                "credential_helper = \"pass\"\nusername = \"me\"",
                "credential_helper:",
            ),
            ("credential_helper = \"../bin/sh\"", "credential_helper:"),
        ];
        for (keys, key) in refusals {
            let e = match one(keys) {
                Err(ConfigError::PullThrough { key, reason }) => format!("{key}: {reason}"),
                other => panic!("{keys}: {other:?}"),
            };
            assert!(e.contains(key), "{keys}: {e}");
            assert!(!e.contains("pw\""), "a password is echoed: {e}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = upstreams(
            "[proxy]\nremoteurl = \"https://r.io\"\nusername = \"u\"\npassword = \"s3cret-proxy\"\n[[upstream]]\nname = \"x.io\"\nusername = \"me\"\npassword = \"s3cret-up\"\n",
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
    }

    #[test]
    fn the_proxy_is_a_fallback_upstream_named_proxy_and_needs_its_url() {
        let config = upstreams(
            "[proxy]\nremoteurl = \"https://registry-1.docker.io/\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        let proxy = config.proxy.unwrap().as_upstream();
        assert_eq!(proxy.name, PROXY_NAME);
        assert_eq!(proxy.url, "https://registry-1.docker.io");
        assert!(proxy.is_docker_hub());
        assert!(matches!(proxy.credentials, Credentials::Password { .. }));
        assert!(refused("[proxy]\nusername = \"u\"\npassword = \"p\"\n")
            .starts_with("[proxy] remoteurl:"));
        assert!(
            refused("[proxy]\nremoteurl = \"https://r.io\"\nusername = \"u\"\n")
                .starts_with("[proxy] password:")
        );
        assert!(refused("[proxy]\nremoteurl = \"r.io\"\n").starts_with("[proxy] remoteurl:"));
    }

    #[test]
    fn a_password_file_is_read_at_start_up_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let upstream = UpstreamConfig {
            name: "x.io".into(),
            url: "https://x.io".into(),
            prefix: "x.io".into(),
            credentials: Credentials::PasswordFile {
                username: "me".into(),
                path: path.clone(),
            },
            ca_file: None,
        };
        assert!(
            upstream.resolve_credentials().unwrap()
                == berth_upstream::Credentials::Basic {
                    username: "me".into(),
                    password: "s3cret".into()
                }
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            upstream.resolve_credentials(),
            Err(CredentialError::EmptyFile { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        let e = upstream.resolve_credentials().unwrap_err().to_string();
        assert!(e.contains("password_file") && e.contains("x.io"), "{e}");
    }
}

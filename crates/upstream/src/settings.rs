//! How one upstream is reached: its URL, credentials, CA and timeouts.
//! Built by the cli from `[[upstream]]`; checked once by `HttpUpstream::new`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One remote registry as configured.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    /// The configured name (`docker.io`): used in log lines and errors.
    pub name: String,
    /// `scheme://host[:port]`, no path (`https://registry-1.docker.io`).
    pub url: String,
    pub credentials: Credentials,
    /// A PEM bundle trusted in addition to the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Time allowed to open a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Whole-request limit for pings, tokens, manifests and HEADs; for blob
    /// bodies (which may be gigabytes) the longest wait between two chunks.
    pub request_timeout: Duration,
    /// Extra attempts after a connection error, timeout or 5xx.
    pub retries: u32,
}

impl UpstreamSettings {
    /// Anonymous access with the default timeouts and retries.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        UpstreamSettings {
            name: name.into(),
            url: url.into(),
            credentials: Credentials::Anonymous,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retries: 2,
        }
    }
}

/// Who berth is to the upstream.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A Docker credential helper: runs `docker-credential-<name> get`.
    Helper(String),
}

/// Written by hand so that a password never reaches a log line or a panic
/// message: the username is shown (it is not a secret), the password never.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Helper(name) => f.debug_tuple("Helper").field(name).finish(),
        }
    }
}

/// Why an upstream's settings cannot be used; said once at start-up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    #[error("upstream {name}: url {url:?} {reason}")]
    BadUrl {
        name: String,
        url: String,
        reason: String,
    },
    #[error("upstream {name}: ca_file {}: {reason}", path.display())]
    CaFile {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("upstream {name}: cannot build the HTTP client: {reason}")]
    Client { name: String, reason: String },
}

/// The base URL without a trailing slash, or why it is not one: berth
/// appends `/v2/...` itself, so a path, query or userinfo is a mistake.
pub(crate) fn base_url(name: &str, url: &str) -> Result<reqwest::Url, UpstreamSetupError> {
    let bad = |reason: &str| UpstreamSetupError::BadUrl {
        name: name.to_string(),
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must start with https:// or http://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "must not carry credentials: use username/password instead",
        ));
    }
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(bad("must have no path (scheme://host[:port])"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must have no query or fragment"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let settings = UpstreamSettings {
            credentials: Credentials::Basic {
                username: "me".into(),
                password: "hunter2-secret".into(),
            },
            ..UpstreamSettings::new("hub", "https://registry-1.docker.io")
        };
        let shown = format!("{settings:?} {:#?}", settings.credentials);
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("me"), "{shown}");
    }

    #[test]
    fn base_urls() {
        assert!(base_url("a", "https://registry-1.docker.io").is_ok());
        assert!(base_url("a", "http://127.0.0.1:5000/").is_ok());
        for (url, says) in [
            ("registry-1.docker.io", "not a URL"),
            ("ftp://x", "https://"),
            ("https://x/v2", "no path"),
            ("https://u:p@x", "credentials"),
            ("https://x?a=b", "no query"),
        ] {
            let err = base_url("a", url).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(err.contains("upstream a"), "{err}");
        }
    }
}

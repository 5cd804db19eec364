//! [`S3Settings`]: where the bucket is and how to sign for it.

use crate::error::{Error, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, RetryConfig};
use std::fmt;
use std::time::Duration;

/// How to reach an S3-compatible bucket. `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://host:port` of the S3 API; `None` for AWS's own endpoints.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`:
    /// what Garage, MinIO and most self-hosted stores need.
    pub force_path_style: bool,
    /// A key prefix every object of this registry lives under.
    pub root: Option<String>,
    /// Whether blob GETs may be answered with a presigned URL to the bucket.
    pub redirect: bool,
    /// Whether a plain `http://` endpoint is accepted (loopback, tests).
    pub allow_http: bool,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            bucket: String::new(),
            region: "us-east-1".to_string(),
            access_key: String::new(),
            secret_key: String::new(),
            force_path_style: false,
            root: None,
            redirect: false,
            allow_http: false,
        }
    }
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .field("root", &self.root)
            .field("redirect", &self.redirect)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Settings {
    /// The root prefix without leading or trailing slashes; empty for none.
    pub(super) fn root_prefix(&self) -> String {
        self.root
            .as_deref()
            .unwrap_or("")
            .trim_matches('/')
            .to_string()
    }

    /// The object_store client these settings describe. `timeout` bounds
    /// each whole request, body included: `None` for blob reads, which
    /// stream at the pace of the client pulling them.
    pub fn client(&self, timeout: Option<Duration>) -> Result<AmazonS3> {
        if self.bucket.is_empty() {
            return Err(Error::Storage("s3: no bucket configured".into()));
        }
        let options = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_connect_timeout(Duration::from_secs(5));
        let options = match timeout {
            Some(timeout) => options.with_timeout(timeout),
            None => options.with_timeout_disabled(),
        };
        let retry = RetryConfig {
            max_retries: 5,
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .with_virtual_hosted_style_request(!self.force_path_style)
            .with_client_options(options)
            .with_retry(retry);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        builder
            .build()
            .map_err(|e| Error::Storage(format!("s3 settings: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let settings = S3Settings {
            bucket: "b".into(),
            access_key: "GKvisible".into(),
            secret_key: "very-secret-value".into(),
            ..S3Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("GKvisible"));
    }

    #[test]
    fn the_root_is_a_bare_prefix() {
        let mut settings = S3Settings::default();
        assert_eq!(settings.root_prefix(), "");
        settings.root = Some("/registry/a/".into());
        assert_eq!(settings.root_prefix(), "registry/a");
    }
}

//! `HttpUpstream`: one remote registry over HTTP(S). Every request goes
//! through `send`, which authenticates (learning the scheme from a `/v2/`
//! ping), retries transport failures and 5xx, and renews a refused token
//! once; the `Upstream` methods then read the answer.

use crate::challenge::{choose_scheme, AuthScheme};
use crate::errors::{describe, status_error, transport_error};
use crate::settings::{base_url, Credentials, UpstreamSettings, UpstreamSetupError};
use crate::token::{parse_token_response, TokenCache};
use crate::{helper, Login};
use async_trait::async_trait;
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::Digest;
use berth_registry::pull_through::{Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, Url};
use std::time::{Duration, Instant};
use tracing::debug;

/// Every manifest type berth serves, and nothing else (no schema1).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// First pause between attempts; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// A remote registry reached over HTTP(S).
pub struct HttpUpstream {
    name: String,
    base: Url,
    client: Client,
    credentials: Credentials,
    /// Credentials a helper printed, asked for once.
    helper_login: tokio::sync::OnceCell<Login>,
    request_timeout: Duration,
    retries: u32,
    /// The scheme `/v2/` asked for; `None` until pinged (again after a 401).
    scheme: tokio::sync::Mutex<Option<AuthScheme>>,
    tokens: TokenCache,
    /// One token request at a time, so that concurrent pulls of a new
    /// scope wait for one token instead of each asking for their own.
    token_fetch: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("name", &self.name)
            .field("url", &self.base.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// What a request carries to prove who berth is.
enum Authorization {
    None,
    Basic(Login),
    Bearer(String),
}

/// How long a request may take: manifests and HEADs as a whole; blob
/// bodies only between chunks (the client's read timeout).
#[derive(Clone, Copy)]
enum Limit {
    Whole,
    BetweenChunks,
}

impl HttpUpstream {
    pub fn new(settings: UpstreamSettings) -> Result<HttpUpstream, UpstreamSetupError> {
        let base = base_url(&settings.name, &settings.url)?;
        let mut builder = Client::builder()
            .use_rustls_tls()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.request_timeout)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let ca_error = |reason: String| UpstreamSetupError::CaFile {
                name: settings.name.clone(),
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ca_error(format!("not a PEM bundle: {}", describe(&e))))?;
            if certificates.is_empty() {
                return Err(ca_error("holds no PEM certificate".to_string()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| UpstreamSetupError::Client {
            name: settings.name.clone(),
            reason: describe(&e),
        })?;
        Ok(HttpUpstream {
            name: settings.name,
            base,
            client,
            credentials: settings.credentials,
            helper_login: tokio::sync::OnceCell::new(),
            request_timeout: settings.request_timeout,
            retries: settings.retries,
            scheme: tokio::sync::Mutex::new(None),
            tokens: TokenCache::default(),
            token_fetch: tokio::sync::Mutex::new(()),
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        self.base
            .join(path)
            .map_err(|e| UpstreamError::Invalid(format!("bad request path {path:?}: {e}")))
    }

    /// `method path` with authentication, retries and one renewal of a
    /// refused token. The answer may still be any non-5xx status.
    async fn send(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        accept: Option<&str>,
        limit: Limit,
    ) -> Result<Response, UpstreamError> {
        let url = self.url(path)?;
        let mut renewed = false;
        loop {
            let authorization = self.authorization(scope).await?;
            let response = self
                .with_retries(&method, &url, || {
                    let mut request = self.request(method.clone(), url.clone(), limit);
                    if let Some(accept) = accept {
                        request = request.header(ACCEPT, accept);
                    }
                    authorize(request, &authorization)
                })
                .await?;
            if response.status() != StatusCode::UNAUTHORIZED || renewed {
                return Ok(response);
            }
            // A token expired early or was revoked, or the scheme changed:
            // forget both and try once more.
            renewed = true;
            self.tokens.forget(scope);
            let learnt = challenge_in(response.headers());
            *self.scheme.lock().await = learnt;
        }
    }

    fn request(&self, method: Method, url: Url, limit: Limit) -> RequestBuilder {
        let request = self.client.request(method, url);
        match limit {
            Limit::Whole => request.timeout(self.request_timeout),
            Limit::BetweenChunks => request,
        }
    }

    /// Sends what `build` makes, again after a transport failure or a 5xx
    /// (never after a 4xx), up to `retries` more times with a growing pause.
    async fn with_retries(
        &self,
        method: &Method,
        url: &Url,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, UpstreamError> {
        let mut attempt = 0;
        loop {
            let error = match build().send().await {
                Ok(response) => {
                    debug!(upstream = %self.name, %method, path = url.path(), status = response.status().as_u16(), "upstream answered");
                    if !response.status().is_server_error() {
                        return Ok(response);
                    }
                    status_error(response.status(), response.headers())
                }
                Err(e) => {
                    let error = transport_error(e);
                    debug!(upstream = %self.name, %method, path = url.path(), %error, "upstream unreachable");
                    error
                }
            };
            if attempt >= self.retries || !matches!(error, UpstreamError::Unavailable(_)) {
                return Err(error);
            }
            tokio::time::sleep(FIRST_BACKOFF * 2u32.saturating_pow(attempt)).await;
            attempt += 1;
        }
    }

    /// What to send for `scope`, pinging `/v2/` first if the scheme is not
    /// known yet.
    async fn authorization(&self, scope: &str) -> Result<Authorization, UpstreamError> {
        match self.scheme().await? {
            AuthScheme::Open => Ok(Authorization::None),
            AuthScheme::Basic => Ok(match self.login().await? {
                Some(login) => Authorization::Basic(login),
                None => Authorization::None,
            }),
            AuthScheme::Bearer { realm, service } => {
                if let Some(token) = self.tokens.get(scope, Instant::now()) {
                    return Ok(Authorization::Bearer(token));
                }
                let _one_at_a_time = self.token_fetch.lock().await;
                if let Some(token) = self.tokens.get(scope, Instant::now()) {
                    return Ok(Authorization::Bearer(token));
                }
                self.fetch_token(&realm, service.as_deref(), scope)
                    .await
                    .map(Authorization::Bearer)
            }
        }
    }

    async fn scheme(&self) -> Result<AuthScheme, UpstreamError> {
        let mut scheme = self.scheme.lock().await;
        if let Some(known) = &*scheme {
            return Ok(known.clone());
        }
        let learnt = self.ping().await?;
        *scheme = Some(learnt.clone());
        Ok(learnt)
    }

    /// `GET /v2/`: open, or which challenge.
    async fn ping(&self) -> Result<AuthScheme, UpstreamError> {
        let url = self.url("/v2/")?;
        let response = self
            .with_retries(&Method::GET, &url, || {
                self.request(Method::GET, url.clone(), Limit::Whole)
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(AuthScheme::Open),
            StatusCode::UNAUTHORIZED => challenge_in(response.headers()).ok_or_else(|| {
                UpstreamError::Unauthorized(
                    "/v2/ asks for an authentication scheme berth does not speak".to_string(),
                )
            }),
            s => Err(status_error(s, response.headers())),
        }
    }

    /// A token for `scope` from the realm, with the credentials if any.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, UpstreamError> {
        let mut url = Url::parse(realm)
            .map_err(|_| UpstreamError::Invalid("the token realm is not a URL".to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let login = self.login().await?;
        let response = self
            .with_retries(&Method::GET, &url, || {
                let request = self.request(Method::GET, url.clone(), Limit::Whole);
                match &login {
                    Some(login) => request.basic_auth(&login.username, Some(&login.password)),
                    None => request,
                }
            })
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(match status_error(status, response.headers()) {
                UpstreamError::Unauthorized(why) => {
                    UpstreamError::Unauthorized(format!("token endpoint {why}"))
                }
                other => other,
            });
        }
        let body = read_limited(response, MAX_MANIFEST_BYTES).await?;
        let issued =
            parse_token_response(&body).map_err(|why| UpstreamError::Invalid(why.to_string()))?;
        self.tokens.put(scope, &issued, Instant::now());
        Ok(issued.token)
    }

    /// The credentials to present, if any; a helper runs on first need.
    async fn login(&self) -> Result<Option<Login>, UpstreamError> {
        match &self.credentials {
            Credentials::Anonymous => Ok(None),
            Credentials::Basic { username, password } => Ok(Some(Login {
                username: username.clone(),
                password: password.clone(),
            })),
            Credentials::Helper(name) => {
                let host = match (self.base.host_str(), self.base.port()) {
                    (Some(host), Some(port)) => format!("{host}:{port}"),
                    (Some(host), None) => host.to_string(),
                    (None, _) => String::new(),
                };
                self.helper_login
                    .get_or_try_init(|| helper::run(name, &host, self.request_timeout))
                    .await
                    .cloned()
                    .map(Some)
            }
        }
    }

    /// `send`, then any non-2xx answer as its error.
    async fn fetch(
        &self,
        method: Method,
        path: &str,
        repository: &str,
        accept: Option<&str>,
        limit: Limit,
    ) -> Result<Response, UpstreamError> {
        let scope = format!("repository:{repository}:pull");
        let response = self.send(method, path, &scope, accept, limit).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(status_error(response.status(), response.headers()))
        }
    }
}

fn authorize(request: RequestBuilder, authorization: &Authorization) -> RequestBuilder {
    match authorization {
        Authorization::None => request,
        Authorization::Basic(login) => request.basic_auth(&login.username, Some(&login.password)),
        Authorization::Bearer(token) => request.bearer_auth(token),
    }
}

/// The scheme a 401's `WWW-Authenticate` headers offer.
fn challenge_in(headers: &HeaderMap) -> Option<AuthScheme> {
    choose_scheme(
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// `Content-Length` as sent (reqwest reports 0 for any HEAD).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `Docker-Content-Digest`, if sent; a malformed one is the upstream's error.
fn digest_header(headers: &HeaderMap) -> Result<Option<Digest>, UpstreamError> {
    let Some(value) = headers.get("docker-content-digest") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| UpstreamError::Invalid("malformed Docker-Content-Digest header".to_string()))
}

/// The body, refused as soon as it grows past `limit` bytes.
async fn read_limited(response: Response, limit: usize) -> Result<Bytes, UpstreamError> {
    let too_big = || UpstreamError::Invalid(format!("body over the {limit}-byte limit"));
    if content_length(response.headers()).is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut body = BytesMut::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(transport_error)?;
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[async_trait]
impl Upstream for HttpUpstream {
    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<UpstreamManifest, UpstreamError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self
            .fetch(
                Method::GET,
                &path,
                repository,
                Some(MANIFEST_ACCEPT),
                Limit::Whole,
            )
            .await?;
        let digest = digest_header(response.headers())?;
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| UpstreamError::Invalid("manifest without Content-Type".to_string()))?;
        let bytes = read_limited(response, MAX_MANIFEST_BYTES).await?;
        Ok(UpstreamManifest {
            bytes,
            media_type,
            digest,
        })
    }

    async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Digest, UpstreamError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self
            .fetch(
                Method::HEAD,
                &path,
                repository,
                Some(MANIFEST_ACCEPT),
                Limit::Whole,
            )
            .await?;
        if let Some(digest) = digest_header(response.headers())? {
            return Ok(digest);
        }
        // The header is only a SHOULD: without it, the reference if it is a
        // digest, else the digest of the bytes.
        if let Ok(digest) = reference.parse::<Digest>() {
            return Ok(digest);
        }
        let manifest = self.manifest(repository, reference).await?;
        Ok(manifest
            .digest
            .unwrap_or_else(|| Digest::sha256_of(&manifest.bytes)))
    }

    async fn blob(&self, repository: &str, digest: &Digest) -> Result<UpstreamBlob, UpstreamError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = self
            .fetch(Method::GET, &path, repository, None, Limit::BetweenChunks)
            .await?;
        let size = content_length(response.headers());
        let body = response
            .bytes_stream()
            .map_err(|e| std::io::Error::other(describe(&e.without_url())))
            .boxed();
        Ok(UpstreamBlob { size, body })
    }

    async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<u64, UpstreamError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = self
            .fetch(Method::HEAD, &path, repository, None, Limit::Whole)
            .await?;
        content_length(response.headers())
            .ok_or_else(|| UpstreamError::Invalid("blob HEAD without Content-Length".to_string()))
    }
}

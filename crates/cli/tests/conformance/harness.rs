//! The test harness: one real `berth serve` process per test, plus the small
//! client-side helpers every area needs (blob and manifest pushes, digests,
//! manifest builders, error assertions, raw TCP requests).
//!
//! Nothing here knows berth's internals: tests see the registry only through
//! HTTP, like docker or skopeo would.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `berth serve`, killed when dropped.
pub struct Registry {
    child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stderr_path: PathBuf,
    // Held only to delete the directories when the test ends.
    _data: Option<tempfile::TempDir>,
    _logs: Option<tempfile::TempDir>,
}

impl Registry {
    /// A fresh registry on an empty data directory.
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// A fresh registry with extra environment variables (e.g. `BERTH_DELETE_ENABLED=false`).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("create data dir");
        let path = data.path().to_path_buf();
        let mut registry = Self::launch(&path, env).await;
        registry._data = Some(data);
        registry
    }

    /// A registry on a data directory the caller owns (to restart on the same data).
    pub async fn start_in(data_dir: &Path) -> Self {
        Self::launch(data_dir, &[]).await
    }

    async fn launch(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let logs = tempfile::tempdir().expect("create log dir");
        let mut last_stderr = String::new();
        for attempt in 0..5 {
            let addr = free_local_addr();
            let stderr_path = logs.path().join(format!("stderr-{attempt}.log"));
            let stderr = std::fs::File::create(&stderr_path).expect("create stderr log");
            let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
            // Hermetic: settings come only from the flags and `env` below.
            for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("BERTH_")) {
                command.env_remove(key);
            }
            let child = command
                .arg("serve")
                .arg("--addr")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(data_dir)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn berth serve");
            let client = reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("build HTTP client");
            let mut registry = Registry {
                child,
                addr,
                client,
                stderr_path,
                _data: None,
                _logs: None,
            };
            match registry.wait_ready().await {
                Ok(()) => {
                    registry._logs = Some(logs);
                    return registry;
                }
                Err(stderr) if stderr.to_lowercase().contains("in use") => {
                    last_stderr = stderr; // someone took the port between our probe and the bind
                }
                Err(stderr) => panic!("berth serve did not become ready on {addr}:\n{stderr}"),
            }
        }
        panic!("berth serve could not bind a free port after 5 attempts:\n{last_stderr}");
    }

    /// Polls `GET /v2/` until it answers 200; on failure returns the server's stderr.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = self.url("/v2/");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(exited with {status})\n{}", self.stderr()));
            }
            let probe = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if matches!(&probe, Ok(r) if r.status() == StatusCode::OK) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "(timed out; last probe: {probe:?})\n{}",
                    self.stderr()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
    }

    /// Panics with the server's stderr if the process has died.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("berth serve died ({status}):\n{}", self.stderr());
        }
    }

    /// Kills the process (like a crash or `kill -9`) and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A `Location` header may be absolute or relative; this makes it a URL.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            self.url(location)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn head(&self, path: &str) -> RequestBuilder {
        self.request(Method::HEAD, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Sends and unwraps: a transport error is always a test failure here.
    pub async fn send(&self, request: RequestBuilder) -> Response {
        let request = request.build().expect("build request");
        let what = format!("{} {}", request.method(), request.url());
        match self.client.execute(request).await {
            Ok(resp) => resp,
            Err(e) => panic!("{what} failed: {e:?}\nserver stderr:\n{}", self.stderr()),
        }
    }

    // ---- blobs -------------------------------------------------------------

    /// Opens an upload session and returns its absolute URL.
    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .send(self.request(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
            .await;
        assert_eq!(resp.status(), 202, "POST /v2/{repo}/blobs/uploads/");
        self.resolve(header(&resp, "location").expect("upload Location"))
    }

    /// Pushes a blob with POST then PUT (the flow every registry must support); returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let location = self.start_upload(repo).await;
        let resp = self
            .send(
                self.client
                    .put(with_query(&location, "digest", &digest))
                    .header("content-type", "application/octet-stream")
                    .body(bytes.to_vec()),
            )
            .await;
        assert_eq!(resp.status(), 201, "closing PUT for {digest} in {repo}");
        digest
    }

    /// A monolithic upload in one `POST ?digest=`; the response is the caller's to check.
    pub async fn post_blob(&self, repo: &str, digest: &str, bytes: Vec<u8>) -> Response {
        self.send(
            self.request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes),
        )
        .await
    }

    /// Uploads `bytes` and returns a descriptor of them with `media_type`.
    pub async fn push_descriptor(&self, repo: &str, media_type: &str, bytes: &[u8]) -> Descriptor {
        self.push_blob(repo, bytes).await;
        Descriptor::of(media_type, bytes)
    }

    // ---- manifests ---------------------------------------------------------

    /// PUTs a manifest (`media_type` as Content-Type unless empty) and returns the raw response.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        let mut request = self
            .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .body(body.to_vec());
        if !media_type.is_empty() {
            request = request.header("content-type", media_type);
        }
        self.send(request).await
    }

    /// PUTs a manifest that must be accepted; returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let resp = self.put_manifest(repo, reference, media_type, body).await;
        let status = resp.status();
        if status != 201 {
            let text = resp.text().await.unwrap_or_default();
            panic!("PUT manifest {repo}:{reference} expected 201, got {status}: {text}");
        }
        sha256_digest(body)
    }

    /// Pushes a small image (config + one layer) under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str) -> Image {
        let config = self
            .push_descriptor(repo, OCI_CONFIG, &random_config())
            .await;
        let layer = self
            .push_descriptor(repo, OCI_LAYER, &random_bytes(2048))
            .await;
        let manifest = ManifestBuilder::image(&config, std::slice::from_ref(&layer)).build();
        let digest = self.push_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        Image {
            digest,
            manifest,
            config,
            layers: vec![layer],
        }
    }

    // ---- raw TCP -----------------------------------------------------------

    /// Sends `request` verbatim on a fresh connection. With `close_write` the write half
    /// is shut down afterwards (a client that stops sending). Returns `None` when the
    /// server closes the connection without an answer.
    pub async fn raw(&self, request: &[u8], close_write: bool) -> Option<RawResponse> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        // Write while reading: the server may answer (and stop reading) before the body ends.
        // A failed write is not a test failure; the answer, or its absence, is what counts.
        let request = request.to_vec();
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            if close_write {
                let _ = writer.shutdown().await;
            }
            writer // dropping it would half-close the connection
        });
        let resp = read_response(&mut reader).await;
        drop(writing);
        resp
    }

    /// A raw `GET`/`HEAD`/... with no body, for paths reqwest would normalise (`..`, `//`).
    pub async fn raw_simple(&self, method: &str, path: &str) -> RawResponse {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        self.raw(request.as_bytes(), false)
            .await
            .unwrap_or_else(|| panic!("{method} {path}: connection closed without an answer"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            // The failing test's server log, for the assertion message above it.
            let log = self.stderr();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- berth serve stderr (last 40 lines) ---\n{}",
                tail.join("\n")
            );
        }
    }
}

fn free_local_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// An image pushed by [`Registry::push_image`].
pub struct Image {
    pub digest: String,
    pub manifest: Vec<u8>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

impl Image {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::of(OCI_MANIFEST, &self.manifest)
    }
}

// ---- content ---------------------------------------------------------------

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

// ---- responses -------------------------------------------------------------

pub fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("header is ASCII"))
}

/// The header's value; panics naming the request when it is missing.
pub fn required_header<'a>(resp: &'a Response, name: &str) -> &'a str {
    header(resp, name).unwrap_or_else(|| {
        panic!(
            "{} answered {} without a {name} header; headers: {:?}",
            resp.url(),
            resp.status(),
            resp.headers()
        )
    })
}

/// The path part of a Location (which may be absolute).
pub fn location_path(location: &str) -> &str {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    }
}

/// Appends `key=value` to a URL that may already carry a query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode_query_value(value))
}

/// Percent-encodes a query value (`+` must not reach the server raw: it would mean a space).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts an error answer: the status, a JSON Content-Type and a spec-shaped body
/// whose errors include `code`. Returns the body.
pub async fn assert_error(resp: Response, status: u16, code: &str) -> Value {
    assert_error_one_of(resp, &[(status, code)]).await
}

/// Like [`assert_error`] where the spec allows more than one (status, code) pair.
pub async fn assert_error_one_of(resp: Response, allowed: &[(u16, &str)]) -> Value {
    let what = resp.url().to_string();
    let status = resp.status().as_u16();
    let content_type = header(&resp, "content-type").unwrap_or("").to_string();
    let bytes = resp.bytes().await.expect("read error body");
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{what}: status {status}, body is not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let codes = error_codes(&body);
    assert!(
        allowed.iter().any(|(s, c)| *s == status && codes.iter().any(|got| got == c)),
        "{what}: expected one of {allowed:?}, got status {status} with codes {codes:?}; body {body}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{what}: error Content-Type is {content_type:?}, expected application/json"
    );
    body
}

/// The `code`s of a `{"errors":[…]}` body, checking the spec's shape on the way.
pub fn error_codes(body: &Value) -> Vec<String> {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array in {body}"));
    assert!(!errors.is_empty(), "empty errors array in {body}");
    errors
        .iter()
        .map(|e| {
            let code = e["code"]
                .as_str()
                .unwrap_or_else(|| panic!("error without a string code: {e}"));
            assert!(
                !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "code {code:?} must be upper-case letters and underscores"
            );
            if let Some(message) = e.get("message") {
                assert!(message.is_string(), "message must be a string: {e}");
            }
            code.to_string()
        })
        .collect()
}

pub async fn json_body(resp: Response) -> Value {
    let what = resp.url().to_string();
    let bytes = resp.bytes().await.expect("read body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{what}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// A response read off a raw TCP connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    complete: bool,
}

impl RawResponse {
    /// Parses an HTTP/1.1 response (Content-Length or chunked); `None` without a full head.
    fn parse(buf: &[u8]) -> Option<Self> {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&buf[..head_end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let rest = &buf[head_end + 4..];
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let (body, complete) = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            decode_chunked(rest)
        } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            (rest[..rest.len().min(len)].to_vec(), rest.len() >= len)
        } else {
            (rest.to_vec(), false)
        };
        Some(RawResponse {
            status,
            headers,
            body,
            complete,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The error codes of a JSON error body (empty if the body is not one).
    pub fn codes(&self) -> Vec<String> {
        serde_json::from_slice::<Value>(&self.body)
            .map(|b| error_codes(&b))
            .unwrap_or_default()
    }
}

/// Reads one HTTP/1.1 response off `stream` (10 s at most). `None` when the connection
/// ends, fails or stalls before a response head arrives.
pub async fn read_response(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if RawResponse::parse(&buf).is_some_and(|r| r.complete) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    RawResponse::parse(&buf)
}

fn decode_chunked(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap_or("0");
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
        else {
            return (out, false);
        };
        if size == 0 {
            return (out, true);
        }
        let start = line_end + 2;
        if data.len() < start + size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

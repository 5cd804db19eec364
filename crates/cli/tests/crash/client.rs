//! The pushes and pulls the rounds make, each answering `Ok` only for the
//! status the spec gives on success (what a client takes as "stored").

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::time::Duration;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub type Outcome<T> = Result<T, String>;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn expect(resp: &reqwest::Response, want: StatusCode, what: &str) -> Outcome<()> {
    if resp.status() == want {
        Ok(())
    } else {
        Err(format!("{what}: {}", resp.status()))
    }
}

fn location(resp: &reqwest::Response) -> Outcome<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| "no Location".to_string())
}

fn with_digest(url: &str, digest: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        Client {
            http,
            base: format!("http://{addr}"),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Outcome<reqwest::Response> {
        req.send().await.map_err(|e| e.to_string())
    }

    /// `POST …/blobs/uploads/?digest=` with the whole blob.
    pub async fn push_monolithic(&self, repo: &str, blob: &[u8]) -> Outcome<()> {
        let digest = sha256_digest(blob);
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"));
        let resp = self
            .send(
                self.http
                    .post(url)
                    .header("content-type", "application/octet-stream")
                    .body(blob.to_vec()),
            )
            .await?;
        expect(&resp, StatusCode::CREATED, "monolithic push")
    }

    /// `POST`, one `PATCH` per chunk, then `PUT ?digest=` with no body.
    pub async fn push_chunked(&self, repo: &str, blob: &[u8], chunk: usize) -> Outcome<()> {
        let resp = self
            .send(
                self.http
                    .post(self.url(&format!("/v2/{repo}/blobs/uploads/"))),
            )
            .await?;
        expect(&resp, StatusCode::ACCEPTED, "start upload")?;
        let mut at = location(&resp)?;
        for (i, part) in blob.chunks(chunk.max(1)).enumerate() {
            let start = i * chunk.max(1);
            let resp = self
                .send(
                    self.http
                        .patch(self.url(&at))
                        .header("content-type", "application/octet-stream")
                        .header(
                            "content-range",
                            format!("{start}-{}", start + part.len() - 1),
                        )
                        .body(part.to_vec()),
                )
                .await?;
            expect(&resp, StatusCode::ACCEPTED, "patch")?;
            at = location(&resp)?;
        }
        let resp = self
            .send(
                self.http
                    .put(with_digest(&self.url(&at), &sha256_digest(blob)))
                    .header("content-length", "0"),
            )
            .await?;
        expect(&resp, StatusCode::CREATED, "finish upload")
    }

    /// Cross-repository mount: `201` means `repo` now has the blob.
    pub async fn mount(&self, repo: &str, from: &str, digest: &str) -> Outcome<()> {
        let url = self.url(&format!(
            "/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
        ));
        let resp = self.send(self.http.post(url)).await?;
        expect(&resp, StatusCode::CREATED, "mount")
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, body: &[u8]) -> Outcome<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self
            .send(
                self.http
                    .put(url)
                    .header("content-type", OCI_MANIFEST)
                    .body(body.to_vec()),
            )
            .await?;
        expect(&resp, StatusCode::CREATED, "manifest put")
    }

    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Outcome<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{digest}"));
        let resp = self.send(self.http.delete(url)).await?;
        expect(&resp, StatusCode::ACCEPTED, "manifest delete")
    }

    /// `GET path`: status, `Docker-Content-Digest` (if any), body.
    pub async fn get(&self, path: &str) -> Outcome<(StatusCode, Option<String>, Bytes)> {
        let resp = self
            .send(self.http.get(self.url(path)).header("accept", OCI_MANIFEST))
            .await?;
        let status = resp.status();
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, digest, body))
    }

    pub async fn get_json(&self, path: &str) -> Outcome<Value> {
        let (status, _, body) = self.get(path).await?;
        if status != StatusCode::OK {
            return Err(format!("GET {path}: {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))
    }
}

/// An image manifest for a config and layers (each given as digest, size).
pub fn image_manifest(config: (&str, usize), layers: &[(String, usize)]) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(digest, size)| json!({"mediaType": OCI_LAYER, "digest": digest, "size": size}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .expect("manifest JSON")
}

/// Digests of the blobs a manifest references (config and layers).
pub fn referenced_blobs(manifest: &Value) -> Vec<String> {
    let mut digests: Vec<String> = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&manifest["config"]))
        .filter_map(|d| d["digest"].as_str().map(str::to_string))
        .collect();
    digests.dedup();
    digests
}

/// A small deterministic generator (xorshift64*), seeded per test run so a
/// failure can be replayed with the seed it prints.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// A blob size: mostly small, sometimes a few hundred KiB or a MiB.
    pub fn blob_size(&mut self) -> usize {
        match self.range(0, 10) {
            0..=3 => self.range(1, 4 << 10) as usize,
            4..=8 => self.range(4 << 10, 256 << 10) as usize,
            _ => self.range(256 << 10, 1536 << 10) as usize,
        }
    }
}

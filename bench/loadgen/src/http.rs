//! Shared HTTP/1.1 client code: one keep-alive connection per task (raw hyper
//! http1), a zero-copy request body made of `Bytes` pieces, and the few
//! registry requests every scenario needs (upload a blob, put a manifest).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

/// Largest frame handed to hyper; bigger pieces are split (still zero-copy).
const FRAME: usize = 4 << 20;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Where the registry listens. Only loopback addresses are accepted.
///
/// `--url` may name several replicas of one registry, comma-separated
/// (`http://127.0.0.1:5000,http://127.0.0.1:5001`): each new connection goes
/// to the next one in turn, as a round-robin load balancer in front of them
/// would send it. `addr` is the first replica's.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Authorization` sent on every request (set by `auth::log_in`).
    pub authorization: Option<String>,
    replicas: Arc<Vec<(SocketAddr, String)>>,
    next_replica: Arc<AtomicUsize>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let replicas = url.split(',').map(parse_one).collect::<Result<Vec<_>>>()?;
        let addr = replicas[0].0;
        Ok(Target {
            addr,
            authorization: None,
            replicas: Arc::new(replicas),
            next_replica: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The replica the next new connection goes to (round-robin).
    fn pick_replica(&self) -> (SocketAddr, String) {
        let i = self.next_replica.fetch_add(1, Ordering::Relaxed) % self.replicas.len();
        self.replicas[i].clone()
    }
}

fn parse_one(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url
        .trim()
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--url must start with http://"))?;
    let host = rest.trim_end_matches('/').to_string();
    let addr: SocketAddr = host
        .replace("localhost", "127.0.0.1")
        .parse()
        .with_context(|| format!("--url must be http://IP:PORT, got {url}"))?;
    if !addr.ip().is_loopback() {
        bail!("refusing non-loopback target {addr}");
    }
    Ok((addr, host))
}

/// A request body made of `Bytes` pieces that are sent without copying.
pub struct Chunks {
    pieces: VecDeque<Bytes>,
    remaining: u64,
}

impl Chunks {
    pub fn empty() -> Chunks {
        Chunks {
            pieces: VecDeque::new(),
            remaining: 0,
        }
    }

    pub fn new<I: IntoIterator<Item = Bytes>>(parts: I) -> Chunks {
        let mut pieces = VecDeque::new();
        let mut remaining = 0u64;
        for mut p in parts {
            remaining += p.len() as u64;
            while p.len() > FRAME {
                pieces.push_back(p.split_to(FRAME));
            }
            if !p.is_empty() {
                pieces.push_back(p);
            }
        }
        Chunks { pieces, remaining }
    }

    pub fn len(&self) -> u64 {
        self.remaining
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.pieces.pop_front();
        if let Some(b) = &next {
            self.remaining -= b.len() as u64;
        }
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// One keep-alive HTTP/1.1 connection, re-opened if the server closes it,
/// always to the same replica of the target.
pub struct Conn {
    target: Target,
    addr: SocketAddr,
    host: String,
    send: Option<SendRequest<Chunks>>,
}

impl Conn {
    pub fn new(target: &Target) -> Conn {
        let (addr, host) = target.pick_replica();
        Conn {
            target: target.clone(),
            addr,
            host,
            send: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Chunks>> {
        let usable = matches!(&self.send, Some(s) if !s.is_closed());
        if !usable {
            let tcp = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connect {}", self.addr))?;
            tcp.set_nodelay(true)?;
            let (send, conn) = hyper::client::conn::http1::Builder::new()
                .max_buf_size(4 << 20)
                .handshake(TokioIo::new(tcp))
                .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.send = Some(send);
        }
        let send = self.send.as_mut().unwrap();
        send.ready().await?;
        Ok(send)
    }

    /// Send one request. `path` is an origin-form target ("/v2/...").
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Chunks,
    ) -> Result<Response<Incoming>> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", &self.host)
            .header("user-agent", "berth-loadgen/0.1");
        if method != Method::GET && method != Method::HEAD {
            req = req.header("content-length", body.len().to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(a) = &self.target.authorization {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                req = req.header("authorization", a);
            }
        }
        let req = req.body(body)?;
        let send = self.sender().await?;
        let resp = send
            .send_request(req)
            .await
            .with_context(|| format!("{method} {path}"))?;
        Ok(resp)
    }

    /// Request with an expected status; returns the response headers and body.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Chunks,
        want: StatusCode,
    ) -> Result<(http::HeaderMap, Bytes)> {
        let resp = self.request(method.clone(), path, headers, body).await?;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        if status != want {
            bail!(
                "{method} {path}: got {status}, want {want}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        Ok((parts.headers, body))
    }

    /// Start a blob upload; returns the upload location as an origin-form path.
    pub async fn start_upload(&mut self, repo: &str) -> Result<String> {
        let (h, _) = self
            .expect(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                Chunks::empty(),
                StatusCode::ACCEPTED,
            )
            .await?;
        location(&h)
    }

    /// POST, then one PUT ?digest= carrying the whole blob (what clients do).
    pub async fn upload_monolithic(
        &mut self,
        repo: &str,
        digest: &str,
        body: Chunks,
    ) -> Result<()> {
        let loc = self.start_upload(repo).await?;
        let (h, _) = self
            .expect(
                Method::PUT,
                &with_digest(&loc, digest),
                &[("content-type", "application/octet-stream")],
                body,
                StatusCode::CREATED,
            )
            .await?;
        check_digest_header(&h, digest)
    }

    /// PUT a manifest by tag.
    pub async fn put_manifest(&mut self, repo: &str, tag: &str, manifest: &Bytes) -> Result<()> {
        self.expect(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("content-type", OCI_MANIFEST)],
            Chunks::new([manifest.clone()]),
            StatusCode::CREATED,
        )
        .await?;
        Ok(())
    }
}

/// The Location header as an origin-form path (servers may send absolute URLs).
pub fn location(h: &http::HeaderMap) -> Result<String> {
    let loc = h
        .get("location")
        .ok_or_else(|| anyhow!("no Location header"))?
        .to_str()?;
    Ok(origin_form(loc))
}

pub fn origin_form(loc: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = loc.strip_prefix(scheme) {
            return match rest.find('/') {
                Some(i) => rest[i..].to_string(),
                None => "/".to_string(),
            };
        }
    }
    loc.to_string()
}

pub fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={}", digest.replace(':', "%3A"))
}

fn check_digest_header(h: &http::HeaderMap, digest: &str) -> Result<()> {
    match h.get("docker-content-digest").map(|v| v.to_str()) {
        Some(Ok(d)) if d != digest => bail!("server digest {d} != {digest}"),
        _ => Ok(()),
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A small OCI image manifest referencing `config` and `layers` (digest, size).
pub fn oci_manifest(config: (&str, usize), layers: &[(String, usize)]) -> Bytes {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d, "size": s,
            })
        })
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0, "size": config.1,
        },
        "layers": layers,
    });
    Bytes::from(serde_json::to_vec(&m).unwrap())
}

/// Seed one repository with a config blob, `layers` small layer blobs and a
/// manifest tagged `tag`; returns the manifest. Content is deterministic, so
/// repeating it is cheap.
pub async fn seed_image(conn: &mut Conn, repo: &str, tag: &str, layers: usize) -> Result<Bytes> {
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let cd = sha256_digest(&config);
    conn.upload_monolithic(repo, &cd, Chunks::new([config.clone()]))
        .await?;
    let mut descs = Vec::new();
    for i in 0..layers {
        let layer = Bytes::from(format!("berth-bench layer {i}\n").repeat(40));
        let d = sha256_digest(&layer);
        conn.upload_monolithic(repo, &d, Chunks::new([layer.clone()]))
            .await?;
        descs.push((d, layer.len()));
    }
    let m = oci_manifest((&cd, config.len()), &descs);
    conn.put_manifest(repo, tag, &m).await?;
    Ok(m)
}

/// Read a response body to the end, counting bytes and optionally hashing.
pub async fn drain(body: Incoming, mut hasher: Option<&mut Sha256>) -> Result<u64> {
    let mut body = body;
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&data);
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_take_the_replicas_in_turn() {
        let t = Target::parse("http://127.0.0.1:5001,http://127.0.0.1:5002/").unwrap();
        let ports: Vec<u16> = (0..5).map(|_| Conn::new(&t).addr.port()).collect();
        assert_eq!(ports, [5001, 5002, 5001, 5002, 5001]);
        // Clones share the turn, as the tasks of one run do.
        let c = t.clone();
        assert_eq!(Conn::new(&c).addr.port(), 5002);
        assert_eq!(Conn::new(&t).host, "127.0.0.1:5001");
    }

    #[test]
    fn one_url_is_one_replica() {
        let t = Target::parse("http://127.0.0.1:5001").unwrap();
        assert!((0..3).all(|_| Conn::new(&t).addr.port() == 5001));
    }

    #[test]
    fn every_replica_must_be_loopback() {
        assert!(Target::parse("http://127.0.0.1:5001,http://10.0.0.1:5002").is_err());
        assert!(Target::parse("http://127.0.0.1:5001,127.0.0.1:5002").is_err());
    }
}

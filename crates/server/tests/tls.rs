//! HTTPS end to end: `serve_with` with a certificate, spoken to by a rustls
//! client that trusts (or does not trust) its CA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{IoMode, Registry, RegistryOptions};
use berth_server::{ServeOptions, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A CA and a `localhost` certificate it signed, written to `dir`.
struct Pki {
    ca: CertificateDer<'static>,
    settings: TlsSettings,
}

fn make_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let mut settings = TlsSettings::new(dir.join("server.crt"), dir.join("server.key"));
    settings.reload_poll = Duration::from_millis(100);
    std::fs::write(&settings.key, key.serialize_pem()).unwrap();
    std::fs::write(
        &settings.certificate,
        format!("{}{}", cert.pem(), ca_cert.pem()),
    )
    .unwrap();
    Pki {
        ca: ca_cert.der().clone(),
        settings,
    }
}

struct Server {
    addr: SocketAddr,
    _data: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(tls: TlsSettings, header_read: Duration) -> Server {
    let data = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::new(
        Arc::new(FsBlobStore::open(data.path()).unwrap()),
        Arc::new(SqliteMetaStore::open(&data.path().join("meta.db")).unwrap()),
        RegistryOptions {
            min_free_bytes: 0,
            min_free_percent: 0,
            ..RegistryOptions::default()
        },
    ));
    let mut options = ServeOptions {
        tls: Some(tls),
        // sendfile on where it exists: TLS connections must still stream.
        io: IoMode::Native,
        shutdown_grace: Duration::from_secs(1),
        ..ServeOptions::default()
    };
    options.timeouts.header_read = header_read;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(berth_server::serve_with(
        listener,
        registry,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        _data: data,
        stop: Some(stop),
    }
}

async fn connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Sends one request and reads its response: (status, body). Bodies are
/// read by `content-length`, so the connection stays usable.
async fn exchange(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.flush().await.unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let head_end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response head");
        got.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = got[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside a body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, body)
}

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[tokio::test]
async fn a_multi_mib_blob_pulled_over_tls_matches_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let server = start(pki.settings.clone(), Duration::from_secs(30)).await;
    let blob: Vec<u8> = (0..(5u32 << 20) + 123)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let digest = sha256(&blob);
    let mut stream = connect(server.addr, &pki.ca).await.unwrap();
    let (status, _) = exchange(
        &mut stream,
        "POST",
        &format!("/v2/tls/test/blobs/uploads/?digest={digest}"),
        &blob,
    )
    .await;
    assert_eq!(status, 201);
    // Twice on one connection: a body sent as sendfile placeholders would
    // arrive as zeros, and the next request would find the outbox unsent.
    for _ in 0..2 {
        let (status, body) = exchange(
            &mut stream,
            "GET",
            &format!("/v2/tls/test/blobs/{digest}"),
            b"",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), blob.len());
        assert_eq!(sha256(&body), digest, "the blob's bytes, not placeholders");
    }
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let other = tempfile::tempdir().unwrap();
    let stranger = make_pki(other.path());
    let server = start(pki.settings.clone(), Duration::from_secs(30)).await;
    let err = connect(server.addr, &stranger.ca).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(connect(server.addr, &pki.ca).await.is_ok());
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_a_clean_400() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let server = start(pki.settings.clone(), Duration::from_secs(30)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /v2/ HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("https://"), "{answer}");
}

#[tokio::test]
async fn a_new_pair_reaches_new_handshakes_and_open_connections_stay() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_pki(dir.path());
    let server = start(first.settings.clone(), Duration::from_secs(30)).await;
    let mut open = connect(server.addr, &first.ca).await.unwrap();
    assert_eq!(exchange(&mut open, "GET", "/v2/", b"").await.0, 200);

    // A broken pair is ignored...
    std::fs::write(&first.settings.key, "not a key").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(connect(server.addr, &first.ca).await.is_ok());

    // ...a new one (another CA) is served to new handshakes.
    let second = make_pki(dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect(server.addr, &second.ca).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(connect(server.addr, &first.ca).await.is_err());
    // The connection made before the swap still works.
    assert_eq!(exchange(&mut open, "GET", "/v2/", b"").await.0, 200);
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_at_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let server = start(pki.settings.clone(), Duration::from_secs(1)).await;
    for opening in [&b""[..], &[0x16u8][..]] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(opening).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("the server closes a silent client");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

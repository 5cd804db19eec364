//! TLS: an upstream whose certificate comes from a private CA is trusted
//! with `ca_file`, and refused (Unavailable) without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_registry::pull_through::{Upstream, UpstreamError};
use berth_upstream::{HttpUpstream, UpstreamSettings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA (its PEM) and an HTTPS registry on 127.0.0.1 with a certificate
/// it signed for `localhost`, answering every request with a manifest.
async fn private_ca_registry() -> (String, SocketAddr) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A failed handshake (the untrusting client) just ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "{}";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (ca.pem(), addr)
}

#[tokio::test]
async fn a_private_ca_is_trusted_with_ca_file_only() {
    let (ca_pem, addr) = private_ca_registry().await;
    let url = format!("https://localhost:{}", addr.port());

    let untrusting = HttpUpstream::new(UpstreamSettings {
        retries: 0,
        ..UpstreamSettings::new("private", url.clone())
    })
    .unwrap();
    let err = untrusting.manifest("r", "latest").await.unwrap_err();
    let UpstreamError::Unavailable(why) = err else {
        panic!("{err:?}")
    };
    assert!(why.to_lowercase().contains("certificate"), "{why}");

    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca_pem).unwrap();
    let trusting = HttpUpstream::new(UpstreamSettings {
        ca_file: Some(ca_file.path().into()),
        ..UpstreamSettings::new("private", url)
    })
    .unwrap();
    let manifest = trusting.manifest("r", "latest").await.unwrap();
    assert_eq!(manifest.bytes, "{}".as_bytes());
}

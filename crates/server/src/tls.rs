//! HTTPS: the server's certificate, swapped in place when its files change.
//!
//! [`Tls`] holds the acceptor the accept loop hands each connection to. Its
//! certificate comes from a resolver whose pair can be replaced while
//! connections are open: a handshake takes the pair current when it starts,
//! and connections already established keep their session. [`Tls::watch`]
//! re-reads the files when their modification time (or inode, for a
//! Kubernetes Secret's symlink swap) changes, and on SIGHUP; a pair that does
//! not load leaves the old one serving and is logged.
//!
//! TLS copies and encrypts each body, so its connections never get a
//! sendfile [`crate::sendfile::Outbox`]: blob bodies stream (see `serve`).

use crate::sendfile::Connection;
use futures_util::{Stream, StreamExt};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// Where the certificate and key are, and how often to look for changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server's certificate first, then the chain up to (not
    /// necessarily including) the root.
    pub certificate: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files' modification times are compared.
    pub reload_poll: Duration,
}

impl TlsSettings {
    pub fn new(certificate: PathBuf, key: PathBuf) -> Self {
        TlsSettings {
            certificate,
            key,
            reload_poll: Duration::from_secs(3),
        }
    }
}

/// Why a certificate/key pair did not load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM certificate chain: {detail}")]
    BadCertificate { path: PathBuf, detail: String },
    #[error("{path}: no usable PEM private key in it: {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error("{key} does not go with {certificate}: {detail}")]
    Mismatch {
        certificate: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The first byte of every TLS connection (a handshake record).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// The answer to plain HTTP on the TLS port.
pub const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 53\r\n\
connection: close\r\n\
\r\n\
This port speaks HTTPS: use https:// to reach berth.\n";

/// How a connection to the TLS port begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    Handshake,
    /// Something else, most likely plain HTTP.
    NotTls,
    /// The client left before sending anything.
    Closed,
}

/// Looks at the first byte without taking it, so the handshake still sees it.
pub(crate) async fn opening(connection: &Connection) -> std::io::Result<Opening> {
    let mut first = [0u8; 1];
    Ok(match connection.peek(&mut first).await? {
        0 => Opening::Closed,
        _ if first[0] == HANDSHAKE_RECORD => Opening::Handshake,
        _ => Opening::NotTls,
    })
}

/// Answers a plain HTTP request with [`PLAIN_HTTP_ANSWER`] and closes.
/// The request head is read first and late bytes drained after: closing a
/// socket with unread bytes resets it, and the client would lose the answer.
pub(crate) async fn answer_plain_http(mut connection: Connection) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const HEAD_LIMIT: usize = 16 << 10;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while head.len() < HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match connection.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        connection.write_all(PLAIN_HTTP_ANSWER).await?;
        connection.shutdown().await
    })
    .await;
    if !matches!(answered, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = connection.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// The server's TLS: an acceptor over a swappable certificate.
pub struct Tls {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    certificate: Arc<SwappableCertificate>,
    acceptor: TlsAcceptor,
    /// The files as last loaded (or last tried), to notice changes.
    seen: Mutex<Option<FileStamps>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the pair (an error here stops the server from starting).
    pub fn new(settings: TlsSettings) -> Result<Arc<Tls>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = FileStamps::of(&settings);
        let pair = load_pair(&settings, &provider)?;
        let certificate = Arc::new(SwappableCertificate::new(pair));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        // berth serves HTTP/1.1 only; saying so lets clients that offer h2 fall back.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            settings,
            provider,
            certificate,
            seen: Mutex::new(stamps),
        }))
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again and serves the new pair to new handshakes; on
    /// error the old pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.seen_stamps() = FileStamps::of(&self.settings);
        let pair = load_pair(&self.settings, &self.provider)?;
        self.certificate.replace(pair);
        Ok(())
    }

    /// Reloads if either file changed since the last load (or attempt).
    /// `None` when nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = FileStamps::of(&self.settings);
        if now == *self.seen_stamps() {
            return None;
        }
        Some(self.reload())
    }

    /// Re-reads the pair when its files change or on SIGHUP, forever.
    pub async fn watch(self: Arc<Self>) {
        self.watch_with(hangups()).await
    }

    /// Re-reads the pair when its files change (looked at every
    /// `reload_poll`) or, changed or not, when `hangups` yields.
    async fn watch_with(self: Arc<Self>, hangups: impl Stream<Item = ()>) {
        let mut hangups = std::pin::pin!(hangups);
        let mut hangups_open = true;
        let mut poll = tokio::time::interval(self.settings.reload_poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let outcome = tokio::select! {
                _ = poll.tick() => self.reload_if_changed(),
                hangup = hangups.next(), if hangups_open => match hangup {
                    Some(()) => Some(self.reload()),
                    None => {
                        hangups_open = false;
                        None
                    }
                },
            };
            match outcome {
                None => {}
                Some(Ok(())) => tracing::info!(
                    certificate = %self.settings.certificate.display(),
                    "TLS certificate reloaded"
                ),
                Some(Err(e)) => tracing::error!(
                    error = %e,
                    "TLS certificate not reloaded; still serving the previous one"
                ),
            }
        }
    }

    /// The end-entity certificate new handshakes get.
    pub fn current_certificate(&self) -> CertificateDer<'static> {
        self.certificate.current().cert[0].clone()
    }

    fn seen_stamps(&self) -> std::sync::MutexGuard<'_, Option<FileStamps>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// SIGHUPs received by the process; empty where there are none.
#[cfg(unix)]
fn hangups() -> impl Stream<Item = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let signal = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files are still polled");
            None
        }
    };
    futures_util::stream::unfold(signal, |signal| async move {
        let mut signal = signal?;
        signal.recv().await.map(|()| ((), Some(signal)))
    })
}

#[cfg(not(unix))]
fn hangups() -> impl Stream<Item = ()> {
    futures_util::stream::empty()
}

/// A certificate resolver whose one pair can be replaced.
#[derive(Debug)]
struct SwappableCertificate(RwLock<Arc<CertifiedKey>>);

impl SwappableCertificate {
    fn new(pair: CertifiedKey) -> Self {
        SwappableCertificate(RwLock::new(Arc::new(pair)))
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, pair: CertifiedKey) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
    }
}

impl ResolvesServerCert for SwappableCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What identifies a version of the two files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamps([Option<(SystemTime, u64, u64)>; 2]);

impl FileStamps {
    fn of(settings: &TlsSettings) -> Option<FileStamps> {
        Some(FileStamps([
            stamp(&settings.certificate),
            stamp(&settings.key),
        ]))
    }
}

/// Modification time, size and inode; `None` when the file cannot be read.
fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

/// Reads and checks a certificate chain and its key.
pub fn load_pair(
    settings: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let chain_pem = read(&settings.certificate)?;
    let key_pem = read(&settings.key)?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: settings.certificate.clone(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: settings.certificate.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: settings.key.clone(),
        detail: e.to_string(),
    })?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                path: settings.key.clone(),
                detail: e.to_string(),
            })?;
    let pair = CertifiedKey::new(chain, signing_key);
    pair.keys_match().map_err(|e| TlsError::Mismatch {
        certificate: settings.certificate.clone(),
        key: settings.key.clone(),
        detail: e.to_string(),
    })?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed pair for `name`, written into `dir`.
    fn write_pair(dir: &Path, name: &str) -> TlsSettings {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let settings = TlsSettings::new(dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&settings.certificate, cert.pem()).unwrap();
        std::fs::write(&settings.key, key.serialize_pem()).unwrap();
        settings
    }

    #[test]
    fn plain_http_answer_has_the_length_it_says() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(body.contains("https://"));
    }

    #[test]
    fn a_changed_pair_is_served_and_a_broken_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let settings = write_pair(dir.path(), "first.test");
        let tls = Tls::new(settings.clone()).unwrap();
        let first = tls.current_certificate();
        assert!(tls.reload_if_changed().is_none(), "nothing changed yet");

        write_pair(dir.path(), "second.test");
        assert!(matches!(tls.reload_if_changed(), Some(Ok(()))));
        let second = tls.current_certificate();
        assert_ne!(first, second);

        std::fs::write(&settings.key, "not a key").unwrap();
        assert!(matches!(
            tls.reload_if_changed(),
            Some(Err(TlsError::BadKey { .. }))
        ));
        assert_eq!(tls.current_certificate(), second, "old pair kept");
        assert!(
            tls.reload_if_changed().is_none(),
            "a failed attempt is not retried"
        );
    }

    #[tokio::test]
    async fn a_hangup_reloads_even_when_the_files_look_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = write_pair(dir.path(), "first.test");
        // Polling alone would not notice anything during this test.
        settings.reload_poll = Duration::from_secs(3600);
        let tls = Tls::new(settings.clone()).unwrap();
        let first = tls.current_certificate();
        write_pair(dir.path(), "second.test");
        // Make the change invisible to the poll: the stamps it would compare are the new ones.
        *tls.seen_stamps() = FileStamps::of(&settings);

        let (hangup, hangups) = tokio::sync::mpsc::unbounded_channel::<()>();
        let hangups = futures_util::stream::unfold(hangups, |mut rx| async move {
            rx.recv().await.map(|()| ((), rx))
        });
        let watcher = tokio::spawn(tls.clone().watch_with(hangups));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            tls.current_certificate(),
            first,
            "no reload without a hangup"
        );
        hangup.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tls.current_certificate() == first {
            assert!(
                std::time::Instant::now() < deadline,
                "SIGHUP did not reload"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watcher.abort();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let settings = write_pair(dir.path(), "a.test");
        let other = tempfile::tempdir().unwrap();
        let other = write_pair(other.path(), "b.test");
        std::fs::copy(&other.key, &settings.key).unwrap();
        let err = Tls::new(settings).unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let settings = write_pair(dir.path(), "a.test");
        std::fs::write(&settings.certificate, "nothing here\n").unwrap();
        let err = Tls::new(settings).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}

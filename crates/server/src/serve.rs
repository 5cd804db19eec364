//! Accepting connections and serving each with hyper's HTTP/1.1.
//!
//! berth runs its own accept loop rather than `axum::serve` for what axum
//! does not expose: a per-connection [`Outbox`] handed to handlers (so blob
//! bodies can go out with sendfile), the size of hyper's buffer, deadlines
//! for slow clients, a cap on connections, and a bounded shutdown.
//!
//! With [`ServeOptions::tls`] every connection is HTTPS (see [`crate::tls`]);
//! plain HTTP on that port gets a 400 saying to use `https://`.
//!
//! Every request carries in its extensions its connection's [`Outbox`] (when
//! sendfile is in use: [`ServeOptions::io`], and never over TLS), its
//! [`Scheme`], the
//! client's address as `axum::extract::ConnectInfo<SocketAddr>` (for
//! per-client limits), and the shared [`MemoryBudget`] for bodies held whole.

use crate::admin_socket::{AdminSocket, LocalAdmin};
use crate::budget::MemoryBudget;
use crate::connections::{Admission, ConnState, ConnectionTable, GuardedBody, RateLimitedLog};
use crate::cors::CorsPolicy;
use crate::metrics::Metrics;
use crate::sendfile::{Connection, Listener, Outbox};
use crate::timeouts::{idle_body, TimedIo, Timeouts};
use crate::tls::{self, Opening, Tls, TlsSettings};
use crate::{router_with_auth, Operations};
use axum::extract::ConnectInfo;
use axum::http::Request;
use berth_registry::{IoMode, Registry};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Bytes hyper may buffer per connection. Request bodies arrive in pieces
/// of at most this size, and an upload holds a few pieces at a time (being
/// hashed, queued for the disk), so this sets the memory of each upload.
/// 64 KiB keeps berth's peak memory under a third of distribution's while
/// pushing at 2-4x its speed; hyper's default (~400 KiB) pushed about 20%
/// faster at twice the memory. Request heads must fit in it too.
const CONNECTION_BUFFER: usize = 64 << 10;

/// A canned answer for a connection refused at the cap; written only if the
/// socket takes it at once.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";

/// Waiting connections closed each time `accept()` runs out of descriptors.
const EVICT_ON_EMFILE: usize = 16;

/// The scheme a request arrived with, in its extensions: an auth challenge
/// builds its default token realm (`https://Host/token`) from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// How the server treats its clients. (Not `PartialEq`: `Auth` holds keys
/// and caches, which have no equality worth the name.)
#[derive(Clone)]
pub struct ServeOptions {
    pub timeouts: Timeouts,
    /// HTTPS with this certificate and key; plain HTTP when `None`.
    pub tls: Option<TlsSettings>,
    /// Connections held at once; see [`crate::connections`] for what
    /// happens at the cap.
    pub max_connections: usize,
    /// After the shutdown signal, how long requests in flight may take
    /// before the remaining connections are dropped.
    pub shutdown_grace: Duration,
    /// Bytes that manifest bodies being received may hold, all together.
    pub manifest_body_budget: usize,
    /// Whether blob bodies may go out with sendfile ([`IoMode::linux_calls`]);
    /// otherwise they are streamed through memory.
    pub io: IoMode,
    /// Which browser origins get CORS answers; off by default.
    pub cors: CorsPolicy,
    /// Whether `/metrics` answers clients beyond loopback.
    pub metrics_public: bool,
    /// Users, rules and tokens; `None` serves everyone everything.
    pub auth: Option<Arc<berth_auth::Auth>>,
    /// Also listen on this unix socket (see [`crate::admin_socket`]), whose
    /// callers have every right; the caller must hold the data folder's
    /// lock, so that a socket file found there is a dead server's.
    pub admin_socket: Option<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            timeouts: Timeouts {
                header_read: Duration::from_secs(30),
                keep_alive_idle: Duration::from_secs(60),
                body_idle: Duration::from_secs(60),
            },
            tls: None,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
            manifest_body_budget: 64 << 20,
            io: IoMode::Native,
            cors: CorsPolicy::default(),
            metrics_public: false,
            auth: None,
            admin_socket: None,
        }
    }
}

/// Serves `registry` on `listener` with default [`ServeOptions`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, registry, ServeOptions::default(), shutdown).await
}

/// Serves `registry` on `listener` until `shutdown` completes; then stops
/// accepting at once (the listener is closed, so new connections are
/// refused) and lets requests in flight finish for at most
/// `options.shutdown_grace`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let app = router_with_auth(
        registry,
        Operations::new(metrics.clone(), options.metrics_public),
        options.cors.clone(),
        options.auth.clone(),
    );
    let tls = match &options.tls {
        Some(settings) => Some(
            Tls::new(settings.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let reloader = tls.clone().map(|tls| tokio::spawn(tls.watch()));
    let scheme = if tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let mut listener = Listener(listener);
    let table = ConnectionTable::new(options.max_connections);
    let budget = MemoryBudget::new(options.manifest_body_budget);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors = RateLimitedLog::default();
    let mut at_cap = RateLimitedLog::default();
    let admin = options.admin_socket.as_deref().and_then(bind_admin_socket);
    let admin_table = ConnectionTable::new(MAX_ADMIN_CONNECTIONS);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            accepted = accept_admin(admin.as_ref()) => {
                match accepted {
                    Ok(stream) => serve_admin_connection(AdminConnection {
                        stream,
                        table: &admin_table,
                        app: &app,
                        options: &options,
                        budget: &budget,
                        metrics: &metrics,
                        watcher: graceful.watcher(),
                    }),
                    Err(e) => on_accept_error(&e, &admin_table, &mut accept_errors).await,
                }
                continue;
            }
            () = &mut shutdown => break,
        };
        let (connection, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                on_accept_error(&e, &table, &mut accept_errors).await;
                continue;
            }
        };
        let (state, slot) = match table.admit() {
            Admission::Admitted(state, slot) => (state, slot),
            Admission::AdmittedByEviction(state, slot) => {
                if let Some(suppressed) = at_cap.allow() {
                    tracing::warn!(
                        max = options.max_connections,
                        suppressed,
                        "connection limit reached: closing the connection idle longest"
                    );
                }
                (state, slot)
            }
            Admission::Refused => {
                if let Some(suppressed) = at_cap.allow() {
                    tracing::warn!(
                        max = options.max_connections,
                        suppressed,
                        %peer,
                        "connection limit reached and every connection busy: refusing"
                    );
                }
                let _ = connection.try_write(BUSY);
                continue;
            }
        };
        let outbox = handlers_outbox(&connection, options.io, scheme);
        let (app, request_state, body_idle, budget) = (
            app.clone(),
            state.clone(),
            options.timeouts.body_idle,
            budget.clone(),
        );
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let guard = request_state.begin_request();
            let mut request = request.map(|body| idle_body(body, body_idle));
            let context = ConnectionContext {
                outbox: outbox.as_ref(),
                peer: Some(peer),
                scheme,
                budget: &budget,
            };
            context.attach(request.extensions_mut());
            let response = tower::ServiceExt::oneshot(app.clone(), request);
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|b| GuardedBody::wrap(b, guard)))
            }
        });
        let served = serve_connection(
            connection,
            state.clone(),
            options.timeouts,
            tls.clone(),
            service,
            graceful.watcher(),
        );
        let counted = metrics.connection_opened();
        tokio::spawn(async move {
            let (_slot, _counted) = (slot, counted);
            tokio::select! {
                // A connection's end (the client left, a malformed request) concerns it alone.
                () = served => {}
                () = state.evicted() => {}
            }
        });
    }
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    drop(listener);
    // The socket file goes with it: nothing may connect to a stopping server.
    drop(admin);
    let open = table.len();
    tracing::info!(
        connections = open,
        grace = ?options.shutdown_grace,
        "stopped accepting; finishing requests in flight"
    );
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = table.len(),
            "shutdown grace period over: closing the connections still open"
        );
    }
    Ok(())
}

/// What every request of a connection carries in its extensions.
struct ConnectionContext<'a> {
    outbox: Option<&'a Outbox>,
    /// The client's address; `None` on the admin socket.
    peer: Option<SocketAddr>,
    scheme: Scheme,
    budget: &'a MemoryBudget,
}

impl ConnectionContext<'_> {
    fn attach(&self, extensions: &mut axum::http::Extensions) {
        if let Some(outbox) = self.outbox {
            outbox.check_drained();
            extensions.insert(outbox.clone());
        }
        match self.peer {
            Some(peer) => {
                extensions.insert(ConnectInfo(peer));
            }
            None => {
                extensions.insert(LocalAdmin);
            }
        }
        extensions.insert(self.scheme);
        extensions.insert(self.budget.clone());
    }
}

/// Admin socket connections held at once: a few operators' commands.
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Listens on the admin socket; a failure (a path too long for a socket
/// address, a read-only folder) costs the socket, not the server.
fn bind_admin_socket(path: &std::path::Path) -> Option<AdminSocket> {
    match AdminSocket::bind(path) {
        Ok(socket) => {
            tracing::info!(path = %socket.path().display(), "admin socket listening");
            Some(socket)
        }
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot listen on the admin socket; serving without it (berth gc then needs the server stopped)"
            );
            None
        }
    }
}

/// The next admin socket connection; never, without the socket.
async fn accept_admin(socket: Option<&AdminSocket>) -> io::Result<tokio::net::UnixStream> {
    match socket {
        Some(socket) => socket.accept().await,
        None => std::future::pending().await,
    }
}

/// What serving one admin socket connection takes from the accept loop.
struct AdminConnection<'a> {
    stream: tokio::net::UnixStream,
    table: &'a Arc<ConnectionTable>,
    app: &'a axum::Router,
    options: &'a ServeOptions,
    budget: &'a MemoryBudget,
    metrics: &'a Arc<Metrics>,
    watcher: Watcher,
}

/// Serves an admin socket connection as a TCP one (same dispatch, same
/// deadlines), its requests marked [`LocalAdmin`]: no sendfile, no TLS.
fn serve_admin_connection(connection: AdminConnection<'_>) {
    let (state, slot) = match connection.table.admit() {
        Admission::Admitted(state, slot) | Admission::AdmittedByEviction(state, slot) => {
            (state, slot)
        }
        Admission::Refused => return,
    };
    let (app, request_state, body_idle, budget) = (
        connection.app.clone(),
        state.clone(),
        connection.options.timeouts.body_idle,
        connection.budget.clone(),
    );
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = request_state.begin_request();
        let mut request = request.map(|body| idle_body(body, body_idle));
        let context = ConnectionContext {
            outbox: None,
            peer: None,
            scheme: Scheme::Http,
            budget: &budget,
        };
        context.attach(request.extensions_mut());
        let response = tower::ServiceExt::oneshot(app.clone(), request);
        async move {
            let response = response.await?;
            Ok::<_, std::convert::Infallible>(response.map(|b| GuardedBody::wrap(b, guard)))
        }
    });
    let io = TimedIo::new(
        connection.stream,
        state.clone(),
        connection.options.timeouts,
    );
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(CONNECTION_BUFFER);
    let served = connection
        .watcher
        .watch(http.serve_connection(TokioIo::new(io), service));
    let counted = connection.metrics.connection_opened();
    tokio::spawn(async move {
        let (_slot, _counted) = (slot, counted);
        tokio::select! {
            _ = served => {}
            () = state.evicted() => {}
        }
    });
}

/// Serves one connection's requests: straight over TCP, or after a TLS
/// handshake. Either way [`TimedIo`] sits on the socket, so the header
/// deadline covers the handshake and the write deadline covers TLS records.
async fn serve_connection<S>(
    connection: Connection,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    tls: Option<Arc<Tls>>,
    service: S,
    watcher: Watcher,
) where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(CONNECTION_BUFFER);
    let Some(tls) = tls else {
        let io = TimedIo::new(connection, state, timeouts);
        // Flattened writes would copy sendfile placeholders (crate::sendfile).
        debug_assert!(tokio::io::AsyncWrite::is_write_vectored(&io));
        // Queue body frames as they are, never copied: sendfile relies on it.
        http.writev(true);
        let _ = watcher
            .watch(http.serve_connection(TokioIo::new(io), service))
            .await;
        return;
    };
    match tokio::time::timeout(timeouts.header_read, tls::opening(&connection)).await {
        Ok(Ok(Opening::Handshake)) => {}
        Ok(Ok(Opening::NotTls)) => return tls::answer_plain_http(connection).await,
        Ok(Ok(Opening::Closed) | Err(_)) | Err(_) => return,
    }
    let io = TimedIo::new(connection, state, timeouts);
    let stream = match tls.acceptor().accept(io).await {
        Ok(stream) => stream,
        Err(e) => {
            // Clients that do not trust the certificate end here: theirs to report.
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
    };
    let _ = watcher
        .watch(http.serve_connection(TokioIo::new(stream), service))
        .await;
}

/// The outbox a connection's handlers may leave files in: none without
/// sendfile ([`IoMode::linux_calls`]) and none over TLS (which copies and
/// encrypts every byte), so that handlers stream blob bodies.
fn handlers_outbox(connection: &Connection, io: IoMode, scheme: Scheme) -> Option<Outbox> {
    (io.linux_calls() && scheme == Scheme::Http).then(|| connection.outbox())
}

/// Logs a failed `accept()` (rate-limited) and makes room when it failed for
/// want of descriptors, so the listener does not spin on the same error.
async fn on_accept_error(e: &io::Error, table: &ConnectionTable, log: &mut RateLimitedLog) {
    let out_of_descriptors = matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error());
    if let Some(suppressed) = log.allow() {
        tracing::error!(error = %e, connections = table.len(), suppressed, "accept() failed");
    }
    if out_of_descriptors {
        // Several at once: the backlog may hold many more idle clients
        // ahead of the one that will send a request.
        table.evict(EVICT_ON_EMFILE);
    }
    // Give closing connections a moment to free what accept() needs.
    tokio::time::sleep(Duration::from_millis(if out_of_descriptors {
        10
    } else {
        1
    }))
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connection() -> (Connection, tokio::net::TcpStream) {
        let mut listener = Listener(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.0.local_addr().unwrap();
        let peer = tokio::spawn(tokio::net::TcpStream::connect(addr));
        let (ours, _) = listener.accept().await.unwrap();
        (ours, peer.await.unwrap().unwrap())
    }

    #[tokio::test]
    async fn handlers_get_an_outbox_only_where_sendfile_is_used() {
        let (ours, _peer) = connection().await;
        assert!(handlers_outbox(&ours, IoMode::Portable, Scheme::Http).is_none());
        assert_eq!(
            handlers_outbox(&ours, IoMode::Native, Scheme::Http).is_some(),
            cfg!(target_os = "linux")
        );
    }

    #[test]
    fn requests_carry_their_connection_s_scheme_peer_and_budget() {
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let budget = MemoryBudget::new(1 << 20);
        for scheme in [Scheme::Http, Scheme::Https] {
            let mut extensions = axum::http::Extensions::new();
            ConnectionContext {
                outbox: None,
                peer: Some(peer),
                scheme,
                budget: &budget,
            }
            .attach(&mut extensions);
            assert_eq!(extensions.get::<Scheme>(), Some(&scheme));
            assert_eq!(extensions.get::<ConnectInfo<SocketAddr>>().unwrap().0, peer);
            assert!(extensions.get::<LocalAdmin>().is_none());
            assert!(extensions.get::<MemoryBudget>().is_some());
            assert!(extensions.get::<Outbox>().is_none());
        }
        assert_eq!(Scheme::Https.as_str(), "https");
    }

    #[test]
    fn admin_socket_requests_are_marked_local_admin_and_carry_no_address() {
        let budget = MemoryBudget::new(1 << 20);
        let mut extensions = axum::http::Extensions::new();
        ConnectionContext {
            outbox: None,
            peer: None,
            scheme: Scheme::Http,
            budget: &budget,
        }
        .attach(&mut extensions);
        assert_eq!(extensions.get::<LocalAdmin>(), Some(&LocalAdmin));
        assert!(extensions.get::<ConnectInfo<SocketAddr>>().is_none());
    }

    #[tokio::test]
    async fn tls_connections_never_get_an_outbox() {
        let (ours, _peer) = connection().await;
        assert!(handlers_outbox(&ours, IoMode::Native, Scheme::Https).is_none());
        assert!(handlers_outbox(&ours, IoMode::Portable, Scheme::Https).is_none());
    }
}

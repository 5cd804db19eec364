//! Accepting connections and serving each with hyper's HTTP/1.1.
//!
//! berth runs its own accept loop rather than `axum::serve` for what axum
//! does not expose: a per-connection [`Outbox`] handed to handlers (so blob
//! bodies can go out with sendfile), the size of hyper's buffer, deadlines
//! for slow clients, a cap on connections, and a bounded shutdown.
//!
//! Every request carries in its extensions its connection's [`Outbox`] (when
//! sendfile is in use: [`ServeOptions::io`]), the
//! client's address as `axum::extract::ConnectInfo<SocketAddr>` (for
//! per-client limits), and the shared [`MemoryBudget`] for bodies held whole.

use crate::budget::MemoryBudget;
use crate::connections::{Admission, ConnectionTable, GuardedBody, RateLimitedLog};
use crate::cors::CorsPolicy;
use crate::metrics::Metrics;
use crate::sendfile::{Connection, Listener, Outbox};
use crate::timeouts::{idle_body, TimedIo, Timeouts};
use crate::{router_with_auth, Operations};
use axum::extract::ConnectInfo;
use axum::http::Request;
use berth_registry::{IoMode, Registry};
use hyper::body::Incoming;
use std::future::Future;
use std::io;
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

/// How the server treats its clients.
#[derive(Clone)]
pub struct ServeOptions {
    pub timeouts: Timeouts,
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
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            timeouts: Timeouts {
                header_read: Duration::from_secs(30),
                keep_alive_idle: Duration::from_secs(60),
                body_idle: Duration::from_secs(60),
            },
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
            manifest_body_budget: 64 << 20,
            io: IoMode::Native,
            cors: CorsPolicy::default(),
            metrics_public: false,
            auth: None,
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
    let mut listener = Listener(listener);
    let table = ConnectionTable::new(options.max_connections);
    let budget = MemoryBudget::new(options.manifest_body_budget);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors = RateLimitedLog::default();
    let mut at_cap = RateLimitedLog::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
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
        let outbox = handlers_outbox(&connection, options.io);
        let (app, request_state, body_idle, budget) = (
            app.clone(),
            state.clone(),
            options.timeouts.body_idle,
            budget.clone(),
        );
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let guard = request_state.begin_request();
            let mut request = request.map(|body| idle_body(body, body_idle));
            if let Some(outbox) = &outbox {
                outbox.check_drained();
                request.extensions_mut().insert(outbox.clone());
            }
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(budget.clone());
            let response = tower::ServiceExt::oneshot(app.clone(), request);
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|b| GuardedBody::wrap(b, guard)))
            }
        });
        let io = TimedIo::new(connection, state.clone(), options.timeouts);
        // Flattened writes would copy sendfile placeholders (crate::sendfile).
        debug_assert!(tokio::io::AsyncWrite::is_write_vectored(&io));
        let served = hyper::server::conn::http1::Builder::new()
            .max_buf_size(CONNECTION_BUFFER)
            // Queue body frames as they are, never copied: sendfile relies on it.
            .writev(true)
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let served = graceful.watch(served);
        let counted = metrics.connection_opened();
        tokio::spawn(async move {
            let (_slot, _counted) = (slot, counted);
            tokio::select! {
                // A connection's end (the client left, a malformed request) concerns it alone.
                _ = served => {}
                () = state.evicted() => {}
            }
        });
    }
    drop(listener);
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

/// The outbox a connection's handlers may leave files in: none without
/// sendfile ([`IoMode::linux_calls`]), so that they stream blob bodies.
fn handlers_outbox(connection: &Connection, io: IoMode) -> Option<Outbox> {
    io.linux_calls().then(|| connection.outbox())
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
        assert!(handlers_outbox(&ours, IoMode::Portable).is_none());
        assert_eq!(
            handlers_outbox(&ours, IoMode::Native).is_some(),
            cfg!(target_os = "linux")
        );
    }
}

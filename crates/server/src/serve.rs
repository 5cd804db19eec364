//! Accepting connections and serving each with hyper's HTTP/1.1.
//!
//! berth runs its own accept loop rather than `axum::serve` for two things
//! axum does not expose: a per-connection [`Outbox`] handed to handlers (so
//! blob bodies can go out with sendfile), and the size of hyper's buffer.

use crate::router;
use crate::sendfile::{Listener, Outbox};
use axum::body::Body;
use axum::http::Request;
use berth_registry::Registry;
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;

/// Bytes hyper may buffer per connection. Request bodies arrive in pieces
/// of at most this size, and an upload holds a few pieces at a time (being
/// hashed, queued for the disk), so this sets the memory of each upload.
/// 64 KiB keeps berth's peak memory under a third of distribution's while
/// pushing at 2-4x its speed; hyper's default (~400 KiB) pushed about 20%
/// faster at twice the memory. Request heads must fit in it too.
const CONNECTION_BUFFER: usize = 64 << 10;

/// Serves `registry` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(registry);
    let mut listener = Listener(listener);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            connection = listener.accept() => connection,
            () = &mut shutdown => break,
        };
        let (app, outbox): (_, Outbox) = (app.clone(), connection.outbox());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(outbox.clone());
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        let served = hyper::server::conn::http1::Builder::new()
            .max_buf_size(CONNECTION_BUFFER)
            // Queue body frames as they are, never copied: sendfile relies on it.
            .writev(true)
            .serve_connection(hyper_util::rt::TokioIo::new(connection), service);
        let served = connections.watch(served);
        tokio::spawn(async move {
            // A connection's end (the client left, a malformed request) concerns it alone.
            let _ = served.await;
        });
    }
    connections.shutdown().await;
    Ok(())
}

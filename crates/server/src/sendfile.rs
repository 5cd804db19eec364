//! Sending blob files with sendfile(2), so that their bytes never pass
//! through berth's memory: the kernel moves them from the page cache to the
//! socket.
//!
//! hyper writes only what a response body yields, so a blob body yields
//! *placeholders*: slices of one static buffer whose contents are never sent.
//! Each connection's stream ([`Connection`]) recognises a write that points
//! into that buffer and sends as many bytes from the response's file instead.
//! This holds because hyper queues body frames as they are rather than
//! copying them (`serve` sets hyper's `writev`, and this stream writes
//! vectored); a placeholder with no file behind it fails the connection, so
//! a placeholder's zeros can never reach a client.
//!
//! The file is handed over per connection through an [`Outbox`], which the
//! handler finds in the request's extensions. HTTP/1.1 answers one request
//! at a time per connection, so one slot is enough.
//!
//! # The invariant, and what guards it
//!
//! **Every placeholder frame a body yields reaches [`Connection`]'s write
//! unchanged: same address, in order, on the connection whose outbox holds
//! the file.** Anything between the handler and the socket that copies or
//! transforms frames breaks it: a compression layer, TLS, HTTP/2 framing,
//! hyper without `writev` (it would flatten frames into its own buffer).
//! A copied placeholder is plain zeros, and would be sent as such.
//!
//! Guards:
//! - TLS connections get no outbox at all, so their handlers stream blob
//!   bodies (`serve`'s `handlers_outbox`, with a unit test; the `tls`
//!   integration test pulls a multi-MiB blob over TLS with sendfile on and
//!   checks its digest);
//! - a new request on a connection whose outbox still holds unsent file
//!   bytes means the last body's placeholders never arrived: a debug
//!   assertion fails, and release builds log it ([`Outbox::check_drained`]);
//! - the connection must write vectored (a debug assertion in `serve`, and a
//!   unit test over the stack `serve` builds);
//! - conformance tests (`wire`) check blob bytes on real sockets: pipelined,
//!   with `Accept-Encoding: gzip`, HEAD then GET, after a disconnect, with the
//!   page cache partly evicted, and that the sendfile path did serve them
//!   (the `blob body` debug log says `via=sendfile` or `via=stream`).

use axum::body::Body;
use berth_registry::FileRegion;
use bytes::Bytes;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Most bytes one placeholder frame stands for.
const FRAME: usize = 1 << 20;

/// Never sent: only its address matters. Zero-initialised, so it costs no
/// memory until read, and nothing reads it.
static PLACEHOLDER: [u8; FRAME] = [0; FRAME];

fn is_placeholder(buf: &[u8]) -> bool {
    let range = PLACEHOLDER.as_ptr_range();
    !buf.is_empty() && range.contains(&buf.as_ptr())
}

/// Accepts connections whose responses can carry files.
pub struct Listener(pub TcpListener);

impl Listener {
    /// The next connection and its peer. Errors (such as running out of
    /// file descriptors) are the caller's to log and retry.
    pub async fn accept(&mut self) -> io::Result<(Connection, std::net::SocketAddr)> {
        let (tcp, peer) = self.0.accept().await?;
        let connection = Connection {
            tcp,
            outbox: Outbox::default(),
        };
        Ok((connection, peer))
    }
}

/// Where a handler leaves the file its response's placeholders stand for.
#[derive(Clone, Default, Debug)]
pub struct Outbox(Arc<Mutex<Option<FileRegion>>>);

impl Outbox {
    /// The response body for `region`: placeholders, each replaced by the
    /// file's bytes as the connection writes it.
    pub fn body(&self, region: FileRegion) -> Body {
        let len = region.len;
        *self.slot() = Some(region);
        let frames = futures_util::stream::unfold(len, |left| async move {
            let n = left.min(FRAME as u64) as usize;
            (n > 0).then(|| {
                let frame = Bytes::from_static(&PLACEHOLDER[..n]);
                (Ok::<_, io::Error>(frame), left - n as u64)
            })
        });
        Body::from_stream(frames)
    }

    /// Called when a request begins: the previous response's file must be
    /// fully sent, or its placeholders went somewhere other than this
    /// connection (see the module's invariant).
    pub fn check_drained(&self) {
        let mut slot = self.slot();
        let unsent = slot.as_ref().map_or(0, |region| region.len);
        if unsent > 0 {
            tracing::error!(
                unsent,
                "a blob body's placeholders never reached the connection; \
                 a layer between the handler and the socket copies bodies"
            );
            debug_assert_eq!(unsent, 0, "sendfile placeholders were not sent as queued");
        }
        *slot = None;
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<FileRegion>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A TCP connection that sends placeholders as file bytes.
pub struct Connection {
    tcp: TcpStream,
    outbox: Outbox,
}

impl Connection {
    /// Writes what the socket takes now, without waiting.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.tcp.try_write(bytes)
    }

    /// Reads the first bytes waiting on the socket without taking them.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.peek(buf).await
    }

    /// Where handlers of this connection's requests leave their files.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Sends up to `want` bytes of the pending file in place of placeholders.
    fn poll_send_file(&self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        let mut slot = self.outbox.slot();
        let Some(region) = slot.as_mut() else {
            return Poll::Ready(Err(io::Error::other("placeholder with no file to send")));
        };
        let count = want.min(usize::try_from(region.len).unwrap_or(usize::MAX));
        if count == 0 {
            return Poll::Ready(Err(io::Error::other("placeholder past the file's end")));
        }
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self
                .tcp
                .try_io(Interest::WRITABLE, || send_file(&self.tcp, region, count));
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob file is shorter than its recorded size",
                    )))
                }
                Ok(n) => {
                    region.len -= n as u64;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Sends up to `count` bytes of `region` from its start, moving the start on.
#[cfg(target_os = "linux")]
fn send_file(tcp: &TcpStream, region: &mut FileRegion, count: usize) -> io::Result<usize> {
    rustix::fs::sendfile(tcp, &region.file, Some(&mut region.start), count).map_err(io::Error::from)
}

/// Without Linux's sendfile, `serve` hands no outbox to handlers (they
/// stream instead), so no placeholder can get here.
#[cfg(not(target_os = "linux"))]
fn send_file(_tcp: &TcpStream, _region: &mut FileRegion, _count: usize) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "sendfile is used on Linux only",
    ))
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if is_placeholder(buf) {
            self.poll_send_file(cx, buf.len())
        } else {
            Pin::new(&mut self.tcp).poll_write(cx, buf)
        }
    }

    /// Writes the ordinary slices before the first placeholder together;
    /// a placeholder at the front goes to sendfile.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let ordinary = bufs.iter().take_while(|b| !is_placeholder(b)).count();
        match bufs.first() {
            Some(first) if ordinary == 0 => self.poll_send_file(cx, first.len()),
            _ => Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..ordinary]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::AsyncWriteExt;

    /// A connected pair: our side as a [`Connection`], the peer as plain TCP.
    async fn pair() -> (Connection, TcpStream) {
        let mut listener = Listener(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.0.local_addr().unwrap();
        let peer = tokio::spawn(TcpStream::connect(addr));
        let (ours, _) = listener.accept().await.unwrap();
        (ours, peer.await.unwrap().unwrap())
    }

    fn region(content: &[u8], start: u64, len: u64) -> FileRegion {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content).unwrap();
        FileRegion { file, start, len }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn placeholders_become_the_file_and_other_bytes_pass_through() {
        use tokio::io::AsyncReadExt;
        let (mut ours, mut peer) = pair().await;
        let content: Vec<u8> = (0..3 * FRAME as u32).map(|i| (i % 251) as u8).collect();
        let _body = ours
            .outbox
            .body(region(&content, 7, content.len() as u64 - 7));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            got
        });
        ours.write_all(b"head:").await.unwrap();
        let mut left = content.len() - 7;
        while left > 0 {
            let n = left.min(FRAME);
            ours.write_all(&PLACEHOLDER[..n]).await.unwrap();
            left -= n;
        }
        ours.shutdown().await.unwrap();
        drop(ours);
        let got = reader.await.unwrap();
        assert_eq!(&got[..5], b"head:");
        assert!(
            got[5..] == content[7..],
            "file bytes, not placeholder zeros"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_drained_outbox_passes_the_check() {
        let (mut ours, _peer) = pair().await;
        let _body = ours.outbox.body(region(b"abc", 0, 3));
        assert_eq!(ours.write(&PLACEHOLDER[..3]).await.unwrap(), 3);
        ours.outbox.check_drained();
    }

    #[tokio::test]
    #[should_panic(expected = "placeholders were not sent")]
    async fn an_outbox_left_with_unsent_bytes_fails_the_check() {
        let (ours, _peer) = pair().await;
        let _body = ours.outbox.body(region(b"abc", 0, 3));
        ours.outbox.check_drained();
    }

    #[tokio::test]
    async fn the_connection_as_served_writes_vectored() {
        let (ours, _peer) = pair().await;
        let state = crate::connections::ConnectionTable::new(1);
        let crate::connections::Admission::Admitted(state, _slot) = state.admit() else {
            panic!("admitted");
        };
        let io =
            crate::timeouts::TimedIo::new(ours, state, crate::ServeOptions::default().timeouts);
        assert!(
            io.is_write_vectored(),
            "hyper would flatten placeholders into zeros"
        );
    }

    #[tokio::test]
    async fn a_placeholder_with_no_file_fails_instead_of_sending_zeros() {
        let (mut ours, _peer) = pair().await;
        let err = ours.write(&PLACEHOLDER[..10]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_file_shorter_than_promised_fails() {
        let (mut ours, _peer) = pair().await;
        let _body = ours.outbox.body(region(b"abc", 0, 10));
        assert_eq!(ours.write(&PLACEHOLDER[..10]).await.unwrap(), 3);
        let err = ours.write(&PLACEHOLDER[..7]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}

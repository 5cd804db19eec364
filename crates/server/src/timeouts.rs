//! Deadlines for clients that stop sending: a request head that never ends,
//! a keep-alive connection that never sends its next request, a request body
//! that stops arriving.
//!
//! The head and idle deadlines live on the connection's reads ([`TimedIo`]),
//! because only the connection knows whether it is between requests; so
//! does a deadline on writes, for a client that stops reading a response
//! (it would otherwise hold its connection, and a blob, forever); the
//! body deadline lives on the request body ([`IdleBody`]), so that the
//! handler reading it sees an error and fails the request the usual way.
//! hyper's own `header_read_timeout` is not used: it also starts whenever a
//! keep-alive connection waits for its next request, so it cannot tell the
//! two apart.

use crate::connections::ConnState;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a client may keep the server waiting, per phase of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From a connection's start, or a request head's first byte, to the
    /// end of that head.
    pub header_read: Duration,
    /// Between the end of a response and the first byte of the next request.
    pub keep_alive_idle: Duration,
    /// Longest wait for the next piece of a request body, and longest a
    /// response may wait for the client to read on.
    pub body_idle: Duration,
}

/// A connection whose reads fail with `TimedOut` when the client is late
/// with a request head, and whose writes fail the same way when the client
/// stops reading for `body_idle`. Writes pass through otherwise untouched,
/// vectored included (the sendfile path depends on it).
pub struct TimedIo<T> {
    inner: T,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    sleep: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
    write_sleep: Pin<Box<Sleep>>,
    write_waiting: bool,
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>, timeouts: Timeouts) -> Self {
        TimedIo {
            inner,
            state,
            timeouts,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_for: None,
            write_sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            write_waiting: false,
        }
    }

    /// Runs a write-side poll; a write that makes no progress for
    /// `body_idle` fails with `TimedOut`.
    fn timed_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>>
    where
        T: Unpin,
    {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.write_waiting = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.write_waiting {
                    self.write_waiting = true;
                    let deadline = Instant::now() + self.timeouts.body_idle;
                    self.write_sleep.as_mut().reset(deadline);
                }
                match self.write_sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading the response",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    /// Ready with an error once the current read deadline (if any) passes.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.state.wake_reader_on_change(cx.waker());
        let Some(deadline) = self.state.read_deadline(&self.timeouts) else {
            self.armed_for = None;
            return Poll::Pending;
        };
        if self.armed_for != Some(deadline) {
            self.sleep.as_mut().reset(deadline);
            self.armed_for = Some(deadline);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "client too slow sending a request head",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.state.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_deadline(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.timed_write(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.timed_write(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.timed_write(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails when its next piece is more than `timeout`
/// late. The clock runs only while the reader waits, so a handler that is
/// slow to read is not blamed on the client.
pub struct IdleBody<B> {
    inner: B,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    waiting: bool,
}

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
#[error("request body stalled: no data for {0:?}")]
pub struct BodyStalled(pub Duration);

impl<B> IdleBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        IdleBody {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            waiting: false,
        }
    }
}

impl<B> HttpBody for IdleBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    this.sleep.as_mut().reset(Instant::now() + this.timeout);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyStalled(this.timeout).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps a request body in [`IdleBody`].
pub fn idle_body<B>(inner: B, timeout: Duration) -> Body
where
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    Body::new(IdleBody::new(inner, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that never yields.
    struct Silent;

    impl HttpBody for Silent {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_fails_after_the_timeout() {
        let mut body = IdleBody::new(Silent, Duration::from_secs(5));
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyStalled>(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_arriving_is_passed_through() {
        let inner = http_body_util::Full::new(Bytes::from_static(b"abc"));
        let body = IdleBody::new(inner, Duration::from_secs(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abc");
    }
}

//! A request body that adds the bytes it yields to a counter: how
//! `berth_pushed_bytes_total` sees upload bodies as they arrive.

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct CountedBody {
    inner: Body,
    counter: Counter,
}

/// `body`, counting its data into `counter` as it is read.
pub fn counted(body: Body, counter: Counter) -> Body {
    Body::new(CountedBody {
        inner: body,
        counter,
    })
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.counter.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_every_byte_read_and_keeps_the_size_hint() {
        let counter = Counter::default();
        let body = counted(Body::from("twelve bytes"), counter.clone());
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(12));
        let bytes = axum::body::to_bytes(body, 1 << 10).await.unwrap();
        assert_eq!(&bytes[..], b"twelve bytes");
        assert_eq!(counter.get(), 12);
    }
}

//! A shared budget of bytes for request bodies the server must hold whole
//! (manifests), so that many clients stalled inside large bodies cannot pin
//! unbounded memory. A request that would exceed it is refused at once
//! (429) rather than queued: waiting would hold its connection instead.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes all requests together may hold; cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryBudget(Arc<Semaphore>);

/// Bytes taken from a [`MemoryBudget`], given back when dropped.
#[derive(Debug, Default)]
pub struct Reservation(Option<OwnedSemaphorePermit>);

/// Why a budgeted read failed.
#[derive(Debug, PartialEq, Eq)]
pub enum BudgetedReadError {
    /// The body is longer than the caller's limit.
    TooLarge,
    /// Holding the body would exceed the shared budget.
    OverBudget,
    /// The body could not be read (the client left or stalled).
    Body(String),
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> Self {
        MemoryBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }

    /// Adds `bytes` to `reservation`, or fails without waiting.
    fn grow(&self, reservation: &mut Reservation, bytes: usize) -> Result<(), BudgetedReadError> {
        if bytes == 0 {
            return Ok(());
        }
        let bytes = u32::try_from(bytes).map_err(|_| BudgetedReadError::OverBudget)?;
        let permit = self
            .0
            .clone()
            .try_acquire_many_owned(bytes)
            .map_err(|_| BudgetedReadError::OverBudget)?;
        match &mut reservation.0 {
            Some(held) => held.merge(permit),
            None => reservation.0 = Some(permit),
        }
        Ok(())
    }

    /// Reads a whole body of at most `limit` bytes, reserving its memory
    /// (the buffer's capacity) from the budget as it grows. A declared
    /// `content_length` is reserved up front, so an over-budget request is
    /// refused before its body is read.
    pub async fn read(
        &self,
        body: Body,
        limit: usize,
        content_length: Option<u64>,
    ) -> Result<(Bytes, Reservation), BudgetedReadError> {
        let mut reservation = Reservation::default();
        let mut buf = BytesMut::new();
        if let Some(len) = content_length {
            let len = usize::try_from(len).map_err(|_| BudgetedReadError::TooLarge)?;
            if len > limit {
                return Err(BudgetedReadError::TooLarge);
            }
            self.grow(&mut reservation, len)?;
            buf.reserve(len);
        }
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BudgetedReadError::Body(e.to_string()))?;
            if buf.len() + chunk.len() > limit {
                return Err(BudgetedReadError::TooLarge);
            }
            let reserved = reservation.bytes();
            if buf.len() + chunk.len() > buf.capacity() {
                // Grow to what is needed (at most `limit`), reserving first.
                let wanted = (buf.len() + chunk.len()).max(buf.capacity() * 2).min(limit);
                self.grow(&mut reservation, wanted.saturating_sub(reserved))?;
                buf.reserve(wanted - buf.len());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((buf.freeze(), reservation))
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: &[&'static [u8]]) -> Body {
        let parts: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Body::from_stream(futures_util::stream::iter(parts))
    }

    #[tokio::test]
    async fn a_declared_length_is_reserved_up_front_and_given_back() {
        let budget = MemoryBudget::new(10);
        let (bytes, held) = budget
            .read(Body::from("12345678"), 100, Some(8))
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"12345678");
        assert_eq!(held.bytes(), 8);
        assert_eq!(budget.available(), 2);
        let second = budget.read(Body::from("123"), 100, Some(3)).await;
        assert_eq!(second.unwrap_err(), BudgetedReadError::OverBudget);
        drop(held);
        assert_eq!(budget.available(), 10);
    }

    #[tokio::test]
    async fn a_chunked_body_reserves_as_it_grows() {
        let budget = MemoryBudget::new(64);
        let (bytes, held) = budget
            .read(chunked(&[b"abcd", b"efgh", b"ij"]), 100, None)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abcdefghij");
        assert!(held.bytes() >= 10, "reserved {}", held.bytes());
        let over = budget.read(chunked(&[&[0u8; 60]]), 100, None).await;
        assert_eq!(over.unwrap_err(), BudgetedReadError::OverBudget);
    }

    #[tokio::test]
    async fn the_limit_is_enforced_with_or_without_a_length() {
        let budget = MemoryBudget::new(1000);
        let declared = budget.read(Body::from("x"), 4, Some(5)).await;
        assert_eq!(declared.unwrap_err(), BudgetedReadError::TooLarge);
        let streamed = budget.read(chunked(&[b"abc", b"de"]), 4, None).await;
        assert_eq!(streamed.unwrap_err(), BudgetedReadError::TooLarge);
        assert_eq!(budget.available(), 1000);
    }
}

//! The live connections: what phase each is in, and a cap on how many are
//! held.
//!
//! At the cap a new connection does not wait: of (a sample of) the
//! connections waiting for a request (idle keep-alive, or a head still
//! arriving), the one waiting longest is closed to make room, so clients
//! that hold connections open without sending cannot lock out clients that
//! send whole requests. Only when every held connection is inside a request
//! is the new one refused.

use crate::timeouts::Timeouts;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's phase, shared by its reads, its requests and the table.
#[derive(Debug)]
pub struct ConnState {
    phase: Mutex<Phase>,
    evict: Notify,
    /// The connection's reader, woken when a response ends so that it arms
    /// the keep-alive deadline.
    reader: futures_util::task::AtomicWaker,
}

#[derive(Debug)]
struct Phase {
    /// Requests whose response has not been fully sent.
    in_flight: usize,
    /// When the connection started waiting for its next request.
    waiting_since: Instant,
    /// The first byte of the next request head, once it arrived.
    head_started: Option<Instant>,
    /// Whether a request was served already (keep-alive rather than new).
    served: bool,
    evicted: bool,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            phase: Mutex::new(Phase {
                in_flight: 0,
                waiting_since: Instant::now(),
                head_started: None,
                served: false,
                evicted: false,
            }),
            evict: Notify::new(),
            reader: futures_util::task::AtomicWaker::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes were read off the connection.
    pub fn bytes_arrived(&self) {
        let mut phase = self.phase();
        if phase.in_flight == 0 && phase.head_started.is_none() {
            phase.head_started = Some(Instant::now());
        }
    }

    /// A request head was parsed; the returned guard ends the request when
    /// its response body is dropped (sent or abandoned).
    pub fn begin_request(self: &Arc<Self>) -> RequestGuard {
        let mut phase = self.phase();
        phase.in_flight += 1;
        phase.head_started = None;
        RequestGuard(self.clone())
    }

    /// When reads must have delivered a (whole) head, or `None` while a
    /// request is being served (its body has its own deadline).
    pub fn read_deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let phase = self.phase();
        if phase.in_flight > 0 {
            return None;
        }
        Some(match phase.head_started {
            Some(first_byte) => first_byte + timeouts.header_read,
            None if phase.served => phase.waiting_since + timeouts.keep_alive_idle,
            None => phase.waiting_since + timeouts.header_read,
        })
    }

    /// Wakes the reader when the phase changes (a read with no deadline).
    pub fn wake_reader_on_change(&self, waker: &std::task::Waker) {
        self.reader.register(waker);
    }

    /// Resolves when the table closes this connection to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

/// Held by a response body: while it lives, the connection is in a request.
#[derive(Debug)]
pub struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        phase.in_flight = phase.in_flight.saturating_sub(1);
        if phase.in_flight == 0 {
            phase.waiting_since = Instant::now();
            phase.served = true;
            drop(phase);
            self.0.reader.wake();
        }
    }
}

/// A response body that holds its request's [`RequestGuard`] until hyper
/// has sent it (or given up on it). Frames pass through as they are.
pub struct GuardedBody {
    inner: axum::body::Body,
    _guard: RequestGuard,
}

impl GuardedBody {
    pub fn wrap(inner: axum::body::Body, guard: RequestGuard) -> axum::body::Body {
        axum::body::Body::new(GuardedBody {
            inner,
            _guard: guard,
        })
    }
}

impl hyper::body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// How many waiting connections are compared to choose the one to close.
const EVICTION_SAMPLE: usize = 256;

/// The live connections, at most `max` of them.
#[derive(Debug)]
pub struct ConnectionTable {
    max: usize,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<ConnState>>>,
}

/// What to do with a connection just accepted.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; the slot is freed when the guard drops.
    Admitted(Arc<ConnState>, Slot),
    /// Serve it: a waiting connection was closed to make room.
    AdmittedByEviction(Arc<ConnState>, Slot),
    /// Every held connection is inside a request: close this one.
    Refused,
}

impl ConnectionTable {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionTable {
            max: max.max(1),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        })
    }

    fn live(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many connections are held.
    pub fn len(&self) -> usize {
        self.live().len()
    }

    /// Takes a slot for a new connection, evicting if the table is full.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut live = self.live();
        let evicted = live.len() >= self.max;
        if evicted && !Self::evict_longest_waiting(&live) {
            return Admission::Refused;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new());
        live.insert(id, state.clone());
        let slot = Slot {
            table: self.clone(),
            id,
        };
        if evicted {
            Admission::AdmittedByEviction(state, slot)
        } else {
            Admission::Admitted(state, slot)
        }
    }

    /// Closes up to `count` of the connections that have waited longest for
    /// a request; how many it closed.
    pub fn evict(&self, count: usize) -> usize {
        let live = self.live();
        (0..count)
            .take_while(|_| Self::evict_longest_waiting(&live))
            .count()
    }

    fn evict_longest_waiting(live: &HashMap<u64, Arc<ConnState>>) -> bool {
        let victim = live
            .values()
            .filter_map(|state| {
                let phase = state.phase();
                (phase.in_flight == 0 && !phase.evicted).then_some((phase.waiting_since, state))
            })
            // The oldest of a sample: a full scan per accept would make a
            // flood at the cap cost O(connections) each.
            .take(EVICTION_SAMPLE)
            .min_by_key(|(since, _)| *since)
            .map(|(_, state)| state);
        match victim {
            Some(state) => {
                state.phase().evicted = true;
                state.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the table, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    table: Arc<ConnectionTable>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.live().remove(&self.id);
    }
}

/// Logs a recurring event at most once per second, with how many were
/// suppressed in between.
#[derive(Debug, Default)]
pub struct RateLimitedLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// Whether to log now, and how many events went unlogged since last time.
    pub fn allow(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < std::time::Duration::from_secs(1) => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admitted(a: Admission) -> (Arc<ConnState>, Slot) {
        match a {
            Admission::Admitted(s, slot) | Admission::AdmittedByEviction(s, slot) => (s, slot),
            Admission::Refused => panic!("refused"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_longest_waiting_connection() {
        let table = ConnectionTable::new(2);
        let (old, _a) = admitted(table.admit());
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_newer, _b) = admitted(table.admit());
        let third = table.admit();
        assert!(matches!(third, Admission::AdmittedByEviction(..)));
        // The oldest was told to close.
        tokio::time::timeout(Duration::from_millis(10), old.evicted())
            .await
            .expect("the oldest connection is evicted");
    }

    #[tokio::test]
    async fn a_full_table_of_busy_connections_refuses() {
        let table = ConnectionTable::new(1);
        let (busy, _slot) = admitted(table.admit());
        let _request = busy.begin_request();
        assert!(matches!(table.admit(), Admission::Refused));
        drop(_request);
        assert!(matches!(table.admit(), Admission::AdmittedByEviction(..)));
    }

    #[tokio::test]
    async fn eviction_skips_busy_connections_and_stops_when_none_wait() {
        let table = ConnectionTable::new(8);
        let held: Vec<_> = (0..4).map(|_| admitted(table.admit())).collect();
        let _busy = held[0].0.begin_request();
        assert_eq!(table.evict(16), 3, "three wait, one is busy");
        assert_eq!(table.evict(16), 0, "each is evicted once");
    }

    #[tokio::test]
    async fn slots_are_given_back() {
        let table = ConnectionTable::new(4);
        let (_, slot) = admitted(table.admit());
        assert_eq!(table.len(), 1);
        drop(slot);
        assert_eq!(table.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_phase() {
        let timeouts = Timeouts {
            header_read: Duration::from_secs(3),
            keep_alive_idle: Duration::from_secs(10),
            body_idle: Duration::from_secs(7),
        };
        let state = Arc::new(ConnState::new());
        let start = Instant::now();
        assert_eq!(
            state.read_deadline(&timeouts),
            Some(start + timeouts.header_read)
        );
        let request = state.begin_request();
        assert_eq!(state.read_deadline(&timeouts), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(request);
        let idle_from = Instant::now();
        assert_eq!(
            state.read_deadline(&timeouts),
            Some(idle_from + timeouts.keep_alive_idle)
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        state.bytes_arrived();
        assert_eq!(
            state.read_deadline(&timeouts),
            Some(Instant::now() + timeouts.header_read)
        );
    }
}

//! A blob from upstream, streamed to the first client while it is written
//! into an ordinary upload, verified and published like a push.
//!
//! The fill runs in a task of its own, so that it completes (and the cache
//! fills) when the client goes away. The client gets each chunk as it
//! arrives, except the last, which waits for the digest check: a blob that
//! does not match ends the client's stream with an error instead, so no
//! client ever receives a whole wrong blob from berth.

use super::counters::Counters;
use super::flight::{FillDone, FillFailure};
use super::{Upstream, UpstreamError};
use crate::registry::blobs::Stores;
use crate::registry::upload_turns::UploadTurns;
use crate::storage::ByteStream;
use crate::storage::UploadState;
use berth_oci::{Digest, DigestHasher, RepositoryName};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Chunks queued for the client: a slow client slows the fill this much
/// behind it, no more.
const CHUNKS_AHEAD: usize = 64;
/// A client that takes no chunk for this long is cut off; the fill goes on.
const CLIENT_STALL: Duration = Duration::from_secs(30);

/// What the first caller learns once the upstream answered: the blob's
/// size if the upstream said it, or why there is no blob.
pub(crate) type Started = Result<Option<u64>, FillFailure>;

/// One blob to fetch from an upstream into a repository.
pub(crate) struct Fill {
    pub stores: Stores,
    pub turns: Arc<UploadTurns>,
    pub counters: Arc<Counters>,
    pub upstream_name: String,
    pub upstream: Arc<dyn Upstream>,
    pub remote: String,
    pub repo: RepositoryName,
    pub digest: Digest,
}

/// The first caller's ends of a fill.
pub(crate) struct FillHandle {
    pub started: oneshot::Receiver<Started>,
    /// The blob's bytes as they arrive.
    pub chunks: mpsc::Receiver<io::Result<Bytes>>,
}

impl FillHandle {
    /// The chunks as a body stream.
    pub fn into_stream(self) -> ByteStream<'static> {
        futures_util::stream::unfold(self.chunks, |mut chunks| async move {
            chunks.recv().await.map(|chunk| (chunk, chunks))
        })
        .boxed()
    }
}

impl Fill {
    /// Starts the fill in a task of its own; `done` hears how it ended.
    pub fn spawn(self, done: FillDone) -> FillHandle {
        let (started_tx, started) = oneshot::channel();
        let (forward, chunks) = mpsc::channel(CHUNKS_AHEAD);
        tokio::spawn(async move {
            let mut client = Client(Some(forward));
            let outcome = self.run(started_tx, &mut client).await;
            if let Err(failure) = &outcome {
                self.report(failure);
                client
                    .send(Err(io::Error::other(
                        failure.clone().into_error(&self.digest).to_string(),
                    )))
                    .await;
            }
            done.finish(outcome);
        });
        FillHandle { started, chunks }
    }

    async fn run(
        &self,
        started: oneshot::Sender<Started>,
        client: &mut Client,
    ) -> Result<(), FillFailure> {
        let blob = match self.upstream.blob(&self.remote, &self.digest).await {
            Ok(blob) => blob,
            Err(error) => {
                let failure = FillFailure::Upstream {
                    upstream: self.upstream_name.clone(),
                    error,
                };
                let _ = started.send(Err(failure.clone()));
                return Err(failure);
            }
        };
        let _ = started.send(Ok(blob.size));
        let id = format!("cache-{}", uuid::Uuid::new_v4());
        // Held for the whole fill, so that the sweeper leaves its file alone.
        let _busy = self.turns.slot(&id).lock_owned().await;
        let mut state = None;
        let outcome = self
            .write(&id, &mut state, blob.size, blob.body, client)
            .await;
        if outcome.is_err() {
            let _ = self.stores.blobs.delete_upload(&id, state.as_deref()).await;
        }
        self.turns.remove(&id);
        outcome
    }

    /// Writes the body into upload `id`, forwarding it to the client;
    /// verifies it; sends the held-back last chunk; publishes.
    async fn write(
        &self,
        id: &str,
        state: &mut Option<UploadState>,
        announced: Option<u64>,
        body: ByteStream<'static>,
        client: &mut Client,
    ) -> Result<(), FillFailure> {
        let other = |e: crate::Error| FillFailure::Other(e.to_string());
        let created = self.stores.blobs.create_upload(id).await.map_err(other)?;
        let created = state.insert(created).clone();
        let mut tee = Tee {
            body,
            hasher: self.digest.algorithm().hasher(),
            size: 0,
            held: None,
            client,
            counters: &self.counters,
        };
        let written = {
            let stream = futures_util::stream::unfold(&mut tee, |tee| async move {
                let chunk = tee.next().await?;
                Some((chunk, tee))
            })
            .boxed();
            self.stores
                .blobs
                .append_upload(id, 0, &created, stream)
                .await
        };
        match written {
            Ok(appended) => *state = Some(appended.state),
            Err(e) => {
                return Err(FillFailure::Upstream {
                    upstream: self.upstream_name.clone(),
                    error: UpstreamError::Unavailable(format!(
                        "blob {} broke off: {e}",
                        self.digest
                    )),
                })
            }
        }
        let Tee {
            hasher, size, held, ..
        } = tee;
        let actual = hasher.finish();
        if actual != self.digest {
            return Err(FillFailure::Mismatch {
                upstream: self.upstream_name.clone(),
                expected: self.digest.clone(),
                actual,
            });
        }
        if let Some(announced) = announced.filter(|a| *a != size) {
            return Err(FillFailure::Upstream {
                upstream: self.upstream_name.clone(),
                error: UpstreamError::Invalid(format!(
                    "blob {} announced {announced} bytes and sent {size}",
                    self.digest
                )),
            });
        }
        if let Some(last) = held {
            client.send(Ok(last)).await;
        }
        let state = state.as_deref().unwrap_or_default();
        self.stores
            .publish(&self.repo, id, state, &self.digest, size)
            .await
            .map_err(other)
    }

    /// Counts and logs a failed fill (never with credentials: errors carry
    /// none).
    fn report(&self, failure: &FillFailure) {
        match failure {
            FillFailure::Upstream {
                error: UpstreamError::NotFound,
                ..
            } => return,
            FillFailure::Upstream { .. } | FillFailure::Mismatch { .. } => self.counters.error(),
            FillFailure::Other(_) => {}
        }
        tracing::warn!(
            repository = %self.repo,
            upstream = %self.upstream_name,
            digest = %self.digest,
            error = %failure.clone().into_error(&self.digest),
            "pull-through: caching a blob failed; nothing was cached"
        );
    }
}

/// The first caller, while it listens: dropped after it goes away or stalls.
struct Client(Option<mpsc::Sender<io::Result<Bytes>>>);

impl Client {
    async fn send(&mut self, chunk: io::Result<Bytes>) {
        let Some(sender) = &self.0 else { return };
        match tokio::time::timeout(CLIENT_STALL, sender.send(chunk)).await {
            Ok(Ok(())) => {}
            // Gone, or too slow: the fill goes on without it.
            Ok(Err(_)) | Err(_) => self.0 = None,
        }
    }
}

/// The upstream body on its way to the upload: hashed, counted, and
/// forwarded to the client one chunk behind.
struct Tee<'a> {
    body: ByteStream<'static>,
    hasher: DigestHasher,
    size: u64,
    /// The latest chunk, sent once the next arrives (or, for the last one,
    /// once the whole blob is verified).
    held: Option<Bytes>,
    client: &'a mut Client,
    counters: &'a Counters,
}

impl Tee<'_> {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        let chunk = match self.body.next().await? {
            Ok(chunk) => chunk,
            Err(e) => return Some(Err(e)),
        };
        self.hasher.update(&chunk);
        self.size += chunk.len() as u64;
        self.counters.fetched(chunk.len() as u64);
        if let Some(previous) = self.held.replace(chunk.clone()) {
            self.client.send(Ok(previous)).await;
        }
        Some(Ok(chunk))
    }
}

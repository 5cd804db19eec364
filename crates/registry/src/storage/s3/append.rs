//! Appending to an S3 upload: whole parts of [`PART_SIZE`] go to the
//! multipart upload, the bytes short of a part to a temporary tail object.
//!
//! Memory is about one part: bytes are held until a part is full, then sent.
//! A failed append changes nothing the state names: parts it sent carry
//! numbers the state does not record (the next append sends them again),
//! and its tail object is written last, only once everything else worked.

use super::state::{UploadRecord, MAX_TAILS, PART_SIZE};
use super::{storage, S3BlobStore};
use crate::error::{Error, Result};
use crate::storage::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::multipart::MultipartStore;
use object_store::{ObjectStoreExt, PutPayload};
use std::collections::VecDeque;

impl S3BlobStore {
    /// Appends `body` to upload `id`, which holds `offset` bytes described by
    /// `state`; returns the new length and state.
    pub(super) async fn append(
        &self,
        id: &str,
        offset: u64,
        state: &[u8],
        body: ByteStream<'_>,
    ) -> Result<(u64, Vec<u8>)> {
        let state = UploadRecord::decode(state)?;
        self.require_upload(id).await?;
        if state.len() != offset {
            return Err(Error::UploadOutOfOrder {
                offset: state.len(),
                got: offset,
            });
        }
        let mut run = Appending {
            store: self,
            id,
            state,
            created_multipart: None,
            held: VecDeque::new(),
            held_len: 0,
            sent_part: false,
        };
        match run.feed(body).await {
            Ok(()) => Ok((run.state.len(), run.state.encode())),
            Err(e) => {
                run.abandon().await;
                Err(e)
            }
        }
    }
}

/// One append in progress: `state` is the upload as it will be if the
/// append succeeds, `held` the body bytes not yet stored.
struct Appending<'a> {
    store: &'a S3BlobStore,
    id: &'a str,
    state: UploadRecord,
    /// A multipart upload this append started: aborted if the append fails.
    created_multipart: Option<String>,
    held: VecDeque<Bytes>,
    held_len: u64,
    sent_part: bool,
}

impl Appending<'_> {
    async fn feed(&mut self, mut body: ByteStream<'_>) -> Result<()> {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::BodyRead(e.to_string()))?;
            self.held_len += chunk.len() as u64;
            self.held.push_back(chunk);
            while self.state.tail_len() + self.held_len >= PART_SIZE {
                self.send_part().await?;
            }
        }
        self.store_tail().await
    }

    /// Sends the stored tails plus enough held bytes to make one whole part.
    async fn send_part(&mut self) -> Result<()> {
        let mut pieces = self.store.read_tails(self.id, &self.state.tails).await?;
        let wanted = PART_SIZE - self.state.tail_len();
        pieces.extend(self.take_held(wanted));
        let multipart = self.multipart().await?;
        let index = self.state.parts.len();
        let part = self
            .store
            .client
            .put_part(
                &self.store.data_path(self.id),
                &multipart,
                index,
                PutPayload::from_iter(pieces),
            )
            .await
            .map_err(storage)?;
        let number = self.state.next_part_number();
        self.state.parts.push((number, part.content_id));
        self.state.tails.clear();
        self.sent_part = true;
        Ok(())
    }

    /// The upload's multipart upload, started (and its id recorded beside
    /// the upload) on the first part.
    async fn multipart(&mut self) -> Result<String> {
        if let Some(id) = &self.state.multipart {
            return Ok(id.clone());
        }
        let client = &self.store.client;
        let multipart = client
            .create_multipart(&self.store.data_path(self.id))
            .await
            .map_err(storage)?;
        self.created_multipart = Some(multipart.clone());
        let record = format!("multipart-{}", uuid::Uuid::new_v4());
        client
            .put(
                &self.store.upload_path(self.id, &record),
                PutPayload::from(multipart.clone().into_bytes()),
            )
            .await
            .map_err(storage)?;
        self.state.multipart = Some(multipart.clone());
        Ok(multipart)
    }

    /// Takes the first `n` held bytes (splitting a chunk without copying).
    fn take_held(&mut self, mut n: u64) -> Vec<Bytes> {
        let mut taken = Vec::new();
        while n > 0 {
            let Some(mut chunk) = self.held.pop_front() else {
                break;
            };
            if chunk.len() as u64 > n {
                let rest = chunk.split_off(n as usize);
                self.held.push_front(rest);
            }
            n -= chunk.len() as u64;
            self.held_len -= chunk.len() as u64;
            taken.push(chunk);
        }
        taken
    }

    /// Writes the held bytes (under a part) as a new tail object; folds the
    /// existing tails into it when there are many. With nothing held, after
    /// a part, rewrites the marker so the upload's age is its last write.
    async fn store_tail(&mut self) -> Result<()> {
        let client = &self.store.client;
        if self.held_len == 0 {
            if self.sent_part {
                client
                    .put(&self.store.marker_path(self.id), PutPayload::default())
                    .await
                    .map_err(storage)?;
            }
            return Ok(());
        }
        let mut pieces = Vec::new();
        if self.state.tails.len() + 1 > MAX_TAILS {
            pieces = self.store.read_tails(self.id, &self.state.tails).await?;
            self.state.tails.clear();
        }
        let start = self.state.len();
        let held = std::mem::take(&mut self.held);
        pieces.extend(held);
        let len = pieces.iter().map(|p| p.len() as u64).sum();
        let name = format!("tail-{start}-{}", uuid::Uuid::new_v4());
        client
            .put(
                &self.store.upload_path(self.id, &name),
                PutPayload::from_iter(pieces),
            )
            .await
            .map_err(storage)?;
        self.held_len = 0;
        self.state.tails.push((name, len));
        Ok(())
    }

    /// After a failure: aborts a multipart upload this append started,
    /// which no state names. Best effort: `delete_upload` finds it later
    /// through its record.
    async fn abandon(&mut self) {
        if let Some(multipart) = self.created_multipart.take() {
            let path = self.store.data_path(self.id);
            if let Err(e) = self.store.client.abort_multipart(&path, &multipart).await {
                tracing::warn!(upload = self.id, error = %e, "s3: could not abort a multipart upload");
            }
        }
    }
}

//! Appending a request body to an upload file on a blocking writer thread.

use super::upload_locks::UploadLock;
use super::writeback::Writeback;
use crate::error::{Error, Result};
use crate::storage::{ByteStream, IoMode};
use bytes::Bytes;
use futures_util::TryStreamExt;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Chunks queued between the request and the writer thread.
const WRITE_QUEUE: usize = 4;

/// What the request side hands the writer thread.
enum Chunk {
    Data(Bytes),
    /// The body ended cleanly; without it the append is abandoned.
    End,
}

/// Appends `body` to the upload at `path`, which must hold `offset` bytes.
///
/// Chunks go to a blocking writer thread as they arrive: no copies through
/// intermediate buffers, and the network and the disk overlap. The writer
/// owns `lock`: if this future is dropped mid-body, the writer sees the body
/// abandoned, cuts the file back to `offset` and only then lets the next
/// operation on the upload in. `mode` says whether writeback hints are given.
pub(super) async fn append(
    lock: UploadLock,
    path: PathBuf,
    offset: u64,
    mut body: ByteStream<'_>,
    mode: IoMode,
) -> Result<u64> {
    let (chunks, received) = tokio::sync::mpsc::channel(WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || {
        let _lock = lock;
        write_chunks(&path, offset, received, Writeback::from(offset, mode))
    });
    let sent: Result<()> = async {
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Error::BodyRead(e.to_string()))?
        {
            if chunks.send(Chunk::Data(chunk)).await.is_err() {
                return Ok(()); // the writer stopped; it reports why
            }
        }
        let _ = chunks.send(Chunk::End).await;
        Ok(())
    }
    .await;
    drop(chunks);
    let written = writer.await.map_err(Error::storage)?;
    sent?;
    Ok(offset + written?)
}

/// Appends queued chunks to the upload at `path`, which must hold `offset`
/// bytes; returns how many were written. If the body is abandoned or a write
/// fails, the file is cut back to `offset`.
fn write_chunks(
    path: &Path,
    offset: u64,
    mut received: tokio::sync::mpsc::Receiver<Chunk>,
    mut writeback: Writeback,
) -> Result<u64> {
    let mut file = match std::fs::OpenOptions::new().write(true).open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::BlobUploadUnknown),
        other => other?,
    };
    let held = file.metadata()?.len();
    if held < offset {
        // The session says more than the file holds (it lost a write):
        // filling the gap would invent bytes. The client resumes from `held`.
        return Err(Error::UploadOutOfOrder {
            offset: held,
            got: offset,
        });
    }
    // After an interrupted append the file may be longer than the session says.
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut written = 0u64;
    let outcome = loop {
        match received.blocking_recv() {
            Some(Chunk::Data(chunk)) => {
                if let Err(e) = file.write_all(&chunk) {
                    break Err(e.into());
                }
                written += chunk.len() as u64;
                writeback.wrote_to(&file, offset + written);
            }
            Some(Chunk::End) => break Ok(written),
            None => break Err(Error::BodyRead("request body ended early".into())),
        }
    };
    if outcome.is_err() {
        file.set_len(offset)?;
    }
    outcome
}

//! A stretch of a local file, and reading one as a stream of chunks.
//!
//! Any store that keeps bytes in local files hands them over as a
//! [`FileRegion`] so that the server can sendfile them; when a copy through
//! memory is needed instead, [`FileRegion::into_stream`] reads it on a
//! blocking thread.

use super::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::{self, Seek, SeekFrom};

/// Size of each chunk read from disk: large enough that syscalls are not the
/// limit, small enough that many concurrent downloads stay cheap in memory.
const READ_CHUNK: usize = 256 << 10;

/// Chunks read ahead of the network per download.
const READ_AHEAD: usize = 4;

/// `len` bytes of `file`, starting at `start`.
#[derive(Debug)]
pub struct FileRegion {
    pub file: std::fs::File,
    pub start: u64,
    pub len: u64,
}

impl FileRegion {
    /// The region's bytes (or up to the end of the file, if shorter) as a stream.
    pub fn into_stream(self) -> ByteStream<'static> {
        stream_file(self.file, self.start, self.len)
    }
}

/// Reads up to `len` bytes at `start` into a buffer of their own.
fn read_chunk(file: &mut std::fs::File, start: u64, len: u64) -> io::Result<Bytes> {
    use std::io::Read;
    file.seek(SeekFrom::Start(start))?;
    let want = len.min(READ_CHUNK as u64);
    // read_to_end fills spare capacity directly: no zeroing, no second copy.
    let mut buf = Vec::with_capacity(want as usize);
    file.take(want).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// Streams `len` bytes (or to the end) of `file` from `start`. A blocking
/// thread reads straight into each chunk's own buffer, so bytes are copied
/// once (kernel to chunk) before hyper sends them.
pub(crate) fn stream_file(mut file: std::fs::File, start: u64, len: u64) -> ByteStream<'static> {
    let (chunks, received) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let (mut pos, mut left) = (start, len);
        while left > 0 {
            let chunk = read_chunk(&mut file, pos, left);
            let n = match &chunk {
                Ok(bytes) if bytes.is_empty() => return, // end of file
                Ok(bytes) => bytes.len() as u64,
                Err(_) => 0,
            };
            if chunks.blocking_send(chunk).is_err() || n == 0 {
                return; // the client went away, or the read failed
            }
            pos += n;
            left -= n;
        }
    });
    futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|item| (item, received))
    })
    .boxed()
}

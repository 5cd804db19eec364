//! A stored blob as a blocking `std::io::Read`, for decoders that want one.
//!
//! Used only on blocking threads (`spawn_blocking`): a file is read
//! directly; any other stream is pulled chunk by chunk through the runtime.
//! Failures of the store are remembered apart from the decoders' own, so
//! that a disk error is reported as the registry's fault, not the layer's.

use crate::storage::{BlobContent, ByteStream};
use bytes::Buf;
use futures_util::StreamExt;
use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;
use tokio::runtime::Handle;

/// Where the first failure of the store itself is written.
pub(super) type StoreFailure = Rc<RefCell<Option<String>>>;

/// Opens `content` for reading on the current blocking thread.
pub(super) fn blob_reader(
    content: BlobContent,
    runtime: Handle,
    failure: StoreFailure,
) -> io::Result<Watched> {
    let inner: Box<dyn Read> = match content {
        BlobContent::File(mut region) => {
            region.file.seek(SeekFrom::Start(region.start))?;
            Box::new(region.file.take(region.len))
        }
        BlobContent::Stream(stream) => Box::new(StreamRead {
            stream,
            runtime,
            chunk: bytes::Bytes::new(),
        }),
    };
    Ok(Watched { inner, failure })
}

/// Passes reads through, noting the first error in its [`StoreFailure`].
pub(super) struct Watched {
    inner: Box<dyn Read>,
    failure: StoreFailure,
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.failure
                .borrow_mut()
                .get_or_insert_with(|| e.to_string());
        })
    }
}

struct StreamRead {
    stream: ByteStream<'static>,
    runtime: Handle,
    chunk: bytes::Bytes,
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(chunk) => self.chunk = chunk?,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

//! What a chunk's headers announce, and holding its body to it.

use crate::storage::ByteStream;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where a chunk claims to go: its first byte (`Content-Range`) and its
/// length (`Content-Range` or `Content-Length`), each if the client said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpectedChunk {
    pub start: Option<u64>,
    pub len: Option<u64>,
}

impl From<Option<u64>> for ExpectedChunk {
    /// A chunk whose first byte only is known.
    fn from(start: Option<u64>) -> Self {
        ExpectedChunk { start, len: None }
    }
}

/// `body`, failing if it holds more or fewer than `len` bytes: a chunk whose
/// body contradicts its announced range is refused whole, not cut or padded.
pub(super) fn exactly(body: ByteStream<'_>, len: Option<u64>) -> ByteStream<'_> {
    let Some(len) = len else {
        return body;
    };
    let seen = Arc::new(AtomicU64::new(0));
    let counted = seen.clone();
    let mismatch = move |got: &str| {
        std::io::Error::other(format!(
            "the body is {got} the {len} bytes its headers announce"
        ))
    };
    let checked = body.map(move |chunk| {
        let chunk = chunk?;
        let total = counted.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        if total > len {
            return Err(mismatch("longer than"));
        }
        Ok(chunk)
    });
    let short = futures_util::stream::once(async move {
        (seen.load(Ordering::Relaxed) < len).then(|| Err(mismatch("shorter than")))
    })
    .filter_map(|end| async move { end });
    checked.chain(short).boxed()
}

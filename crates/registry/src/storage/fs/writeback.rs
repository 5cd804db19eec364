//! Starting the disk write of an upload while it is still arriving.
//!
//! Without a hint the kernel holds a blob's pages dirty until the fsync that
//! publishes it, so every push ends by waiting for the whole blob to reach the
//! disk. Asking for writeback of each finished stretch as the upload goes
//! overlaps the disk with the network, and the final fsync finds little left.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

/// How much is written between writeback requests.
const STRETCH: u64 = 8 << 20;

/// Starts (does not wait for) writeback of `len` bytes of `file` at `offset`.
/// A hint only: durability still comes from the fsync before publishing, so a
/// failure here is ignored.
fn start(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is borrowed from a live File, and
    // sync_file_range reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Tracks bytes appended since the last request, asking for writeback of
/// each whole [`STRETCH`].
pub struct Writeback {
    flushed_to: u64,
}

impl Writeback {
    /// For a file whose first `offset` bytes were already there.
    pub fn from(offset: u64) -> Self {
        Writeback { flushed_to: offset }
    }

    /// Notes that `file` now holds `end` bytes.
    pub fn wrote_to(&mut self, file: &File, end: u64) {
        if end >= self.flushed_to + STRETCH {
            start(file, self.flushed_to, end - self.flushed_to);
            self.flushed_to = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_once_per_whole_stretch_from_where_the_file_began() {
        let file = tempfile::tempfile().unwrap();
        let mut writeback = Writeback::from(100);
        writeback.wrote_to(&file, 100 + STRETCH - 1);
        assert_eq!(writeback.flushed_to, 100);
        writeback.wrote_to(&file, 100 + STRETCH + 5);
        assert_eq!(writeback.flushed_to, 100 + STRETCH + 5);
        writeback.wrote_to(&file, 100 + 2 * STRETCH);
        assert_eq!(writeback.flushed_to, 100 + STRETCH + 5);
    }
}

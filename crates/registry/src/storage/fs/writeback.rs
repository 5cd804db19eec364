//! Starting the disk write of an upload while it is still arriving.
//!
//! Without a hint the kernel holds a blob's pages dirty until the fsync that
//! publishes it, so every push ends by waiting for the whole blob to reach the
//! disk. Asking for writeback of each finished stretch as the upload goes
//! overlaps the disk with the network, and the final fsync finds little left.
//! sync_file_range is Linux's alone; elsewhere (or with [`IoMode::Portable`])
//! there is no hint and the fsync does all the work.
#![cfg_attr(target_os = "linux", allow(unsafe_code))]

use crate::storage::IoMode;
use std::fs::File;

/// How much is written between writeback requests.
const STRETCH: u64 = 8 << 20;

/// Starts (does not wait for) writeback of `len` bytes of `file` at `offset`.
/// A hint only: durability still comes from the fsync before publishing, so a
/// failure here is ignored.
#[cfg(target_os = "linux")]
fn start(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is borrowed from a live File, and
    // sync_file_range reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// No portable call starts writeback without waiting for it.
#[cfg(not(target_os = "linux"))]
fn start(_file: &File, _offset: u64, _len: u64) {}

/// Tracks bytes appended since the last request, asking for writeback of
/// each whole [`STRETCH`].
pub struct Writeback {
    flushed_to: u64,
    /// Whether hints are given at all ([`IoMode::linux_calls`]).
    enabled: bool,
}

impl Writeback {
    /// For a file whose first `offset` bytes were already there.
    pub fn from(offset: u64, mode: IoMode) -> Self {
        Writeback {
            flushed_to: offset,
            enabled: mode.linux_calls(),
        }
    }

    /// Notes that `file` now holds `end` bytes.
    pub fn wrote_to(&mut self, file: &File, end: u64) {
        if self.enabled && end >= self.flushed_to + STRETCH {
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
        let mut writeback = Writeback::from(100, IoMode::Native);
        writeback.wrote_to(&file, 100 + STRETCH - 1);
        assert_eq!(writeback.flushed_to, 100);
        writeback.wrote_to(&file, 100 + STRETCH + 5);
        assert_eq!(writeback.flushed_to, 100 + STRETCH + 5);
        writeback.wrote_to(&file, 100 + 2 * STRETCH);
        assert_eq!(writeback.flushed_to, 100 + STRETCH + 5);
    }

    #[test]
    fn the_portable_mode_asks_for_nothing() {
        let file = tempfile::tempfile().unwrap();
        let mut writeback = Writeback::from(0, IoMode::Portable);
        writeback.wrote_to(&file, 3 * STRETCH);
        assert_eq!(writeback.flushed_to, 0);
    }
}

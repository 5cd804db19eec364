//! Keeping glibc's allocator from holding on to memory berth no longer uses.
//!
//! Blob chunks are large and short-lived, allocated on many threads. Left
//! alone, glibc grows an arena per thread and keeps freed pages, so the
//! server's footprint only ever grows with the busiest moment it has seen.
#![allow(unsafe_code)]

use std::time::Duration;

/// Two arenas: threads share heaps instead of each growing one of its own.
/// Call once at start, before any other thread exists.
pub fn limit_arenas() {
    // SAFETY: mallopt only sets an allocator parameter and is called before
    // any other thread runs.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands freed memory back to the system every `period`.
pub async fn return_free_memory(period: Duration) {
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        // SAFETY: malloc_trim only releases free pages; it takes the
        // allocator's own locks and is safe to call from any thread.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

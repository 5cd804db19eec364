//! Keeping glibc's allocator from holding on to memory berth no longer uses.
//!
//! Blob chunks are large and short-lived, allocated on many threads. Left
//! alone, glibc grows an arena per thread and keeps freed pages, so the
//! server's footprint only ever grows with the busiest moment it has seen.
//! These knobs are glibc's alone: other systems' allocators (macOS, musl)
//! are left as they are, and so is glibc's with `IoMode::Portable`.
#![cfg_attr(all(target_os = "linux", target_env = "gnu"), allow(unsafe_code))]

use berth_registry::IoMode;
use std::time::Duration;

/// Whether glibc's knobs are there to turn.
fn tunable(mode: IoMode) -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu")) && mode.linux_calls()
}

/// Two arenas: threads share heaps instead of each growing one of its own.
/// Call once at start, before any other thread exists.
pub fn limit_arenas(mode: IoMode) {
    if tunable(mode) {
        set_arena_max();
    }
}

/// Hands freed memory back to the system every `period`; returns at once
/// where there is nothing to tune.
pub async fn return_free_memory(period: Duration, mode: IoMode) {
    if !tunable(mode) {
        return;
    }
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        trim();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max() {
    // SAFETY: mallopt only sets an allocator parameter and is called before
    // any other thread runs.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free pages; it takes the
    // allocator's own locks and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

//! berth on crashfs, a filesystem that loses whatever was not fsynced when it
//! "crashes" (see tests/crashfs). Killing the process alone keeps the page
//! cache, so only here does a missing fsync fail a test.
//!
//! | module      | what                                                        |
//! |-------------|-------------------------------------------------------------|
//! | `rounds`    | pushes in flight, kill -9, power loss, restart, all checked |
//! | `disk_full` | a full disk: clean 5xx, reads work, nothing left, recovery  |
//! | `publish_races` | a second push of a blob in flight: acknowledged only once durable |
//!
//! They need FUSE (`/dev/fuse` and `fusermount3`, from `fuse3`): without it
//! they are skipped, except with `CI=true` where that is a failure.
//! `CRASH_SEED` replays a failing run; `CRASH_ROUNDS` (default 6) runs more.
#![cfg(target_os = "linux")] // crashfs is FUSE on Linux
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod client;
mod disk_full;
mod ledger;
mod publish_races;
mod rounds;
mod server;
mod workload;

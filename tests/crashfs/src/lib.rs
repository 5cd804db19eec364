//! crashfs: an in-memory FUSE filesystem for crash tests.
//!
//! It remembers, for every file, what was fsynced, and for every directory,
//! which entries were fsynced ([`model`]). [`CrashFs::crash`] unmounts it and
//! mounts what a power loss would have left: only the durable state. Killing
//! a process on an ordinary filesystem keeps the page cache, so tests there
//! pass without a single fsync; here they do not.
//!
//! It also has a capacity: `statfs` reports it and writes past it fail with
//! `ENOSPC`, for disk-full tests.
//!
//! Linux only (FUSE through `/dev/fuse`); elsewhere the crate is empty.
#![cfg(target_os = "linux")]

pub mod model;
mod mount;
mod ops;

pub use mount::{fuse_available, CrashFs};

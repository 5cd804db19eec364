//! The test harness: one real `berth serve` process per test, plus the small
//! client-side helpers every area needs. Nothing here knows berth's
//! internals: tests see the registry only through HTTP, like docker or skopeo.
//!
//! | module     | what                                                      |
//! |------------|-----------------------------------------------------------|
//! | `process`  | starting, probing and stopping `berth serve`              |
//! | `client`   | blob, manifest and image pushes through the HTTP API      |
//! | `content`  | media types, digests, random bytes, manifest builders     |
//! | `urls`     | Location paths and query strings                          |
//! | `assert`   | response headers, JSON bodies and error assertions        |
//! | `raw_http` | verbatim requests over TCP and a small response parser    |
//! | `shared_stores` | S3 (Garage) + PostgreSQL stores: `BERTH_CONFORMANCE_BACKEND=s3pg`, replicas |
//!
//! Everything is re-exported here, so tests need only `use super::harness::*`.

mod assert;
mod client;
mod content;
mod process;
mod raw_http;
mod shared_stores;
mod urls;

pub use assert::*;
pub use client::*;
pub use content::*;
pub use process::*;
pub use raw_http::*;
pub use shared_stores::*;
pub use urls::*;

//! Real, throwaway database and storage engines for tests: started on
//! loopback in temp folders of their own, stopped by PID when dropped.
//!
//! A missing engine is a skip (the test prints why and returns) except
//! under `CI=true`, where it is a failure: CI must not pass by testing less.

pub mod postgres;

pub use postgres::TempPostgres;

/// Whether this run is CI's, where a missing engine fails instead of skipping.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says why an engine is unavailable: a skip locally, a failure under CI.
fn unavailable<T>(engine: &str, why: impl std::fmt::Display) -> Option<T> {
    if in_ci() {
        panic!("{engine} is required under CI=true: {why}");
    }
    eprintln!("skipping: {engine} is unavailable: {why}");
    None
}

/// A loopback port nothing listens on right now (another process may take
/// it before the engine binds it: callers retry on a bind failure).
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

//! Real, throwaway database and storage engines for tests: started on
//! loopback in temp folders of their own, stopped by PID when dropped.
//!
//! A missing engine is a skip (the test prints why and returns) except
//! under `CI=true`, where it is a failure: CI must not pass by testing less.

mod garage;
#[cfg(feature = "postgres")]
pub mod postgres;

pub use garage::TempGarage;
#[cfg(feature = "postgres")]
pub use postgres::TempPostgres;

use std::path::PathBuf;

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

/// A loopback port free right now (the Garage starter's form: it retries
/// a start whose bind failed).
pub fn loopback_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `$XDG_CACHE_HOME/berth-tests` (else `~/.cache/berth-tests`): where the
/// test scripts build engines once, outside the repository.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("berth-tests")
}

/// What a test does without engine `name`: fails under CI, else says why
/// it is skipped.
fn missing_engine(name: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is required under CI=true: {why}");
    }
    eprintln!("skipped: {name} is not available ({why})");
}

/// A fresh folder of our own under the system temp folder.
fn temp_folder(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temp folder");
    dir
}

//! Real storage engines started for a test and stopped by PID when dropped:
//! throwaway instances in temp folders, listening on loopback only.
//!
//! A missing engine binary skips the test with a printed reason, except
//! under `CI=true`, where it fails it: CI must run every backend.

mod garage;

pub use garage::TempGarage;

use std::path::PathBuf;

/// A loopback port free right now. Another process may take it before the
/// engine binds it; engines notice (their start fails) and retry.
pub fn free_port() -> u16 {
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

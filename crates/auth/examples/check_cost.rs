//! Measures what a Basic check costs: a bcrypt run (cost 12) against a
//! cached check. `cargo run --release -p berth-auth --example check_cost`
#![allow(clippy::unwrap_used)]

use berth_auth::{Auth, AuthConfig, Htpasswd};
use std::time::Instant;

fn main() {
    let dir = std::env::temp_dir().join(format!("berth-check-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("htpasswd");
    let mut users = Htpasswd::default();
    users.set_password("alice", "correct horse", 12).unwrap();
    users.write_atomic(&path).unwrap();
    let auth = Auth::new(AuthConfig::basic(path)).unwrap();
    let start = Instant::now();
    auth.check_password("alice", "correct horse").unwrap();
    let first = start.elapsed();
    let rounds = 10_000;
    let start = Instant::now();
    for _ in 0..rounds {
        auth.check_password("alice", "correct horse").unwrap();
    }
    let cached = start.elapsed() / rounds;
    println!(
        "bcrypt cost 12: {first:?}; cached check (stat + salted sha256): {cached:?}; bcrypt runs: {}",
        auth.bcrypt_verifications()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `loadgen soak`: many concurrent clients mixing pushes, pulls, listings,
//! mounts and deletes against a running registry for a fixed time, while the
//! server's memory is sampled; then the figures and a pass/fail verdict.
//! bench/soak.sh starts the server and runs this. See bench/README.md.

mod client;
mod content;
pub mod gc;
mod rss;
mod stats;
mod verdict;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use http::{Method, StatusCode};

use crate::http::{Chunks, Conn, Target};
use client::{Client, Shared};
use content::Pool;
use stats::Stats;

pub struct SoakArgs {
    pub clients: usize,
    pub duration: Duration,
    /// Memory before this is not judged (caches and pools filling up).
    pub warmup: Option<Duration>,
    pub server_pid: u32,
    pub server_log: Option<PathBuf>,
    pub pool_bytes: u64,
    pub timeout: Duration,
    /// None: [`verdict::default_ceiling_mib`] for the number of clients.
    pub rss_ceiling_mib: Option<u64>,
    pub json_out: Option<PathBuf>,
}

/// Runs the soak; true if every check of the verdict passed.
pub async fn run(target: Target, a: SoakArgs) -> Result<bool> {
    if a.clients == 0 || a.duration.is_zero() {
        bail!("--clients and --duration must be > 0");
    }
    wait_ready(&target, Duration::from_secs(30)).await?;
    let warmup = a
        .warmup
        .unwrap_or_else(|| (a.duration / 5).clamp(Duration::from_secs(5), Duration::from_secs(30)));
    if warmup >= a.duration {
        bail!("--warmup must be shorter than --duration");
    }
    let pool = Pool::new(a.pool_bytes);
    eprintln!(
        "[soak] {} clients for {:?} against {} (pool of {} MiB of distinct blobs)",
        a.clients,
        a.duration,
        target.addr,
        pool.distinct_bytes() >> 20
    );
    let start = Instant::now();
    let shared = Arc::new(Shared {
        target,
        pool,
        stats: Stats::new(),
        run_id: crate::push::Rng::from_entropy().next_u64(),
        offers: (0..a.clients).map(|_| Mutex::new(Vec::new())).collect(),
        deadline: start + a.duration,
        timeout: a.timeout,
    });

    // Samples run until shortly after the last client stops; the last one is
    // the server at rest.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<f64>();
    let sampler = tokio::spawn(rss::sample_until(a.server_pid, start, done_rx));
    let clients: Vec<_> = (0..a.clients)
        .map(|id| tokio::spawn(Client::new(id, shared.clone()).run()))
        .collect();
    for c in clients {
        c.await?;
    }
    let load_secs = start.elapsed().as_secs_f64();
    let _ = done_tx.send(load_secs);
    let samples = sampler.await?;

    let report = verdict::Report::new(&shared.stats, &samples, &a, warmup.as_secs_f64(), load_secs);
    report.print();
    if let Some(path) = &a.json_out {
        std::fs::write(path, report.json().to_string())?;
    }
    Ok(report.passed())
}

/// Polls `GET /v2/` until it answers 200.
async fn wait_ready(target: &Target, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let mut conn = Conn::new(target);
        if let Ok((_, _)) = conn
            .expect(Method::GET, "/v2/", &[], Chunks::empty(), StatusCode::OK)
            .await
        {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("{} did not answer GET /v2/ within {limit:?}", target.addr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

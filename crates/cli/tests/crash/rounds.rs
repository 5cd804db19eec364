//! Kill-and-crash rounds: pushes in flight, `kill -9`, power loss (crashfs
//! keeps only what was fsynced), restart, and every acknowledgement checked.

use crate::client::{Client, Rng};
use crate::ledger::{self, Ledger, SharedLedger};
use crate::server::{fsck, mount_crashfs, Berth};
use crate::workload::Worker;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CAPACITY: u64 = 4 << 30;
const WORKERS: usize = 6;
const SHARED_BLOBS: usize = 3;
/// Like a real disk, fsync takes a while: the windows between a change and
/// its fsync are as wide as they would be in production.
const FSYNC_DELAY: Duration = Duration::from_millis(2);
/// How long workers may take to notice that the server is gone.
const WORKERS_STOP_TIMEOUT: Duration = Duration::from_secs(30);

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// What a failing round prints: enough to replay it (the seed) and to see
/// what the server said.
struct RoundLog {
    seed: u64,
    lines: Vec<String>,
}

impl RoundLog {
    fn note(&mut self, line: String) {
        eprintln!("crash rounds: {line}");
        self.lines.push(line);
    }

    fn fail(&self, what: &str, problems: &[String], berth: Option<&Berth>) -> ! {
        let shown: Vec<&String> = problems.iter().take(40).collect();
        panic!(
            "{what} (seed {seed}; replay with CRASH_SEED={seed})\n--- rounds\n{}\n--- {} problems (first 40)\n{}\n--- berth stderr\n{}",
            self.lines.join("\n"),
            problems.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
            berth.map(Berth::stderr).unwrap_or_default(),
            seed = self.seed,
        )
    }
}

async fn start(data: &Path, logs: &Path, log: &RoundLog) -> Berth {
    let env = [("BERTH_DELETE_ENABLED", "true"), ("BERTH_LOG", "info")];
    match Berth::start(data, logs, &env).await {
        Ok(berth) => berth,
        Err(stderr) => log.fail("berth did not start cleanly", &[stderr], None),
    }
}

/// Restarts on what survived and checks every promise; then fsck offline.
async fn verify(data: &Path, logs: &Path, ledger: &SharedLedger, log: &mut RoundLog) -> Berth {
    let berth = start(data, logs, log).await;
    let snapshot = {
        let l = ledger.lock().unwrap();
        Ledger {
            blobs: l.blobs.clone(),
            attempted_blobs: l.attempted_blobs.clone(),
            manifests: l.manifests.clone(),
            deleted: l.deleted.clone(),
        }
    };
    let started = Instant::now();
    let problems = ledger::check(&Client::new(berth.addr), &snapshot).await;
    let leftovers = std::fs::read_dir(data.join("uploads")).map_or(0, Iterator::count);
    log.note(format!(
        "checked {} blobs, {} manifests, {} deletes in {:?}; {leftovers} files in uploads/",
        snapshot.blobs.len(),
        snapshot.manifests.len(),
        snapshot.deleted.len(),
        started.elapsed()
    ));
    if !problems.is_empty() {
        log.fail(
            "a promise was broken after the crash",
            &problems,
            Some(&berth),
        );
    }
    berth
}

fn run_fsck(data: &Path, log: &mut RoundLog) {
    match fsck(data) {
        None => log.note("berth fsck not in this build: skipped".into()),
        Some((true, _)) => log.note("fsck clean".into()),
        Some((false, out)) => log.fail("berth fsck found problems", &[out], None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_push_survives_kill_and_power_loss() {
    let mount = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let Some(mut fs) = mount_crashfs(mount.path(), CAPACITY) else {
        return;
    };
    fs.set_fsync_delays(FSYNC_DELAY, FSYNC_DELAY);
    // A folder berth creates itself, as on a fresh install: its own entry
    // must be made durable too.
    let data = mount.path().join("berth");
    let seed = env_u64("CRASH_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let rounds = env_u64("CRASH_ROUNDS").unwrap_or(6) as usize;
    let mut rng = Rng::new(seed);
    let mut log = RoundLog {
        seed,
        lines: Vec::new(),
    };
    let ledger: SharedLedger = Arc::new(Mutex::new(Ledger::default()));

    for round in 0..rounds {
        let mut berth = start(&data, logs.path(), &log).await;
        let stop = Arc::new(AtomicBool::new(false));
        let shared: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..SHARED_BLOBS)
                .map(|_| {
                    let size = rng.blob_size();
                    rng.bytes(size)
                })
                .collect(),
        );
        let workers: Vec<_> = (0..WORKERS)
            .map(|id| {
                tokio::spawn(
                    Worker {
                        id,
                        round,
                        client: Client::new(berth.addr),
                        ledger: Arc::clone(&ledger),
                        stop: Arc::clone(&stop),
                        rng: Rng::new(rng.next()),
                        shared: Arc::clone(&shared),
                    }
                    .run(),
                )
            })
            .collect();
        let kill_after = Duration::from_millis(rng.range(300, 1500));
        tokio::time::sleep(kill_after).await;
        if !berth.is_running() {
            log.fail("berth died under load", &[], Some(&berth));
        }
        // The power goes first: whatever berth answers from now on was
        // decided by fsyncs that had finished.
        fs.power_loss();
        berth.kill();
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            if tokio::time::timeout(WORKERS_STOP_TIMEOUT, worker)
                .await
                .is_err()
            {
                log.fail("a pusher did not stop after the kill", &[], Some(&berth));
            }
        }
        let (acked, manifests) = {
            let l = ledger.lock().unwrap();
            (l.blobs.len(), l.manifests.len())
        };
        log.note(format!(
            "round {round}: killed after {kill_after:?}; {acked} blobs and {manifests} manifests acknowledged so far"
        ));
        drop(berth);
        if let Err(e) = fs.crash() {
            log.fail(
                "crashfs could not crash (still in use?)",
                &[e.to_string()],
                None,
            );
        }
        // fsck after each crash would see what berth's start-up cleans;
        // it runs once berth has started and the state was checked.
        let mut berth = verify(&data, logs.path(), &ledger, &mut log).await;
        berth.kill();
        run_fsck(&data, &mut log);
    }
}

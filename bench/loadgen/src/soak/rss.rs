//! The server's resident memory (VmRSS from /proc/PID/status), sampled once
//! a second while the load runs, and the steadiness check over the samples.

use std::time::{Duration, Instant};

/// VmRSS of `pid` in KiB; None once the process is gone.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Open descriptors of `pid` (entries of /proc/PID/fd); None if unreadable.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the load started.
    pub at: f64,
    pub rss_kib: u64,
    pub fds: usize,
}

/// Samples `pid` every second until `done` fires (the load is over), then
/// once more a second later (the server at rest). Stops early if the process
/// disappears.
pub async fn sample_until(
    pid: u32,
    start: Instant,
    mut done: tokio::sync::oneshot::Receiver<f64>,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut finished = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut done, if !finished => {
                finished = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let Some(rss_kib) = vm_rss_kib(pid) else {
            return out;
        };
        out.push(Sample {
            at: start.elapsed().as_secs_f64(),
            rss_kib,
            fds: open_fds(pid).unwrap_or(0),
        });
        if finished {
            return out;
        }
    }
}

/// Memory over the run, split at the warm-up and at the middle of the rest.
#[derive(Debug)]
pub struct Memory {
    pub after_warmup_kib: u64,
    pub max_first_half_kib: u64,
    pub max_second_half_kib: u64,
    pub max_kib: u64,
    pub end_kib: u64,
    pub max_fds: usize,
}

impl Memory {
    /// None if there are no samples after the warm-up in either half.
    pub fn from_samples(samples: &[Sample], warmup: f64, load_end: f64) -> Option<Memory> {
        let mid = warmup + (load_end - warmup) / 2.0;
        let during = |lo: f64, hi: f64| {
            samples
                .iter()
                .filter(move |s| s.at >= lo && s.at <= hi)
                .map(|s| s.rss_kib)
        };
        Some(Memory {
            after_warmup_kib: during(warmup, load_end).next()?,
            max_first_half_kib: during(warmup, mid).max()?,
            max_second_half_kib: during(mid, load_end).max()?,
            max_kib: samples.iter().map(|s| s.rss_kib).max()?,
            end_kib: samples.last()?.rss_kib,
            max_fds: samples.iter().map(|s| s.fds).max()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss() {
        let kib = vm_rss_kib(std::process::id()).unwrap();
        assert!(kib > 100);
        assert!(open_fds(std::process::id()).unwrap() >= 3);
    }

    #[test]
    fn halves() {
        let s = |at: f64, rss_kib: u64| Sample {
            at,
            rss_kib,
            fds: 1,
        };
        let samples = [
            s(1.0, 900),
            s(5.0, 100),
            s(11.0, 110),
            s(12.0, 120),
            s(16.0, 130),
            s(21.0, 125),
            s(22.0, 50),
        ];
        let m = Memory::from_samples(&samples, 10.0, 20.0).unwrap();
        assert_eq!(m.after_warmup_kib, 110);
        assert_eq!(m.max_first_half_kib, 120);
        assert_eq!(m.max_second_half_kib, 130);
        assert_eq!(m.max_kib, 900);
        assert_eq!(m.end_kib, 50);
        assert!(Memory::from_samples(&samples[..2], 10.0, 20.0).is_none());
    }
}

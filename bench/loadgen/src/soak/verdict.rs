//! The soak's figures and its verdict: a list of named checks, each passed
//! or failed, printed with the figures and ending in `N passed, M failed`.

use std::sync::atomic::Ordering::Relaxed;

use super::rss::{Memory, Sample};
use super::stats::{Kind, Stats};
use super::SoakArgs;

/// Second-half peak allowed over first-half peak (after the warm-up):
/// room for noise, not for a leak that grows with work done.
const STEADY_RATIO: f64 = 1.25;

/// True if memory did not grow from the first half of the run to the second
/// by more than [`STEADY_RATIO`].
pub fn steady(m: &Memory) -> bool {
    m.max_second_half_kib as f64 <= m.max_first_half_kib as f64 * STEADY_RATIO
}

/// The default RSS ceiling for `clients` concurrent clients: 64 MiB for the
/// process at rest with its caches (berth idles at ~10 MiB; SQLite's page
/// cache and the manifest cache are bounded), plus 512 KiB per client for a
/// connection's buffers and the body chunks it has in flight. berth never
/// holds a blob whole (design rule 1): a server that did would need the
/// average blob size (~1 MiB here) per pushing client and cross this line.
pub fn default_ceiling_mib(clients: usize) -> u64 {
    64 + clients as u64 / 2
}

pub struct Check {
    pub name: String,
    pub passed: bool,
}

pub struct Report {
    text: Vec<String>,
    json: serde_json::Value,
    checks: Vec<Check>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Option<std::time::Duration>) -> String {
    d.map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "-".into())
}

/// Lines of the server's log that mention a panic, and that are warnings or errors.
pub(crate) fn scan_log(path: &std::path::Path) -> Option<(usize, usize, Vec<String>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let panics = text.lines().filter(|l| l.contains("panicked")).count();
    let noisy: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let first = noisy.iter().take(5).map(|l| l.to_string()).collect();
    Some((panics, noisy.len(), first))
}

/// The largest RSS sample (MiB) in each tenth of the load, for the eye.
fn tenths(samples: &[Sample], load_secs: f64) -> String {
    (0..10)
        .map(|i| {
            let (lo, hi) = (
                load_secs * i as f64 / 10.0,
                load_secs * (i + 1) as f64 / 10.0,
            );
            samples
                .iter()
                .filter(|s| s.at >= lo && s.at < hi)
                .map(|s| s.rss_kib)
                .max()
                .map_or_else(|| "-".to_string(), |k| format!("{:.0}", mib(k)))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Report {
    pub fn new(
        stats: &Stats,
        samples: &[Sample],
        a: &SoakArgs,
        warmup: f64,
        load_secs: f64,
    ) -> Report {
        let mut text = Vec::new();
        let mut checks = Vec::new();
        let mut check = |name: String, passed: bool| checks.push(Check { name, passed });

        let total = stats.total_requests();
        let errors = stats.total_errors();
        text.push(format!(
            "soak: {} clients, {:.1} s of load, {} requests ({:.0} req/s), {} errors",
            a.clients,
            load_secs,
            total,
            total as f64 / load_secs,
            errors
        ));
        text.push(format!(
            "{:<24} {:>10} {:>7} {:>10} {:>10}",
            "kind", "requests", "errors", "p50 ms", "p99 ms"
        ));
        let mut kinds = Vec::new();
        for k in Kind::ALL {
            let h = stats.latency(k);
            let (p50, p99) = (h.quantile(0.5), h.quantile(0.99));
            text.push(format!(
                "{:<24} {:>10} {:>7} {:>10} {:>10}",
                k.name(),
                stats.requests(k),
                stats.errors(k),
                ms(p50),
                ms(p99)
            ));
            kinds.push(serde_json::json!({
                "kind": k.name(), "requests": stats.requests(k), "errors": stats.errors(k),
                "p50_ms": p50.map(|d| d.as_secs_f64() * 1e3), "p99_ms": p99.map(|d| d.as_secs_f64() * 1e3),
            }));
        }
        let pushed = stats.bytes_pushed.load(Relaxed);
        let pulled = stats.bytes_pulled.load(Relaxed);
        let blobs_pulled = stats.blobs_pulled.load(Relaxed);
        let verified = stats.blobs_verified.load(Relaxed);
        let manifests = stats.manifests_verified.load(Relaxed);
        text.push(format!(
            "bytes pushed {:.2} GB ({:.0} MB/s), pulled {:.2} GB ({:.0} MB/s); blobs pulled {blobs_pulled}, verified {verified}; manifests verified {manifests}",
            pushed as f64 / 1e9,
            pushed as f64 / 1e6 / load_secs,
            pulled as f64 / 1e9,
            pulled as f64 / 1e6 / load_secs,
        ));
        for e in stats.error_samples() {
            text.push(format!("error: {e}"));
        }

        check(
            format!("no failed requests ({errors} of {total})"),
            errors == 0 && total > 0,
        );
        check(
            format!("every pulled blob verified ({verified} of {blobs_pulled})"),
            blobs_pulled > 0 && verified == blobs_pulled,
        );
        let idle: Vec<&str> = Kind::ALL
            .iter()
            .filter(|&&k| stats.requests(k) == 0)
            .map(|k| k.name())
            .collect();
        check(
            format!("every kind of request sent (missing: {idle:?})"),
            idle.is_empty(),
        );

        let memory = Memory::from_samples(samples, warmup, load_secs);
        let mut mem_json = serde_json::Value::Null;
        match &memory {
            Some(m) => {
                text.push(format!(
                    "server RSS MiB: after warm-up ({warmup:.0} s) {:.1}, max first half {:.1}, max second half {:.1}, max {:.1}, at end {:.1}; max open fds {}",
                    mib(m.after_warmup_kib),
                    mib(m.max_first_half_kib),
                    mib(m.max_second_half_kib),
                    mib(m.max_kib),
                    mib(m.end_kib),
                    m.max_fds
                ));
                check(
                    format!(
                        "memory steady (second-half max {:.1} MiB <= {STEADY_RATIO} x first-half max {:.1} MiB)",
                        mib(m.max_second_half_kib),
                        mib(m.max_first_half_kib)
                    ),
                    steady(m),
                );
                text.push(format!(
                    "server RSS MiB by tenth of the run: {}",
                    tenths(samples, load_secs)
                ));
                let ceiling = a
                    .rss_ceiling_mib
                    .unwrap_or_else(|| default_ceiling_mib(a.clients));
                check(
                    format!(
                        "memory bounded (max {:.1} MiB <= {ceiling} MiB)",
                        mib(m.max_kib)
                    ),
                    m.max_kib <= ceiling << 10,
                );
                mem_json = serde_json::json!({
                    "after_warmup_mib": mib(m.after_warmup_kib), "max_first_half_mib": mib(m.max_first_half_kib),
                    "max_second_half_mib": mib(m.max_second_half_kib), "max_mib": mib(m.max_kib),
                    "end_mib": mib(m.end_kib), "max_fds": m.max_fds, "warmup_s": warmup,
                });
            }
            None => {
                text.push("server RSS: too few samples after the warm-up".into());
                check("memory sampled after the warm-up".into(), false);
            }
        }
        let alive = super::rss::vm_rss_kib(a.server_pid).is_some();
        check("server still running".into(), alive);
        if let Some(path) = &a.server_log {
            match scan_log(path) {
                Some((panics, noisy, first)) => {
                    text.push(format!("server log: {noisy} WARN/ERROR lines"));
                    text.extend(first.into_iter().map(|l| format!("  {l}")));
                    check(
                        format!("no panic in the server log ({panics})"),
                        panics == 0,
                    );
                }
                None => check(format!("server log {} readable", path.display()), false),
            }
        }

        let json = serde_json::json!({
            "cmd": "soak", "clients": a.clients, "load_s": load_secs, "requests": total,
            "req_s": total as f64 / load_secs, "errors": errors, "kinds": kinds,
            "bytes_pushed": pushed, "bytes_pulled": pulled, "blobs_pulled": blobs_pulled,
            "blobs_verified": verified, "manifests_verified": manifests, "memory": mem_json,
            "rss_samples_kib": samples.iter().map(|s| (s.at, s.rss_kib)).collect::<Vec<_>>(),
            "error_samples": stats.error_samples(),
            "checks": checks.iter().map(|c| serde_json::json!({"check": c.name, "passed": c.passed})).collect::<Vec<_>>(),
        });
        Report { text, json, checks }
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn json(&self) -> &serde_json::Value {
        &self.json
    }

    pub fn print(&self) {
        for l in &self.text {
            println!("{l}");
        }
        for c in &self.checks {
            println!("{} {}", if c.passed { "PASS" } else { "FAIL" }, c.name);
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        println!("{passed} passed, {} failed", self.checks.len() - passed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(first: u64, second: u64) -> Memory {
        Memory {
            after_warmup_kib: first,
            max_first_half_kib: first,
            max_second_half_kib: second,
            max_kib: first.max(second),
            end_kib: first,
            max_fds: 1,
        }
    }

    #[test]
    fn growth_beyond_a_quarter_is_not_steady() {
        assert!(steady(&memory(80_000, 80_000)));
        assert!(steady(&memory(80_000, 100_000)));
        assert!(steady(&memory(80_000, 40_000)));
        assert!(!steady(&memory(80_000, 100_001)));
    }

    #[test]
    fn ceiling_grows_with_clients() {
        assert_eq!(default_ceiling_mib(500), 314);
        assert_eq!(default_ceiling_mib(0), 64);
    }
}

//! Explicit GC passes beside the server's own worker: `berth gc` run as an
//! operator would, which reaches the running server through its admin
//! socket; and what the server says it reclaimed (`/metrics`, `/api/v1/gc`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use super::figures::{Failure, Figures};
use super::wire::send;
use super::Ctx;
use crate::http::{Chunks, Conn, Target};
use crate::push::Rng;

/// How to run `berth gc` against the soak's data folder.
#[derive(Clone)]
pub struct GcCommand {
    pub berth: PathBuf,
    pub data_dir: PathBuf,
    pub config: Option<PathBuf>,
}

impl GcCommand {
    /// Runs one pass; Ok(the last line it printed) or Err(why it failed).
    pub async fn run(&self, dry_run: bool) -> Result<String, String> {
        let mut cmd = tokio::process::Command::new(&self.berth);
        cmd.arg("gc").arg("--data-dir").arg(&self.data_dir);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        if dry_run {
            cmd.arg("--dry-run");
        }
        cmd.stdin(std::process::Stdio::null());
        let out = cmd
            .output()
            .await
            .map_err(|e| format!("{}: {e}", self.berth.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        if out.status.success() {
            Ok(last)
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "berth gc{}: {}: {} {}",
                if dry_run { " --dry-run" } else { "" },
                out.status,
                last,
                err.trim()
            ))
        }
    }
}

/// Runs `berth gc` every `every` (one in four a dry run) until the deadline.
pub async fn run_passes(ctx: Arc<Ctx>, gc: GcCommand, every: Duration) {
    let mut rng = Rng::seeded(ctx.run_id ^ 0x5851_f42d_4c95_7f2d);
    while Instant::now() + every < ctx.deadline {
        tokio::time::sleep(every).await;
        let dry_run = rng.next_u64().is_multiple_of(4);
        match gc.run(dry_run).await {
            Ok(_) => Figures::add(
                if dry_run {
                    &ctx.figures.gc_dry_runs
                } else {
                    &ctx.figures.gc_runs
                },
                1,
            ),
            Err(e) => ctx.figures.fail(Failure::GcRun, e),
        }
    }
}

/// What the server reports about its collector.
#[derive(Debug, Default, Clone)]
pub struct Reclaimed {
    /// `berth_gc_runs_total`: passes of the worker and explicit ones.
    pub runs: Option<u64>,
    pub blobs: Option<u64>,
    pub bytes: Option<u64>,
    pub manifests: Option<u64>,
    pub tags: Option<u64>,
    pub links: Option<u64>,
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

impl Reclaimed {
    pub fn parse(text: &str) -> Reclaimed {
        let removed =
            |kind: &str| metric(text, &format!("berth_gc_removed_total{{kind=\"{kind}\"}}"));
        Reclaimed {
            runs: metric(text, "berth_gc_runs_total"),
            blobs: removed("blob"),
            bytes: metric(text, "berth_gc_reclaimed_bytes_total"),
            manifests: removed("manifest"),
            tags: removed("tag"),
            links: removed("link"),
        }
    }

    /// GET /metrics (loopback callers may read it).
    pub async fn fetch(target: &Target, timeout: Duration) -> Option<Reclaimed> {
        let mut conn = Conn::new(target);
        let r = send(
            &mut conn,
            timeout,
            Method::GET,
            "/metrics",
            &[],
            Chunks::empty(),
        )
        .await
        .ok()?;
        (r.status == StatusCode::OK).then(|| Reclaimed::parse(&String::from_utf8_lossy(&r.body)))
    }
}

/// `reclaimable` of GET /api/v1/gc: (blobs, bytes) GC could still remove.
pub async fn reclaimable(target: &Target, timeout: Duration) -> Option<(u64, u64)> {
    let mut conn = Conn::new(target);
    let r = send(
        &mut conn,
        timeout,
        Method::GET,
        "/api/v1/gc",
        &[],
        Chunks::empty(),
    )
    .await
    .ok()?;
    if r.status != StatusCode::OK {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let rec = v.get("reclaimable")?;
    Some((rec.get("blobs")?.as_u64()?, rec.get("bytes")?.as_u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_collector_metrics() {
        let text = "# HELP berth_gc_runs_total passes\n# TYPE berth_gc_runs_total counter\nberth_gc_runs_total 7\n\
                    berth_gc_reclaimed_bytes_total 1.5e6\nberth_gc_removed_total{kind=\"blob\"} 12\n\
                    berth_gc_removed_total{kind=\"manifest\"} 3\n";
        let r = Reclaimed::parse(text);
        assert_eq!(r.runs, Some(7));
        assert_eq!(r.bytes, Some(1_500_000));
        assert_eq!(r.blobs, Some(12));
        assert_eq!(r.manifests, Some(3));
        assert_eq!(r.tags, None);
    }
}

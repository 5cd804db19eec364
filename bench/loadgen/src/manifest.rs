//! Manifest GET/HEAD by tag over N keep-alive connections for a fixed time.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use http::{Method, StatusCode};

use crate::http::{drain, seed_image, Chunks, Conn, Target, OCI_MANIFEST};

pub struct ManifestArgs {
    pub repo: String,
    pub tag: String,
    pub conns: usize,
    pub duration: Duration,
    pub method: Method,
    /// Push the image first (untimed); off when the registry already has it.
    pub seed: bool,
}

pub async fn run(target: Target, a: ManifestArgs) -> Result<serde_json::Value> {
    // Setup (untimed): one image with 5 small layers.
    if a.seed {
        seed_image(&mut Conn::new(&target), &a.repo, &a.tag, 5).await?;
    }

    let path = format!("/v2/{}/manifests/{}", a.repo, a.tag);
    let accept = format!("{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json");
    let start = Instant::now();
    let deadline = start + a.duration;
    let mut tasks = Vec::new();
    for _ in 0..a.conns {
        let (target, path, accept, method) = (
            target.clone(),
            path.clone(),
            accept.clone(),
            a.method.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let resp = conn
                    .request(
                        method.clone(),
                        &path,
                        &[("accept", &accept)],
                        Chunks::empty(),
                    )
                    .await?;
                let ok = resp.status() == StatusCode::OK;
                let n = drain(resp.into_body(), None).await?;
                if !ok || (method == Method::GET && n == 0) {
                    errors += 1;
                    if errors > 100 {
                        bail!("{method} {path}: too many errors");
                    }
                    continue;
                }
                lat_us.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            Ok::<_, anyhow::Error>((lat_us, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    if all.is_empty() {
        bail!("no successful requests");
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    Ok(serde_json::json!({
        "cmd": "manifest", "method": a.method.as_str(), "conns": a.conns,
        "requests": all.len(), "errors": errors, "secs": secs,
        "req_s": all.len() as f64 / secs,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
    }))
}

//! Blob pull: GET /v2/<repo>/blobs/<digest> for every digest in a file
//! (written by `push --digests-out`), optionally verifying SHA-256.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::http::{drain, Chunks, Conn, Target};

pub struct PullArgs {
    pub repo: String,
    pub digests: std::path::PathBuf,
    pub streams: usize,
    pub verify: bool,
    pub passes: usize,
}

pub async fn run(target: Target, a: PullArgs) -> Result<serde_json::Value> {
    let list: Vec<String> = std::fs::read_to_string(&a.digests)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if list.is_empty() {
        bail!("no digests in {}", a.digests.display());
    }
    let list = Arc::new(list);
    let total = list.len() * a.passes;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.streams {
        let (list, next, target, repo, verify) = (
            list.clone(),
            next.clone(),
            target.clone(),
            a.repo.clone(),
            a.verify,
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut bytes = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(bytes);
                }
                let digest = &list[i % list.len()];
                let path = format!("/v2/{repo}/blobs/{digest}");
                let resp = conn
                    .request(Method::GET, &path, &[], Chunks::empty())
                    .await?;
                if resp.status() != StatusCode::OK {
                    bail!("GET {path}: {}", resp.status());
                }
                let mut hasher = verify.then(Sha256::new);
                bytes += drain(resp.into_body(), hasher.as_mut()).await?;
                if let Some(h) = hasher {
                    let got = format!("sha256:{}", hex::encode(h.finalize()));
                    if &got != digest {
                        bail!("GET {path}: content hashes to {got}");
                    }
                }
            }
        }));
    }
    let mut bytes = 0u64;
    for t in tasks {
        bytes += t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "cmd": "pull", "verify": a.verify, "streams": a.streams, "count": total,
        "bytes": bytes, "secs": secs,
        "mb_s": bytes as f64 / secs / 1e6, "blobs_s": total as f64 / secs,
    }))
}

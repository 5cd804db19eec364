//! Blob push: monolithic (POST + one PUT ?digest= with the whole body) or
//! chunked (POST, PATCHes with Content-Range, final empty PUT ?digest=).
//!
//! Blob content: one random buffer per process (fresh seed each run), shared
//! by all blobs, followed by a 64-byte tail unique to each blob. The SHA-256
//! state after the shared part is computed once, so every digest costs one
//! extra block and nothing is copied.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::http::{location, with_digest, Chunks, Conn, Target};

const TAIL: usize = 64;

/// Fast PRNG (wyrand); good enough for incompressible, non-repeating content.
pub struct Rng(u64);

impl Rng {
    pub fn from_entropy() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(t ^ ((std::process::id() as u64) << 32))
    }

    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut it = buf.chunks_exact_mut(8);
        for c in &mut it {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        for b in it.into_remainder() {
            *b = self.next_u64() as u8;
        }
    }
}

/// `count` distinct blobs of `size` bytes.
pub struct BlobSet {
    base: Bytes,
    tails: Vec<Bytes>,
    pub digests: Vec<String>,
    pub size: usize,
}

impl BlobSet {
    pub fn new(size: usize, count: usize) -> Result<BlobSet> {
        if size < TAIL {
            bail!("blob size must be at least {TAIL} bytes");
        }
        let mut rng = Rng::from_entropy();
        let mut base = vec![0u8; size - TAIL];
        rng.fill(&mut base);
        let mut mid = Sha256::new();
        mid.update(&base);
        let mut tails = Vec::with_capacity(count);
        let mut digests = Vec::with_capacity(count);
        for i in 0..count {
            let mut tail = vec![0u8; TAIL];
            rng.fill(&mut tail);
            tail[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let mut h = mid.clone();
            h.update(&tail);
            digests.push(format!("sha256:{}", hex::encode(h.finalize())));
            tails.push(Bytes::from(tail));
        }
        Ok(BlobSet {
            base: Bytes::from(base),
            tails,
            digests,
            size,
        })
    }

    /// Bytes [start, end) of blob `i`, as zero-copy pieces.
    pub fn range(&self, i: usize, start: usize, end: usize) -> Chunks {
        let b = self.base.len();
        let mut parts = Vec::with_capacity(2);
        if start < b {
            parts.push(self.base.slice(start..end.min(b)));
        }
        if end > b {
            parts.push(self.tails[i].slice(start.max(b) - b..end - b));
        }
        Chunks::new(parts)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Monolithic,
    Chunked,
}

pub struct PushArgs {
    pub repo: String,
    pub size: usize,
    pub count: usize,
    pub streams: usize,
    pub mode: Mode,
    pub chunk: usize,
    pub digests_out: Option<std::path::PathBuf>,
    /// Name the pushed blobs in one manifest under this tag at the end, so
    /// that a collector running meanwhile keeps them (bench/run.sh --gc).
    pub manifest_tag: Option<String>,
}

pub async fn run(target: Target, a: PushArgs) -> Result<serde_json::Value> {
    let set = Arc::new(BlobSet::new(a.size, a.count)?);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.streams {
        let (set, next, target, repo) = (set.clone(), next.clone(), target.clone(), a.repo.clone());
        let (mode, chunk) = (a.mode, a.chunk);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= set.digests.len() {
                    return Ok::<_, anyhow::Error>(());
                }
                match mode {
                    Mode::Monolithic => {
                        let body = set.range(i, 0, set.size);
                        conn.upload_monolithic(&repo, &set.digests[i], body).await?
                    }
                    Mode::Chunked => push_chunked(&mut conn, &repo, &set, i, chunk).await?,
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    if let Some(tag) = &a.manifest_tag {
        name_in_manifest(&target, &a.repo, tag, &set).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(p) = &a.digests_out {
        std::fs::write(p, set.digests.join("\n") + "\n")?;
    }
    let bytes = (a.size * a.count) as f64;
    Ok(serde_json::json!({
        "cmd": "push", "mode": format!("{:?}", a.mode).to_lowercase(),
        "size": a.size, "count": a.count, "streams": a.streams,
        "bytes": bytes, "secs": secs,
        "mb_s": bytes / secs / 1e6, "blobs_s": a.count as f64 / secs,
    }))
}

/// A config blob, then a manifest under `tag` naming every blob of `set` as a layer.
async fn name_in_manifest(target: &Target, repo: &str, tag: &str, set: &BlobSet) -> Result<()> {
    let mut conn = Conn::new(target);
    let config = Bytes::from(
        serde_json::json!({ "architecture": "amd64", "os": "linux", "bench": tag }).to_string(),
    );
    let config_digest = crate::http::sha256_digest(&config);
    conn.upload_monolithic(repo, &config_digest, Chunks::new([config.clone()]))
        .await?;
    let layers: Vec<(String, usize)> = set.digests.iter().map(|d| (d.clone(), set.size)).collect();
    let manifest = crate::http::oci_manifest((&config_digest, config.len()), &layers);
    conn.put_manifest(repo, tag, &manifest).await
}

/// `loadgen churn`: fresh blobs no manifest names, pushed at `rate` per
/// second until `duration` is over: work for a collector. Prints a JSON line
/// of the totals every second (the caller may stop it at any time).
pub async fn churn(
    target: Target,
    repo: String,
    size: usize,
    rate: f64,
    duration: Duration,
) -> Result<serde_json::Value> {
    if rate <= 0.0 {
        bail!("--rate must be > 0");
    }
    let mut conn = Conn::new(&target);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let (mut blobs, mut last_print) = (0u64, Instant::now());
    while start.elapsed() < duration {
        let set = BlobSet::new(size, 1000)?;
        for (i, digest) in set.digests.iter().enumerate() {
            if start.elapsed() >= duration {
                break;
            }
            tick.tick().await;
            conn.upload_monolithic(&repo, digest, set.range(i, 0, size))
                .await?;
            blobs += 1;
            if last_print.elapsed() >= Duration::from_secs(1) {
                println!(
                    "{}",
                    serde_json::json!({ "cmd": "churn", "blobs": blobs, "bytes": blobs * size as u64 })
                );
                last_print = Instant::now();
            }
        }
    }
    Ok(
        serde_json::json!({ "cmd": "churn", "blobs": blobs, "bytes": blobs * size as u64, "secs": start.elapsed().as_secs_f64() }),
    )
}

async fn push_chunked(
    conn: &mut Conn,
    repo: &str,
    set: &BlobSet,
    i: usize,
    chunk: usize,
) -> Result<()> {
    let mut loc = conn.start_upload(repo).await?;
    let mut off = 0;
    while off < set.size {
        let end = (off + chunk).min(set.size);
        let range = format!("{}-{}", off, end - 1);
        let (h, _) = conn
            .expect(
                Method::PATCH,
                &loc,
                &[
                    ("content-type", "application/octet-stream"),
                    ("content-range", &range),
                ],
                set.range(i, off, end),
                StatusCode::ACCEPTED,
            )
            .await?;
        loc = location(&h)?;
        off = end;
    }
    conn.expect(
        Method::PUT,
        &with_digest(&loc, &set.digests[i]),
        &[],
        Chunks::empty(),
        StatusCode::CREATED,
    )
    .await?;
    Ok(())
}

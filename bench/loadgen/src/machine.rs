//! The machine's own limits: SHA-256 speed of one core, disk write + fsync.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::push::Rng;

/// Hash `total` bytes on one core (a 64 MiB random buffer, repeated).
pub fn sha256(total: usize) -> Result<serde_json::Value> {
    let mut buf = vec![0u8; (64 << 20).min(total)];
    Rng::from_entropy().fill(&mut buf);
    let mut h = Sha256::new();
    let t0 = Instant::now();
    let mut done = 0;
    while done < total {
        let n = buf.len().min(total - done);
        h.update(&buf[..n]);
        done += n;
    }
    let d = h.finalize();
    let secs = t0.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "cmd": "sha256", "bytes": total, "secs": secs, "mb_s": total as f64 / secs / 1e6,
        "sha_ni": std::is_x86_feature_detected!("sha"),
        "digest_prefix": hex::encode(&d[..4]),
    }))
}

/// Write `total` bytes in `block`-sized writes to a new file in `dir`, fsync,
/// and remove it. Time includes the fsync.
pub fn disk(dir: &std::path::Path, total: usize, block: usize) -> Result<serde_json::Value> {
    let mut buf = vec![0u8; block];
    Rng::from_entropy().fill(&mut buf);
    let path = dir.join(format!("loadgen-disk-{}.tmp", std::process::id()));
    let t0 = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    let mut done = 0;
    while done < total {
        let n = block.min(total - done);
        buf[0] = buf[0].wrapping_add(1);
        f.write_all(&buf[..n])?;
        done += n;
    }
    let written = t0.elapsed().as_secs_f64();
    f.sync_all()?;
    let secs = t0.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(serde_json::json!({
        "cmd": "disk", "bytes": total, "block": block, "secs": secs,
        "write_secs": written, "mb_s": total as f64 / secs / 1e6,
    }))
}

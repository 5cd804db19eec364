//! Times "Inside a layer" on a generated layer of about 64 MiB compressed
//! (gzip and zstd), through the registry over the filesystem and SQLite
//! stores: the first listing reads and decompresses the blob, the second
//! comes from the cache.
//!
//! `cargo run --release -p berth-registry --example layer_listing [MiB]`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement, not a server path

use berth_oci::{Digest, RepositoryName};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{Registry, RegistryOptions};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// A tar of files half pseudo-random, half text, so that it compresses
/// about as well as a real layer (2:1), until `uncompressed` bytes.
fn make_tar(uncompressed: usize) -> (Vec<u8>, usize) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut written = 0;
    let mut files = 0;
    while written < uncompressed {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = (state % (48 << 10)) as usize;
        let mut data = Vec::with_capacity(size);
        while data.len() < size / 2 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        while data.len() < size {
            data.extend_from_slice(b"usr/share/doc/berth/copyright ");
        }
        data.truncate(size);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(size as u64);
        let path = format!("usr/lib/pkg{}/file{files}.so", files % 97);
        tar.append_data(&mut h, path, &data[..]).unwrap();
        written += size + 512;
        files += 1;
    }
    (tar.into_inner().unwrap(), files)
}

/// CPU seconds this process has used (user + system), from /proc on
/// Linux: wall-clock time on a shared machine says more about the others.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let (tar, files) = make_tar((mib * 2) << 20);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gzip = gz.finish().unwrap();
    let zstd =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    println!(
        "layer: {files} files, tar {} MiB, gzip {} MiB, zstd {} MiB",
        tar.len() >> 20,
        gzip.len() >> 20,
        zstd.len() >> 20
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new(
            Arc::new(FsBlobStore::open(dir.path()).unwrap()),
            Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap()),
            RegistryOptions::default(),
        );
        let repo: RepositoryName = "bench/layer".parse().unwrap();
        for (name, blob) in [("gzip", gzip), ("zstd", zstd)] {
            let digest = Digest::sha256_of(&blob);
            let body = stream::iter([Ok(Bytes::from(blob))]).boxed();
            reg.push_blob(&repo, &digest, body, None).await.unwrap();
            let (start, cpu) = (Instant::now(), cpu_seconds());
            let listing = reg.layer_files(&repo, &digest).await.unwrap();
            let cold = start.elapsed();
            let cpu = cpu_seconds()
                .zip(cpu)
                .map_or(f64::NAN, |(end, start)| end - start);
            let start = Instant::now();
            reg.layer_files(&repo, &digest).await.unwrap();
            let cached = start.elapsed();
            assert_eq!(listing.entries.len(), files);
            println!(
                "{name}: first listing {:.0} ms ({:.0} ms CPU), cached {:.3} ms",
                cold.as_secs_f64() * 1e3,
                cpu * 1e3,
                cached.as_secs_f64() * 1e3
            );
        }
    });
}

//! Pulls one image through `HttpUpstream` and checks every digest: a way
//! to try an upstream's settings by hand before configuring berth.
//!
//! `cargo run -p berth-upstream --example pull -- URL REPOSITORY REFERENCE`
//! with `UPSTREAM_USERNAME`/`UPSTREAM_PASSWORD`, `UPSTREAM_CREDENTIAL_HELPER`
//! or `UPSTREAM_CA_FILE` in the environment; `RUST_LOG=debug` shows requests.

use berth_oci::Digest;
use berth_registry::pull_through::Upstream;
use berth_upstream::{Credentials, HttpUpstream, UpstreamSettings};
use futures_util::StreamExt;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, repository, reference] = args.as_slice() else {
        eprintln!("usage: pull URL REPOSITORY REFERENCE");
        return ExitCode::from(2);
    };
    match pull(url, repository, reference).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn pull(url: &str, repository: &str, reference: &str) -> Result<(), String> {
    let env = |key: &str| std::env::var(key).ok();
    let credentials = match (
        env("UPSTREAM_USERNAME"),
        env("UPSTREAM_PASSWORD"),
        env("UPSTREAM_CREDENTIAL_HELPER"),
    ) {
        (Some(username), Some(password), _) => Credentials::Basic { username, password },
        (_, _, Some(helper)) => Credentials::Helper(helper),
        _ => Credentials::Anonymous,
    };
    let upstream = HttpUpstream::new(UpstreamSettings {
        credentials,
        ca_file: env("UPSTREAM_CA_FILE").map(Into::into),
        ..UpstreamSettings::new("upstream", url)
    })
    .map_err(|e| e.to_string())?;

    let head = upstream
        .manifest_digest(repository, reference)
        .await
        .map_err(|e| e.to_string())?;
    let manifest = upstream
        .manifest(repository, reference)
        .await
        .map_err(|e| e.to_string())?;
    let digest = Digest::sha256_of(&manifest.bytes);
    println!(
        "manifest {digest} {} ({} bytes), HEAD said {head}",
        manifest.media_type,
        manifest.bytes.len()
    );
    if head != digest || manifest.digest.as_ref().is_some_and(|d| *d != digest) {
        return Err("the manifest's digest does not match the upstream's header".into());
    }
    let parsed: serde_json::Value =
        serde_json::from_slice(&manifest.bytes).map_err(|e| e.to_string())?;
    let blobs = parsed
        .get("config")
        .into_iter()
        .chain(parsed["layers"].as_array().into_iter().flatten());
    for blob in blobs {
        let digest: Digest = blob["digest"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .ok_or("a descriptor without a digest")?;
        let size = upstream
            .blob_size(repository, &digest)
            .await
            .map_err(|e| e.to_string())?;
        let mut body = upstream
            .blob(repository, &digest)
            .await
            .map_err(|e| e.to_string())?
            .body;
        let mut hasher = digest.algorithm().hasher();
        let mut read = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            read += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let ok = hasher.finish() == digest && read == size;
        println!(
            "blob {digest} {read} bytes (HEAD {size}) {}",
            if ok { "ok" } else { "MISMATCH" }
        );
        if !ok {
            return Err(format!("blob {digest} does not match"));
        }
    }
    for child in parsed["manifests"].as_array().into_iter().flatten() {
        println!(
            "index entry {}",
            child["digest"].as_str().unwrap_or("(no digest)")
        );
    }
    Ok(())
}

//! Manifest GET/HEAD by tag over N keep-alive connections for a fixed time;
//! or PUT: each connection pushes a new manifest of the image (its layers
//! already there, an annotation making every one distinct) under a tag of its
//! own, a stored manifest and a tag move per request, as a CI pushing image
//! after image does.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
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
    let manifest = if a.seed {
        Some(seed_image(&mut Conn::new(&target), &a.repo, &a.tag, 5).await?)
    } else {
        None
    };
    let put = a.method == Method::PUT;
    let template: serde_json::Value = match (&manifest, put) {
        (Some(m), true) => serde_json::from_slice(m)?,
        (None, true) => bail!("PUT needs the seeded image (no --no-seed)"),
        _ => serde_json::Value::Null,
    };

    let path = format!("/v2/{}/manifests/{}", a.repo, a.tag);
    let accept = format!("{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json");
    let start = Instant::now();
    let deadline = start + a.duration;
    let mut tasks = Vec::new();
    for c in 0..a.conns {
        let (target, mut path, accept, method, template) = (
            target.clone(),
            path.clone(),
            accept.clone(),
            a.method.clone(),
            template.clone(),
        );
        if put {
            path = format!("/v2/{}/manifests/put-{c}", a.repo);
        }
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let (body, headers, want) = if put {
                    seq += 1;
                    (
                        Chunks::new([variant(&template, c, seq)?]),
                        [("content-type", OCI_MANIFEST)],
                        StatusCode::CREATED,
                    )
                } else {
                    (
                        Chunks::empty(),
                        [("accept", accept.as_str())],
                        StatusCode::OK,
                    )
                };
                let t0 = Instant::now();
                let resp = conn.request(method.clone(), &path, &headers, body).await?;
                let ok = resp.status() == want;
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

/// The seeded manifest with an annotation naming connection `conn`'s
/// request `seq`: a manifest no request sent before.
fn variant(template: &serde_json::Value, conn: usize, seq: u64) -> Result<Bytes> {
    let mut m = template.clone();
    m.as_object_mut()
        .ok_or_else(|| anyhow!("seeded manifest is not an object"))?
        .insert(
            "annotations".into(),
            serde_json::json!({ "org.berth.bench.seq": format!("{conn}-{seq}") }),
        );
    Ok(Bytes::from(serde_json::to_vec(&m)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::oci_manifest;

    #[test]
    fn every_put_sends_a_new_manifest_of_the_same_image() {
        let seeded = oci_manifest(("sha256:c", 2), &[("sha256:l".to_string(), 3)]);
        let template: serde_json::Value = serde_json::from_slice(&seeded).unwrap();
        let a = variant(&template, 0, 1).unwrap();
        let b = variant(&template, 0, 2).unwrap();
        let c = variant(&template, 1, 1).unwrap();
        assert!(a != b && a != c && b != c);
        let parsed: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(parsed["layers"], template["layers"]);
        assert_eq!(parsed["config"], template["config"]);
        assert_eq!(parsed["annotations"]["org.berth.bench.seq"], "0-1");
    }
}

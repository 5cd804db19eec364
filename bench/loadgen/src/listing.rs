//! Many repositories: seed them through the API, list the catalog page by
//! page (following Link headers), GET tags/list of each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use http::{Method, StatusCode};

use crate::http::{origin_form, seed_image, Chunks, Conn, Target};

pub fn repo_name(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:05}")
}

/// Run `f(conn, i)` for i in start..start+count over `streams` connections.
async fn parallel<F, Fut>(
    target: &Target,
    start: usize,
    count: usize,
    streams: usize,
    f: F,
) -> Result<()>
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<Conn>> + Send,
{
    let next = Arc::new(AtomicUsize::new(start));
    let end = start + count;
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (next, f, target) = (next.clone(), f.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return Ok::<_, anyhow::Error>(());
                }
                conn = f(conn, i).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Repositories prefix00000.. each get one small image (config + 1 layer) tagged v1.
pub async fn seed(
    target: Target,
    prefix: String,
    start: usize,
    count: usize,
    streams: usize,
) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    parallel(&target, start, count, streams, move |mut conn, i| {
        let repo = repo_name(&prefix, i);
        async move {
            seed_image(&mut conn, &repo, "v1", 1).await?;
            Ok(conn)
        }
    })
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "cmd": "seed-repos", "start": start, "count": count, "streams": streams,
        "secs": secs, "repos_s": count as f64 / secs,
    }))
}

/// All catalog pages with ?n=page, following `Link: <...>; rel="next"`.
pub async fn list_catalog(target: Target, page: usize, expect: usize) -> Result<serde_json::Value> {
    let mut conn = Conn::new(&target);
    let mut path = format!("/v2/_catalog?n={page}");
    let (mut repos, mut pages) = (0usize, 0usize);
    let max_pages = expect / page.max(1) * 2 + 100;
    let t0 = Instant::now();
    loop {
        let (h, body) = conn
            .expect(Method::GET, &path, &[], Chunks::empty(), StatusCode::OK)
            .await?;
        pages += 1;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let n = v["repositories"]
            .as_array()
            .ok_or_else(|| anyhow!("GET {path}: no repositories array"))?
            .len();
        if n > page {
            bail!("GET {path}: {n} entries on a page of {page}");
        }
        repos += n;
        match h
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(next_link)
        {
            Some(next) => path = next,
            None => break,
        }
        if pages > max_pages {
            bail!("more than {max_pages} catalog pages; Link loop?");
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if repos < expect {
        bail!("catalog listed {repos} repositories, expected at least {expect}");
    }
    Ok(serde_json::json!({
        "cmd": "list-catalog", "page": page, "pages": pages, "repos": repos, "secs": secs,
    }))
}

fn next_link(link: &str) -> Option<String> {
    // e.g. </v2/_catalog?last=b&n=100>; rel="next"
    link.split(',')
        .find(|p| p.contains("rel=\"next\"") || p.contains("rel=next"))
        .and_then(|p| {
            let (s, e) = (p.find('<')?, p.find('>')?);
            Some(origin_form(&p[s + 1..e]))
        })
}

/// GET /v2/<repo>/tags/list for each seeded repository.
pub async fn list_tags(
    target: Target,
    prefix: String,
    start: usize,
    count: usize,
    streams: usize,
) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    parallel(&target, start, count, streams, move |mut conn, i| {
        let repo = repo_name(&prefix, i);
        async move {
            let path = format!("/v2/{repo}/tags/list");
            let (_, body) = conn
                .expect(Method::GET, &path, &[], Chunks::empty(), StatusCode::OK)
                .await?;
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if !v["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "v1"))
            {
                bail!("GET {path}: tag v1 missing: {v}");
            }
            Ok(conn)
        }
    })
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "cmd": "list-tags", "count": count, "streams": streams,
        "secs": secs, "req_s": count as f64 / secs,
    }))
}

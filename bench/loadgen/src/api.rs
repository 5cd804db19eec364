//! berth's `/api/v1/repositories`: every page of summaries (counts, size,
//! last push) following `Link` headers, then filtered searches; the latency
//! of each request is what a UI page waits for.

use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use http::{Method, StatusCode};

use crate::http::{origin_form, Chunks, Conn, Target};

/// Pages of `n` from the first to the last, then `searches` filtered
/// requests (`q` = `prefix` plus a 3-digit number: 100 of 10,000 seeded
/// repositories match each, one page at n=100). Fails unless `expect` repositories were listed.
pub async fn list_api(
    target: Target,
    n: usize,
    expect: usize,
    prefix: String,
    searches: usize,
) -> Result<serde_json::Value> {
    let mut conn = Conn::new(&target);
    let mut latencies_us = Vec::new();
    let mut path = format!("/api/v1/repositories?n={n}");
    let (mut repos, mut pages) = (0usize, 0usize);
    let max_pages = expect / n.max(1) * 2 + 100;
    let t0 = Instant::now();
    loop {
        let started = Instant::now();
        let (h, body) = conn
            .expect(Method::GET, &path, &[], Chunks::empty(), StatusCode::OK)
            .await?;
        latencies_us.push(started.elapsed().as_micros() as u64);
        pages += 1;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let list = v["repositories"]
            .as_array()
            .ok_or_else(|| anyhow!("GET {path}: no repositories array"))?;
        if list.len() > n || list.iter().any(|r| r["tag_count"].as_u64().is_none()) {
            bail!(
                "GET {path}: {} entries on a page of {n}, or one without a tag count",
                list.len()
            );
        }
        repos += list.len();
        match h
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(next_link)
        {
            Some(next) => path = next,
            None => break,
        }
        if pages > max_pages {
            bail!("more than {max_pages} pages; Link loop?");
        }
    }
    let list_secs = t0.elapsed().as_secs_f64();
    if repos < expect {
        bail!("listed {repos} repositories, expected at least {expect}");
    }
    let mut search_us = Vec::new();
    for i in 0..searches {
        let q = format!("{prefix}{:03}", (i * 37) % 1000);
        let path = format!("/api/v1/repositories?n={n}&q={}", q.replace('/', "%2F"));
        let started = Instant::now();
        let (_, body) = conn
            .expect(Method::GET, &path, &[], Chunks::empty(), StatusCode::OK)
            .await?;
        search_us.push(started.elapsed().as_micros() as u64);
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if v["repositories"].as_array().is_none() {
            bail!("GET {path}: no repositories array");
        }
    }
    let pct = |all: &mut Vec<u64>, p: f64| {
        all.sort_unstable();
        all.get(((all.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    Ok(serde_json::json!({
        "cmd": "list-api", "page": n, "pages": pages, "repos": repos, "secs": list_secs,
        "p50_ms": pct(&mut latencies_us, 0.50), "p99_ms": pct(&mut latencies_us, 0.99),
        "searches": searches, "search_p50_ms": pct(&mut search_us, 0.50),
    }))
}

fn next_link(link: &str) -> Option<String> {
    link.split(',')
        .find(|p| p.contains("rel=\"next\""))
        .and_then(|p| {
            let (s, e) = (p.find('<')?, p.find('>')?);
            Some(origin_form(&p[s + 1..e]))
        })
}

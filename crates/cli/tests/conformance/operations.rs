//! Operations endpoints: `/healthz`, `/readyz` (failing while the data
//! folder is unusable, recovering after repair) and `/metrics` (parsed as
//! OpenMetrics text; counters and gauges follow pushes and pulls).

use super::harness::*;
use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_and_readyz_answer_200_to_anyone_on_a_working_registry() {
    let registry = Registry::start().await;
    for path in ["/healthz", "/readyz"] {
        let resp = registry.send(registry.get(path)).await;
        assert_eq!(resp.status(), 200, "{path}");
        let resp = registry.send(registry.head(path)).await;
        assert_eq!(resp.status(), 200, "HEAD {path}");
    }
    let ready = json_body(registry.send(registry.get("/readyz")).await).await;
    assert_eq!(ready["blob_store"], "ok", "{ready}");
    assert_eq!(ready["metadata_store"], "ok", "{ready}");
}

async fn readyz(registry: &Registry) -> (u16, serde_json::Value) {
    let resp = registry.send(registry.get("/readyz")).await;
    let status = resp.status().as_u16();
    (status, json_body(resp).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_while_the_blobs_folder_is_gone_or_a_file_then_200_after_repair() {
    let registry = Registry::start().await;
    let (blobs, aside) = (
        registry.data_dir().join("blobs"),
        registry.data_dir().join("blobs.aside"),
    );
    std::fs::rename(&blobs, &aside).unwrap();
    let (status, body) = readyz(&registry).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["blob_store"], "failed", "{body}");
    assert_eq!(body["metadata_store"], "ok", "{body}");
    // The process still serves: liveness is not readiness.
    assert_eq!(registry.send(registry.get("/healthz")).await.status(), 200);

    std::fs::write(&blobs, b"a file where the folder was").unwrap();
    let (status, body) = readyz(&registry).await;
    assert_eq!(status, 503, "{body}");

    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(&aside, &blobs).unwrap();
    let (status, body) = readyz(&registry).await;
    assert_eq!(status, 200, "{body}");
    registry.push_image("after/repair", "v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_while_the_metadata_database_is_moved_or_replaced_then_200() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    let (db, aside) = (
        registry.data_dir().join("meta.db"),
        registry.data_dir().join("meta.db.aside"),
    );
    // Open connections would go on reading (and writing) the moved file:
    // berth must not call that ready.
    std::fs::rename(&db, &aside).unwrap();
    let (status, body) = readyz(&registry).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["metadata_store"], "failed", "{body}");
    assert_eq!(body["blob_store"], "ok", "{body}");

    // A copy put in its place is not the database berth writes to either.
    std::fs::copy(&aside, &db).unwrap();
    let (status, body) = readyz(&registry).await;
    assert_eq!(status, 503, "{body}");

    std::fs::rename(&aside, &db).unwrap();
    let (status, body) = readyz(&registry).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        registry.stderr().contains("not ready"),
        "the cause is logged: {}",
        registry.stderr()
    );
}

/// One sample of the text exposition: name, labels, value.
pub(super) type Sample = (String, BTreeMap<String, String>, f64);

/// Parses OpenMetrics text strictly enough to fail on a malformed line:
/// `# HELP|TYPE|UNIT` metadata, `name{label="value",...} number` samples
/// (label values quoted, `\\` and `\"` escaped), and a final `# EOF`.
pub(super) fn parse_openmetrics(text: &str) -> Vec<Sample> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF:\n{text}");
    let mut samples = Vec::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let kind = meta.split(' ').next().unwrap_or("");
            assert!(["HELP", "TYPE", "UNIT"].contains(&kind), "{line}");
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = inner.find("=\"").unwrap_or_else(|| panic!("label: {line}"));
                let key = inner[..eq].to_string();
                let mut value = String::new();
                let mut chars = inner[eq + 2..].char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => panic!("escape at end: {line}"),
                        },
                        Some((i, '"')) => break eq + 2 + i + 1,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value: {line}"),
                    }
                };
                labels.insert(key, value);
                inner = &inner[end..];
                inner = inner.strip_prefix(',').unwrap_or(inner);
            }
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("space before the value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?}: {line}")),
        };
        samples.push((name.to_string(), labels, value));
    }
    samples
}

/// The value of the one sample named `name` whose labels include `with`.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "one {name} {with:?} in {samples:?}");
    found[0]
}

pub(super) async fn scrape(registry: &Registry) -> Vec<Sample> {
    let resp = registry.send(registry.get("/metrics")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        required_header(&resp, "content-type").starts_with("application/openmetrics-text"),
        "{resp:?}"
    );
    parse_openmetrics(&resp.text().await.unwrap())
}

const MANIFEST_ROUTE: &str = "/v2/{name}/manifests/{reference}";
const BLOB_ROUTE: &str = "/v2/{name}/blobs/{digest}";

#[tokio::test(flavor = "multi_thread")]
async fn metrics_from_loopback_parse_and_follow_pushes_and_pulls() {
    let registry = Registry::start().await;
    let image = registry.push_image("team/app", "v1").await;
    let other = registry.push_image("other", "v1").await;
    let open = registry.start_upload("team/app").await;
    let layer = &image.layers[0];
    let resp = registry
        .send(registry.get(&format!("/v2/team/app/blobs/{}", layer.digest)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len() as u64, layer.size);
    let resp = registry
        .send(registry.get("/v2/team/app/manifests/v1"))
        .await;
    assert_eq!(resp.status(), 200);

    let first = scrape(&registry).await;
    let stored: u64 = [&image, &other]
        .iter()
        .flat_map(|i| std::iter::once(&i.config).chain(&i.layers))
        .map(|d| d.size)
        .sum();
    assert!(value(&first, "berth_pushed_bytes_total", &[]) >= stored as f64);
    assert_eq!(
        value(&first, "berth_pulled_bytes_total", &[]),
        layer.size as f64
    );
    assert_eq!(value(&first, "berth_repositories", &[]), 2.0);
    assert_eq!(value(&first, "berth_manifests", &[]), 2.0);
    assert_eq!(value(&first, "berth_blobs", &[]), 4.0);
    assert_eq!(
        value(&first, "berth_blobs_stored_bytes", &[]),
        stored as f64
    );
    assert_eq!(value(&first, "berth_uploads_in_progress", &[]), 1.0);
    assert!(value(&first, "berth_connections_open", &[]) >= 1.0);
    assert!(value(&first, "process_start_time_seconds", &[]) > 1.7e9);
    let manifest_gets = [
        ("method", "GET"),
        ("route", MANIFEST_ROUTE),
        ("status", "200"),
    ];
    assert_eq!(
        value(&first, "berth_http_requests_total", &manifest_gets),
        1.0
    );
    let puts = [
        ("method", "PUT"),
        ("route", MANIFEST_ROUTE),
        ("status", "201"),
    ];
    assert_eq!(value(&first, "berth_http_requests_total", &puts), 2.0);
    let blob_gets = [("method", "GET"), ("route", BLOB_ROUTE), ("status", "200")];
    assert_eq!(value(&first, "berth_http_requests_total", &blob_gets), 1.0);
    // The raw path never becomes a label.
    assert!(
        first
            .iter()
            .all(|(_, labels, _)| labels.values().all(|v| !v.contains("team/app"))),
        "{first:?}"
    );

    // Counters move; buckets are cumulative up to the count.
    for _ in 0..3 {
        let resp = registry
            .send(registry.head("/v2/team/app/manifests/v1"))
            .await;
        assert_eq!(resp.status(), 200);
    }
    let cancelled = registry.send(registry.client.delete(&open)).await;
    assert_eq!(cancelled.status(), 204);
    let second = scrape(&registry).await;
    let heads = [
        ("method", "HEAD"),
        ("route", MANIFEST_ROUTE),
        ("status", "200"),
    ];
    assert_eq!(value(&second, "berth_http_requests_total", &heads), 3.0);
    let timing = [("method", "HEAD"), ("route", MANIFEST_ROUTE)];
    let mut buckets: Vec<(f64, f64)> = second
        .iter()
        .filter(|(n, labels, _)| {
            n == "berth_http_request_duration_seconds_bucket"
                && timing
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, labels, v)| (labels["le"].parse::<f64>().unwrap_or(f64::INFINITY), *v))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(
        buckets.last().map(|b| (b.0, b.1)),
        Some((f64::INFINITY, 3.0))
    );
    assert_eq!(
        value(
            &second,
            "berth_http_request_duration_seconds_count",
            &timing
        ),
        3.0
    );
    let scrapes = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    assert_eq!(value(&second, "berth_http_requests_total", &scrapes), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_on_loopback_whatever_the_public_setting() {
    // Off loopback the answer depends on BERTH_METRICS_PUBLIC; that decision
    // is tested in-process (berth-server), since tests here listen on
    // 127.0.0.1 only. What holds here: the setting is read and accepted.
    for public in ["true", "false"] {
        let registry = Registry::start_with_env(&[("BERTH_METRICS_PUBLIC", public)]).await;
        let resp = registry.send(registry.get("/metrics")).await;
        assert_eq!(resp.status(), 200, "BERTH_METRICS_PUBLIC={public}");
        let resp = registry
            .send(registry.request(reqwest::Method::POST, "/metrics"))
            .await;
        assert_error(resp, 405, "UNSUPPORTED").await;
    }
}

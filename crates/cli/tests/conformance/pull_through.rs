//! The pull-through cache between two real `berth serve` processes: an
//! upstream berth with token auth (Bearer) holding an image the test
//! pushed, and a berth in front configured with `[[upstream]] name =
//! "up.test"` (or registry:2's `REGISTRY_PROXY_*`). Upstream requests are
//! counted from the upstream's own `/metrics`; the upstream is stopped by
//! its PID to prove what is served from the cache alone.

use super::auth::{basic, AuthRegistry, PASSWORD};
use super::harness::*;
use super::operations::{scrape, Sample};
use reqwest::{Method, Response};

/// The upstream's name (and prefix) in the front berth's config.
const UPSTREAM: &str = "up.test";
/// A repository `puller` may pull on the upstream (rules in `auth.rs`).
const REMOTE: &str = "team-a/app";
/// Its local name under the front berth.
const LOCAL: &str = "up.test/team-a/app";
const BLOB_ROUTE: &str = "/v2/{name}/blobs/{digest}";
const MANIFEST_ROUTE: &str = "/v2/{name}/manifests/{reference}";

/// An upstream berth with token auth and `image` pushed to `team-a/app:v1`.
struct Upstream {
    auth: AuthRegistry,
    image: Image,
}

impl Upstream {
    async fn start() -> Upstream {
        let mut auth = AuthRegistry::start(true, &[]).await;
        auth.registry.authorize_with(&basic("admin", PASSWORD));
        let image = auth.registry.push_image(REMOTE, "v1").await;
        Upstream { auth, image }
    }

    fn url(&self) -> String {
        format!("http://{}", self.auth.registry.addr)
    }

    /// Answered requests to `route` (a template) with `method`, any status.
    async fn requests(&self, method: &str, route: &str) -> f64 {
        sum(
            &scrape(&self.auth.registry).await,
            "berth_http_requests_total",
            &[("method", method), ("route", route)],
        )
    }

    /// Blob GETs answered 200: what downloading a blob from it costs.
    async fn blob_downloads(&self) -> f64 {
        sum(
            &scrape(&self.auth.registry).await,
            "berth_http_requests_total",
            &[("method", "GET"), ("route", BLOB_ROUTE), ("status", "200")],
        )
    }

    /// Kills the upstream process (by its PID): it no longer answers.
    fn stop(self) {
        self.auth.registry.stop();
    }
}

/// Every sample named `name` whose labels include `with`, summed (0 when none).
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

/// The berth in front: `[[upstream]] up.test` with `puller`'s credentials,
/// logging at debug (every request logged, so a leaked secret shows).
async fn front(upstream: &Upstream, freshness: &str) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\nfreshness = {freshness:?}\n\n[[upstream]]\nname = {UPSTREAM:?}\nurl = {:?}\nusername = \"puller\"\npassword = {PASSWORD:?}\n",
            upstream.url()
        ),
    )
    .unwrap();
    let registry = Registry::start_with_args(
        &["--config", config.to_str().unwrap()],
        &[("BERTH_LOG", "debug")],
    )
    .await;
    (registry, dir)
}

async fn get_manifest(front: &Registry, path: &str) -> Response {
    front
        .send(
            front
                .get(path)
                .header("accept", OCI_MANIFEST)
                .header("accept", OCI_INDEX),
        )
        .await
}

fn cache_header(resp: &Response) -> Option<String> {
    header(resp, "berth-cache").map(str::to_string)
}

/// Pulls the manifest by tag and every blob it names, checking the bytes;
/// returns the `Berth-Cache` of the manifest and of each blob.
async fn pull_image(front: &Registry, repo: &str, query: &str, image: &Image) -> Vec<String> {
    let resp = get_manifest(front, &format!("/v2/{repo}/manifests/v1{query}")).await;
    assert_eq!(resp.status(), 200, "{repo}{query}: {}", front.stderr());
    let mut outcomes = vec![cache_header(&resp).unwrap_or_default()];
    assert_eq!(
        required_header(&resp, "docker-content-digest"),
        image.digest
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), image.manifest);
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        let path = format!("/v2/{repo}/blobs/{}{query}", blob.digest);
        let resp = front.send(front.get(&path)).await;
        assert_eq!(resp.status(), 200, "{path}");
        outcomes.push(cache_header(&resp).unwrap_or_default());
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(sha256_digest(&bytes), blob.digest, "{path}: bytes");
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_by_prefix_caches_and_the_same_pull_by_ns_is_a_hit_with_no_upstream_blob_get() {
    let upstream = Upstream::start().await;
    let (front, _config) = front(&upstream, "1h").await;
    assert!(
        front.stderr().contains(UPSTREAM) && front.stderr().contains(&upstream.url()),
        "the start-up log lists the upstream:\n{}",
        front.stderr()
    );

    let first = pull_image(&front, LOCAL, "", &upstream.image).await;
    assert_eq!(
        first,
        ["miss", "miss", "miss"],
        "first pull: all from upstream"
    );
    let downloads = upstream.blob_downloads().await;
    assert!(
        downloads >= 2.0,
        "the blobs came from upstream: {downloads}"
    );
    let manifest_requests = upstream.requests("GET", MANIFEST_ROUTE).await
        + upstream.requests("HEAD", MANIFEST_ROUTE).await;

    // containerd's mirror form names the same local repository.
    let second = pull_image(&front, REMOTE, "?ns=up.test", &upstream.image).await;
    assert_eq!(second, ["hit", "hit", "hit"]);
    assert_eq!(
        upstream.blob_downloads().await,
        downloads,
        "the second pull made no upstream blob GET"
    );
    assert_eq!(
        upstream.requests("GET", MANIFEST_ROUTE).await
            + upstream.requests("HEAD", MANIFEST_ROUTE).await,
        manifest_requests,
        "a tag checked within the freshness interval is not asked upstream"
    );
    let catalog = json_body(front.send(front.get("/v2/_catalog")).await).await;
    assert_eq!(
        catalog["repositories"],
        serde_json::json!([LOCAL]),
        "{catalog}"
    );
    let tags = json_body(
        front
            .send(front.get(&format!("/v2/{REMOTE}/tags/list?ns=up.test")))
            .await,
    )
    .await;
    assert_eq!(tags["name"], LOCAL, "{tags}");

    // The cache's counters moved, labelled by upstream.
    let metrics = scrape(&front).await;
    let counter = |name: &str| sum(&metrics, name, &[("upstream", UPSTREAM)]);
    assert!(
        counter("berth_pull_through_misses_total") >= 3.0,
        "{metrics:?}"
    );
    assert!(counter("berth_pull_through_hits_total") >= 3.0);
    let blob_bytes: u64 = std::iter::once(&upstream.image.config)
        .chain(&upstream.image.layers)
        .map(|d| d.size)
        .sum();
    assert!(
        counter("berth_pull_through_fetched_bytes_total") >= blob_bytes as f64,
        "fetched bytes count the blobs"
    );
    assert_eq!(counter("berth_pull_through_upstream_errors_total"), 0.0);
    assert!(sum(&metrics, "berth_pull_through_cached_bytes", &[]) >= blob_bytes as f64);

    // The UI's JSON says where the repository comes from.
    let list = json_body(front.send(front.get("/api/v1/repositories")).await).await;
    let cached = &list["repositories"][0];
    assert_eq!(cached["name"], LOCAL, "{list}");
    assert_eq!(cached["cached_from"]["upstream"], UPSTREAM, "{list}");
    assert_eq!(cached["cached_from"]["remote"], REMOTE, "{list}");
    assert!(cached["cached_from"]["checked_at"].as_i64().unwrap() > 1_600_000_000);

    // Credentials and upstream tokens never reach the log, even at debug.
    let log = front.stderr();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    assert!(!log.contains(PASSWORD), "the upstream password is logged");
    assert!(!log.contains("eyJ"), "a token (JWT) is logged");
    assert!(!log.to_lowercase().contains("bearer "), "a token is logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_upstream_stopped_digests_are_served_and_a_stale_tag_says_so() {
    let upstream = Upstream::start().await;
    let (front, _config) = front(&upstream, "1s").await;
    let image = Image {
        digest: upstream.image.digest.clone(),
        manifest: upstream.image.manifest.clone(),
        config: upstream.image.config.clone(),
        layers: upstream.image.layers.clone(),
    };
    pull_image(&front, LOCAL, "", &image).await;
    upstream.stop();

    // By digest: everything is local, no upstream needed.
    let resp = get_manifest(&front, &format!("/v2/{LOCAL}/manifests/{}", image.digest)).await;
    assert_eq!(resp.status(), 200, "{}", front.stderr());
    assert_eq!(cache_header(&resp).as_deref(), Some("hit"));
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        let path = format!("/v2/{LOCAL}/blobs/{}", blob.digest);
        let resp = front.send(front.get(&path)).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(cache_header(&resp).as_deref(), Some("hit"));
        assert_eq!(sha256_digest(&resp.bytes().await.unwrap()), blob.digest);
    }

    // By tag, past the freshness interval: served stale, and said so.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let resp = get_manifest(&front, &format!("/v2/{LOCAL}/manifests/v1")).await;
    assert_eq!(resp.status(), 200, "{}", front.stderr());
    assert_eq!(cache_header(&resp).as_deref(), Some("stale"));
    assert_eq!(
        header(&resp, "warning"),
        Some("110 - \"Response is Stale\"")
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), image.manifest);
    let log = front.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(LOCAL) && l.contains(UPSTREAM)),
        "a warning names the repository and the upstream:\n{log}"
    );
    let metrics = scrape(&front).await;
    let counter = |name: &str| sum(&metrics, name, &[("upstream", UPSTREAM)]);
    assert!(
        counter("berth_pull_through_stale_total") >= 1.0,
        "{metrics:?}"
    );
    assert!(counter("berth_pull_through_upstream_errors_total") >= 1.0);

    // Nothing cached: the upstream's failure, as a 502 that names it.
    let resp = get_manifest(&front, "/v2/up.test/team-a/other/manifests/v1").await;
    let body = assert_error(resp, 502, "UNKNOWN").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("upstream up.test"), "{message}");
    assert!(!message.contains(PASSWORD));
    let digest = sha256_digest(b"never pushed anywhere");
    let resp = front
        .send(front.get(&format!("/v2/{LOCAL}/blobs/{digest}")))
        .await;
    assert_error(resp, 502, "UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_repositories_refuse_pushes_and_unprefixed_names_stay_local() {
    let upstream = Upstream::start().await;
    let (front, _config) = front(&upstream, "1h").await;
    // Refused before anything is cached, by prefix and by ns alike.
    for (repo, query) in [(LOCAL, ""), (REMOTE, "?ns=up.test")] {
        let resp = front
            .send(
                front
                    .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/{query}"))
                    .header("content-length", "0"),
            )
            .await;
        let body = assert_error(resp, 403, "DENIED").await;
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(LOCAL) && message.contains(UPSTREAM),
            "{message}"
        );
        let resp = front
            .send(
                front
                    .request(Method::PUT, &format!("/v2/{repo}/manifests/v2{query}"))
                    .header("content-type", OCI_MANIFEST)
                    .body(upstream.image.manifest.clone()),
            )
            .await;
        assert_error(resp, 403, "DENIED").await;
    }
    pull_image(&front, LOCAL, "", &upstream.image).await;
    let resp = front
        .send(front.delete(&format!("/v2/{LOCAL}/manifests/v1")))
        .await;
    assert_error(resp, 403, "DENIED").await;

    // The same remote name without prefix or ns is a local repository of its own.
    let downloads = upstream.blob_downloads().await;
    let local = front.push_image(REMOTE, "v1").await;
    for query in ["", "?ns=localhost:5000"] {
        let resp = get_manifest(&front, &format!("/v2/{REMOTE}/manifests/v1{query}")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            cache_header(&resp),
            None,
            "a local repository has no cache header"
        );
        assert_eq!(
            required_header(&resp, "docker-content-digest"),
            local.digest
        );
    }
    assert_eq!(upstream.blob_downloads().await, downloads);
    upstream.stop();
    let resp = get_manifest(&front, &format!("/v2/{REMOTE}/manifests/v1")).await;
    assert_eq!(resp.status(), 200, "served without the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_proxy_variables_make_a_fallback_for_repositories_without_local_content() {
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let front = Registry::start_with_env(&[
        ("REGISTRY_PROXY_REMOTEURL", url.as_str()),
        ("REGISTRY_PROXY_USERNAME", "puller"),
        ("REGISTRY_PROXY_PASSWORD", PASSWORD),
        ("BERTH_LOG", "debug"),
    ])
    .await;
    // A repository berth has nothing of goes upstream, under its own name.
    let outcomes = pull_image(&front, REMOTE, "", &upstream.image).await;
    assert_eq!(outcomes, ["miss", "miss", "miss"]);
    let catalog = json_body(front.send(front.get("/v2/_catalog")).await).await;
    assert_eq!(
        catalog["repositories"],
        serde_json::json!([REMOTE]),
        "{catalog}"
    );
    // ...and is then a cache: pushes into it are refused.
    let resp = front
        .send(
            front
                .request(Method::POST, &format!("/v2/{REMOTE}/blobs/uploads/"))
                .header("content-length", "0"),
        )
        .await;
    assert_error(resp, 403, "DENIED").await;

    // A repository pushed here stays local: never asked upstream.
    let downloads = upstream.blob_downloads().await;
    let manifests = upstream.requests("GET", MANIFEST_ROUTE).await
        + upstream.requests("HEAD", MANIFEST_ROUTE).await;
    let pushed = front.push_image("team-a/pushed", "v1").await;
    let resp = get_manifest(&front, "/v2/team-a/pushed/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(cache_header(&resp), None);
    assert_eq!(
        required_header(&resp, "docker-content-digest"),
        pushed.digest
    );
    let resp = get_manifest(&front, "/v2/team-a/pushed/manifests/v2").await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    assert_eq!(upstream.blob_downloads().await, downloads);
    assert_eq!(
        upstream.requests("GET", MANIFEST_ROUTE).await
            + upstream.requests("HEAD", MANIFEST_ROUTE).await,
        manifests,
        "no upstream request for a local repository"
    );
    let list = json_body(front.send(front.get("/api/v1/repositories")).await).await;
    let by_name = |name: &str| {
        list["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {list}"))
    };
    assert_eq!(by_name(REMOTE)["cached_from"]["upstream"], "proxy");
    assert!(by_name("team-a/pushed")["cached_from"].is_null());
    let log = front.stderr();
    assert!(!log.contains(PASSWORD), "the proxy password is logged");
}

//! The pull-through cache between two real `berth serve` processes: an
//! upstream berth with token auth (Bearer) holding an image the test
//! pushed, and a berth in front configured with `[[upstream]] name =
//! "up.test"` (or registry:2's `REGISTRY_PROXY_*`). Upstream requests are
//! counted from the upstream's own `/metrics`; the upstream is stopped by
//! its PID to prove what is served from the cache alone.

use super::auth::{basic, AuthRegistry, PASSWORD};
use super::harness::*;
use super::operations::{matching, scrape, Sample};
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
    matching(samples, name, with).iter().sum()
}

/// The berth in front: `[[upstream]] up.test` with `puller`'s credentials,
/// logging at debug (every request logged, so a leaked secret shows).
async fn front(upstream: &Upstream, freshness: &str) -> (Registry, tempfile::TempDir) {
    front_with(upstream, &format!("freshness = {freshness:?}")).await
}

/// [`front`] with `cache` as the `[cache]` table's keys.
async fn front_with(upstream: &Upstream, cache: &str) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\n{cache}\n\n[[upstream]]\nname = {UPSTREAM:?}\nurl = {:?}\nusername = \"puller\"\npassword = {PASSWORD:?}\n",
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
    // ...and so does its page, which offers no tag or manifest delete.
    let page = front
        .send(front.get(&format!("/ui/r/{LOCAL}")))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("cache of up.test (team-a/app)"), "{page}");
    assert!(!page.contains("/-/delete/"), "a delete is offered: {page}");

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

#[tokio::test(flavor = "multi_thread")]
async fn rights_are_checked_on_the_local_name_whichever_way_the_repository_is_named() {
    let upstream = Upstream::start().await;
    // A front berth with token auth of its own: bob may pull the cache of
    // the upstream's team-a only (rules from auth.rs give him team-b).
    let more = format!(
        "[[access]]\nwho = [\"bob\"]\nrepositories = [\"up.test/team-a/*\"]\nactions = [\"pull\"]\n\n[[upstream]]\nname = {UPSTREAM:?}\nurl = {:?}\nusername = \"puller\"\npassword = {PASSWORD:?}\n",
        upstream.url()
    );
    let front = AuthRegistry::start_with(true, &[], &more).await;
    let bob = basic("bob", PASSWORD);
    let path = format!("/v2/{REMOTE}/manifests/v1?ns=up.test");
    // Refused without a token, with a challenge naming the local name, so
    // that a client (containerd) asks for the scope that counts.
    let resp = front.send(None, Method::GET, &path).await;
    assert_eq!(resp.status(), 401);
    let challenge = header(&resp, "www-authenticate").unwrap().to_string();
    assert!(
        challenge.contains(&format!("repository:{LOCAL}:pull")),
        "{challenge}"
    );
    // A token for the name as the client wrote it grants nothing here.
    let remote_token = front
        .token(Some(&bob), &format!("repository:{REMOTE}:pull"))
        .await;
    let resp = front
        .send(Some(&format!("Bearer {remote_token}")), Method::GET, &path)
        .await;
    assert_eq!(resp.status(), 401, "bob may not pull the local team-a/app");
    // The local name's scope does, by ns and by prefix alike.
    let token = front
        .token(Some(&bob), &format!("repository:{LOCAL}:pull"))
        .await;
    let bearer = format!("Bearer {token}");
    for path in [path.clone(), format!("/v2/{LOCAL}/manifests/v1")] {
        let resp = front.send(Some(&bearer), Method::GET, &path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            required_header(&resp, "docker-content-digest"),
            upstream.image.digest
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_evicts_cached_images_over_max_size_and_never_a_pushed_one() {
    let upstream = Upstream::start().await;
    // Smaller than the upstream's image: whatever is cached must go.
    let (front, _config) = front_with(&upstream, "max_size = 1000").await;
    pull_image(&front, LOCAL, "", &upstream.image).await;
    let pushed = front.push_image("team-a/pushed", "v1").await;

    let resp = front
        .send(front.request(Method::POST, "/api/v1/gc?grace=0s"))
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["report"]["evicted_images"], 1, "{text}");

    // (The first scrape: the cache's size is reused for 5 s after it.)
    let metrics = scrape(&front).await;
    assert_eq!(sum(&metrics, "berth_pull_through_max_bytes", &[]), 1000.0);
    assert_eq!(sum(&metrics, "berth_gc_evicted_images_total", &[]), 1.0);
    assert!(sum(&metrics, "berth_pull_through_cached_bytes", &[]) <= 1000.0);
    // The pushed image is whole; the cached one is fetched again on demand.
    let resp = get_manifest(&front, "/v2/team-a/pushed/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        required_header(&resp, "docker-content-digest"),
        pushed.digest
    );
    for blob in std::iter::once(&pushed.config).chain(&pushed.layers) {
        let path = format!("/v2/team-a/pushed/blobs/{}", blob.digest);
        assert_eq!(front.send(front.get(&path)).await.status(), 200, "{path}");
    }
    let resp = get_manifest(&front, &format!("/v2/{LOCAL}/manifests/v1")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        cache_header(&resp).as_deref(),
        Some("miss"),
        "evicted, so fetched again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_repositories_under_a_new_prefix_are_warned_about_at_start_up() {
    let data = data_dir();
    let plain = Registry::start_in(data.path()).await;
    plain.push_image("up.test/team/app", "v1").await;
    plain.push_image("up.testing/app", "v1").await;
    plain.push_image("up.test-b/app", "v1").await;
    plain.stop();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        "[[upstream]]\nname = \"up.test\"\nurl = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let front =
        Registry::start_in_with_args(data.path(), &["--config", config.to_str().unwrap()]).await;
    let log = front.stderr();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("read-only caches"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(warning.contains("up.test/team/app"), "{warning}");
    assert!(
        !warning.contains("up.testing") && !warning.contains("up.test-b"),
        "names outside the prefix: {warning}"
    );
}

/// A registry on loopback that serves one image anonymously and holds the
/// rest of its layer after the first 64 KiB until released: an upstream
/// slower than any client, to see whether berth streams or waits.
struct SlowUpstream {
    addr: std::net::SocketAddr,
    release: std::sync::Arc<tokio::sync::Notify>,
    manifest: Vec<u8>,
    layer: Vec<u8>,
    layer_digest: String,
    /// Blob GETs answered.
    blob_gets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowUpstream {
    /// `corrupt`: the layer's bytes are sent with one flipped (same size).
    async fn start(corrupt: bool) -> SlowUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let layer = random_bytes(1 << 20);
        let config = Descriptor::of(OCI_CONFIG, EMPTY_JSON);
        let layer_descriptor = Descriptor::of(OCI_LAYER, &layer);
        let manifest =
            ManifestBuilder::image(&config, std::slice::from_ref(&layer_descriptor)).build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let mut sent = layer.clone();
        if corrupt {
            sent[4096] ^= 0xff;
        }
        let (m, l, r) = (manifest.clone(), sent, release.clone());
        let blob_gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gets = blob_gets.clone();
        let (manifest_digest, layer_digest) =
            (sha256_digest(&manifest), layer_descriptor.digest.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (m, l, r, gets) = (m.clone(), l.clone(), r.clone(), gets.clone());
                let (md, ld) = (manifest_digest.clone(), layer_digest.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let mut words = head.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let path = path.split('?').next().unwrap_or("");
                    let send_body = method != "HEAD";
                    let answer = |status: &str, kind: &str, digest: &str, length: usize| {
                        format!("HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ndocker-content-digest: {digest}\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n")
                    };
                    if path == "/v2/" {
                        let _ = socket
                            .write_all(answer("200 OK", "application/json", "", 2).as_bytes())
                            .await;
                        let _ = socket.write_all(b"{}").await;
                    } else if path.ends_with("/manifests/v1")
                        || path.ends_with(&format!("/manifests/{md}"))
                    {
                        let _ = socket
                            .write_all(answer("200 OK", OCI_MANIFEST, &md, m.len()).as_bytes())
                            .await;
                        if send_body {
                            let _ = socket.write_all(&m).await;
                        }
                    } else if path.ends_with(&format!("/blobs/{ld}")) {
                        let _ = socket
                            .write_all(
                                answer("200 OK", "application/octet-stream", &ld, l.len())
                                    .as_bytes(),
                            )
                            .await;
                        if send_body {
                            gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let _ = socket.write_all(&l[..64 << 10]).await;
                            let _ = socket.flush().await;
                            r.notified().await;
                            let _ = socket.write_all(&l[64 << 10..]).await;
                        }
                    } else {
                        let _ = socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        SlowUpstream {
            addr,
            release,
            manifest,
            layer,
            layer_digest: layer_descriptor.digest,
            blob_gets,
            task,
        }
    }
}

impl Drop for SlowUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A berth in front of `slow` (anonymous, prefix `slow.test`) with its
/// manifest pulled.
async fn front_of_slow(slow: &SlowUpstream) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "[[upstream]]\nname = \"slow.test\"\nurl = \"http://{}\"\n",
            slow.addr
        ),
    )
    .unwrap();
    let front = Registry::start_with_args(&["--config", config.to_str().unwrap()], &[]).await;
    let resp = get_manifest(&front, "/v2/slow.test/team/app/manifests/v1").await;
    assert_eq!(resp.status(), 200, "{}", front.stderr());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), slow.manifest);
    (front, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_bytes_from_upstream_are_never_served_whole_nor_cached() {
    let slow = SlowUpstream::start(true).await;
    slow.release.notify_one();
    let (front, _config) = front_of_slow(&slow).await;
    let path = format!("/v2/slow.test/team/app/blobs/{}", slow.layer_digest);
    for attempt in 0..2 {
        // Sent before the end could be checked, the body is cut off when
        // the digest does not match (or refused outright to a waiter).
        slow.release.notify_one();
        let resp = front.send(front.get(&path)).await;
        assert_ne!(
            cache_header(&resp).as_deref(),
            Some("hit"),
            "attempt {attempt}"
        );
        if resp.status() == 200 {
            // The body ends in an error, or at least never hashes right.
            if let Ok(bytes) = resp.bytes().await {
                assert_ne!(
                    sha256_digest(&bytes),
                    slow.layer_digest,
                    "attempt {attempt}"
                );
            }
        } else {
            assert_error(resp, 502, "UNKNOWN").await;
        }
    }
    assert!(
        !front.blob_file(&slow.layer_digest).exists(),
        "nothing is published under the digest"
    );
    let metrics = scrape(&front).await;
    assert!(
        sum(
            &metrics,
            "berth_pull_through_upstream_errors_total",
            &[("upstream", "slow.test")]
        ) >= 1.0,
        "{metrics:?}"
    );
    let mismatch = front.stderr();
    assert!(
        mismatch.contains(&slow.layer_digest),
        "the mismatch is logged with the digest:\n{mismatch}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_streams_to_the_first_client_before_the_upstream_has_sent_it_all() {
    let slow = SlowUpstream::start(false).await;
    let (front, _config) = front_of_slow(&slow).await;

    let path = format!("/v2/slow.test/team/app/blobs/{}", slow.layer_digest);
    let mut resp = front.send(front.get(&path)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(cache_header(&resp).as_deref(), Some("miss"));
    assert_eq!(
        required_header(&resp, "content-length"),
        (1u64 << 20).to_string()
    );
    // The upstream holds all but 64 KiB: bytes arriving now were streamed.
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first bytes come before the upstream sends the rest")
        .unwrap()
        .unwrap();
    assert!(
        !first.is_empty() && first.len() <= 64 << 10,
        "{}",
        first.len()
    );
    let mut body = first.to_vec();
    slow.release.notify_one();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, slow.layer);
    // Cached once the fill completes: served without the upstream.
    let resp = front.send(front.get(&path)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(cache_header(&resp).as_deref(), Some("hit"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), slow.layer);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_clients_pulling_a_blob_while_its_first_fetch_is_held_share_that_fetch() {
    let slow = SlowUpstream::start(false).await;
    let (front, _config) = front_of_slow(&slow).await;
    let path = format!("/v2/slow.test/team/app/blobs/{}", slow.layer_digest);
    let pulls: Vec<_> = (0..20)
        .map(|_| {
            let request = front.get(&path);
            let client = front.client.clone();
            tokio::spawn(async move {
                let resp = client.execute(request.build().unwrap()).await.unwrap();
                let outcome = resp
                    .headers()
                    .get("berth-cache")
                    .map(|v| v.to_str().unwrap().to_string());
                (resp.status().as_u16(), outcome, resp.bytes().await.unwrap())
            })
        })
        .collect();
    // Every client has asked while the upstream still holds the blob.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(slow.blob_gets.load(std::sync::atomic::Ordering::SeqCst), 1);
    slow.release.notify_one();
    let mut outcomes = Vec::new();
    for pull in pulls {
        let (status, outcome, body) = pull.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(sha256_digest(&body), slow.layer_digest, "the whole blob");
        outcomes.push(outcome.unwrap_or_default());
    }
    assert_eq!(
        slow.blob_gets.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one upstream GET for 20 clients: {outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "miss").count(),
        1,
        "{outcomes:?}"
    );
}

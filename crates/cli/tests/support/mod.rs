//! What the migrate and backup tests share: a real `berth serve`, a
//! registry filled over HTTP with a known model of what it holds, and a
//! check of a server against that model.
#![allow(dead_code)] // each test crate uses its part

use berth_oci::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn berth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    for var in ["BERTH_DATA_DIR", "BERTH_CONFIG", "BERTH_ADDR", "BERTH_LOG"] {
        command.env_remove(var);
    }
    command
}

/// A `berth serve` child, killed on drop.
pub struct Server {
    child: Child,
    pub addr: std::net::SocketAddr,
}

impl Server {
    /// `berth serve --data-dir dir` on a free port; ready once its admin
    /// socket exists and the port answers (a port taken meanwhile by
    /// another test's server makes ours exit: then another port).
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, None)
    }

    /// `berth serve` with `config` (whose data folder is `dir`), or on `dir` alone.
    pub fn start_with(dir: &Path, config: Option<&Path>) -> Server {
        for _ in 0..5 {
            let addr = {
                let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                probe.local_addr().unwrap()
            };
            let _ = std::fs::remove_file(dir.join("admin.sock"));
            let mut command = berth();
            command.args(["serve", "--addr", &addr.to_string()]);
            match config {
                Some(config) => command.arg("--config").arg(config),
                None => command.arg("--data-dir").arg(dir),
            };
            let mut child = command
                .env("BERTH_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if dir.join("admin.sock").exists() && std::net::TcpStream::connect(addr).is_ok() {
                    return Server { child, addr };
                }
                assert!(Instant::now() < deadline, "berth serve did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("berth serve exited at start 5 times");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/v2/{path}", self.addr)
    }

    /// Stops it (SIGKILL is fine: every answered write is durable) and
    /// waits, so its folder lock is free.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a registry should hold: per repository, tags → digest, and the
/// digests (blobs and manifests) with their bytes.
#[derive(Default, Clone)]
pub struct Model {
    pub tags: BTreeMap<String, BTreeMap<String, Digest>>,
    pub content: BTreeMap<String, BTreeMap<Digest, Bytes>>,
    /// Which digests of `content` are manifests (served under /manifests).
    pub manifests: BTreeSet<Digest>,
    /// Referrers expected per (repository, subject).
    pub referrers: BTreeMap<(String, Digest), BTreeSet<Digest>>,
}

impl Model {
    pub fn blob_count(&self) -> usize {
        self.content
            .values()
            .flat_map(|c| c.keys())
            .collect::<BTreeSet<_>>()
            .len()
    }
}

pub async fn push_blob(
    client: &reqwest::Client,
    server: &Server,
    repo: &str,
    bytes: &Bytes,
) -> Digest {
    let digest = Digest::sha256_of(bytes);
    let url = server.url(&format!("{repo}/blobs/uploads/?digest={digest}"));
    let resp = client.post(url).body(bytes.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 201, "blob push to {repo}");
    digest
}

pub async fn push_manifest(
    client: &reqwest::Client,
    server: &Server,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &Bytes,
) -> Digest {
    let url = server.url(&format!("{repo}/manifests/{reference}"));
    let resp = client
        .put(url)
        .header("content-type", media_type)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(
        status,
        201,
        "manifest push to {repo}:{reference}: {}",
        resp.text().await.unwrap()
    );
    Digest::sha256_of(bytes)
}

fn descriptor(media_type: &str, digest: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size})
}

/// Bytes of `len` determined by `seed`.
pub fn filler(seed: &str, len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            Digest::sha256_of(format!("{seed}/{i}").as_bytes())
                .hex()
                .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out.into()
}

/// Pushes one image (config + the given layers) to `repo`, recording it;
/// tagged with each of `tags` (none: pushed by digest).
pub async fn push_image(
    client: &reqwest::Client,
    server: &Server,
    model: &mut Model,
    repo: &str,
    layers: &[Bytes],
    tags: &[&str],
    subject: Option<(&Digest, usize)>,
) -> (Digest, usize) {
    let config = Bytes::from(format!(
        "{{\"repo\":\"{repo}\",\"n\":{}}}",
        model.content.get(repo).map_or(0, |c| c.len())
    ));
    let content = model.content.entry(repo.to_string()).or_default();
    let config_digest = push_blob(client, server, repo, &config).await;
    content.insert(config_digest.clone(), config.clone());
    let mut layer_descriptors = Vec::new();
    for layer in layers {
        let digest = push_blob(client, server, repo, layer).await;
        layer_descriptors.push(descriptor(
            "application/vnd.oci.image.layer.v1.tar",
            &digest,
            layer.len(),
        ));
        content.insert(digest, layer.clone());
    }
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config_digest, config.len()),
        "layers": layer_descriptors,
    });
    if let Some((subject, size)) = subject {
        manifest["subject"] = descriptor(MANIFEST, subject, size);
        manifest["artifactType"] = "application/vnd.example.sbom".into();
    }
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let digest = Digest::sha256_of(&bytes);
    push_manifest(client, server, repo, &digest.to_string(), MANIFEST, &bytes).await;
    for tag in tags {
        push_manifest(client, server, repo, tag, MANIFEST, &bytes).await;
        model
            .tags
            .entry(repo.to_string())
            .or_default()
            .insert(tag.to_string(), digest.clone());
    }
    model
        .content
        .entry(repo.to_string())
        .or_default()
        .insert(digest.clone(), bytes.clone());
    model.manifests.insert(digest.clone());
    if let Some((subject, _)) = subject {
        model
            .referrers
            .entry((repo.to_string(), subject.clone()))
            .or_default()
            .insert(digest.clone());
    }
    (digest, bytes.len())
}

/// Fills a registry: `repos` repositories, each with an image tagged
/// `v1` and `latest` (one digest), one tagged `v2`, one untagged that an
/// index tagged `multi` names with `v2`'s, and a referrer of `v1`; layers
/// shared between repositories from a small pool, some of them large.
pub async fn fill(server: &Server, repos: usize) -> Model {
    let client = reqwest::Client::new();
    let shared: Vec<Bytes> = (0..4)
        .map(|i| filler(&format!("shared-{i}"), 64 << 10))
        .collect();
    // A few repositories at once: fsyncs dominate, and they overlap.
    let models: Vec<Model> = futures_util::stream::iter(0..repos)
        .map(|r| fill_one(&client, server, &shared, r))
        .buffer_unordered(4)
        .collect()
        .await;
    let mut model = Model::default();
    for one in models {
        model.tags.extend(one.tags);
        model.content.extend(one.content);
        model.manifests.extend(one.manifests);
        model.referrers.extend(one.referrers);
    }
    model
}

async fn fill_one(client: &reqwest::Client, server: &Server, shared: &[Bytes], r: usize) -> Model {
    let mut model = Model::default();
    {
        let repo = format!("team{}/app-{r}", r % 4);
        let big = filler(&format!("big-{r}"), 256 << 10);
        let (v1, v1_size) = push_image(
            client,
            server,
            &mut model,
            &repo,
            &[shared[r % 4].clone(), big],
            &["v1", "latest"],
            None,
        )
        .await;
        let small = filler(&format!("small-{r}"), 3000);
        let v2 = push_image(
            client,
            server,
            &mut model,
            &repo,
            &[shared[(r + 1) % 4].clone(), small],
            &["v2"],
            None,
        )
        .await;
        let other = filler(&format!("other-{r}"), 5000);
        let untagged = push_image(client, server, &mut model, &repo, &[other], &[], None).await;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [descriptor(MANIFEST, &v2.0, v2.1), descriptor(MANIFEST, &untagged.0, untagged.1)],
        });
        let bytes = Bytes::from(serde_json::to_vec(&index).unwrap());
        let digest = push_manifest(client, server, &repo, "multi", INDEX, &bytes).await;
        model
            .tags
            .entry(repo.clone())
            .or_default()
            .insert("multi".into(), digest.clone());
        model
            .content
            .entry(repo.clone())
            .or_default()
            .insert(digest.clone(), bytes);
        model.manifests.insert(digest);
        let sbom = filler(&format!("sbom-{r}"), 700);
        push_image(
            client,
            server,
            &mut model,
            &repo,
            &[sbom],
            &[],
            Some((&v1, v1_size)),
        )
        .await;
    }
    model
}

/// Checks through `server` that it holds everything `model` says: the
/// catalog (exactly, or at least when `more` other repositories may be
/// there), every tag's digest, every blob and manifest byte for byte, the
/// referrers.
pub async fn check(server: &Server, model: &Model) {
    check_holds(server, model, false).await;
}

pub async fn check_holds(server: &Server, model: &Model, more: bool) {
    let client = reqwest::Client::new();
    let catalog: serde_json::Value = client
        .get(server.url("_catalog?n=10000"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let listed: BTreeSet<String> = catalog["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = model.content.keys().cloned().collect();
    if more {
        assert!(listed.is_superset(&expected), "catalog {listed:?}");
    } else {
        assert_eq!(listed, expected, "catalog");
    }
    for (repo, tags) in &model.tags {
        let listed: serde_json::Value = client
            .get(server.url(&format!("{repo}/tags/list")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        let names: BTreeSet<&str> = listed["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            tags.keys().map(String::as_str).collect(),
            "tags of {repo}"
        );
        for (tag, digest) in tags {
            let resp = client
                .get(server.url(&format!("{repo}/manifests/{tag}")))
                .header("accept", format!("{MANIFEST}, {INDEX}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{repo}:{tag}");
            let header = resp.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(header, digest.to_string(), "{repo}:{tag}");
        }
    }
    for (repo, content) in &model.content {
        // One repository's fetches at once: the check is most of the test's time.
        let fetches = content.iter().map(|(digest, bytes)| {
            let client = client.clone();
            let kind = if model.manifests.contains(digest) {
                "manifests"
            } else {
                "blobs"
            };
            let url = server.url(&format!("{repo}/{kind}/{digest}"));
            async move {
                let resp = client
                    .get(url)
                    .header("accept", format!("{MANIFEST}, {INDEX}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{repo}@{digest}");
                let got = resp.bytes().await.unwrap();
                assert_eq!(Digest::sha256_of(&got), *digest, "{repo}@{digest}");
                assert_eq!(&got, bytes, "{repo}@{digest}");
            }
        });
        futures_util::future::join_all(fetches).await;
    }
    for ((repo, subject), referrers) in &model.referrers {
        let index: serde_json::Value = client
            .get(server.url(&format!("{repo}/referrers/{subject}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        let listed: BTreeSet<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        let wanted: BTreeSet<String> = referrers.iter().map(Digest::to_string).collect();
        assert_eq!(listed, wanted, "referrers of {repo}@{subject}");
    }
}

/// Every repository `server` lists, with its tags.
pub async fn listing(server: &Server) -> BTreeMap<String, Vec<String>> {
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let bytes = client
                .get(path)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        }
    };
    let catalog = get(server.url("_catalog?n=10000")).await;
    let mut out = BTreeMap::new();
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap().to_string();
        let tags = get(server.url(&format!("{repo}/tags/list"))).await;
        let tags = tags["tags"]
            .as_array()
            .map(|t| t.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        out.insert(repo, tags);
    }
    out
}

/// Pulls `repo:tag` whole through `server`: the image manifest, its config
/// and every layer, each matching its digest.
pub async fn pull_whole(server: &Server, repo: &str, tag: &str) {
    let client = reqwest::Client::new();
    let resp = client
        .get(server.url(&format!("{repo}/manifests/{tag}")))
        .header("accept", format!("{MANIFEST}, {INDEX}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{repo}:{tag}");
    let bytes = resp.bytes().await.unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut wanted = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in manifest["layers"].as_array().unwrap() {
        wanted.push(layer["digest"].as_str().unwrap().to_string());
    }
    for digest in wanted {
        let resp = client
            .get(server.url(&format!("{repo}/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{repo}:{tag} blob {digest}");
        let got = resp.bytes().await.unwrap();
        assert_eq!(
            Digest::sha256_of(&got).to_string(),
            digest,
            "{repo}:{tag} blob"
        );
    }
}

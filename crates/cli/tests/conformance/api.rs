//! `/api/v1/`: the JSON that the web UI and tools read, against a real
//! `berth serve`: overview, repository summaries (filter, pages, `Link`),
//! tag details (newest first, sizes, platforms), image details (layers,
//! config history, index children, referrers) and errors in the OCI format.

use super::harness::*;
use serde_json::{json, Value};

/// An image with three layers and a config with a build history, tagged `tag`.
async fn push_built_image(registry: &Registry, repo: &str, tag: &str) -> (Image, Vec<u8>) {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "created": "2024-05-01T10:00:00Z",
        "config": {
            "Env": ["PATH=/usr/bin", "MODE=prod"], "Entrypoint": ["/app"], "Cmd": ["--serve"],
            "WorkingDir": "/srv", "User": "1000", "ExposedPorts": {"8080/tcp": {}},
            "Labels": {"org.opencontainers.image.title": "app", "salt": hex::encode(random_bytes(4))}
        },
        "history": [
            {"created_by": "/bin/sh -c #(nop) ADD file:rootfs in /"},
            {"created_by": "RUN apk add curl"},
            {"created_by": "ENV MODE=prod", "empty_layer": true},
            {"created_by": "COPY app /app", "comment": "buildkit.dockerfile.v0"}
        ],
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    let config = registry.push_descriptor(repo, OCI_CONFIG, &config).await;
    let mut layers = Vec::new();
    for len in [1000, 2000, 3000] {
        layers.push(
            registry
                .push_descriptor(repo, OCI_LAYER, &random_bytes(len))
                .await,
        );
    }
    let manifest = ManifestBuilder::image(&config, &layers).build();
    let digest = registry
        .push_manifest(repo, tag, OCI_MANIFEST, &manifest)
        .await;
    let image = Image {
        digest,
        manifest: manifest.clone(),
        config,
        layers,
    };
    (image, manifest)
}

async fn get_json(registry: &Registry, path: &str) -> Value {
    let resp = registry.send(registry.get(path)).await;
    assert_eq!(resp.status(), 200, "GET {path}");
    assert_eq!(
        header(&resp, "content-type"),
        Some("application/json"),
        "{path}"
    );
    json_body(resp).await
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {list}"))
        .iter()
        .map(|v| v[key].as_str().expect("a string").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_detail_shows_layers_config_history_tags_and_referrers() {
    let registry = Registry::start().await;
    let (image, manifest) = push_built_image(&registry, "org/app", "v1").await;
    registry
        .push_manifest("org/app", "stable", OCI_MANIFEST, &manifest)
        .await;
    let sbom = ManifestBuilder::artifact("application/spdx+json", &[])
        .subject(&image.descriptor())
        .annotation("org.opencontainers.image.created", "2024-05-01T10:00:00Z")
        .build();
    registry.push_blob("org/app", EMPTY_JSON).await;
    let sbom_digest = sha256_digest(&sbom);
    registry
        .push_manifest("org/app", &sbom_digest, OCI_MANIFEST, &sbom)
        .await;

    let resp = registry
        .send(registry.get("/api/v1/repositories/org/app/manifests/v1"))
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let verbatim = format!(r#""manifest":{}"#, String::from_utf8_lossy(&manifest));
    assert!(text.contains(&verbatim), "the manifest as pushed: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["repository"], "org/app");
    assert_eq!(
        body["artifact_type"],
        Value::Null,
        "an image is no artifact"
    );
    assert_eq!(body["digest"], image.digest);
    assert_eq!(body["media_type"], OCI_MANIFEST);
    assert_eq!(body["size"], manifest.len() as u64);
    assert_eq!(body["kind"], "manifest");
    assert_eq!(body["tags"], json!(["stable", "v1"]));
    assert!(body["pushed_at"].as_i64().unwrap() > 1_600_000_000);
    let layers = body["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (layer, pushed) in layers.iter().zip(&image.layers) {
        assert_eq!(layer["digest"], pushed.digest);
        assert_eq!(layer["size"], pushed.size);
        assert_eq!(layer["media_type"], OCI_LAYER);
    }
    assert_eq!(body["config_blob"]["digest"], image.config.digest);
    let config = &body["config"];
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["Entrypoint"], json!(["/app"]));
    assert_eq!(config["config"]["Cmd"], json!(["--serve"]));
    assert_eq!(
        config["config"]["Env"],
        json!(["PATH=/usr/bin", "MODE=prod"])
    );
    assert_eq!(config["config"]["ExposedPorts"], json!(["8080/tcp"]));
    assert_eq!(config["config"]["WorkingDir"], "/srv");
    assert_eq!(config["config"]["User"], "1000");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"],
        "app"
    );
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[1]["created_by"], "RUN apk add curl");
    assert_eq!(history[2]["empty_layer"], true);
    assert_eq!(history[3]["comment"], "buildkit.dockerfile.v0");
    // The manifest as pushed, as JSON.
    let pushed: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(body["manifest"], pushed);
    let referrers = body["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0]["digest"], sbom_digest);
    assert_eq!(referrers[0]["artifact_type"], "application/spdx+json");
    assert_eq!(
        referrers[0]["annotations"]["org.opencontainers.image.created"],
        "2024-05-01T10:00:00Z"
    );

    // By digest too; the artifact has no image config.
    let by_digest = get_json(
        &registry,
        &format!("/api/v1/repositories/org/app/manifests/{}", image.digest),
    )
    .await;
    assert_eq!(by_digest["tags"], json!(["stable", "v1"]));
    let artifact = get_json(
        &registry,
        &format!("/api/v1/repositories/org/app/manifests/{sbom_digest}"),
    )
    .await;
    assert_eq!(artifact["config"], Value::Null);
    assert_eq!(artifact["artifact_type"], "application/spdx+json");
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_are_newest_first_with_sizes_and_an_index_shows_its_platforms() {
    let registry = Registry::start().await;
    let repo = "multi";
    let arm = registry.push_image(repo, "arm64").await;
    // Push times are in seconds: without a pause the two may share one
    // second (then names break the tie) or straddle two, as the machine's
    // load has it. amd64 is the newer.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (amd, _) = push_built_image(&registry, repo, "amd64").await;
    let child = |image: &Image, arch: &str| {
        let mut d = image.descriptor().json();
        d["platform"] = json!({"os": "linux", "architecture": arch});
        d
    };
    // BuildKit's way of attaching provenance: an attestation manifest in
    // the index under `unknown/unknown`, which is no platform to list.
    registry.push_blob(repo, EMPTY_JSON).await;
    let attestation = ManifestBuilder::artifact("application/vnd.in-toto+json", &[]).build();
    let attestation_digest = registry
        .push_manifest(
            repo,
            &sha256_digest(&attestation),
            OCI_MANIFEST,
            &attestation,
        )
        .await;
    let mut attestation_child = Descriptor::of(OCI_MANIFEST, &attestation).json();
    attestation_child["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    attestation_child["annotations"] = json!({
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": amd.digest
    });
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [child(&amd, "amd64"), child(&arm, "arm64"), attestation_child]
    }))
    .unwrap();
    // Push times are in seconds: the index is pushed a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let index_digest = registry
        .push_manifest(repo, "latest", OCI_INDEX, &index)
        .await;

    let body = get_json(&registry, "/api/v1/repositories/multi/tags").await;
    assert_eq!(body["name"], "multi");
    assert_eq!(body["next"], Value::Null);
    let tags = body["tags"].as_array().unwrap();
    assert_eq!(names(&body["tags"], "tag"), ["latest", "amd64", "arm64"]);
    let latest = &tags[0];
    assert_eq!(latest["digest"], index_digest);
    assert_eq!(latest["media_type"], OCI_INDEX);
    assert_eq!(
        latest["platforms"],
        json!([{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}])
    );
    let image_size = |image: &Image| {
        image.manifest.len() as u64
            + image.config.size
            + image.layers.iter().map(|l| l.size).sum::<u64>()
    };
    assert_eq!(tags[1]["size_bytes"], image_size(&amd));
    assert_eq!(tags[1]["platforms"], json!([]));
    assert_eq!(tags[1]["artifact_type"], Value::Null);
    assert_eq!(
        latest["size_bytes"],
        index.len() as u64
            + image_size(&amd)
            + image_size(&arm)
            + attestation.len() as u64
            + EMPTY_JSON.len() as u64,
        "the index, its children and every blob they name, once"
    );
    assert!(latest["pushed_at"].as_i64() > tags[1]["pushed_at"].as_i64());

    // Pages: n=2, then the Link's target.
    let resp = registry
        .send(registry.get("/api/v1/repositories/multi/tags?n=2"))
        .await;
    let link = header(&resp, "link")
        .expect("a Link to the next page")
        .to_string();
    let page = json_body(resp).await;
    assert_eq!(names(&page["tags"], "tag"), ["latest", "amd64"]);
    let next = &link[link.find('<').unwrap() + 1..link.find('>').unwrap()];
    assert!(
        next.starts_with("/api/v1/repositories/multi/tags?n=2&last="),
        "{link}"
    );
    let rest = get_json(&registry, next).await;
    assert_eq!(names(&rest["tags"], "tag"), ["arm64"]);

    let detail = get_json(&registry, "/api/v1/repositories/multi/manifests/latest").await;
    assert_eq!(detail["kind"], "index");
    let children = detail["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!(children[2]["digest"], attestation_digest);
    assert_eq!(
        children[2]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(children[0]["digest"], amd.digest);
    assert_eq!(children[1]["platform"]["architecture"], "arm64");
}

#[tokio::test(flavor = "multi_thread")]
async fn repositories_are_summarized_filtered_and_paged_with_link() {
    let registry = Registry::start().await;
    for repo in ["apps/alpha", "apps/beta", "tools/alphabet"] {
        registry.push_image(repo, "v1").await;
    }
    registry.push_image("apps/alpha", "v2").await;
    let body = get_json(&registry, "/api/v1/repositories").await;
    assert_eq!(
        names(&body["repositories"], "name"),
        ["apps/alpha", "apps/beta", "tools/alphabet"]
    );
    let alpha = &body["repositories"][0];
    assert_eq!(alpha["tag_count"], 2);
    assert_eq!(alpha["manifest_count"], 2);
    assert!(alpha["size_bytes"].as_u64().unwrap() >= 2 * 2048, "{alpha}");
    assert!(alpha["last_push"].as_i64().unwrap() > 1_600_000_000);

    let filtered = get_json(&registry, "/api/v1/repositories?q=ALPHA").await;
    assert_eq!(
        names(&filtered["repositories"], "name"),
        ["apps/alpha", "tools/alphabet"]
    );

    let resp = registry
        .send(registry.get("/api/v1/repositories?q=alpha&n=1"))
        .await;
    let link = header(&resp, "link").expect("a Link").to_string();
    assert_eq!(
        link,
        "</api/v1/repositories?q=alpha&n=1&last=apps%2Falpha>; rel=\"next\""
    );
    let first = json_body(resp).await;
    assert_eq!(first["next"], "apps/alpha");
    let rest = get_json(
        &registry,
        "/api/v1/repositories?q=alpha&n=1&last=apps%2Falpha",
    )
    .await;
    assert_eq!(names(&rest["repositories"], "name"), ["tools/alphabet"]);
    assert_eq!(rest["next"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_counts_what_sharing_a_layer_saves() {
    let registry = Registry::start().await;
    let shared = random_bytes(10_000);
    for repo in ["one", "two"] {
        let config = registry
            .push_descriptor(repo, OCI_CONFIG, &random_config())
            .await;
        let layer = registry.push_descriptor(repo, OCI_LAYER, &shared).await;
        let manifest = ManifestBuilder::image(&config, &[layer]).build();
        registry
            .push_manifest(repo, "v1", OCI_MANIFEST, &manifest)
            .await;
    }
    let body = get_json(&registry, "/api/v1/overview").await;
    assert_eq!(body["repositories"], 2);
    assert_eq!(body["tags"], 2);
    assert_eq!(body["manifests"], 2);
    assert_eq!(body["blobs"], 3, "two configs and one shared layer");
    assert_eq!(body["shared_savings_bytes"], 10_000);
    assert_eq!(
        body["referenced_bytes"].as_u64().unwrap() - body["stored_bytes"].as_u64().unwrap(),
        10_000
    );
    assert_eq!(body["deletes_enabled"], true);

    let off = Registry::start_with_env(&[("BERTH_DELETE_ENABLED", "false")]).await;
    assert_eq!(
        get_json(&off, "/api/v1/overview").await["deletes_enabled"],
        false
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_oci_errors() {
    let registry = Registry::start().await;
    registry.push_image("known", "v1").await;
    let get = |path: &str| registry.send(registry.get(path));
    assert_error(
        get("/api/v1/repositories/unknown/tags").await,
        404,
        "NAME_UNKNOWN",
    )
    .await;
    assert_error(
        get("/api/v1/repositories/unknown/manifests/v1").await,
        404,
        "NAME_UNKNOWN",
    )
    .await;
    assert_error(
        get("/api/v1/repositories/known/manifests/v9").await,
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_error(
        get("/api/v1/repositories/known/manifests/sha256:abc").await,
        400,
        "DIGEST_INVALID",
    )
    .await;
    assert_error(
        get("/api/v1/repositories/Known/tags").await,
        400,
        "NAME_INVALID",
    )
    .await;
    assert_error(get("/api/v1/repositories?n=many").await, 400, "UNSUPPORTED").await;
    assert_error(
        get("/api/v1/repositories/known/tags?last=garbage").await,
        400,
        "UNSUPPORTED",
    )
    .await;
    assert_error(get("/api/v1/nothing").await, 404, "UNSUPPORTED").await;
    // Layer listings: a blob the repository does not hold is unknown.
    let digest = sha256_digest(b"x");
    assert_error(
        get(&format!("/api/v1/repositories/known/blobs/{digest}/files")).await,
        404,
        "BLOB_UNKNOWN",
    )
    .await;
    assert_error(
        get("/api/v1/repositories/known/blobs/sha256:zz/files").await,
        400,
        "DIGEST_INVALID",
    )
    .await;
    let post = registry
        .send(registry.request(reqwest::Method::POST, "/api/v1/overview"))
        .await;
    assert_error(post, 405, "UNSUPPORTED").await;
}

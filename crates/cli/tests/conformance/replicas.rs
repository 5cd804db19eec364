//! Two `berth serve` processes on one Garage bucket and one PostgreSQL
//! database behave as one registry: what one stores the other serves, an
//! upload moves between them mid-way, and racing pushes of one tag end in
//! one consistent state seen alike through both.

use super::harness::*;

/// Two replicas on fresh shared stores; `None` (the reason printed) when
/// the engines are missing outside CI.
async fn replicas() -> Option<(Registry, Registry, SharedStores)> {
    let stores = SharedStores::fresh().await?;
    let a = Registry::start_on(&stores, &[]).await;
    let b = Registry::start_on(&stores, &[]).await;
    Some((a, b, stores))
}

async fn blob_through(registry: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let resp = registry
        .send(registry.get(&format!("/v2/{repo}/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200, "GET blob {digest} on {}", registry.addr);
    resp.bytes().await.unwrap().to_vec()
}

async fn manifest_through(registry: &Registry, repo: &str, reference: &str) -> (String, Vec<u8>) {
    let resp = registry
        .send(
            registry
                .get(&format!("/v2/{repo}/manifests/{reference}"))
                .header("accept", OCI_MANIFEST),
        )
        .await;
    assert_eq!(
        resp.status(),
        200,
        "GET manifest {reference} on {}",
        registry.addr
    );
    let digest = required_header(&resp, "docker-content-digest").to_string();
    (digest, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn what_one_replica_stores_the_other_serves() {
    let Some((a, b, _stores)) = replicas().await else {
        return;
    };
    let image = a.push_image("team/app", "v1").await;
    let (digest, bytes) = manifest_through(&b, "team/app", "v1").await;
    assert_eq!(
        (digest, bytes),
        (image.digest.clone(), image.manifest.clone())
    );
    for blob in image.layers.iter().chain([&image.config]) {
        let bytes = blob_through(&b, "team/app", &blob.digest).await;
        assert_eq!(sha256_digest(&bytes), blob.digest);
    }
    let tags = json_body(b.send(b.get("/v2/team/app/tags/list")).await).await;
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    let catalog = json_body(b.send(b.get("/v2/_catalog")).await).await;
    assert_eq!(catalog["repositories"], serde_json::json!(["team/app"]));
    // A delete through b is seen by a.
    let resp = b
        .send(b.delete(&format!("/v2/team/app/manifests/{}", image.digest)))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = a.send(a.get("/v2/team/app/manifests/v1")).await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn a_chunked_upload_started_on_one_replica_is_finished_on_the_other() {
    let Some((a, b, _stores)) = replicas().await else {
        return;
    };
    // Past one S3 part (8 MiB) and a tail shorter than one, on each side.
    let content = random_bytes(9 << 20 | 12_345);
    let (first, rest) = content.split_at(8 << 20 | 1000);
    let (second, last) = rest.split_at(rest.len() - 4096);
    let on_a = a.start_upload("team/chunks").await;
    let resp = a
        .patch_chunk(&on_a, Some((0, first.len() - 1)), first)
        .await;
    assert_eq!(resp.status(), 202);
    // The same upload, through the other replica.
    let on_b = b.resolve(location_path(required_header(&resp, "location")));
    let status = b.send(b.client.get(&on_b)).await;
    assert_eq!(status.status(), 204);
    assert_eq!(
        required_header(&status, "range"),
        format!("0-{}", first.len() - 1)
    );
    let resp = b
        .patch_chunk(
            &on_b,
            Some((first.len(), first.len() + second.len() - 1)),
            second,
        )
        .await;
    assert_eq!(resp.status(), 202);
    let back_on_a = a.resolve(location_path(required_header(&resp, "location")));
    let digest = sha256_digest(&content);
    let resp = a
        .send(
            a.client
                .put(with_query(&back_on_a, "digest", &digest))
                .header("content-type", "application/octet-stream")
                .body(last.to_vec()),
        )
        .await;
    assert_eq!(
        resp.status(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(blob_through(&b, "team/chunks", &digest).await, content);
    assert_eq!(blob_through(&a, "team/chunks", &digest).await, content);
}

#[tokio::test]
async fn twenty_racing_pushes_of_one_tag_end_in_one_state_both_replicas_show() {
    let Some((a, b, _stores)) = replicas().await else {
        return;
    };
    let replicas = [&a, &b];
    let pushes = (0..20).map(|i| {
        let registry = replicas[i % 2];
        async move { registry.push_image("team/race", "latest").await }
    });
    let images = futures_util::future::join_all(pushes).await;
    let (on_a, _) = manifest_through(&a, "team/race", "latest").await;
    let (on_b, _) = manifest_through(&b, "team/race", "latest").await;
    assert_eq!(on_a, on_b, "both replicas show one tag");
    assert!(
        images.iter().any(|image| image.digest == on_a),
        "the tag points at one of the pushed manifests"
    );
    for image in &images {
        for registry in replicas {
            let (digest, _) = manifest_through(registry, "team/race", &image.digest).await;
            assert_eq!(digest, image.digest);
            for blob in image.layers.iter().chain([&image.config]) {
                let bytes = blob_through(registry, "team/race", &blob.digest).await;
                assert_eq!(sha256_digest(&bytes), blob.digest);
            }
        }
    }
    let tags = json_body(b.send(b.get("/v2/team/race/tags/list")).await).await;
    assert_eq!(tags["tags"], serde_json::json!(["latest"]));
}

#[tokio::test]
async fn a_token_from_one_replica_is_accepted_by_the_other() {
    let Some(stores) = SharedStores::fresh().await else {
        return;
    };
    let dir = data_dir();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("admin:{}\n", bcrypt::hash("secret", 4).unwrap()),
    )
    .unwrap();
    let htpasswd = htpasswd.to_str().unwrap();
    let env = [("BERTH_HTPASSWD", htpasswd), ("BERTH_TOKEN_AUTH", "true")];
    let a = Registry::start_on(&stores, &env).await;
    let b = Registry::start_on(&stores, &env).await;
    let resp = a
        .send(
            a.get("/token?service=berth&scope=repository:team/app:pull")
                .basic_auth("admin", Some("secret")),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let token = json_body(resp).await["token"].as_str().unwrap().to_string();
    // No key file in either data folder: the key is the database's.
    for replica in [&a, &b] {
        assert!(!replica.data_dir().join("auth/token-key.pem").exists());
    }
    let resp = b
        .send(b.get("/v2/team/app/tags/list").bearer_auth(&token))
        .await;
    assert_error(resp, 404, "NAME_UNKNOWN").await;
    let resp = b.send(b.get("/v2/team/app/tags/list")).await;
    assert_eq!(resp.status(), 401, "without the token, b challenges");
}

#[tokio::test]
async fn a_second_registry_on_the_same_bucket_is_refused_at_start() {
    let Some(first) = SharedStores::fresh().await else {
        return;
    };
    let Some(other_database) = SharedStores::fresh().await else {
        return;
    };
    let a = Registry::start_on(&first, &[]).await;
    a.push_image("team/app", "v1").await;
    // Another registry (its own database) pointed at a's bucket and root.
    let url = other_database
        .env
        .iter()
        .find(|(k, _)| k == "BERTH_METADATA_URL")
        .map(|(_, v)| v.clone())
        .unwrap();
    let data = data_dir();
    let out = std::process::Command::new(berth_binary())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .envs(first.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("BERTH_METADATA_URL", &url)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("belongs to another registry"), "{stderr}");
    // a's image is untouched.
    manifest_through(&a, "team/app", "v1").await;
}

#[tokio::test]
async fn a_missing_bucket_stops_start_up_naming_it() {
    let Some(stores) = SharedStores::fresh().await else {
        return;
    };
    let data = data_dir();
    let out = std::process::Command::new(berth_binary())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .envs(stores.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("BERTH_S3_BUCKET", "no-such-bucket")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("s3://no-such-bucket/"), "{stderr}");
    assert!(stderr.contains("probe"), "{stderr}");
    let secret = stores
        .env
        .iter()
        .find(|(k, _)| k == "BERTH_S3_SECRET_KEY")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(!stderr.contains(&secret), "the secret key was logged");
}

#[tokio::test]
async fn gc_and_repo_delete_run_from_a_machine_with_no_server_on_the_shared_stores() {
    let Some((a, b, stores)) = replicas().await else {
        return;
    };
    a.push_image("team/gone", "v1").await;
    let elsewhere = data_dir(); // no server, no meta.db: another machine
    let berth = |args: &[&str]| {
        std::process::Command::new(berth_binary())
            .args(args)
            .arg("--data-dir")
            .arg(elsewhere.path())
            .envs(stores.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = berth(&["repo", "delete", "team/gone"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp = b.send(b.get("/v2/team/gone/tags/list")).await;
    assert_error(resp, 404, "NAME_UNKNOWN").await;
    let out = berth(&["gc", "--grace", "0s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("removed"), "{stdout}");
}

#[tokio::test]
async fn with_redirects_on_a_blob_get_is_sent_to_a_presigned_bucket_url() {
    let Some(stores) = SharedStores::fresh().await else {
        return;
    };
    let registry = Registry::start_on(&stores, &[("BERTH_S3_REDIRECT", "true")]).await;
    let image = registry.push_image("team/redirected", "v1").await;
    let layer = &image.layers[0];
    let direct = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!(
        "http://{}/v2/team/redirected/blobs/{}",
        registry.addr, layer.digest
    );
    let resp = direct.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 307);
    assert_eq!(
        required_header(&resp, "docker-content-digest"),
        layer.digest
    );
    let location = required_header(&resp, "location").to_string();
    assert!(
        !location.contains(&registry.addr.to_string()),
        "sent to the bucket, not back to berth: {location}"
    );
    let bytes = direct.get(&location).send().await.unwrap();
    assert_eq!(bytes.status(), 200, "the presigned URL serves the blob");
    assert_eq!(sha256_digest(&bytes.bytes().await.unwrap()), layer.digest);
    // HEAD is answered by berth itself; a blob the repository cannot see is
    // unknown, not redirected.
    let head = direct.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let other = format!(
        "http://{}/v2/team/elsewhere/blobs/{}",
        registry.addr, layer.digest
    );
    assert_eq!(direct.get(&other).send().await.unwrap().status(), 404);
    // Off by default: the same stores through a replica without the setting.
    let plain = Registry::start_on(&stores, &[]).await;
    let url = format!(
        "http://{}/v2/team/redirected/blobs/{}",
        plain.addr, layer.digest
    );
    assert_eq!(direct.get(&url).send().await.unwrap().status(), 200);
}

//! The web UI from a real `berth serve`: each page's status and key
//! content, redirects, assets, escaping, and deletes with their
//! same-origin check.

use super::harness::*;
use serde_json::json;

async fn page(registry: &Registry, path: &str) -> (u16, String) {
    let resp = registry.send(registry.get(path)).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// A one-file uncompressed tar, made by hand: enough for a layer listing.
fn tar_with(path: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..path.len()].copy_from_slice(path.as_bytes());
    header[100..107].copy_from_slice(b"0000755");
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    header[124..135].copy_from_slice(format!("{:011o}", content.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

/// An image whose config has a history, labels with markup, and a real tar layer.
async fn push_described_image(registry: &Registry, repo: &str, tag: &str) -> (String, Descriptor) {
    let layer = registry
        .push_descriptor(
            repo,
            "application/vnd.oci.image.layer.v1.tar",
            &tar_with("bin/hello", b"hi\n"),
        )
        .await;
    let config = serde_json::to_vec(&json!({
        "architecture": "arm64", "os": "linux",
        "config": {
            "Entrypoint": ["/bin/hello"], "Cmd": ["--loud"], "Env": ["GREETING=hi"],
            "WorkingDir": "/srv", "User": "1000", "ExposedPorts": {"8080/tcp": {}},
            "Labels": {"evil": "<script>alert(1)</script>"}
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},
        "history": [
            {"created_by": "COPY hello /bin/hello"},
            {"created_by": "ENV GREETING=hi", "empty_layer": true}
        ]
    }))
    .unwrap();
    let config = registry.push_descriptor(repo, OCI_CONFIG, &config).await;
    let manifest = ManifestBuilder::image(&config, std::slice::from_ref(&layer)).build();
    let digest = registry
        .push_manifest(repo, tag, OCI_MANIFEST, &manifest)
        .await;
    (digest, layer)
}

#[tokio::test(flavor = "multi_thread")]
async fn root_redirects_to_the_ui_and_assets_are_long_cached() {
    let registry = Registry::start().await;
    for path in ["/", "/ui"] {
        let resp = registry.send(registry.get(path)).await;
        assert_eq!(resp.status(), 302, "{path}");
        assert_eq!(header(&resp, "location"), Some("/ui/"));
    }
    let (status, html) = page(&registry, "/ui/").await;
    assert_eq!(status, 200);
    assert!(html.contains("No repositories yet."), "{html}");
    let css = html
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|h| h.ends_with(".css")))
        .unwrap()
        .to_owned();
    let resp = registry.send(registry.get(&css)).await;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "cache-control")
        .unwrap()
        .contains("immutable"));
    assert!(header(&resp, "content-type")
        .unwrap()
        .starts_with("text/css"));
    let (status, _) = page(&registry, "/ui/assets/berth.00000000.css").await;
    assert_eq!(status, 404);
    let (status, _) = page(&registry, "/ui/nothing-here").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_filters_and_pages_and_shows_totals() {
    let registry = Registry::start().await;
    registry.push_image("team/alpha", "v1").await;
    registry.push_image("team/beta", "v1").await;
    registry.push_image("other/gamma", "v1").await;
    let (status, html) = page(&registry, "/ui/").await;
    assert_eq!(status, 200);
    for name in ["team/alpha", "team/beta", "other/gamma"] {
        assert!(
            html.contains(&format!(r#"href="/ui/r/{name}""#)),
            "{name}: {html}"
        );
    }
    assert!(html.contains("Saved by sharing"));
    let (_, html) = page(&registry, "/ui/?q=team").await;
    assert!(html.contains("team/alpha") && html.contains("team/beta"));
    assert!(!html.contains("other/gamma"), "{html}");
    let (_, html) = page(&registry, "/ui/?q=%3Cb%3E").await;
    assert!(html.contains("No repository matches “&lt;b&gt;”"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_lists_tags_newest_first_with_pull_commands() {
    let registry = Registry::start().await;
    registry.push_image("apps/web", "old").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newest = registry.push_image("apps/web", "new").await;
    let (status, html) = page(&registry, "/ui/r/apps/web").await;
    assert_eq!(status, 200);
    let (new, old) = (
        html.find(">new</a>").unwrap(),
        html.find(">old</a>").unwrap(),
    );
    assert!(new < old, "newest first");
    let host = registry.addr.to_string();
    assert!(
        html.contains(&format!("docker pull {host}/apps/web:new")),
        "{html}"
    );
    assert!(html.contains(&format!("kubectl run web --image={host}/apps/web:new")));
    assert!(html.contains(&newest.digest));
    let (status, _) = page(&registry, "/ui/r/apps/none").await;
    assert_eq!(status, 404);
    let (status, _) = page(&registry, "/ui/r/Bad_Name").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_shows_layers_config_history_and_inert_labels() {
    let registry = Registry::start().await;
    let (digest, layer) = push_described_image(&registry, "app", "v1").await;
    let (status, html) = page(&registry, "/ui/r/app/-/m/v1").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&format!("/ui/r/app/-/layer/{}", layer.digest)));
    assert!(html.contains(&digest));
    for text in [
        "linux/arm64",
        "/bin/hello",
        "--loud",
        "GREETING=hi",
        "8080/tcp",
        "/srv",
    ] {
        assert!(html.contains(text), "{text}: {html}");
    }
    assert!(html.contains("COPY hello /bin/hello"));
    assert!(html.contains(r#"<tr class="empty">"#));
    assert!(!html.contains("<script>alert"), "label must be escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The same page by digest.
    let (status, _) = page(&registry, &format!("/ui/r/app/-/m/{digest}")).await;
    assert_eq!(status, 200);
    let (status, _) = page(&registry, "/ui/r/app/-/m/missing").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_links_its_platforms_and_referrers_show() {
    let registry = Registry::start().await;
    let amd = registry.push_image("multi", "amd").await;
    let arm = registry.push_image("multi", "arm").await;
    let entry = |image: &Image, arch: &str| {
        let mut d = image.descriptor().json();
        d["platform"] = json!({"os": "linux", "architecture": arch});
        d
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")]
    }))
    .unwrap();
    registry
        .push_manifest("multi", "latest", OCI_INDEX, &index)
        .await;
    let sbom = registry
        .push_descriptor("multi", "application/spdx+json", b"{}")
        .await;
    let artifact = ManifestBuilder::artifact("application/spdx+json", &[sbom])
        .subject(&amd.descriptor())
        .build();
    let digest = sha256_digest(&artifact);
    registry
        .push_manifest("multi", &digest, OCI_MANIFEST, &artifact)
        .await;

    let (status, html) = page(&registry, "/ui/r/multi/-/m/latest").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(
            r#"<a href="/ui/r/multi/-/m/{}">linux/amd64</a>"#,
            amd.digest
        )),
        "{html}"
    );
    assert!(html.contains("linux/arm64"));
    let (_, html) = page(&registry, "/ui/r/multi").await;
    assert!(html.contains("linux/amd64, linux/arm64"), "{html}");
    let (_, html) = page(&registry, &format!("/ui/r/multi/-/m/{}", amd.digest)).await;
    assert!(html.contains("application/spdx+json"), "{html}");
    assert!(html.contains(&digest));
}

#[tokio::test(flavor = "multi_thread")]
async fn layer_pages_list_files_and_explain_an_unreadable_layer() {
    let registry = Registry::start().await;
    let (_, layer) = push_described_image(&registry, "app", "v1").await;
    let (status, html) = page(&registry, &format!("/ui/r/app/-/layer/{}", layer.digest)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("bin/hello"), "{html}");
    assert!(html.contains("-rwxr-xr-x"));
    let (status, html) = page(&registry, "/ui/r/app/-/m/v1/files").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("bin/hello"), "{html}");

    // push_image's layer is random bytes: not a tar.
    let junk = registry.push_image("junk", "v1").await;
    let resp = registry
        .send(registry.get(&format!("/ui/r/junk/-/layer/{}", junk.layers[0].digest)))
        .await;
    assert!(
        resp.status() == 422 || resp.status() == 200,
        "{}",
        resp.status()
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("cannot be shown"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_lists_a_layers_files_and_an_images_tree() {
    let registry = Registry::start().await;
    let (_, layer) = push_described_image(&registry, "app", "v1").await;
    let resp = registry
        .send(registry.get(&format!(
            "/api/v1/repositories/app/blobs/{}/files",
            layer.digest
        )))
        .await;
    assert_eq!(resp.status(), 200);
    let listing = json_body(resp).await;
    assert_eq!(listing["entries"][0]["path"], "bin/hello", "{listing}");
    assert_eq!(listing["entries"][0]["mode"], 0o755, "{listing}");
    let resp = registry
        .send(registry.get("/api/v1/repositories/app/manifests/v1/files"))
        .await;
    assert_eq!(resp.status(), 200);
    let tree = json_body(resp).await;
    assert_eq!(tree["entries"][0]["path"], "bin/hello", "{tree}");
    let junk = registry.push_image("junk", "v1").await;
    let resp = registry
        .send(registry.get(&format!(
            "/api/v1/repositories/junk/blobs/{}/files",
            junk.layers[0].digest
        )))
        .await;
    assert_error(resp, 422, "UNSUPPORTED").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_is_deleted_after_confirmation_from_the_same_origin_only() {
    let registry = Registry::start().await;
    registry.push_image("app", "keep").await;
    registry.push_image("app", "drop").await;
    let (status, html) = page(&registry, "/ui/r/app/-/delete/drop").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"<form method="post" action="/ui/r/app/-/delete/drop">"#),
        "{html}"
    );

    let post = |site: &str, origin: &str| {
        registry
            .request(reqwest::Method::POST, "/ui/r/app/-/delete/drop")
            .header("sec-fetch-site", site)
            .header("origin", origin)
    };
    let resp = registry
        .send(post("cross-site", "http://evil.example"))
        .await;
    assert_eq!(resp.status(), 403);
    let origin = format!("http://{}", registry.addr);
    let resp = registry.send(post("same-origin", &origin)).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), Some("/ui/r/app"));
    let tags = json_body(registry.send(registry.get("/v2/app/tags/list")).await).await;
    assert_eq!(tags["tags"], json!(["keep"]));
    let (_, html) = page(&registry, "/ui/r/app").await;
    assert!(
        !html.contains(">drop</a>") && html.contains(">keep</a>"),
        "{html}"
    );

    // Deleting a repository's only manifest empties it: back to the list.
    let solo = registry.push_image("solo", "only").await;
    let (status, html) = page(&registry, &format!("/ui/r/solo/-/delete/{}", solo.digest)).await;
    assert_eq!(status, 200);
    assert!(html.contains("Tags that go with it: only"), "{html}");
    let resp = registry
        .send(
            registry
                .request(
                    reqwest::Method::POST,
                    &format!("/ui/r/solo/-/delete/{}", solo.digest),
                )
                .header("origin", origin.as_str()),
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), Some("/ui/"));
    assert_eq!(page(&registry, "/ui/r/solo").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_controls_hide_and_refuse_when_deletes_are_disabled() {
    let registry = Registry::start_with_env(&[("BERTH_DELETE_ENABLED", "false")]).await;
    registry.push_image("app", "v1").await;
    let (_, html) = page(&registry, "/ui/r/app").await;
    assert!(!html.contains("/-/delete/"), "{html}");
    let (status, _) = page(&registry, "/ui/r/app/-/delete/v1").await;
    assert_eq!(status, 405);
    let resp = registry
        .send(registry.request(reqwest::Method::POST, "/ui/r/app/-/delete/v1"))
        .await;
    assert_eq!(resp.status(), 405);
}

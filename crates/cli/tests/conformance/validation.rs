//! Repository names, tags and digests: the grammar of every `<name>`, `<reference>` and
//! `<digest>` in the spec's endpoints. Invalid names go over raw TCP because reqwest
//! normalises `..` and percent-escapes away.

use super::harness::*;
use reqwest::Method;

/// Endpoints that take a repository name, as `(method, path with {name})`.
const NAME_ENDPOINTS: [(&str, &str); 4] = [
    ("GET", "/v2/{name}/tags/list"),
    ("POST", "/v2/{name}/blobs/uploads/"),
    ("GET", "/v2/{name}/manifests/latest"),
    (
        "GET",
        "/v2/{name}/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
];

/// Sends every name endpoint for each name; panics listing every answer that is not
/// 400 NAME_INVALID.
async fn assert_names_invalid(registry: &Registry, names: &[&str]) {
    let mut wrong = Vec::new();
    for name in names {
        for (method, template) in NAME_ENDPOINTS {
            let path = template.replace("{name}", name);
            let resp = registry.raw_simple(method, &path).await;
            if resp.status != 400 || resp.codes() != ["NAME_INVALID"] {
                wrong.push(format!(
                    "{method} {path} -> {} {:?}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 400 NAME_INVALID for:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_repository_names_work_end_to_end() {
    let registry = Registry::start().await;
    for repo in [
        "myorg/team/app",
        "a/b/c/d/e",
        "my-org.io/under_score/x__y/a--b",
    ] {
        let image = registry.push_image(repo, "v1").await;
        let resp = registry
            .send(registry.get(&format!("/v2/{repo}/manifests/v1")))
            .await;
        assert_eq!(resp.status(), 200, "{repo}");
        let layer = &image.layers[0].digest;
        let resp = registry
            .send(registry.get(&format!("/v2/{repo}/blobs/{layer}")))
            .await;
        assert_eq!(resp.status(), 200, "{repo}");
        let tags = json_body(
            registry
                .send(registry.get(&format!("/v2/{repo}/tags/list")))
                .await,
        )
        .await;
        assert_eq!(tags["name"], *repo);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upper_case_names_are_name_invalid() {
    let registry = Registry::start().await;
    assert_names_invalid(&registry, &["Busybox", "library/Ubuntu"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_with_empty_components_or_stray_separators_are_name_invalid() {
    let registry = Registry::start().await;
    assert_names_invalid(
        &registry,
        &[
            "a//b", "-app", "app-", "_app", "app.", "a/.b", "a/b_", "a___b", "a._b",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_dot_segments_are_name_invalid() {
    let registry = Registry::start().await;
    assert_names_invalid(
        &registry,
        &[
            "a/../b",
            "../app",
            "app/..",
            "a/./b",
            "a/%2e%2e/b",
            "%2e%2e/%2e%2e/etc",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_with_characters_outside_the_grammar_are_name_invalid() {
    let registry = Registry::start().await;
    assert_names_invalid(&registry, &["a%20b", "a%00b", "caf%C3%A9", "a:b", "a@b"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_names_do_not_reach_outside_the_data_dir() {
    // Even a name that slipped through must not write outside: push, then look for the file.
    let registry = Registry::start().await;
    let resp = registry
        .raw_simple("POST", "/v2/../../../../tmp/berth-traversal/blobs/uploads/")
        .await;
    assert_eq!(
        (resp.status, resp.codes()),
        (400, vec!["NAME_INVALID".to_string()])
    );
    assert!(!std::path::Path::new("/tmp/berth-traversal").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_of_128_characters_and_the_full_alphabet_are_accepted() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let long = format!("a{}", "b".repeat(127));
    for tag in [
        long.as_str(),
        "_underscore",
        "0",
        "V1.2.3-rc.1_build",
        "a-.-_",
    ] {
        registry
            .push_manifest("app", tag, OCI_MANIFEST, &image.manifest)
            .await;
        let resp = registry
            .send(registry.get(&format!("/v2/app/manifests/{tag}")))
            .await;
        assert_eq!(resp.status(), 200, "tag {tag}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_tags_on_manifest_put_are_manifest_invalid() {
    // The spec has no tag error code (TAG_INVALID is legacy and optional);
    // berth answers MANIFEST_INVALID for a reference that is neither a tag nor a digest.
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let too_long = format!("a{}", "b".repeat(128));
    let mut wrong = Vec::new();
    for tag in [
        too_long.as_str(),
        ".hidden",
        "-dash",
        "with%20space",
        "semi;colon",
        "plus+sign",
    ] {
        let resp = registry
            .put_manifest("app", tag, OCI_MANIFEST, &image.manifest)
            .await;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if status != 400 || !body.contains("\"MANIFEST_INVALID\"") {
            wrong.push(format!("{tag}: {status} {body}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 400 MANIFEST_INVALID for:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_and_deletes_of_an_invalid_tag_are_manifest_unknown() {
    // The OCI conformance suite (v1.1.1) pulls `.INVALID_MANIFEST_NAME` and
    // expects 404: no manifest can have that reference. PUT keeps 400 (above).
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    let too_long = format!("a{}", "b".repeat(128));
    for tag in [".INVALID_MANIFEST_NAME", "-dash", too_long.as_str()] {
        let path = format!("/v2/app/manifests/{tag}");
        let resp = registry.send(registry.get(&path)).await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
        let resp = registry.send(registry.delete(&path)).await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
        let resp = registry.send(registry.head(&path)).await;
        assert_eq!(resp.status(), 404, "HEAD {path}");
    }
    // In a repository that does not exist either.
    let resp = registry
        .send(registry.get("/v2/nowhere/manifests/.INVALID_MANIFEST_NAME"))
        .await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_with_a_trailing_slash_redirect_like_distribution() {
    let registry = Registry::start().await;
    registry.push_image("org/app", "v1").await;
    for (path, target) in [
        ("/v2/_catalog/", "/v2/_catalog"),
        ("/v2/_catalog/?n=1&last=a", "/v2/_catalog?n=1&last=a"),
        ("/v2/org/app/tags/list/", "/v2/org/app/tags/list"),
        ("/v2/org/app/tags/list/?n=5", "/v2/org/app/tags/list?n=5"),
    ] {
        let resp = registry.send(registry.get(path)).await;
        assert_eq!(resp.status(), 301, "GET {path}");
        let location = required_header(&resp, "location");
        assert_eq!(location_path(location), target, "GET {path}");
        // Following it gets the listing.
        let listing = registry.send(registry.get(location_path(location))).await;
        assert_eq!(listing.status(), 200, "GET {target}");
    }
    let resp = registry.send(registry.head("/v2/org/app/tags/list/")).await;
    assert_eq!(resp.status(), 301);
    // A client that follows redirects, as docker's and curl -L do, gets the tags.
    let following = reqwest::Client::new();
    let resp = following
        .get(registry.url("/v2/org/app/tags/list/"))
        .send()
        .await
        .unwrap();
    let tags = json_body(resp).await;
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
}

/// Each request that takes a digest, built for `digest`; all must answer 400 DIGEST_INVALID.
async fn assert_digest_invalid_everywhere(registry: &Registry, digest: &str) {
    let upload = registry.start_upload("app").await;
    let requests = [
        registry.get(&format!("/v2/app/blobs/{digest}")),
        registry.head(&format!("/v2/app/blobs/{digest}")),
        registry.delete(&format!("/v2/app/blobs/{digest}")),
        registry
            .request(
                Method::POST,
                &format!("/v2/app/blobs/uploads/?digest={digest}"),
            )
            .body(b"x".to_vec()),
        registry
            .client
            .put(with_query(&upload, "digest", digest))
            .body(b"x".to_vec()),
        registry.get(&format!("/v2/app/manifests/{digest}")),
        registry.get(&format!("/v2/app/referrers/{digest}")),
        registry.request(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?mount={digest}&from=other"),
        ),
    ];
    let mut wrong = Vec::new();
    for request in requests {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        let is_head = request.method() == Method::HEAD;
        let resp = registry.client.execute(request).await.expect("send");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let code_ok = is_head || body.contains("\"DIGEST_INVALID\"");
        if status != 400 || !code_ok {
            wrong.push(format!("{what} -> {status} {body}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 400 DIGEST_INVALID for {digest}:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn digests_of_the_wrong_length_are_digest_invalid() {
    let registry = Registry::start().await;
    let short = format!("sha256:{}", "a".repeat(63));
    let long = format!("sha256:{}", "a".repeat(65));
    let sha512_short = format!("sha512:{}", "a".repeat(64));
    for digest in [short, long, sha512_short, "sha256:".to_string()] {
        assert_digest_invalid_everywhere(&registry, &digest).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upper_case_hex_digests_are_digest_invalid() {
    let registry = Registry::start().await;
    let digest = sha256_digest(b"abc")
        .to_uppercase()
        .replacen("SHA256", "sha256", 1);
    assert_digest_invalid_everywhere(&registry, &digest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_digest_algorithms_are_digest_invalid() {
    let registry = Registry::start().await;
    for digest in [
        format!("md5:{}", "a".repeat(32)),
        format!("sha999:{}", "a".repeat(64)),
        format!("sha256:{}", "g".repeat(64)),
    ] {
        assert_digest_invalid_everywhere(&registry, &digest).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sha512_blobs_can_be_pushed_and_fetched() {
    let registry = Registry::start().await;
    let blob = random_bytes(3_000);
    let digest = sha512_digest(&blob);
    let resp = registry.post_blob("app", &digest, blob.clone()).await;
    assert_eq!(resp.status(), 201);
    let resp = registry
        .send(registry.get(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), blob);

    // And through a session closed by PUT.
    let blob = random_bytes(2_000);
    let digest = sha512_digest(&blob);
    let upload = registry.start_upload("app").await;
    let resp = registry
        .send(
            registry
                .client
                .put(with_query(&upload, "digest", &digest))
                .body(blob.clone()),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let resp = registry
        .send(registry.head(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(required_header(&resp, "content-length"), "2000");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sha512_digest_that_does_not_match_is_digest_invalid() {
    let registry = Registry::start().await;
    let digest = sha512_digest(b"claimed");
    let resp = registry
        .send(
            registry
                .request(
                    Method::POST,
                    &format!("/v2/app/blobs/uploads/?digest={digest}"),
                )
                .body(b"actual".to_vec()),
        )
        .await;
    assert_error(resp, 400, "DIGEST_INVALID").await;
    let resp = registry
        .send(registry.get(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_error(resp, 404, "BLOB_UNKNOWN").await;
}

//! Content discovery: `GET /v2/<name>/tags/list` (end-8a/8b), `GET /v2/_catalog`,
//! `GET /v2/<name>/referrers/<digest>` (end-12a/12b).

use super::harness::*;
use serde_json::{json, Value};

/// Pushes one image and tags it with every tag in `tags`.
async fn push_tags(registry: &Registry, repo: &str, tags: &[&str]) -> Image {
    let image = registry.push_image(repo, tags[0]).await;
    for tag in &tags[1..] {
        registry
            .push_manifest(repo, tag, OCI_MANIFEST, &image.manifest)
            .await;
    }
    image
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

/// The `next` target of a `Link: <url>; rel="next"` header, if any.
fn next_link(resp: &reqwest::Response) -> Option<String> {
    let link = header(resp, "link")?;
    assert!(
        link.contains("rel=\"next\""),
        "Link without rel=\"next\": {link}"
    );
    let start = link.find('<').expect("Link has <url>") + 1;
    let end = link.find('>').expect("Link has <url>");
    Some(link[start..end].to_string())
}

/// Follows `Link` headers from `first` to the end; returns each page's list under `key`.
async fn collect_pages(registry: &Registry, first: &str, key: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(registry.url(first));
    while let Some(url) = next {
        assert!(pages.len() < 50, "pagination does not end");
        let resp = registry
            .send(registry.client.get(registry.resolve(&url)))
            .await;
        assert_eq!(resp.status(), 200, "{url}");
        next = next_link(&resp);
        pages.push(strings(&json_body(resp).await[key]));
    }
    pages
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_list_names_the_repository_and_sorts_tags_lexically() {
    let registry = Registry::start().await;
    push_tags(
        &registry,
        "org/app",
        &["v2", "latest", "v10", "1.0", "b", "a"],
    )
    .await;
    let resp = registry.send(registry.get("/v2/org/app/tags/list")).await;
    assert_eq!(resp.status(), 200);
    let body = json_body(resp).await;
    assert_eq!(body["name"], "org/app");
    assert_eq!(
        strings(&body["tags"]),
        ["1.0", "a", "b", "latest", "v10", "v2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_list_paginates_with_n_last_and_link() {
    let registry = Registry::start().await;
    push_tags(&registry, "app", &["e", "d", "c", "b", "a"]).await;
    let pages = collect_pages(&registry, "/v2/app/tags/list?n=2", "tags").await;
    assert_eq!(pages, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);

    let resp = registry.send(registry.get("/v2/app/tags/list?n=2")).await;
    assert_eq!(
        required_header(&resp, "link"),
        "</v2/app/tags/list?n=2&last=b>; rel=\"next\"",
        "berth's documented Link format"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_list_with_last_starts_after_that_tag() {
    let registry = Registry::start().await;
    push_tags(&registry, "app", &["a", "b", "c", "d"]).await;
    let body = json_body(
        registry
            .send(registry.get("/v2/app/tags/list?n=2&last=a"))
            .await,
    )
    .await;
    assert_eq!(strings(&body["tags"]), ["b", "c"]);
    let body = json_body(
        registry
            .send(registry.get("/v2/app/tags/list?last=b"))
            .await,
    )
    .await;
    assert_eq!(
        strings(&body["tags"]),
        ["c", "d"],
        "n is optional with last"
    );
    let body = json_body(
        registry
            .send(registry.get("/v2/app/tags/list?last=bb"))
            .await,
    )
    .await;
    assert_eq!(
        strings(&body["tags"]),
        ["c", "d"],
        "last need not be an existing tag"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_list_with_n_zero_is_empty_without_link() {
    let registry = Registry::start().await;
    push_tags(&registry, "app", &["a", "b"]).await;
    let resp = registry.send(registry.get("/v2/app/tags/list?n=0")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "link"), None);
    let body = json_body(resp).await;
    assert_eq!(body["tags"].as_array().map_or(0, Vec::len), 0, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_list_accepts_n_of_1000_and_returns_everything_without_link() {
    let registry = Registry::start().await;
    push_tags(&registry, "app", &["x", "y", "z"]).await;
    let resp = registry
        .send(registry.get("/v2/app/tags/list?n=1000"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "link"), None);
    assert_eq!(strings(&json_body(resp).await["tags"]), ["x", "y", "z"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_list_of_an_unknown_repository_is_name_unknown() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    let resp = registry.send(registry.get("/v2/nope/tags/list")).await;
    assert_error(resp, 404, "NAME_UNKNOWN").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_lists_repositories_sorted() {
    let registry = Registry::start().await;
    for repo in ["zeta", "alpha/one", "mid/dle/deep", "alpha"] {
        registry.push_image(repo, "v1").await;
    }
    let resp = registry.send(registry.get("/v2/_catalog")).await;
    assert_eq!(resp.status(), 200);
    let body = json_body(resp).await;
    assert_eq!(
        strings(&body["repositories"]),
        ["alpha", "alpha/one", "mid/dle/deep", "zeta"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_paginates_with_n_last_and_link() {
    let registry = Registry::start().await;
    for repo in ["e", "d", "c", "b", "a"] {
        registry.push_image(repo, "v1").await;
    }
    let pages = collect_pages(&registry, "/v2/_catalog?n=2", "repositories").await;
    assert_eq!(pages, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
    let resp = registry.send(registry.get("/v2/_catalog?n=2")).await;
    assert_eq!(
        required_header(&resp, "link"),
        "</v2/_catalog?n=2&last=b>; rel=\"next\""
    );
    let body = json_body(registry.send(registry.get("/v2/_catalog?n=2&last=c")).await).await;
    assert_eq!(strings(&body["repositories"]), ["d", "e"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_accepts_n_of_1000() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    let resp = registry.send(registry.get("/v2/_catalog?n=1000")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "link"), None);
    assert_eq!(strings(&json_body(resp).await["repositories"]), ["app"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_of_an_empty_registry_is_an_empty_list() {
    let registry = Registry::start().await;
    let resp = registry.send(registry.get("/v2/_catalog")).await;
    assert_eq!(resp.status(), 200);
    let body = json_body(resp).await;
    assert_eq!(
        body["repositories"].as_array().map_or(0, Vec::len),
        0,
        "{body}"
    );
}

/// Pushes an artifact whose subject is `subject` and returns its bytes.
async fn push_referrer(
    registry: &Registry,
    repo: &str,
    subject: &Descriptor,
    artifact: ManifestBuilder,
) -> Vec<u8> {
    registry.push_blob(repo, EMPTY_JSON).await;
    let manifest = artifact.subject(subject).build();
    let digest = sha256_digest(&manifest);
    registry
        .push_manifest(repo, &digest, OCI_MANIFEST, &manifest)
        .await;
    manifest
}

/// GETs the referrers index for `subject`; checks status, Content-Type and index shape.
async fn referrers(
    registry: &Registry,
    repo: &str,
    subject: &str,
    query: &str,
) -> (reqwest::header::HeaderMap, Vec<Value>) {
    let resp = registry
        .send(registry.get(&format!("/v2/{repo}/referrers/{subject}{query}")))
        .await;
    assert_eq!(resp.status(), 200, "referrers of {subject}{query}");
    assert_eq!(required_header(&resp, "content-type"), OCI_INDEX);
    let headers = resp.headers().clone();
    let body = json_body(resp).await;
    assert_eq!(body["schemaVersion"], 2, "{body}");
    assert_eq!(body["mediaType"], OCI_INDEX, "{body}");
    let manifests = body["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests array: {body}"))
        .clone();
    (headers, manifests)
}

fn by_digest<'a>(manifests: &'a [Value], digest: &str) -> &'a Value {
    manifests
        .iter()
        .find(|m| m["digest"] == digest)
        .unwrap_or_else(|| panic!("{digest} not among referrers {manifests:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_lists_descriptors_of_manifests_whose_subject_is_the_digest() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let sbom = push_referrer(
        &registry,
        "app",
        &image.descriptor(),
        ManifestBuilder::artifact("application/vnd.example.sbom.v1", &[])
            .annotation("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
            .annotation("org.example.sbom.format", "json"),
    )
    .await;
    let signature = push_referrer(
        &registry,
        "app",
        &image.descriptor(),
        ManifestBuilder::artifact("application/vnd.example.signature.v1", &[]),
    )
    .await;
    // A referrer of something else must not appear.
    let other = registry.push_image("app", "v2").await;
    push_referrer(
        &registry,
        "app",
        &other.descriptor(),
        ManifestBuilder::artifact("application/vnd.example.x", &[]),
    )
    .await;

    let (_, manifests) = referrers(&registry, "app", &image.digest, "").await;
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let entry = by_digest(&manifests, &sha256_digest(&sbom));
    assert_eq!(
        *entry,
        json!({
            "mediaType": OCI_MANIFEST,
            "digest": sha256_digest(&sbom),
            "size": sbom.len(),
            "artifactType": "application/vnd.example.sbom.v1",
            "annotations": {
                "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
                "org.example.sbom.format": "json"
            }
        })
    );
    let entry = by_digest(&manifests, &sha256_digest(&signature));
    assert_eq!(
        entry["artifactType"],
        "application/vnd.example.signature.v1"
    );
    assert_eq!(entry["size"], signature.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn referrer_without_artifact_type_takes_its_config_media_type() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let config = registry
        .push_descriptor(
            "app",
            "application/vnd.example.config.v1+json",
            b"{\"k\":1}",
        )
        .await;
    let manifest = ManifestBuilder::image(&config, &[])
        .subject(&image.descriptor())
        .build();
    registry
        .push_manifest("app", "signed", OCI_MANIFEST, &manifest)
        .await;
    let (_, manifests) = referrers(&registry, "app", &image.digest, "").await;
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["artifactType"],
        "application/vnd.example.config.v1+json"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn index_referrer_without_artifact_type_omits_it() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let child = registry.push_image("app", "child").await;
    let index = ManifestBuilder::index(&[child.descriptor()])
        .subject(&image.descriptor())
        .build();
    let resp = registry.put_manifest("app", "idx", OCI_INDEX, &index).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        required_header(&resp, "oci-subject"),
        image.digest,
        "an index with a subject too"
    );
    let (_, manifests) = referrers(&registry, "app", &image.digest, "").await;
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["mediaType"], OCI_INDEX);
    assert_eq!(manifests[0]["digest"], sha256_digest(&index));
    assert!(
        manifests[0].get("artifactType").is_none(),
        "{}",
        manifests[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_of_a_digest_without_referrers_is_an_empty_index() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let (_, manifests) = referrers(&registry, "app", &image.digest, "").await;
    assert!(manifests.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_are_listed_even_when_the_subject_does_not_exist() {
    let registry = Registry::start().await;
    registry.push_image("app", "v1").await;
    let ghost = Descriptor::of(OCI_MANIFEST, b"{\"ghost\":true}");
    let (_, manifests) = referrers(&registry, "app", &ghost.digest, "").await;
    assert!(manifests.is_empty());
    let sbom = push_referrer(
        &registry,
        "app",
        &ghost,
        ManifestBuilder::artifact("application/vnd.example.sbom.v1", &[]),
    )
    .await;
    let (_, manifests) = referrers(&registry, "app", &ghost.digest, "").await;
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["digest"], sha256_digest(&sbom));
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_in_another_repository_are_not_listed() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    registry.push_image("other", "v1").await;
    push_referrer(
        &registry,
        "other",
        &image.descriptor(),
        ManifestBuilder::artifact("application/vnd.example.x", &[]),
    )
    .await;
    let (_, manifests) = referrers(&registry, "app", &image.digest, "").await;
    assert!(manifests.is_empty(), "{manifests:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_artifact_type_filter_is_applied_and_announced() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let sbom_type = "application/vnd.example.sbom.v1+json";
    let sbom = push_referrer(
        &registry,
        "app",
        &image.descriptor(),
        ManifestBuilder::artifact(sbom_type, &[]),
    )
    .await;
    push_referrer(
        &registry,
        "app",
        &image.descriptor(),
        ManifestBuilder::artifact("application/vnd.example.signature.v1", &[]),
    )
    .await;
    let query = format!("?artifactType={}", encode_query_value(sbom_type));
    let (headers, manifests) = referrers(&registry, "app", &image.digest, &query).await;
    assert_eq!(
        headers
            .get("oci-filters-applied")
            .map(|v| v.to_str().unwrap()),
        Some("artifactType")
    );
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    assert_eq!(manifests[0]["digest"], sha256_digest(&sbom));

    let (headers, manifests) = referrers(
        &registry,
        "app",
        &image.digest,
        "?artifactType=application/x-none",
    )
    .await;
    assert_eq!(
        headers
            .get("oci-filters-applied")
            .map(|v| v.to_str().unwrap()),
        Some("artifactType")
    );
    assert!(manifests.is_empty());

    let (headers, _) = referrers(&registry, "app", &image.digest, "").await;
    assert!(
        headers.get("oci-filters-applied").is_none(),
        "no filter requested, none announced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_pagination_over_nested_names_visits_every_repository_once() {
    let registry = Registry::start().await;
    for repo in ["e", "d/x", "c", "b/y/z", "b", "a"] {
        registry.push_image(repo, "v1").await;
    }
    let pages = collect_pages(&registry, "/v2/_catalog?n=2", "repositories").await;
    assert_eq!(
        pages,
        [vec!["a", "b"], vec!["b/y/z", "c"], vec!["d/x", "e"]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_come_in_pages_by_digest_following_link() {
    let registry = Registry::start().await;
    let image = registry.push_image("app", "v1").await;
    let mut expected = Vec::new();
    for i in 0..5 {
        let artifact = ManifestBuilder::artifact("application/vnd.example.sbom.v1", &[])
            .annotation("n", &i.to_string());
        let manifest = push_referrer(&registry, "app", &image.descriptor(), artifact).await;
        expected.push(sha256_digest(&manifest));
    }
    expected.sort();
    let mut next = Some(format!(
        "/v2/app/referrers/{}?artifactType=application/vnd.example.sbom.v1&n=2",
        image.digest
    ));
    let mut pages = Vec::new();
    while let Some(path) = next.take() {
        let resp = registry.send(registry.get(&path)).await;
        assert_eq!(resp.status(), 200, "{path}");
        next = next_link(&resp);
        let body = json_body(resp).await;
        let page: Vec<String> = body["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .map(|m| m["digest"].as_str().expect("digest").to_string())
            .collect();
        pages.push(page);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), expected);
}

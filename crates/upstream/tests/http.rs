//! HttpUpstream against scripted registries on loopback: authentication,
//! token caching, retries, status mapping, redirects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod fake;

use base64::Engine as _;
use berth_oci::Digest;
use berth_registry::pull_through::{Upstream, UpstreamError};
use berth_upstream::{Credentials, HttpUpstream, UpstreamSettings, MANIFEST_ACCEPT};
use fake::{bearer_challenge, status, with_headers, Ctx, Fake};
use futures_util::TryStreamExt;
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MANIFEST: &str = r#"{"schemaVersion":2}"#;

fn settings(fake: &Fake) -> UpstreamSettings {
    UpstreamSettings {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..UpstreamSettings::new("fake", fake.url())
    }
}

fn upstream(fake: &Fake) -> HttpUpstream {
    HttpUpstream::new(settings(fake)).unwrap()
}

fn basic(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

fn manifest_digest() -> Digest {
    Digest::sha256_of(MANIFEST.as_bytes())
}

fn manifest_ok() -> axum::response::Response {
    let digest = manifest_digest().to_string();
    with_headers(
        200,
        &[
            ("content-type", OCI_MANIFEST),
            ("docker-content-digest", &digest),
        ],
        MANIFEST,
    )
}

/// A token endpoint at `/token` issuing `tok<N>` (N = how many came
/// before, from 1), valid `expires_in` seconds; repositories accept only
/// the newest token.
fn token_registry(expires_in: u64) -> impl Fn(&Ctx) -> axum::response::Response {
    move |ctx: &Ctx| {
        let issued = ctx.count("/token");
        match ctx.req.path.as_str() {
            "/token" => with_headers(
                200,
                &[("content-type", "application/json")],
                format!(
                    r#"{{"token":"tok{}","expires_in":{expires_in}}}"#,
                    issued + 1
                ),
            ),
            _ if ctx.req.header("authorization") != Some(&format!("Bearer tok{issued}")) => {
                bearer_challenge(ctx)
            }
            "/v2/" => status(200),
            _ => manifest_ok(),
        }
    }
}

#[tokio::test]
async fn anonymous_bearer_token_is_fetched_once_and_reused() {
    let fake = Fake::start(token_registry(300)).await;
    let up = upstream(&fake);
    for _ in 0..2 {
        let manifest = up.manifest("library/busybox", "latest").await.unwrap();
        assert_eq!(manifest.bytes, MANIFEST.as_bytes());
        assert_eq!(manifest.media_type, OCI_MANIFEST);
        assert_eq!(manifest.digest, Some(manifest_digest()));
    }
    let tokens = fake.to("/token");
    assert_eq!(tokens.len(), 1, "{:?}", fake.seen());
    assert_eq!(
        tokens[0].param("scope").as_deref(),
        Some("repository:library/busybox:pull")
    );
    assert_eq!(tokens[0].param("service").as_deref(), Some("fake"));
    assert_eq!(tokens[0].header("authorization"), None, "anonymous");
    assert_eq!(fake.to("/v2/").len(), 1, "one ping");
    let gets = fake.to("/v2/library/busybox/manifests/latest");
    assert_eq!(gets.len(), 2);
    for get in gets {
        assert_eq!(get.header("authorization"), Some("Bearer tok1"));
        assert_eq!(get.header("accept"), Some(MANIFEST_ACCEPT));
    }
}

#[test]
fn accept_lists_every_manifest_type_berth_serves() {
    let listed: Vec<&str> = MANIFEST_ACCEPT.split(',').map(str::trim).collect();
    assert_eq!(
        listed,
        [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
    );
}

#[tokio::test]
async fn a_token_per_scope() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/token" => with_headers(200, &[], r#"{"access_token":"t"}"#),
        _ if ctx.req.header("authorization") != Some("Bearer t") => bearer_challenge(ctx),
        _ => manifest_ok(),
    })
    .await;
    let up = upstream(&fake);
    up.manifest("a", "1").await.unwrap();
    up.manifest("b", "1").await.unwrap();
    up.manifest("a", "2").await.unwrap();
    let scopes: Vec<_> = fake
        .to("/token")
        .iter()
        .map(|t| t.param("scope").unwrap())
        .collect();
    assert_eq!(scopes, ["repository:a:pull", "repository:b:pull"]);
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    let fake = Fake::start(token_registry(1)).await;
    let up = upstream(&fake);
    up.manifest("r", "latest").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    up.manifest("r", "latest").await.unwrap();
    assert_eq!(fake.to("/token").len(), 2, "{:?}", fake.seen());
    let auths: Vec<_> = fake
        .to("/v2/r/manifests/latest")
        .iter()
        .map(|s| s.header("authorization").unwrap().to_string())
        .collect();
    // No request went out with the stale token.
    assert_eq!(auths, ["Bearer tok1", "Bearer tok2"]);
}

#[tokio::test]
async fn a_refused_cached_token_is_renewed_once() {
    // Tokens live 300 s, but the registry revokes tok1 after its first use.
    let fake = Fake::start(|ctx: &Ctx| {
        let issued = ctx.count("/token");
        match ctx.req.path.as_str() {
            "/token" => with_headers(200, &[], format!(r#"{{"token":"tok{}"}}"#, issued + 1)),
            "/v2/" => bearer_challenge(ctx),
            _ if ctx.req.header("authorization") == Some("Bearer tok1")
                && ctx.count("/v2/r/manifests/1") == 0 =>
            {
                manifest_ok()
            }
            _ if ctx.req.header("authorization") == Some("Bearer tok2") => manifest_ok(),
            _ => bearer_challenge(ctx),
        }
    })
    .await;
    let up = upstream(&fake);
    up.manifest("r", "1").await.unwrap();
    up.manifest("r", "1").await.unwrap();
    assert_eq!(fake.to("/token").len(), 2);
    let auths: Vec<_> = fake
        .to("/v2/r/manifests/1")
        .iter()
        .map(|s| s.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(auths, ["Bearer tok1", "Bearer tok1", "Bearer tok2"]);
}

#[tokio::test]
async fn a_registry_that_keeps_refusing_is_unauthorized_after_one_renewal() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/token" => with_headers(200, &[], r#"{"token":"useless-token"}"#),
        _ => bearer_challenge(ctx),
    })
    .await;
    let up = upstream(&fake);
    let err = up.manifest("private/app", "latest").await.unwrap_err();
    let UpstreamError::Unauthorized(why) = err else {
        panic!("{err:?}")
    };
    assert!(!why.contains("useless-token"), "{why}");
    assert_eq!(fake.to("/v2/private/app/manifests/latest").len(), 2);
    assert_eq!(fake.to("/token").len(), 2);
}

#[tokio::test]
async fn bearer_with_credentials_sends_them_to_the_token_endpoint_only() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/token" if ctx.req.header("authorization") == Some(&basic("me", "pw")) => {
            with_headers(200, &[], r#"{"token":"t","expires_in":300}"#)
        }
        "/token" => status(401),
        _ if ctx.req.header("authorization") != Some("Bearer t") => bearer_challenge(ctx),
        _ => manifest_ok(),
    })
    .await;
    let up = HttpUpstream::new(UpstreamSettings {
        credentials: Credentials::Basic {
            username: "me".into(),
            password: "pw".into(),
        },
        ..settings(&fake)
    })
    .unwrap();
    up.manifest("r", "latest").await.unwrap();
    assert_eq!(
        fake.to("/v2/r/manifests/latest")[0].header("authorization"),
        Some("Bearer t")
    );

    // Wrong credentials: the token endpoint's refusal is Unauthorized.
    let wrong = HttpUpstream::new(UpstreamSettings {
        credentials: Credentials::Basic {
            username: "me".into(),
            password: "wrong-password".into(),
        },
        ..settings(&fake)
    })
    .unwrap();
    let err = wrong.manifest("r", "latest").await.unwrap_err();
    let UpstreamError::Unauthorized(why) = err else {
        panic!("{err:?}")
    };
    assert!(why.contains("token endpoint"), "{why}");
    assert!(!why.contains("wrong-password"), "{why}");
}

#[tokio::test]
async fn basic_upstream_gets_the_credentials_on_each_request() {
    let fake = Fake::start(|ctx: &Ctx| {
        if ctx.req.header("authorization") != Some(&basic("me", "pw")) {
            return with_headers(
                401,
                &[("www-authenticate", r#"Basic realm="Registry Realm""#)],
                "",
            );
        }
        match ctx.req.path.as_str() {
            "/v2/" => status(200),
            _ => manifest_ok(),
        }
    })
    .await;
    let up = HttpUpstream::new(UpstreamSettings {
        credentials: Credentials::Basic {
            username: "me".into(),
            password: "pw".into(),
        },
        ..settings(&fake)
    })
    .unwrap();
    up.manifest("r", "latest").await.unwrap();
    assert_eq!(
        up.manifest_digest("r", "latest").await.unwrap(),
        manifest_digest()
    );
    assert!(fake.to("/token").is_empty());
    for request in fake.to("/v2/r/manifests/latest") {
        assert_eq!(
            request.header("authorization"),
            Some(basic("me", "pw").as_str())
        );
    }

    let anonymous = upstream(&fake);
    assert!(matches!(
        anonymous.manifest("r", "latest").await,
        Err(UpstreamError::Unauthorized(_))
    ));
}

#[tokio::test]
async fn open_registry_gets_no_authorization() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        _ => manifest_ok(),
    })
    .await;
    upstream(&fake).manifest("r", "latest").await.unwrap();
    assert!(fake
        .seen()
        .iter()
        .all(|s| s.header("authorization").is_none()));
}

#[tokio::test]
async fn rate_limited_with_retry_after_is_not_retried() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        _ => with_headers(429, &[("retry-after", "30")], ""),
    })
    .await;
    let err = upstream(&fake).manifest("r", "latest").await.unwrap_err();
    assert_eq!(
        err,
        UpstreamError::RateLimited {
            retry_after: Some(30)
        }
    );
    assert_eq!(fake.to("/v2/r/manifests/latest").len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        _ => status(503),
    })
    .await;
    let err = upstream(&fake).manifest("r", "latest").await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unavailable(_)), "{err:?}");
    assert_eq!(fake.to("/v2/r/manifests/latest").len(), 3, "1 + 2 retries");
}

#[tokio::test]
async fn a_server_error_then_success_succeeds() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        path if ctx.count(path) == 0 => status(502),
        _ => manifest_ok(),
    })
    .await;
    upstream(&fake).manifest("r", "latest").await.unwrap();
    assert_eq!(fake.to("/v2/r/manifests/latest").len(), 2);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        _ => status(404),
    })
    .await;
    let up = upstream(&fake);
    assert_eq!(
        up.manifest("r", "nope").await.unwrap_err(),
        UpstreamError::NotFound
    );
    let digest = manifest_digest();
    assert_eq!(
        up.blob_size("r", &digest).await.unwrap_err(),
        UpstreamError::NotFound
    );
    assert_eq!(fake.to("/v2/r/manifests/nope").len(), 1);
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let up = HttpUpstream::new(UpstreamSettings {
        retries: 1,
        ..UpstreamSettings::new("gone", url)
    })
    .unwrap();
    let err = up.manifest("r", "latest").await.unwrap_err();
    let UpstreamError::Unavailable(why) = err else {
        panic!("{err:?}")
    };
    assert!(why.to_lowercase().contains("refused"), "{why}");
}

#[tokio::test]
async fn a_manifest_over_4_mib_is_invalid() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        _ => with_headers(
            200,
            &[("content-type", OCI_MANIFEST)],
            vec![b' '; 4 * 1024 * 1024 + 1],
        ),
    })
    .await;
    let err = upstream(&fake).manifest("r", "big").await.unwrap_err();
    assert!(matches!(err, UpstreamError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn a_malformed_digest_header_is_invalid() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        _ => with_headers(
            200,
            &[
                ("content-type", OCI_MANIFEST),
                ("docker-content-digest", "sha256:nothex"),
            ],
            MANIFEST,
        ),
    })
    .await;
    let up = upstream(&fake);
    let err = up.manifest("r", "latest").await.unwrap_err();
    assert!(matches!(err, UpstreamError::Invalid(_)), "{err:?}");
    let err = up.manifest_digest("r", "latest").await.unwrap_err();
    assert!(matches!(err, UpstreamError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn manifest_digest_is_a_head() {
    let fake = Fake::start(|ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        _ => manifest_ok(),
    })
    .await;
    let digest = upstream(&fake)
        .manifest_digest("r", "latest")
        .await
        .unwrap();
    assert_eq!(digest, manifest_digest());
    let requests = fake.to("/v2/r/manifests/latest");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "HEAD");
    assert_eq!(requests[0].header("accept"), Some(MANIFEST_ACCEPT));
}

#[tokio::test]
async fn blobs_stream_with_their_size() {
    let body = vec![7u8; 300_000];
    let digest = Digest::sha256_of(&body);
    let served = body.clone();
    let fake = Fake::start(move |ctx: &Ctx| match ctx.req.path.as_str() {
        "/v2/" => status(200),
        _ => with_headers(200, &[], served.clone()),
    })
    .await;
    let up = upstream(&fake);
    let blob = up.blob("r", &digest).await.unwrap();
    assert_eq!(blob.size, Some(300_000));
    let chunks: Vec<bytes::Bytes> = blob.body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), body);
    assert_eq!(up.blob_size("r", &digest).await.unwrap(), 300_000);
    let path = format!("/v2/r/blobs/{digest}");
    let methods: Vec<_> = fake.to(&path).iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, ["GET", "HEAD"]);
}

#[tokio::test]
async fn a_blob_redirect_to_another_host_drops_authorization() {
    let body = b"layer bytes".to_vec();
    let digest = Digest::sha256_of(&body);
    let served = body.clone();
    // The registry on 127.0.0.1 redirects to a "CDN" named localhost:
    // the same server, another host name.
    let fake = Fake::start(move |ctx: &Ctx| match ctx.req.path.as_str() {
        "/token" => with_headers(200, &[], r#"{"token":"secret-token"}"#),
        "/cdn/layer" => with_headers(200, &[], served.clone()),
        _ if ctx.req.header("authorization") != Some("Bearer secret-token") => {
            bearer_challenge(ctx)
        }
        "/v2/" => status(200),
        _ => {
            let location = format!("http://localhost:{}/cdn/layer", ctx.addr.port());
            with_headers(307, &[("location", &location)], "")
        }
    })
    .await;
    let blob = upstream(&fake).blob("r", &digest).await.unwrap();
    let chunks: Vec<bytes::Bytes> = blob.body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), body);
    let cdn = fake.to("/cdn/layer");
    assert_eq!(cdn.len(), 1);
    assert!(cdn[0].header("host").unwrap().starts_with("localhost:"));
    assert_eq!(cdn[0].header("authorization"), None);
}

#[tokio::test]
async fn debug_output_holds_no_secret() {
    let fake = Fake::start(|_: &Ctx| status(200)).await;
    let up = HttpUpstream::new(UpstreamSettings {
        credentials: Credentials::Basic {
            username: "me".into(),
            password: "very-secret-password".into(),
        },
        ..settings(&fake)
    })
    .unwrap();
    let shown = format!("{up:?} {up:#?}");
    assert!(!shown.contains("very-secret-password"), "{shown}");
    assert!(shown.contains("fake"), "{shown}");
}

#[test]
fn setup_errors_are_clear() {
    let err = HttpUpstream::new(UpstreamSettings::new("hub", "registry-1.docker.io")).unwrap_err();
    assert!(err.to_string().contains("upstream hub"), "{err}");
    let err = HttpUpstream::new(UpstreamSettings {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..UpstreamSettings::new("hub", "https://registry-1.docker.io")
    })
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), "not a certificate").unwrap();
    let err = HttpUpstream::new(UpstreamSettings {
        ca_file: Some(junk.path().into()),
        ..UpstreamSettings::new("hub", "https://registry-1.docker.io")
    })
    .unwrap_err();
    assert!(err.to_string().contains("ca_file"), "{err}");
}

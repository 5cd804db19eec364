//! CORS for browser clients: preflight `OPTIONS` and actual responses, for
//! allowed and other origins, configured by `BERTH_CORS_ALLOWED_ORIGINS`,
//! `berth serve --cors-origin` or registry:2's
//! `REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin`; credentials only for
//! listed origins, and `Vary: Origin` whenever CORS is on.

use super::harness::*;
use reqwest::Method;

const UI: &str = "http://ui.example:8080";

async fn preflight(registry: &Registry, path: &str, origin: &str) -> reqwest::Response {
    let request = registry
        .request(Method::OPTIONS, path)
        .header("origin", origin)
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "authorization");
    registry.send(request).await
}

/// Whether a comma-separated header value names `item` (case-insensitively).
fn list_has(value: &str, item: &str) -> bool {
    value
        .split(',')
        .any(|v| v.trim().eq_ignore_ascii_case(item))
}

/// Every `Vary` value of a response, joined.
fn vary(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

async fn get_with_origin(registry: &Registry, path: &str, origin: &str) -> reqwest::Response {
    registry
        .send(registry.get(path).header("origin", origin))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_from_an_allowed_origin_is_answered_before_routing() {
    let registry = Registry::start_with_env(&[("BERTH_CORS_ALLOWED_ORIGINS", UI)]).await;
    for path in ["/v2/", "/v2/app/manifests/latest", "/v2/app/blobs/uploads/"] {
        let resp = preflight(&registry, path, UI).await;
        assert_eq!(resp.status(), 204, "{path}");
        assert_eq!(
            required_header(&resp, "access-control-allow-origin"),
            UI,
            "{path}"
        );
        let methods = required_header(&resp, "access-control-allow-methods");
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(list_has(methods, method), "{method} in {methods}");
        }
        let headers = required_header(&resp, "access-control-allow-headers");
        for name in [
            "Authorization",
            "Accept",
            "Content-Type",
            "Content-Range",
            "Range",
            "Cache-Control",
        ] {
            assert!(list_has(headers, name), "{name} in {headers}");
        }
        assert!(header(&resp, "access-control-max-age").is_some());
        assert_eq!(resp.headers().get_all("vary").iter().count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn actual_responses_to_an_allowed_origin_expose_the_registry_headers() {
    let registry = Registry::start_with_env(&[("BERTH_CORS_ALLOWED_ORIGINS", UI)]).await;
    let image = registry.push_image("app", "v1").await;
    let resp = get_with_origin(&registry, "/v2/app/manifests/v1", UI).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(required_header(&resp, "access-control-allow-origin"), UI);
    let exposed = required_header(&resp, "access-control-expose-headers");
    for name in [
        "Docker-Content-Digest",
        "Content-Length",
        "Content-Range",
        "Link",
        "Location",
        "Range",
        "WWW-Authenticate",
    ] {
        assert!(list_has(exposed, name), "{name} in {exposed}");
    }
    assert_eq!(
        required_header(&resp, "docker-content-digest"),
        image.digest
    );
    // Errors too: a page must be able to read why.
    let resp = get_with_origin(&registry, "/v2/app/manifests/missing", UI).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(required_header(&resp, "access-control-allow-origin"), UI);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_origins_and_unconfigured_servers_send_no_cors_headers() {
    let registry = Registry::start_with_env(&[("BERTH_CORS_ALLOWED_ORIGINS", UI)]).await;
    registry.push_image("app", "v1").await;
    let plain = Registry::start().await;
    plain.push_image("app", "v1").await;
    for (server, origin) in [(&registry, "http://evil.example"), (&plain, UI)] {
        let resp = get_with_origin(server, "/v2/app/manifests/v1", origin).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "access-control-allow-origin"), None);
        assert_eq!(header(&resp, "access-control-expose-headers"), None);
        // No preflight answer: OPTIONS is routed like any method, and refused.
        let resp = preflight(server, "/v2/app/manifests/v1", origin).await;
        assert_ne!(resp.status(), 204);
        assert_eq!(header(&resp, "access-control-allow-origin"), None);
    }
    // No Origin at all: unchanged.
    let resp = registry.send(registry.get("/v2/app/manifests/v1")).await;
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_2_header_variable_allows_origins_the_way_joxit_users_set_it() {
    let registry =
        Registry::start_with_env(&[("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", "['*']")])
            .await;
    let resp = preflight(&registry, "/v2/_catalog", "http://anywhere").await;
    assert_eq!(resp.status(), 204);
    assert_eq!(required_header(&resp, "access-control-allow-origin"), "*");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_origin_flag_is_repeatable_and_joins_the_configured_origins() {
    let registry = Registry::start_with_args(
        &[
            "--cors-origin",
            "http://a:8080",
            "--cors-origin",
            "http://b",
        ],
        &[("BERTH_CORS_ALLOWED_ORIGINS", "http://c")],
    )
    .await;
    for origin in ["http://a:8080", "http://b", "http://c"] {
        let resp = preflight(&registry, "/v2/_catalog", origin).await;
        assert_eq!(resp.status(), 204, "{origin}");
        assert_eq!(
            required_header(&resp, "access-control-allow-origin"),
            origin
        );
        let resp = get_with_origin(&registry, "/v2/_catalog", origin).await;
        assert_eq!(
            required_header(&resp, "access-control-allow-origin"),
            origin
        );
    }
    for other in ["http://a", "http://a:8081", "http://d"] {
        let resp = get_with_origin(&registry, "/v2/_catalog", other).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header(&resp, "access-control-allow-origin"),
            None,
            "{other}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_offered_to_listed_origins_only() {
    let listed = Registry::start_with_args(
        &["--cors-origin", UI],
        &[("BERTH_CORS_ALLOW_CREDENTIALS", "true")],
    )
    .await;
    let resp = preflight(&listed, "/v2/", UI).await;
    assert_eq!(required_header(&resp, "access-control-allow-origin"), UI);
    assert_eq!(
        required_header(&resp, "access-control-allow-credentials"),
        "true"
    );
    let resp = get_with_origin(&listed, "/v2/_catalog", UI).await;
    assert_eq!(required_header(&resp, "access-control-allow-origin"), UI);
    assert_eq!(
        required_header(&resp, "access-control-allow-credentials"),
        "true"
    );
    let resp = get_with_origin(&listed, "/v2/_catalog", "http://evil.example").await;
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
    assert_eq!(header(&resp, "access-control-allow-credentials"), None);

    // `*` (without credentials, the only way it starts) never offers them.
    let any = Registry::start_with_args(&["--cors-origin", "*"], &[]).await;
    let resp = get_with_origin(&any, "/v2/_catalog", UI).await;
    assert_eq!(required_header(&resp, "access-control-allow-origin"), "*");
    assert_eq!(header(&resp, "access-control-allow-credentials"), None);
}

#[test]
fn any_origin_with_credentials_is_refused_at_start() {
    let data = data_dir();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut command = std::process::Command::new(berth_binary());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("BERTH_")) {
        command.env_remove(key);
    }
    let mut child = command
        .args(["serve", "--addr", &addr.to_string(), "--data-dir"])
        .arg(data.path())
        .args(["--cors-origin", "*"])
        .env("BERTH_CORS_ALLOW_CREDENTIALS", "true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("berth served with `*` and credentials");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"*\"") && stderr.contains("allow_credentials"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_varies_on_origin_once_cors_is_configured() {
    for (args, env) in [
        (&["--cors-origin", UI][..], &[][..]),
        (&["--cors-origin", "*"][..], &[][..]),
        (&[][..], &[("BERTH_CORS_ALLOWED_ORIGINS", UI)][..]),
    ] {
        let registry = Registry::start_with_args(args, env).await;
        let image = registry.push_image("app", "v1").await;
        let blob = format!("/v2/app/blobs/{}", image.config.digest);
        let mut answers = vec![
            preflight(&registry, "/v2/", UI).await,
            preflight(&registry, "/v2/", "http://evil.example").await,
            get_with_origin(&registry, "/v2/app/manifests/v1", UI).await,
            get_with_origin(&registry, "/v2/app/manifests/v1", "http://evil.example").await,
            get_with_origin(&registry, "/v2/app/manifests/missing", UI).await,
            registry.send(registry.get("/v2/app/tags/list")).await,
            registry.send(registry.head(&blob)).await,
        ];
        answers.push(
            registry
                .send(registry.get(&blob).header("origin", UI))
                .await,
        );
        for resp in answers {
            let values = vary(&resp);
            let origins = values.iter().filter(|v| list_has(v, "origin")).count();
            assert_eq!(origins, 1, "{args:?} {env:?} {} {values:?}", resp.url());
        }
    }
    // CORS off: nothing depends on Origin, and nothing says so.
    let plain = Registry::start().await;
    plain.push_image("app", "v1").await;
    let resp = get_with_origin(&plain, "/v2/app/manifests/v1", UI).await;
    assert!(!vary(&resp).iter().any(|v| list_has(v, "origin")));
}

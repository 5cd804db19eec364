//! Auth through a real `berth serve`: the denial matrix over every `/v2`
//! endpoint in Basic and token mode, the token flow and attacks on it, the
//! bcrypt cache, and a CORS preflight that needs no credentials.

use super::harness::*;
use base64::Engine;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

const REPO: &str = "team-a/app";
pub const PASSWORD: &str = "correct horse";

/// Users of the test registry and what the rules below give them.
const USERS: &[&str] = &["admin", "alice", "puller", "bob"];

/// admin: everything; alice: team-a; bob: team-b; puller: pull on team-a
/// and the catalog (which lists only what he may pull).
const RULES: &str = r#"
[groups]
team-a = ["alice"]
team-b = ["bob"]

[[access]]
who = ["admin"]
repositories = ["*"]
actions = ["*"]

[[access]]
who = ["group:team-a"]
repositories = ["team-a/*"]
actions = ["pull", "push", "delete"]

[[access]]
who = ["group:team-b"]
repositories = ["team-b/*"]
actions = ["pull", "push", "delete"]

[[access]]
who = ["puller"]
repositories = ["team-a/*"]
actions = ["pull"]

[[access]]
who = ["puller"]
repositories = ["*"]
actions = ["catalog"]
"#;

pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// An htpasswd line per user (bcrypt at the lowest cost: tests need not be slow).
pub fn htpasswd_text(users: &[(&str, &str)]) -> String {
    users
        .iter()
        .map(|(user, password)| format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap()))
        .collect()
}

/// Replaces the file whole (as `berth user add` does), so a reader sees old or new.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A registry with the users and rules above; `token` turns the token service on.
pub struct AuthRegistry {
    pub registry: Registry,
    pub htpasswd: PathBuf,
    /// Sends exactly the credentials asked for (the registry's own client
    /// may carry the admin's by default).
    plain: reqwest::Client,
    _config: tempfile::TempDir,
}

impl AuthRegistry {
    pub async fn start(token: bool, extra_args: &[&str]) -> AuthRegistry {
        Self::start_with(token, extra_args, "").await
    }

    /// Like [`AuthRegistry::start`], with more TOML appended to the config
    /// (tables; top-level keys go before the first `[`).
    pub async fn start_with(token: bool, extra_args: &[&str], more: &str) -> AuthRegistry {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let users: Vec<(&str, &str)> = USERS.iter().map(|u| (*u, PASSWORD)).collect();
        write_atomically(&htpasswd, &htpasswd_text(&users));
        let config = dir.path().join("berth.toml");
        std::fs::write(&config, {
            let (keys, tables) = match more.find('[') {
                Some(at) => more.split_at(at),
                None => (more, ""),
            };
            format!("htpasswd = {htpasswd:?}\ntoken_auth = {token}\n{keys}\n{RULES}\n{tables}")
        })
        .unwrap();
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(extra_args);
        // Debug: every request is logged, so a secret in any log line shows.
        let registry = Registry::start_with_args(&args, &[("BERTH_LOG", "debug")]).await;
        let plain = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        AuthRegistry {
            registry,
            htpasswd,
            plain,
            _config: dir,
        }
    }

    /// A request as `who` (an `Authorization` value, or none).
    pub async fn send(&self, who: Option<&str>, method: Method, path: &str) -> Response {
        self.send_body(who, method, path, None).await
    }

    async fn send_body(
        &self,
        who: Option<&str>,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Response {
        self.send_from(None, who, method, path, body).await
    }

    /// A request from the loopback address `from` (each one is a client
    /// address of its own to the login limiter).
    async fn send_from(
        &self,
        from: Option<IpAddr>,
        who: Option<&str>,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Response {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            self.registry.url(path)
        };
        let client = match from {
            Some(ip) => reqwest::Client::builder()
                .local_address(ip)
                .build()
                .unwrap(),
            None => self.plain.clone(),
        };
        let mut request = client.request(method, url);
        if let Some(who) = who {
            request = request.header("authorization", who);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        match client.execute(request).await {
            Ok(resp) => resp,
            Err(e) => panic!("{what}: {e}\n{}", self.registry.stderr()),
        }
    }

    /// A token from `GET /token` for `scope`, as `who`.
    pub async fn token(&self, who: Option<&str>, scope: &str) -> String {
        let path = format!("/token?service=berth&scope={}", encode_query_value(scope));
        let resp = self.send(who, Method::GET, &path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        let body = json_body(resp).await;
        body["token"].as_str().unwrap().to_string()
    }
}

/// A request body: content type and bytes.
type Body<'a> = Option<(&'a str, Vec<u8>)>;

/// How a caller must be answered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Anything but 401/403 (the endpoint's own answer).
    Allowed,
    Unauthorized,
    Denied,
}

/// Checks the answer to `what` ("who: METHOD path"); a HEAD answer has no body to read.
async fn check(resp: Response, expect: Expect, what: &str, challenge: &str) {
    let status = resp.status().as_u16();
    let head = what.contains(": HEAD ");
    match expect {
        Expect::Allowed => assert!(
            status != 401 && status != 403,
            "{what}: expected to be let in, got {status}: {}",
            resp.text().await.unwrap_or_default()
        ),
        Expect::Unauthorized => {
            let header = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(status, 401, "{what}");
            assert_eq!(header.as_deref(), Some(challenge), "{what}");
            let body = resp.text().await.unwrap();
            assert!(head || body.contains("UNAUTHORIZED"), "{what}: {body}");
            assert!(
                !body.contains(PASSWORD) && !body.contains("wrong"),
                "{what}: {body}"
            );
        }
        Expect::Denied => {
            assert_eq!(status, 403, "{what}");
            assert!(resp.headers().get("www-authenticate").is_none(), "{what}");
            let body = resp.text().await.unwrap();
            assert!(head || body.contains("DENIED"), "{what}: {body}");
        }
    }
}

/// What admin sees of the registry: catalog, tags, and whether `blob` is in REPO.
async fn state(auth: &AuthRegistry, admin: &str, blob: &str) -> (String, String, u16) {
    let catalog = auth.send(Some(admin), Method::GET, "/v2/_catalog").await;
    let tags = auth
        .send(Some(admin), Method::GET, &format!("/v2/{REPO}/tags/list"))
        .await;
    let head = auth
        .send(
            Some(admin),
            Method::HEAD,
            &format!("/v2/{REPO}/blobs/{blob}"),
        )
        .await;
    (
        catalog.text().await.unwrap(),
        tags.text().await.unwrap(),
        head.status().as_u16(),
    )
}

#[tokio::test]
async fn basic_mode_denial_matrix_over_every_v2_endpoint() {
    use Expect::*;
    let mut auth = AuthRegistry::start(false, &[]).await;
    let admin = basic("admin", PASSWORD);
    auth.registry.authorize_with(&admin);
    let image = auth.registry.push_image(REPO, "v1").await;
    auth.registry.push_image("team-b/other", "v1").await;
    let layer = image.layers[0].digest.clone();
    let manifest = image.digest.clone();
    // What a refused writer would add: a blob not in the registry.
    let new_blob = random_bytes(100);
    let new_digest = sha256_digest(&new_blob);
    let before = state(&auth, &admin, &new_digest).await;
    assert_eq!(before.2, 404);

    let callers: [(&str, Option<String>); 5] = [
        ("anonymous", None),
        ("wrong password", Some(basic("alice", "wrong"))),
        ("pull-only user", Some(basic("puller", PASSWORD))),
        ("other team", Some(basic("bob", PASSWORD))),
        ("admin", Some(admin.clone())),
    ];
    let read = [Unauthorized, Unauthorized, Allowed, Denied, Allowed];
    let write = [Unauthorized, Unauthorized, Denied, Denied, Allowed];
    let base = [Unauthorized, Unauthorized, Allowed, Allowed, Allowed];
    let catalog = [Unauthorized, Unauthorized, Allowed, Denied, Allowed];
    let challenge = r#"Basic realm="berth""#;

    // Reads and refused writes first; the admin's writes last, as they change things.
    let session = auth.registry.start_upload(REPO).await;
    let session_path = location_path(&session).to_string();
    let endpoints: Vec<(Method, String, [Expect; 5])> = vec![
        (Method::GET, "/v2/".into(), base),
        (Method::GET, "/v2/_catalog".into(), catalog),
        (Method::GET, format!("/v2/{REPO}/tags/list"), read),
        (Method::GET, format!("/v2/{REPO}/manifests/v1"), read),
        (
            Method::HEAD,
            format!("/v2/{REPO}/manifests/{manifest}"),
            read,
        ),
        (Method::GET, format!("/v2/{REPO}/blobs/{layer}"), read),
        (Method::HEAD, format!("/v2/{REPO}/blobs/{layer}"), read),
        (
            Method::GET,
            format!("/v2/{REPO}/referrers/{manifest}"),
            read,
        ),
        (Method::GET, session_path.clone(), write),
    ];
    // Wrong passwords come from a new address each time: more than ten
    // from one would (rightly) lock that address out for everyone.
    let mut addresses = (2..=250).map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 1, n)));
    let mut from = |who: &str| match who {
        "wrong password" => addresses.next(),
        _ => None,
    };
    for (method, path, expects) in &endpoints {
        for ((who, credentials), expect) in callers.iter().zip(expects) {
            let resp = auth
                .send_from(
                    from(who),
                    credentials.as_deref(),
                    method.clone(),
                    path,
                    None,
                )
                .await;
            check(resp, *expect, &format!("{who}: {method} {path}"), challenge).await;
        }
    }
    // Writes by everyone but the admin: refused, and nothing changes.
    let refused_writes: Vec<(Method, String, Body)> = vec![
        (
            Method::PUT,
            format!("/v2/{REPO}/manifests/v2"),
            Some((OCI_MANIFEST, image.manifest.clone())),
        ),
        (
            Method::DELETE,
            format!("/v2/{REPO}/manifests/{manifest}"),
            None,
        ),
        (Method::DELETE, format!("/v2/{REPO}/blobs/{layer}"), None),
        (Method::POST, format!("/v2/{REPO}/blobs/uploads/"), None),
        (
            Method::POST,
            format!("/v2/{REPO}/blobs/uploads/?digest={new_digest}"),
            Some(("application/octet-stream", new_blob.clone())),
        ),
        (
            Method::POST,
            format!("/v2/{REPO}/blobs/uploads/?mount={layer}&from=team-b/other"),
            None,
        ),
        (
            Method::PATCH,
            session_path.clone(),
            Some(("application/octet-stream", new_blob.clone())),
        ),
        (
            Method::PUT,
            with_query(&session_path, "digest", &new_digest),
            Some(("application/octet-stream", new_blob.clone())),
        ),
        (Method::DELETE, session_path.clone(), None),
    ];
    for (method, path, body) in &refused_writes {
        for ((who, credentials), expect) in callers.iter().zip(&write).take(4) {
            let resp = auth
                .send_from(
                    from(who),
                    credentials.as_deref(),
                    method.clone(),
                    path,
                    body.clone(),
                )
                .await;
            check(resp, *expect, &format!("{who}: {method} {path}"), challenge).await;
        }
    }
    assert_eq!(
        state(&auth, &admin, &new_digest).await,
        before,
        "a refused write wrote"
    );
    let status = auth.send(Some(&admin), Method::GET, &session_path).await;
    assert_eq!(
        status.status(),
        204,
        "the upload session survived refused cancels"
    );
    // Bob may push to team-b, but team-a's session is not reachable through it.
    let id = session_path.rsplit('/').next().unwrap();
    let through_b = format!("/v2/team-b/other/blobs/uploads/{id}");
    let bob = basic("bob", PASSWORD);
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let resp = auth.send(Some(&bob), method.clone(), &through_b).await;
        assert_eq!(resp.status(), 404, "{method} {through_b}");
    }
    let status = auth.send(Some(&admin), Method::GET, &session_path).await;
    assert_eq!(status.status(), 204);

    // The admin may do all of it.
    for (method, path, body) in refused_writes {
        let resp = auth
            .send_body(Some(&admin), method.clone(), &path, body)
            .await;
        check(resp, Allowed, &format!("admin: {method} {path}"), challenge).await;
    }
}

#[tokio::test]
async fn a_mount_from_a_repository_the_caller_cannot_pull_starts_a_plain_upload() {
    let mut auth = AuthRegistry::start(false, &[]).await;
    auth.registry.authorize_with(&basic("admin", PASSWORD));
    let secret = auth.registry.push_image("team-b/secret", "v1").await;
    let layer = &secret.layers[0].digest;
    let alice = basic("alice", PASSWORD);
    for from in ["&from=team-b/secret", ""] {
        let path = format!("/v2/{REPO}/blobs/uploads/?mount={layer}{from}");
        let resp = auth.send(Some(&alice), Method::POST, &path).await;
        assert_eq!(resp.status(), 202, "{path}: not mounted, an upload instead");
    }
    let head = auth
        .send(
            Some(&alice),
            Method::HEAD,
            &format!("/v2/{REPO}/blobs/{layer}"),
        )
        .await;
    assert_eq!(head.status(), 404, "team-b's blob did not leak into team-a");
}

#[tokio::test]
async fn token_mode_challenges_with_bearer_and_the_scope_needed() {
    let mut auth = AuthRegistry::start(true, &[]).await;
    let admin = basic("admin", PASSWORD);
    auth.registry.authorize_with(&admin);
    let image = auth.registry.push_image(REPO, "v1").await;
    let realm = format!("http://{}/token", auth.registry.addr);
    let bearer = |scope: Option<&str>, error: bool| {
        let mut value = format!(r#"Bearer realm="{realm}",service="berth""#);
        if let Some(scope) = scope {
            value.push_str(&format!(r#",scope="{scope}""#));
        }
        if error {
            value.push_str(r#",error="insufficient_scope""#);
        }
        value
    };
    let manifest_path = format!("/v2/{REPO}/manifests/v1");
    let pull = format!("repository:{REPO}:pull");
    let push = format!("repository:{REPO}:pull,push");

    // No credentials, or bad ones: where to get a token, for what.
    check(
        auth.send(None, Method::GET, "/v2/").await,
        Expect::Unauthorized,
        "anonymous /v2/",
        &bearer(None, false),
    )
    .await;
    check(
        auth.send(None, Method::GET, &manifest_path).await,
        Expect::Unauthorized,
        "anonymous manifest GET",
        &bearer(Some(&pull), false),
    )
    .await;
    check(
        auth.send(Some(&basic("alice", "wrong")), Method::GET, &manifest_path)
            .await,
        Expect::Unauthorized,
        "wrong password",
        &bearer(Some(&pull), false),
    )
    .await;
    check(
        auth.send(None, Method::GET, "/v2/_catalog").await,
        Expect::Unauthorized,
        "anonymous catalog",
        &bearer(Some("registry:catalog:*"), false),
    )
    .await;

    // A pull-only user asking for push gets a token for pull only.
    let puller = basic("puller", PASSWORD);
    let token = auth.token(Some(&puller), &push).await;
    let as_puller = format!("Bearer {token}");
    let resp = auth
        .send(Some(&as_puller), Method::GET, &manifest_path)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    let put = auth
        .send_body(
            Some(&as_puller),
            Method::PUT,
            &format!("/v2/{REPO}/manifests/v2"),
            Some((OCI_MANIFEST, image.manifest.clone())),
        )
        .await;
    check(
        put,
        Expect::Unauthorized,
        "token without push",
        &bearer(Some(&push), true),
    )
    .await;
    let start = auth
        .send(
            Some(&as_puller),
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/"),
        )
        .await;
    check(
        start,
        Expect::Unauthorized,
        "upload without push",
        &bearer(Some(&push), true),
    )
    .await;

    // A token for another repository does not open this one.
    let bob_token = auth
        .token(
            Some(&basic("bob", PASSWORD)),
            "repository:team-b/x:pull,push",
        )
        .await;
    let resp = auth
        .send(
            Some(&format!("Bearer {bob_token}")),
            Method::GET,
            &manifest_path,
        )
        .await;
    check(
        resp,
        Expect::Unauthorized,
        "other repository's token",
        &bearer(Some(&pull), true),
    )
    .await;
    // Bob's own token for team-a grants nothing: he may not pull it.
    let bob_on_a = auth.token(Some(&basic("bob", PASSWORD)), &pull).await;
    let resp = auth
        .send(
            Some(&format!("Bearer {bob_on_a}")),
            Method::GET,
            &manifest_path,
        )
        .await;
    check(
        resp,
        Expect::Unauthorized,
        "token asked beyond rights",
        &bearer(Some(&pull), true),
    )
    .await;

    // Basic credentials still work in token mode: 403 when lacking the right.
    let resp = auth
        .send(Some(&basic("bob", PASSWORD)), Method::GET, &manifest_path)
        .await;
    check(resp, Expect::Denied, "bob with Basic", "").await;
    let resp = auth.send(Some(&admin), Method::GET, &manifest_path).await;
    assert_eq!(resp.status(), 200);

    // Nothing was written by the refused requests.
    let tags = auth
        .send(Some(&admin), Method::GET, &format!("/v2/{REPO}/tags/list"))
        .await;
    assert_eq!(json_body(tags).await["tags"], json!(["v1"]));
}

#[tokio::test]
async fn token_flow_get_post_refresh_and_anonymous() {
    let auth = AuthRegistry::start(true, &[]).await;
    let alice = basic("alice", PASSWORD);
    let scope = format!("repository:{REPO}:pull,push");

    // GET /token with Basic: the Docker token spec's answer.
    let resp = auth
        .send(
            Some(&alice),
            Method::GET,
            &format!("/token?service=berth&scope={}", encode_query_value(&scope)),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body = json_body(resp).await;
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'), "{body}");
    let claims = claims_of(token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "berth");
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": REPO, "actions": ["pull", "push"]}])
    );

    // The token pushes a blob end to end.
    let bearer = format!("Bearer {token}");
    let blob = random_bytes(64);
    let digest = sha256_digest(&blob);
    let resp = auth
        .send_body(
            Some(&bearer),
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={digest}"),
            Some(("application/octet-stream", blob)),
        )
        .await;
    assert_eq!(resp.status(), 201);

    // POST /token, OAuth2 password grant with a refresh token.
    let form = format!(
        "grant_type=password&username=alice&password={}&service=berth&client_id=test&access_type=offline&scope={}",
        encode_query_value(PASSWORD),
        encode_query_value(&scope)
    );
    let resp = auth
        .send_body(
            None,
            Method::POST,
            "/token",
            Some(("application/x-www-form-urlencoded", form.into_bytes())),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body = json_body(resp).await;
    assert!(body["access_token"].is_string());
    let refresh = body["refresh_token"].as_str().unwrap().to_string();

    // The refresh token gets a new access token; as a bearer token it is nothing.
    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=berth&client_id=test&scope={}",
        encode_query_value(&scope)
    );
    let resp = auth
        .send_body(
            None,
            Method::POST,
            "/token",
            Some(("application/x-www-form-urlencoded", form.into_bytes())),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let refreshed = json_body(resp).await;
    assert_eq!(
        claims_of(refreshed["access_token"].as_str().unwrap())["sub"],
        "alice"
    );
    let resp = auth
        .send(
            Some(&format!("Bearer {refresh}")),
            Method::GET,
            &format!("/v2/{REPO}/tags/list"),
        )
        .await;
    assert_eq!(resp.status(), 401, "a refresh token is not an access token");

    // Wrong password: 401, on GET and POST.
    let resp = auth
        .send(
            Some(&basic("alice", "wrong")),
            Method::GET,
            "/token?service=berth",
        )
        .await;
    assert_eq!(resp.status(), 401);
    let form = "grant_type=password&username=alice&password=wrong&service=berth&client_id=t";
    let resp = auth
        .send_body(
            None,
            Method::POST,
            "/token",
            Some((
                "application/x-www-form-urlencoded",
                form.as_bytes().to_vec(),
            )),
        )
        .await;
    assert_eq!(resp.status(), 401);

    // Neither passwords nor tokens reach the log; failed logins do, by user name.
    let log = auth.registry.stderr();
    for secret in [PASSWORD, "correct", token, &refresh] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
    assert!(log.contains("failed login"), "{log}");
    assert!(log.contains("alice"), "{log}");

    // Anonymous: a token with anonymous rights (none here).
    let anonymous = auth.token(None, &scope).await;
    let claims = claims_of(&anonymous);
    let granted = claims["access"].as_array().map_or(0, Vec::len);
    assert_eq!(granted, 0, "{claims}");
    let resp = auth
        .send(
            Some(&format!("Bearer {anonymous}")),
            Method::GET,
            &format!("/v2/{REPO}/tags/list"),
        )
        .await;
    assert_eq!(resp.status(), 401);
}

/// The claims of a JWT, unverified (the test reads what berth signed).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let auth = AuthRegistry::start(true, &[]).await;
    let tags = format!("/v2/{REPO}/tags/list");
    let scope = format!("repository:{REPO}:pull");
    let good = auth.token(Some(&basic("alice", PASSWORD)), &scope).await;
    let claims = claims_of(&good);
    let now = claims["iat"].as_u64().unwrap();
    // The genuine token works (alice may pull; team-a/app does not exist yet: 404).
    let resp = auth
        .send(Some(&format!("Bearer {good}")), Method::GET, &tags)
        .await;
    assert_eq!(resp.status(), 404);

    let key_path = auth.registry.data_dir().join("auth/token-key.pem");
    let key = berth_auth::SigningKey::from_pem_file(&key_path).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid().to_string());
    let sign = |claims: &Value| encode(&header, claims, key.encoding_key()).unwrap();

    let mut forged: Vec<(&str, String)> = Vec::new();
    forged.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims)
        ),
    ));
    let hs256 = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.public_key_pem().as_bytes()),
    )
    .unwrap();
    forged.push(("HS256 signed with the public key", hs256));
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 600);
    expired["nbf"] = json!(now - 900);
    expired["iat"] = json!(now - 900);
    forged.push(("expired", sign(&expired)));
    let mut early = claims.clone();
    early["nbf"] = json!(now + 600);
    forged.push(("not yet valid", sign(&early)));
    let mut issuer = claims.clone();
    issuer["iss"] = json!("someone-else");
    forged.push(("wrong issuer", sign(&issuer)));
    let mut audience = claims.clone();
    audience["aud"] = json!("another-service");
    forged.push(("wrong audience", sign(&audience)));
    // A modified access claim under the original signature.
    let mut widened = claims.clone();
    widened["access"] = json!([{"type": "repository", "name": "team-b/x", "actions": ["pull"]}]);
    let parts: Vec<&str> = good.split('.').collect();
    forged.push((
        "modified access claim",
        format!("{}.{}.{}", parts[0], b64(&widened), parts[2]),
    ));
    let other_key = berth_auth::SigningKey::generate().unwrap();
    let mut other_header = Header::new(Algorithm::ES256);
    other_header.kid = Some(key.kid().to_string());
    forged.push((
        "another berth's key",
        encode(&other_header, &claims, other_key.encoding_key()).unwrap(),
    ));
    for (what, token) in forged {
        let resp = auth
            .send(Some(&format!("Bearer {token}")), Method::GET, &tags)
            .await;
        assert_eq!(resp.status(), 401, "{what}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("UNAUTHORIZED"), "{what}: {body}");
        assert!(!body.contains(&token), "{what}: the token came back");
    }
    // A valid token for another repository does not open this one.
    let other = auth
        .token(
            Some(&basic("alice", PASSWORD)),
            "repository:team-a/other:pull",
        )
        .await;
    let resp = auth
        .send(Some(&format!("Bearer {other}")), Method::GET, &tags)
        .await;
    assert_eq!(resp.status(), 401, "token for another repository");
}

/// The metric counting bcrypt verifications, read as a loopback client.
async fn bcrypt_count(auth: &AuthRegistry) -> u64 {
    let text = auth
        .send(None, Method::GET, "/metrics")
        .await
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("berth_auth_bcrypt_verifications_total "))
        .unwrap_or_else(|| panic!("no bcrypt counter in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn pushing_twenty_present_layers_checks_the_password_once_and_a_new_password_applies_at_once()
{
    let mut auth = AuthRegistry::start(false, &[]).await;
    auth.registry.authorize_with(&basic("admin", PASSWORD));
    let config = auth
        .registry
        .push_descriptor(REPO, OCI_CONFIG, &random_config())
        .await;
    let mut layers = Vec::new();
    for _ in 0..20 {
        layers.push(
            auth.registry
                .push_descriptor(REPO, OCI_LAYER, &random_bytes(256))
                .await,
        );
    }
    let manifest = ManifestBuilder::image(&config, &layers).build();
    let before = bcrypt_count(&auth).await;

    // What docker does when every layer is present: HEAD each, PUT the manifest.
    let alice = basic("alice", PASSWORD);
    for blob in layers.iter().chain([&config]) {
        let resp = auth
            .send(
                Some(&alice),
                Method::HEAD,
                &format!("/v2/{REPO}/blobs/{}", blob.digest),
            )
            .await;
        assert_eq!(resp.status(), 200);
    }
    let resp = auth
        .send_body(
            Some(&alice),
            Method::PUT,
            &format!("/v2/{REPO}/manifests/latest"),
            Some((OCI_MANIFEST, manifest)),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let verifications = bcrypt_count(&auth).await - before;
    assert!(
        verifications <= 1,
        "{verifications} bcrypt verifications for one push"
    );

    // A new password for alice: the old one is refused at once, the new one works.
    let users: Vec<(&str, &str)> = USERS
        .iter()
        .map(|u| {
            (
                *u,
                if *u == "alice" {
                    "new password"
                } else {
                    PASSWORD
                },
            )
        })
        .collect();
    write_atomically(&auth.htpasswd, &htpasswd_text(&users));
    let tags = format!("/v2/{REPO}/tags/list");
    let resp = auth.send(Some(&alice), Method::GET, &tags).await;
    assert_eq!(resp.status(), 401, "the old password still worked");
    let resp = auth
        .send(Some(&basic("alice", "new password")), Method::GET, &tags)
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_cors_preflight_needs_no_credentials_under_auth() {
    let auth = AuthRegistry::start(true, &["--cors-origin", "http://ui.example"]).await;
    let resp = auth
        .registry
        .send(
            auth.registry
                .request(Method::OPTIONS, &format!("/v2/{REPO}/tags/list"))
                .header("origin", "http://ui.example")
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization"),
        )
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some("http://ui.example")
    );
    // The request after it still needs credentials.
    let resp = auth
        .registry
        .send(
            auth.registry
                .get(&format!("/v2/{REPO}/tags/list"))
                .header("origin", "http://ui.example"),
        )
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn health_is_anonymous_and_the_catalog_lists_only_what_the_caller_may_pull() {
    let mut auth = AuthRegistry::start(false, &[]).await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            auth.send(None, Method::GET, path).await.status(),
            200,
            "{path}"
        );
    }
    auth.registry.authorize_with(&basic("admin", PASSWORD));
    for repo in [
        "team-a/one",
        "team-b/two",
        "team-a/three",
        "zzz",
        "team-a/four",
    ] {
        auth.registry.push_image(repo, "v1").await;
    }
    // The puller may list the catalog, and sees only team-a, paged by what he sees.
    let puller = basic("puller", PASSWORD);
    let resp = auth
        .send(Some(&puller), Method::GET, "/v2/_catalog?n=2")
        .await;
    assert_eq!(
        header(&resp, "link"),
        Some("</v2/_catalog?n=2&last=team-a%2Fone>; rel=\"next\"")
    );
    assert_eq!(
        json_body(resp).await["repositories"],
        json!(["team-a/four", "team-a/one"])
    );
    let resp = auth
        .send(
            Some(&puller),
            Method::GET,
            "/v2/_catalog?n=2&last=team-a%2Fone",
        )
        .await;
    assert_eq!(header(&resp, "link"), None);
    assert_eq!(
        json_body(resp).await["repositories"],
        json!(["team-a/three"])
    );
    let admin = basic("admin", PASSWORD);
    let resp = auth.send(Some(&admin), Method::GET, "/v2/_catalog").await;
    assert_eq!(
        json_body(resp).await["repositories"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // /api/v1/repositories, filtered and paged, for alice.
    let alice = basic("alice", PASSWORD);
    let resp = auth
        .send(Some(&alice), Method::GET, "/api/v1/repositories?n=2")
        .await;
    assert_eq!(resp.status(), 200);
    let link = header(&resp, "link").map(str::to_string);
    let body = json_body(resp).await;
    let names: Vec<&str> = body["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["team-a/four", "team-a/one"]);
    let link = link.expect("a next page");
    assert!(link.contains("last=team-a%2Fone"), "{link}");
    let resp = auth
        .send(
            Some(&alice),
            Method::GET,
            "/api/v1/repositories?n=2&last=team-a%2Fone",
        )
        .await;
    let body = json_body(resp).await;
    let names: Vec<&str> = body["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["team-a/three"],
        "team-b/two and zzz are not alice's"
    );
    assert_eq!(
        auth.send(None, Method::GET, "/api/v1/repositories")
            .await
            .status(),
        401
    );
    assert_eq!(
        auth.send(
            Some(&basic("bob", PASSWORD)),
            Method::GET,
            "/api/v1/repositories/team-a/one/tags"
        )
        .await
        .status(),
        403
    );
}

#[tokio::test]
async fn ten_failed_logins_limit_that_address_only() {
    let auth = AuthRegistry::start(true, &[]).await;
    let tags = format!("/v2/{REPO}/tags/list");
    let attacker = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let other = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    let wrong = basic("alice", "guess");
    for n in 0..10 {
        let resp = auth
            .send_from(attacker, Some(&wrong), Method::GET, &tags, None)
            .await;
        assert_eq!(resp.status(), 401, "failed login {n}");
    }
    let resp = auth
        .send_from(attacker, Some(&wrong), Method::GET, &tags, None)
        .await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    assert!(json_body(resp)
        .await
        .to_string()
        .contains("TOOMANYREQUESTS"));
    // The same address is limited even with the right password, also at /token ...
    let alice = basic("alice", PASSWORD);
    let resp = auth
        .send_from(attacker, Some(&alice), Method::GET, &tags, None)
        .await;
    assert_eq!(resp.status(), 429);
    // ... while another address logs in, and anonymous health checks go on.
    let resp = auth
        .send_from(other, Some(&alice), Method::GET, &tags, None)
        .await;
    assert_eq!(
        resp.status(),
        404,
        "alice may pull; the repository does not exist"
    );
    let resp = auth
        .send_from(attacker, None, Method::GET, "/healthz", None)
        .await;
    assert_eq!(resp.status(), 200);
    // Successful logins are not failures: many from one address are fine.
    for _ in 0..15 {
        let resp = auth
            .send_from(other, Some(&alice), Method::GET, "/v2/", None)
            .await;
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test]
async fn loopback_without_auth_logs_no_warning() {
    let registry = Registry::start().await;
    let resp = registry.send(registry.get("/v2/")).await;
    assert_eq!(resp.status(), 200, "no auth: /v2/ is open");
    assert!(
        !registry.stderr().contains("WITHOUT AUTH"),
        "{}",
        registry.stderr()
    );
}

#[tokio::test]
async fn a_catalog_token_lists_what_its_subject_may_pull() {
    let mut auth = AuthRegistry::start(true, &[]).await;
    auth.registry.authorize_with(&basic("admin", PASSWORD));
    for repo in ["team-a/one", "team-b/two"] {
        auth.registry.push_image(repo, "v1").await;
    }
    let puller = basic("puller", PASSWORD);
    let token = auth.token(Some(&puller), "registry:catalog:*").await;
    let resp = auth
        .send(
            Some(&format!("Bearer {token}")),
            Method::GET,
            "/v2/_catalog",
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json_body(resp).await["repositories"], json!(["team-a/one"]));
    // Bob's rules give no catalog: his token for it grants nothing.
    let bob = auth
        .token(Some(&basic("bob", PASSWORD)), "registry:catalog:*")
        .await;
    let resp = auth
        .send(Some(&format!("Bearer {bob}")), Method::GET, "/v2/_catalog")
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn tokens_of_a_configured_external_issuer_are_accepted() {
    use jsonwebtoken::{encode, Algorithm, Header};
    let keys = tempfile::tempdir().unwrap();
    let issuer_key = berth_auth::SigningKey::generate().unwrap();
    let public = keys.path().join("issuer.pem");
    std::fs::write(&public, issuer_key.public_key_pem()).unwrap();
    let more = format!(
        "[[token_issuers]]\nissuer = \"https://auth.example\"\naudience = \"berth\"\npublic_key = {public:?}\n"
    );
    let auth = AuthRegistry::start_with(true, &[], &more).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |aud: &str| {
        json!({
            "iss": "https://auth.example", "sub": "carol", "aud": aud,
            "exp": now + 300, "nbf": now - 5, "iat": now - 5, "jti": "x",
            "access": [{"type": "repository", "name": REPO, "actions": ["pull"]}],
        })
    };
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(issuer_key.kid().to_string());
    let tags = format!("/v2/{REPO}/tags/list");
    let good = encode(&header, &claims("berth"), issuer_key.encoding_key()).unwrap();
    let resp = auth
        .send(Some(&format!("Bearer {good}")), Method::GET, &tags)
        .await;
    assert_eq!(resp.status(), 404, "let in; the repository does not exist");
    let other_audience = encode(&header, &claims("other"), issuer_key.encoding_key()).unwrap();
    let resp = auth
        .send(
            Some(&format!("Bearer {other_audience}")),
            Method::GET,
            &tags,
        )
        .await;
    assert_eq!(resp.status(), 401);
    // What the token does not grant stays refused.
    let resp = auth
        .send(
            Some(&format!("Bearer {good}")),
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/"),
        )
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn anonymous_pulls_where_a_rule_allows_them_and_nothing_else() {
    let public =
        "[[access]]\nwho = [\"anonymous\"]\nrepositories = [\"public/*\"]\nactions = [\"pull\"]\n";
    for token in [false, true] {
        let mut auth = AuthRegistry::start_with(token, &[], public).await;
        auth.registry.authorize_with(&basic("admin", PASSWORD));
        let image = auth.registry.push_image("public/base", "v1").await;
        auth.registry.push_image(REPO, "v1").await;
        // /v2/ answers anonymous callers, so clients pull without a login.
        let resp = auth.send(None, Method::GET, "/v2/").await;
        assert_eq!(resp.status(), 200, "token={token}");
        let manifest = "/v2/public/base/manifests/v1";
        let pulled = if token {
            // A client first fetches an anonymous token for the scope.
            let bearer = auth.token(None, "repository:public/base:pull").await;
            auth.send(Some(&format!("Bearer {bearer}")), Method::GET, manifest)
                .await
        } else {
            auth.send(None, Method::GET, manifest).await
        };
        assert_eq!(pulled.status(), 200, "token={token}");
        assert_eq!(pulled.bytes().await.unwrap(), image.manifest);
        // Without any token too: the rules decide for anonymous callers.
        let resp = auth.send(None, Method::GET, manifest).await;
        assert_eq!(resp.status(), 200);
        // The JSON listings answer them too, with only what they may pull.
        let resp = auth.send(None, Method::GET, "/api/v1/repositories").await;
        assert_eq!(resp.status(), 200, "token={token}");
        let listed = json_body(resp).await;
        let names: Vec<&str> = listed["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["public/base"], "token={token}");
        let resp = auth.send(None, Method::GET, "/api/v1/overview").await;
        assert_eq!(resp.status(), 200, "token={token}");
        assert_eq!(json_body(resp).await["repositories"], 1, "token={token}");
        for (method, path) in [
            (Method::GET, format!("/v2/{REPO}/manifests/v1")),
            (Method::POST, "/v2/public/base/blobs/uploads/".to_string()),
        ] {
            let resp = auth.send(None, method.clone(), &path).await;
            assert_eq!(resp.status(), 401, "token={token}: {method} {path}");
        }
    }
}

#[tokio::test]
async fn bcrypt_runs_beside_the_server_not_on_its_request_threads() {
    let auth = AuthRegistry::start(false, &[]).await;
    // A user whose every check is slow: cost 12, the default, ~240 ms of
    // CPU optimised (several times that in a debug build), far longer than
    // a probe takes even on a loaded machine. (At cost 9, ~35 ms, a probe
    // sent 30 ms in could lose the race in an optimised build.)
    let mut text = htpasswd_text(&[("admin", PASSWORD)]);
    text.push_str(&format!("slow:{}\n", bcrypt::hash(PASSWORD, 12).unwrap()));
    write_atomically(&auth.htpasswd, &text);
    let auth = std::sync::Arc::new(auth);
    let started = std::time::Instant::now();
    let mut checks = Vec::new();
    for n in 0..8u8 {
        let auth = auth.clone();
        checks.push(tokio::spawn(async move {
            // Each from its own address: the login limit stays out of it.
            let from = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 2, n + 1)));
            let wrong = basic("slow", "wrong");
            let resp = auth
                .send_from(from, Some(&wrong), Method::GET, "/v2/", None)
                .await;
            assert_eq!(resp.status(), 401);
            started.elapsed()
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let resp = auth.send(None, Method::GET, "/healthz").await;
    assert_eq!(resp.status(), 200);
    let health = started.elapsed();
    let mut first_check = std::time::Duration::MAX;
    for check in checks {
        first_check = first_check.min(check.await.unwrap());
    }
    assert!(
        health < first_check,
        "/healthz waited for bcrypt: answered at {health:?}, first check done at {first_check:?}"
    );
}

#[tokio::test]
async fn registry_2_htpasswd_variables_turn_auth_on() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    write_atomically(&htpasswd, &htpasswd_text(&[("alice", PASSWORD)]));
    let registry = Registry::start_with_env(&[
        ("REGISTRY_AUTH", "htpasswd"),
        ("REGISTRY_AUTH_HTPASSWD_PATH", htpasswd.to_str().unwrap()),
        ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry Realm"),
    ])
    .await;
    let resp = registry.send(registry.get("/v2/")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        header(&resp, "www-authenticate"),
        Some(r#"Basic realm="Registry Realm""#)
    );
    let resp = registry
        .send(
            registry
                .get("/v2/")
                .header("authorization", basic("alice", PASSWORD)),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let log = registry.stderr();
    assert!(!log.contains("ignored"), "{log}");
}

#[tokio::test]
async fn the_token_key_is_made_once_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    write_atomically(&htpasswd, &htpasswd_text(&[("alice", PASSWORD)]));
    let data = dir.path().join("data");
    let args = ["--htpasswd", htpasswd.to_str().unwrap(), "--token-auth"];
    let alice = basic("alice", PASSWORD);
    let first = Registry::start_in_with_args(&data, &args).await;
    let request = first
        .get("/token?service=berth&scope=repository:a:pull")
        .header("authorization", alice);
    let token = json_body(first.send(request).await).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let key = data.join("auth/token-key.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the signing key is private");
    let pem = std::fs::read(&key).unwrap();
    first.stop();
    let second = Registry::start_in_with_args(&data, &args).await;
    assert_eq!(
        std::fs::read(&key).unwrap(),
        pem,
        "the key was kept, not remade"
    );
    let resp = second
        .send(
            second
                .get("/v2/a/tags/list")
                .header("authorization", format!("Bearer {token}")),
        )
        .await;
    assert_eq!(
        resp.status(),
        404,
        "the token from before the restart is still valid"
    );
}

#[tokio::test]
async fn a_token_is_refused_once_it_expires_even_after_being_used() {
    let auth = AuthRegistry::start_with(true, &[], "token_ttl_secs = 1\n").await;
    let tags = format!("/v2/{REPO}/tags/list");
    let token = auth
        .token(
            Some(&basic("alice", PASSWORD)),
            &format!("repository:{REPO}:pull"),
        )
        .await;
    let bearer = format!("Bearer {token}");
    // Used (and so remembered as verified) while valid ...
    let resp = auth.send(Some(&bearer), Method::GET, &tags).await;
    assert_eq!(resp.status(), 404, "let in; the repository does not exist");
    // ... and refused once its second and the clock-skew leeway have passed.
    let leeway = berth_auth::token::LEEWAY_SECS;
    tokio::time::sleep(std::time::Duration::from_millis(2100 + leeway * 1000)).await;
    let resp = auth.send(Some(&bearer), Method::GET, &tags).await;
    assert_eq!(resp.status(), 401);
}

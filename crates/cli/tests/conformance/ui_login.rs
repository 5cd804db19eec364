//! The web UI under auth, through a real `berth serve`: the login page
//! and its session cookie, pages and listings limited to what the user may
//! pull, delete controls and posts limited to the `delete` right, logout,
//! the failed-login limiter on the form, and a cookie that `/v2` ignores.

use super::auth::{basic, htpasswd_text, AuthRegistry, PASSWORD};
use super::harness::*;
use reqwest::{Method, Response};
use serde_json::json;

/// A browser's requests: no redirects followed, the session cookie (if
/// any) sent by hand, same-origin headers on posts.
struct Browser<'a> {
    auth: &'a AuthRegistry,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(auth: &'a AuthRegistry) -> Browser<'a> {
        Browser {
            auth,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, self.auth.registry.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("berth_session={cookie}"));
        }
        request
    }

    async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    /// A form POST from berth's own page.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect();
        let body = body.join("&");
        self.request(Method::POST, path)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Logs in; keeps the cookie; returns the answer.
    async fn login(&mut self, user: &str, password: &str, next: &str) -> Response {
        let resp = self
            .post(
                "/ui/login",
                &[("user", user), ("password", password), ("next", next)],
            )
            .await;
        if let Some(cookie) = set_cookie(&resp) {
            let value = cookie
                .split(';')
                .next()
                .and_then(|pair| pair.strip_prefix("berth_session="))
                .unwrap();
            self.cookie = Some(value.to_string());
        }
        resp
    }
}

fn set_cookie(resp: &Response) -> Option<String> {
    header(resp, "set-cookie").map(str::to_string)
}

async fn text(resp: Response) -> String {
    resp.text().await.unwrap()
}

/// team-a and team-b repositories, pushed by the admin.
async fn registry(token: bool) -> AuthRegistry {
    let mut auth = AuthRegistry::start(token, &[]).await;
    auth.registry.authorize_with(&basic("admin", PASSWORD));
    for repo in ["team-a/app", "team-a/lib", "team-b/secret"] {
        auth.registry.push_image(repo, "v1").await;
    }
    auth
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_sets_a_session_cookie_and_the_user_sees_only_their_repositories() {
    for token in [false, true] {
        let auth = registry(token).await;
        let mut browser = Browser::new(&auth);
        // Anonymous has no rights here: every page asks for a login first,
        // and comes back afterwards.
        let resp = browser.get("/ui/").await;
        assert_eq!(resp.status(), 303, "token={token}");
        assert_eq!(header(&resp, "location"), Some("/ui/login"));
        let resp = browser.get("/ui/r/team-a/app").await;
        assert_eq!(
            header(&resp, "location"),
            Some("/ui/login?next=%2Fui%2Fr%2Fteam-a%2Fapp")
        );
        let resp = browser.get("/ui/login?next=%2Fui%2Fr%2Fteam-a%2Fapp").await;
        assert_eq!(resp.status(), 200);
        let html = text(resp).await;
        assert!(html.contains(r#"action="/ui/login""#), "{html}");
        assert!(html.contains(r#"name="next" value="/ui/r/team-a/app""#));
        // The page's assets load without a login.
        let css = html
            .split("href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(browser.get(css).await.status(), 200, "{css}");

        let resp = browser.login("alice", "wrong", "/ui/").await;
        assert_eq!(resp.status(), 401);
        assert!(set_cookie(&resp).is_none());
        assert!(text(resp).await.contains("Wrong user name or password."));

        let resp = browser.login("alice", PASSWORD, "/ui/r/team-a/app").await;
        assert_eq!(resp.status(), 303);
        assert_eq!(header(&resp, "location"), Some("/ui/r/team-a/app"));
        let cookie = set_cookie(&resp).unwrap();
        for part in [
            "berth_session=",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=28800",
        ] {
            assert!(cookie.contains(part), "{part} in {cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain http: {cookie}");
        assert!(!cookie.contains(PASSWORD) && !cookie.contains("correct"));

        // The front page lists team-a only, and counts only it.
        let resp = browser.get("/ui/").await;
        assert_eq!(resp.status(), 200);
        let html = text(resp).await;
        assert!(html.contains(">team-a/app</a>") && html.contains(">team-a/lib</a>"));
        assert!(!html.contains("team-b"), "{html}");
        assert!(
            html.contains("<dt>Repositories</dt><dd>2</dd>"),
            "counts only what alice sees: {html}"
        );
        assert!(html.contains(r#"<span class="user" title="Logged in as">alice</span>"#));
        assert!(html.contains(r#"<form method="post" action="/ui/logout">"#));
        // Another team's repository is refused whether or not it exists.
        let secret = browser.get("/ui/r/team-b/secret").await;
        let missing = browser.get("/ui/r/team-b/missing").await;
        assert_eq!(
            (secret.status().as_u16(), missing.status().as_u16()),
            (403, 403)
        );
        assert_eq!(
            text(secret).await.replace("secret", "NAME"),
            text(missing).await.replace("missing", "NAME")
        );
        let resp = browser.get("/ui/r/team-b/secret/-/m/v1").await;
        assert_eq!(resp.status(), 403);
        assert_eq!(browser.get("/ui/r/team-a/app/-/m/v1").await.status(), 200);

        // /api/v1 takes the cookie too, and lists only what alice may pull.
        let resp = browser.get("/api/v1/repositories").await;
        assert_eq!(resp.status(), 200);
        let names: Vec<String> = json_body(resp).await["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["team-a/app", "team-a/lib"]);
        assert_eq!(
            browser
                .get("/api/v1/repositories/team-b/secret/tags")
                .await
                .status(),
            403
        );
        let overview = json_body(browser.get("/api/v1/overview").await).await;
        assert_eq!(overview["visible_only"], json!(true), "{overview}");
        assert_eq!(overview["repositories"], json!(2), "{overview}");
        assert_eq!(overview["tags"], json!(2), "{overview}");
        // /v2 does not: a cookie there would let other sites act as alice.
        assert_eq!(browser.get("/v2/team-a/app/tags/list").await.status(), 401);

        // Logging out clears the cookie.
        let resp = browser.post("/ui/logout", &[]).await;
        assert_eq!(resp.status(), 303);
        assert_eq!(header(&resp, "location"), Some("/ui/login"));
        assert!(set_cookie(&resp).unwrap().contains("Max-Age=0"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_redirects_stay_on_ui_pages_and_https_cookies_are_secure() {
    let auth = registry(false).await;
    // Basic mode too keeps the key that signs sessions in the data folder.
    assert!(auth.registry.data_dir().join("auth/token-key.pem").exists());
    let mut browser = Browser::new(&auth);
    for next in [
        "https://evil.example/",
        "//evil.example/ui/",
        "/v2/_catalog",
    ] {
        let resp = browser.login("alice", PASSWORD, next).await;
        assert_eq!(header(&resp, "location"), Some("/ui/"), "{next}");
    }
    let resp = browser
        .request(Method::POST, "/ui/login")
        .header("sec-fetch-site", "same-origin")
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "user=alice&password={}",
            PASSWORD.replace(' ', "+")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(set_cookie(&resp).unwrap().ends_with("; Secure"));
    // A login form posted from another site is refused.
    let resp = browser
        .request(Method::POST, "/ui/login")
        .header("sec-fetch-site", "cross-site")
        .body("user=alice&password=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A forged or foreign cookie is no login: back to the login page.
    browser.cookie = Some("e30.e30.c2ln".into());
    assert_eq!(browser.get("/ui/").await.status(), 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_controls_and_posts_follow_the_delete_right() {
    let auth = registry(false).await;
    let mut puller = Browser::new(&auth);
    puller.login("puller", PASSWORD, "/ui/").await;
    let html = text(puller.get("/ui/r/team-a/app").await).await;
    assert!(html.contains(">v1</a>"), "{html}");
    assert!(!html.contains("/-/delete/"), "no delete control: {html}");
    assert_eq!(
        puller.get("/ui/r/team-a/app/-/delete/v1").await.status(),
        403
    );
    let resp = puller.post("/ui/r/team-a/app/-/delete/v1", &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(text(resp).await.contains("You may not delete"));
    let tags = json_body(
        auth.registry
            .send(auth.registry.get("/v2/team-a/app/tags/list"))
            .await,
    )
    .await;
    assert_eq!(tags["tags"], json!(["v1"]), "nothing was deleted");

    let mut alice = Browser::new(&auth);
    alice.login("alice", PASSWORD, "/ui/").await;
    let html = text(alice.get("/ui/r/team-a/app").await).await;
    assert!(html.contains("/ui/r/team-a/app/-/delete/v1"), "{html}");
    let resp = alice.post("/ui/r/team-a/app/-/delete/v1", &[]).await;
    assert_eq!(resp.status(), 303);
    let tags = json_body(
        auth.registry
            .send(auth.registry.get("/v2/team-a/app/tags/list"))
            .await,
    )
    .await;
    assert!(
        tags["tags"].as_array().is_none_or(|t| t.is_empty()),
        "the tag is gone: {tags}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_login_form_is_limited_after_failures_and_a_password_change_ends_sessions() {
    let auth = registry(false).await;
    let mut bob = Browser::new(&auth);
    assert_eq!(bob.login("bob", PASSWORD, "/ui/").await.status(), 303);
    assert_eq!(bob.get("/ui/").await.status(), 200);

    let mut guesser = Browser::new(&auth);
    for _ in 0..10 {
        assert_eq!(guesser.login("alice", "guess", "/ui/").await.status(), 401);
    }
    // Limited: even the right password gets the page with the 429 message.
    let resp = guesser.login("alice", PASSWORD, "/ui/").await;
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").is_some());
    assert!(set_cookie(&resp).is_none());
    let html = text(resp).await;
    assert!(html.contains("Too many failed logins"), "{html}");
    assert!(html.contains(r#"action="/ui/login""#));

    // bob's password changes: his session ends at once.
    let text = std::fs::read_to_string(&auth.htpasswd).unwrap();
    let hash = bcrypt::hash("new password", 4).unwrap();
    let changed: String = text
        .lines()
        .map(|line| match line.split_once(':') {
            Some(("bob", _)) => format!("bob:{hash}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    let tmp = auth.htpasswd.with_extension("new");
    std::fs::write(&tmp, changed).unwrap();
    std::fs::rename(&tmp, &auth.htpasswd).unwrap();
    let resp = bob.get("/ui/").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), Some("/ui/login"));
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_see_what_anonymous_may_pull_and_log_in_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, htpasswd_text(&[("admin", PASSWORD)])).unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "htpasswd = {htpasswd:?}\n\
             [[access]]\nwho = [\"admin\"]\nrepositories = [\"*\"]\nactions = [\"*\"]\n\
             [[access]]\nwho = [\"anonymous\"]\nrepositories = [\"public/*\"]\nactions = [\"pull\"]\n"
        ),
    )
    .unwrap();
    let mut registry =
        Registry::start_with_args(&["--config", config.to_str().unwrap()], &[]).await;
    registry.authorize_with(&basic("admin", PASSWORD));
    registry.push_image("public/base", "v1").await;
    registry.push_image("private/app", "v1").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| client.get(registry.url(path)).send();

    let resp = get("/ui/").await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = text(resp).await;
    assert!(html.contains(">public/base</a>"), "{html}");
    assert!(!html.contains("private/app"), "{html}");
    assert!(html.contains(r#"<a href="/ui/login">Log in</a>"#), "{html}");
    assert!(html.contains("<dt>Repositories</dt><dd>1</dd>"), "{html}");
    assert_eq!(get("/ui/r/public/base").await.unwrap().status(), 200);
    // Anything else: log in first (whether or not it exists).
    for path in ["/ui/r/private/app", "/ui/r/private/none"] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert!(header(&resp, "location")
            .unwrap()
            .starts_with("/ui/login?next="));
    }
    // The admin sees everything, with the registry's own totals.
    let body = format!("user=admin&password={}", encode_query_value(PASSWORD));
    let resp = client
        .post(registry.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&resp).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let resp = client
        .get(registry.url("/ui/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let html = text(resp).await;
    assert!(html.contains(">private/app</a>") && html.contains(">public/base</a>"));
    assert!(
        html.contains("<dt>Blobs</dt>"),
        "the registry's totals: {html}"
    );
}

#[tokio::test]
async fn a_session_cookie_reads_the_api_but_cannot_delete_a_repository_through_it() {
    let mut auth = AuthRegistry::start(false, &[]).await;
    auth.registry.authorize_with(&basic("admin", PASSWORD));
    auth.registry.push_image("team-a/app", "v1").await;
    let mut browser = Browser::new(&auth);
    let resp = browser.login("admin", PASSWORD, "/ui/").await;
    assert_eq!(resp.status(), 303);
    let resp = browser.get("/api/v1/repositories/team-a/app/tags").await;
    assert_eq!(resp.status(), 200, "the cookie reads");
    let resp = browser
        .request(Method::DELETE, "/api/v1/repositories/team-a/app")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a write needs credentials of its own");
    let catalog = json_body(auth.registry.send(auth.registry.get("/v2/_catalog")).await).await;
    assert_eq!(catalog["repositories"], json!(["team-a/app"]));
}

//! The session cookie of the web UI: what it is called, how it is set and
//! cleared, and where a login may send the browser afterwards.
//!
//! The cookie holds a signed session token (see `berth_auth::Auth::issue_session`),
//! never the password; `HttpOnly` keeps it from scripts, `SameSite=Strict`
//! keeps other sites' pages from using it.

use super::routes;
use axum::http::{header, HeaderMap, HeaderValue};
use std::time::Duration;

/// The cookie's name.
pub const COOKIE: &str = "berth_session";

/// The session token the request's cookies carry, if any.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Whether the browser reached berth over https (then the cookie is
/// `Secure`): the connection itself was TLS (`tls_connection`), or a proxy
/// in front says so with `X-Forwarded-Proto`.
pub fn is_https(tls_connection: bool, headers: &HeaderMap) -> bool {
    tls_connection
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new session of `lifetime`.
pub fn set(token: &str, lifetime: Duration, secure: bool) -> Option<HeaderValue> {
    let value = format!(
        "{COOKIE}={token}; Max-Age={}; Path=/; HttpOnly; SameSite=Strict{}",
        lifetime.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).ok()
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn clear(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "berth_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict; Secure",
        )
    } else {
        HeaderValue::from_static("berth_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict")
    }
}

/// Where to go after logging in: `next` if it is a UI page of this site,
/// else the front page (a login must not be a way to send users elsewhere).
pub fn next_page(next: Option<&str>) -> String {
    let fits = |next: &&str| {
        next.starts_with(routes::PREFIX)
            && !next.starts_with(routes::LOGIN)
            && !next.starts_with(routes::LOGOUT)
            && next
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'"')
    };
    next.filter(fits).unwrap_or(routes::PREFIX).to_owned()
}

/// The login page's address that comes back to `path_and_query` afterwards.
pub fn login_page_for(path_and_query: &str) -> String {
    let next = next_page(Some(path_and_query));
    if next == routes::PREFIX {
        return routes::LOGIN.to_owned();
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", &next)
        .finish();
    format!("{}?{query}", routes::LOGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_session_is_found_among_other_cookies() {
        assert_eq!(
            token(&headers(&[(
                "cookie",
                "a=1; berth_session=tok.en.sig; b=2"
            )])),
            Some("tok.en.sig")
        );
        assert_eq!(
            token(&headers(&[
                ("cookie", "a=1"),
                ("cookie", "berth_session=x")
            ])),
            Some("x")
        );
        assert_eq!(token(&headers(&[("cookie", "berth_session=")])), None);
        assert_eq!(token(&headers(&[("cookie", "xberth_session=y")])), None);
        assert_eq!(token(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let plain = set("t", Duration::from_secs(28_800), false).unwrap();
        assert_eq!(
            plain,
            "berth_session=t; Max-Age=28800; Path=/; HttpOnly; SameSite=Strict"
        );
        let secure = set("t", Duration::from_secs(60), true).unwrap();
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
        assert!(clear(false).to_str().unwrap().contains("Max-Age=0"));
        assert!(clear(true).to_str().unwrap().ends_with("; Secure"));
        assert!(is_https(false, &headers(&[("x-forwarded-proto", "HTTPS")])));
        assert!(!is_https(false, &headers(&[("x-forwarded-proto", "http")])));
        assert!(!is_https(false, &HeaderMap::new()));
        assert!(is_https(true, &HeaderMap::new()));
    }

    #[test]
    fn next_stays_on_ui_pages() {
        assert_eq!(next_page(Some("/ui/r/team-a/app")), "/ui/r/team-a/app");
        assert_eq!(next_page(Some("/ui/?q=a&last=b")), "/ui/?q=a&last=b");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/\\evil.example",
            "/v2/_catalog",
            "/ui",
            "/ui/login",
            "/ui/logout",
            "/ui/r/a b",
            "",
        ] {
            assert_eq!(next_page(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(next_page(None), "/ui/");
        assert_eq!(login_page_for("/ui/"), "/ui/login");
        assert_eq!(
            login_page_for("/ui/r/a/-/m/v1?x=1"),
            "/ui/login?next=%2Fui%2Fr%2Fa%2F-%2Fm%2Fv1%3Fx%3D1"
        );
    }
}

//! `WWW-Authenticate` values: what a client must do to be let in.
//!
//! Basic mode names the realm. Token mode names where to get a token
//! (`realm`: absolute URL of `/token`), for which `service`, and the
//! `scope` the refused request needed, so that docker, containerd and
//! friends ask `/token` for exactly that.

use axum::http::{header, HeaderMap};

/// One challenge, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: String,
    },
    Bearer {
        realm: String,
        service: String,
        /// `repository:NAME:pull,push`, `registry:catalog:*`; none for `/v2/`.
        scope: Option<String>,
        /// `insufficient_scope` when a valid token lacked the scope.
        error: Option<&'static str>,
    },
}

impl Challenge {
    /// The header value.
    pub fn render(&self) -> String {
        match self {
            Challenge::Basic { realm } => format!("Basic realm={}", quoted(realm)),
            Challenge::Bearer {
                realm,
                service,
                scope,
                error,
            } => {
                let mut value =
                    format!("Bearer realm={},service={}", quoted(realm), quoted(service));
                if let Some(scope) = scope {
                    value.push_str(&format!(",scope={}", quoted(scope)));
                }
                if let Some(error) = error {
                    value.push_str(&format!(",error={}", quoted(error)));
                }
                value
            }
        }
    }
}

/// A quoted-string (RFC 9110): `"` and `\` escaped.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The token realm: the configured URL, else `/token` on the scheme and
/// `Host` this request came by, so that a client reaching berth by any
/// name (a container name in KinD, `localhost`, an ingress) is sent back
/// to the same name. Without a usable `Host`, `localhost`.
pub fn token_realm(configured: Option<&str>, https: bool, headers: &HeaderMap) -> String {
    if let Some(realm) = configured {
        return realm.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_host(h))
        .unwrap_or("localhost");
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}/token")
}

/// Whether a proxy in front (an ingress terminating TLS) says the client
/// came by HTTPS (`X-Forwarded-Proto: https`). Only the realm sent back to
/// that same client depends on it, so a forged header misleads no one else.
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// A `host[:port]` safe to echo into a URL: no path, quote or space.
fn is_host(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_names_the_realm() {
        let c = Challenge::Basic {
            realm: "berth".into(),
        };
        assert_eq!(c.render(), r#"Basic realm="berth""#);
    }

    #[test]
    fn bearer_names_realm_service_scope_and_error() {
        let c = Challenge::Bearer {
            realm: "http://localhost:5000/token".into(),
            service: "berth".into(),
            scope: Some("repository:team-a/app:pull,push".into()),
            error: Some("insufficient_scope"),
        };
        assert_eq!(
            c.render(),
            r#"Bearer realm="http://localhost:5000/token",service="berth",scope="repository:team-a/app:pull,push",error="insufficient_scope""#
        );
        let base = Challenge::Bearer {
            realm: "r".into(),
            service: "s".into(),
            scope: None,
            error: None,
        };
        assert_eq!(base.render(), r#"Bearer realm="r",service="s""#);
    }

    #[test]
    fn a_proxy_may_say_the_client_came_by_https() {
        let mut headers = HeaderMap::new();
        assert!(!forwarded_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https, http"));
        assert!(forwarded_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!forwarded_https(&headers));
    }

    #[test]
    fn quotes_in_values_are_escaped() {
        let c = Challenge::Basic {
            realm: r#"a"b\c"#.into(),
        };
        assert_eq!(c.render(), r#"Basic realm="a\"b\\c""#);
    }

    #[test]
    fn the_realm_follows_the_request_unless_configured() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("berth:5000"));
        assert_eq!(
            token_realm(None, false, &headers),
            "http://berth:5000/token"
        );
        assert_eq!(
            token_realm(None, true, &headers),
            "https://berth:5000/token"
        );
        assert_eq!(
            token_realm(Some("https://r.example/token"), false, &headers),
            "https://r.example/token"
        );
        headers.insert(header::HOST, HeaderValue::from_static("evil\"/x"));
        assert_eq!(token_realm(None, false, &headers), "http://localhost/token");
    }
}

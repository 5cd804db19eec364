//! Authentication as docker does it after `docker login`: either Basic
//! credentials on every request, or one Bearer token per repository and
//! action fetched from the realm the registry's challenge names.
//!
//! The setup (a `GET /v2/` with the credentials, or the challenge, the
//! `/token` request and a `GET /v2/` with the token) runs once per loadgen
//! run, before the timed part: the first password check is a cache miss
//! (bcrypt) on any registry, and the rows measure the steady state of a
//! client that is already logged in. Its duration is reported as
//! `auth_setup_ms`.

use std::time::Instant;

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use http::{Method, StatusCode};

use crate::http::{origin_form, Chunks, Conn, Target};

/// How the loadgen authenticates, from `--basic USER:PASSWORD [--token]`.
#[derive(Clone, Debug)]
pub enum Login {
    Anonymous,
    Basic { user_password: String },
    Token { user_password: String },
}

impl Login {
    pub fn from_args(basic: Option<String>, token: bool) -> Result<Login> {
        match (basic, token) {
            (None, false) => Ok(Login::Anonymous),
            (None, true) => bail!("--token needs --basic USER:PASSWORD (the login for /token)"),
            (Some(up), _) if !up.contains(':') => bail!("--basic wants USER:PASSWORD"),
            (Some(user_password), false) => Ok(Login::Basic { user_password }),
            (Some(user_password), true) => Ok(Login::Token { user_password }),
        }
    }

    pub fn is_token(&self) -> bool {
        matches!(self, Login::Token { .. })
    }
}

/// The `Authorization` value for Basic credentials.
fn basic_header(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// Logs in and sets the target's `Authorization` header; returns the
/// setup's duration in ms (None when anonymous). `repo` is the repository
/// a token is asked for (`repository:REPO:pull,push`).
pub async fn log_in(target: &mut Target, login: &Login, repo: Option<&str>) -> Result<Option<f64>> {
    let start = Instant::now();
    let header = match login {
        Login::Anonymous => return Ok(None),
        Login::Basic { user_password } => basic_header(user_password),
        Login::Token { user_password } => {
            let repo =
                repo.ok_or_else(|| anyhow!("--token works only for commands on one repository"))?;
            let token = fetch_token(target, user_password, repo).await?;
            format!("Bearer {token}")
        }
    };
    target.authorization = Some(header);
    // What docker does first: the version check, now with credentials.
    Conn::new(target)
        .expect(Method::GET, "/v2/", &[], Chunks::empty(), StatusCode::OK)
        .await
        .context("GET /v2/ with credentials")?;
    Ok(Some(start.elapsed().as_secs_f64() * 1000.0))
}

/// The challenge of an anonymous `GET /v2/`, then `GET <realm>?service=&scope=`
/// with Basic credentials; the `token` (or `access_token`) of the answer.
async fn fetch_token(target: &Target, user_password: &str, repo: &str) -> Result<String> {
    let mut conn = Conn::new(target);
    let resp = conn
        .request(Method::GET, "/v2/", &[], Chunks::empty())
        .await?;
    if resp.status() != StatusCode::UNAUTHORIZED {
        bail!(
            "GET /v2/ without credentials: got {}, want a 401 challenge",
            resp.status()
        );
    }
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .ok_or_else(|| anyhow!("401 without WWW-Authenticate"))?
        .to_str()?
        .to_string();
    crate::http::drain(resp.into_body(), None).await?;
    let params =
        bearer_params(&challenge).ok_or_else(|| anyhow!("not a Bearer challenge: {challenge}"))?;
    let realm = param(&params, "realm").ok_or_else(|| anyhow!("no realm in {challenge}"))?;
    let mut query = form_pairs(&[("scope", &format!("repository:{repo}:pull,push"))]);
    if let Some(service) = param(&params, "service") {
        query = format!("{}&{query}", form_pairs(&[("service", service)]));
    }
    let realm_path = origin_form(realm);
    let sep = if realm_path.contains('?') { '&' } else { '?' };
    let auth = basic_header(user_password);
    let (_, body) = conn
        .expect(
            Method::GET,
            &format!("{realm_path}{sep}{query}"),
            &[("authorization", &auth)],
            Chunks::empty(),
            StatusCode::OK,
        )
        .await
        .context("token request")?;
    let answer: serde_json::Value = serde_json::from_slice(&body).context("token answer")?;
    ["token", "access_token"]
        .iter()
        .find_map(|k| answer.get(k).and_then(|v| v.as_str()))
        .map(String::from)
        .ok_or_else(|| anyhow!("token answer without token"))
}

/// `Bearer k="v",k2="v2"` → its parameters (quoted values, no escapes inside).
fn bearer_params(challenge: &str) -> Option<Vec<(String, String)>> {
    let rest = challenge.trim().strip_prefix("Bearer ")?;
    let mut out = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_ascii_lowercase();
        let after = &s[eq + 1..];
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((key, value.to_string()));
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `k=v&…` with the values percent-encoded (scope holds ':' and ',').
fn form_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_bearer_challenge() {
        let p = bearer_params(
            r#"Bearer realm="http://127.0.0.1:5000/token",service="berth",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(param(&p, "realm"), Some("http://127.0.0.1:5000/token"));
        assert_eq!(param(&p, "service"), Some("berth"));
        assert_eq!(param(&p, "scope"), Some("repository:a/b:pull,push"));
        assert!(bearer_params(r#"Basic realm="berth""#).is_none());
    }

    #[test]
    fn encodes_a_scope() {
        assert_eq!(
            form_pairs(&[("scope", "repository:a/b:pull,push")]),
            "scope=repository%3Aa/b%3Apull%2Cpush"
        );
    }

    #[test]
    fn basic_header_is_base64_of_user_colon_password() {
        assert_eq!(basic_header("bench:secret"), "Basic YmVuY2g6c2VjcmV0");
    }
}

//! Bearer tokens: what a token endpoint answers, and the cache that keeps
//! one token per scope until shortly before it expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lifetime when the token endpoint does not say (the token spec's default).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// Never renew sooner than this before expiry, nor later than the cap: a
/// request started just before expiry must still be accepted.
const MAX_MARGIN: Duration = Duration::from_secs(30);

/// The token endpoint's JSON (docker's `token`, OAuth2's `access_token`).
#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A token and how long it lives, read from the endpoint's body.
pub struct IssuedToken {
    pub token: String,
    pub lifetime: Duration,
}

/// Written by hand: the token is a secret.
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Reads a token endpoint's body; the error says what was wrong without
/// echoing the body (it may hold a token).
pub fn parse_token_response(body: &[u8]) -> Result<IssuedToken, &'static str> {
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|_| "token endpoint answered with no JSON object")?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or("token endpoint answered without a token")?;
    let lifetime = match parsed.expires_in {
        Some(0) | None => DEFAULT_LIFETIME,
        Some(seconds) => Duration::from_secs(seconds),
    };
    Ok(IssuedToken { token, lifetime })
}

/// Tokens by scope, each dropped a margin before it expires.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    /// The cached token for `scope` if it is still good at `now`.
    pub fn get(&self, scope: &str, now: Instant) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(scope)
            .filter(|(_, until)| now < *until)
            .map(|(token, _)| token.clone())
    }

    /// Keeps `token` for `scope` until a fifth of its lifetime (at most 30 s)
    /// before it expires.
    pub fn put(&self, scope: &str, token: &IssuedToken, now: Instant) {
        let margin = (token.lifetime / 5).min(MAX_MARGIN);
        let until = now + token.lifetime.saturating_sub(margin);
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.insert(scope.to_string(), (token.token.clone(), until));
    }

    /// Forgets `scope`'s token (the upstream refused it).
    pub fn forget(&self, scope: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_or_access_token() {
        let t = parse_token_response(br#"{"token":"a","expires_in":300}"#).unwrap();
        assert_eq!((t.token.as_str(), t.lifetime.as_secs()), ("a", 300));
        let t = parse_token_response(br#"{"access_token":"b"}"#).unwrap();
        assert_eq!((t.token.as_str(), t.lifetime.as_secs()), ("b", 60));
        let t = parse_token_response(br#"{"token":"","access_token":"c","expires_in":0}"#).unwrap();
        assert_eq!((t.token.as_str(), t.lifetime.as_secs()), ("c", 60));
        assert!(parse_token_response(br#"{"expires_in":3}"#).is_err());
        let err = parse_token_response(b"secret-ish junk").unwrap_err();
        assert!(!err.contains("secret"));
    }

    #[test]
    fn cached_until_a_margin_before_expiry() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        let issued = IssuedToken {
            token: "tok".into(),
            lifetime: Duration::from_secs(60),
        };
        cache.put("repository:a:pull", &issued, t0);
        assert_eq!(cache.get("repository:a:pull", t0).as_deref(), Some("tok"));
        assert_eq!(cache.get("repository:b:pull", t0), None);
        let before_margin = t0 + Duration::from_secs(47);
        assert!(cache.get("repository:a:pull", before_margin).is_some());
        let in_margin = t0 + Duration::from_secs(49);
        assert_eq!(cache.get("repository:a:pull", in_margin), None);
        cache.forget("repository:a:pull");
        assert_eq!(cache.get("repository:a:pull", t0), None);
    }

    #[test]
    fn long_lived_tokens_renew_30s_early() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        let issued = IssuedToken {
            token: "tok".into(),
            lifetime: Duration::from_secs(3600),
        };
        cache.put("s", &issued, t0);
        assert!(cache.get("s", t0 + Duration::from_secs(3569)).is_some());
        assert!(cache.get("s", t0 + Duration::from_secs(3571)).is_none());
    }
}

//! Verified Bearer tokens, remembered until they expire.
//!
//! A client pulling an image sends the same token with every request, and
//! checking its ES256 signature costs far more CPU than serving a manifest
//! (measured: 7,000 manifest GETs/s with a check per request against
//! 34,000 without auth). A token's grants cannot change before its `exp`,
//! so the first successful check is reused until then; a token that fails
//! is never remembered.

use berth_auth::Grants;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Tokens remembered at once; past it, expired ones are dropped, then all.
const CAPACITY: usize = 10_000;

type Key = [u8; 32];

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<Key, (Grants, u64)>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn key(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

/// The `exp` claim of a token whose signature was verified: read from its
/// payload without a second check.
fn expiry(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

impl TokenCache {
    /// The grants of `token` if it was verified and has not expired since.
    pub fn get(&self, token: &str) -> Option<Grants> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key(token)) {
            Some((grants, exp)) if now() < *exp => Some(grants.clone()),
            _ => None,
        }
    }

    /// Remembers a token that has just been verified.
    pub fn insert(&self, token: &str, grants: &Grants) {
        let Some(exp) = expiry(token) else { return };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            let now = now();
            entries.retain(|_, (_, exp)| now < *exp);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key(token), (grants.clone(), exp));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn token(exp: u64) -> String {
        let encode = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            encode(serde_json::json!({"alg": "ES256"})),
            encode(serde_json::json!({"exp": exp, "sub": "alice"}))
        )
    }

    fn grants() -> Grants {
        Grants {
            subject: Some("alice".into()),
            access: Vec::new(),
        }
    }

    #[test]
    fn a_verified_token_is_reused_until_it_expires() {
        let cache = TokenCache::default();
        let live = token(now() + 300);
        assert_eq!(cache.get(&live), None);
        cache.insert(&live, &grants());
        assert_eq!(cache.get(&live), Some(grants()));
        let expired = token(now() - 1);
        cache.insert(&expired, &grants());
        assert_eq!(cache.get(&expired), None, "an expired token is not served");
        assert_eq!(cache.get(&token(now() + 301)), None, "another token");
    }

    #[test]
    fn a_token_without_exp_is_not_remembered() {
        let cache = TokenCache::default();
        cache.insert("a.e30.c", &grants()); // payload `{}`
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_first() {
        let cache = TokenCache::default();
        // One clock reading: each `exp` distinct, so each token is.
        let base = now();
        for n in 0..CAPACITY as u64 {
            cache.insert(&token(base - 1 - n), &grants());
        }
        assert_eq!(cache.len(), CAPACITY);
        let live = token(now() + 300);
        cache.insert(&live, &grants());
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&live).is_some());
    }
}

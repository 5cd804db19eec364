//! What a client controls about authentication: a token's scope parameter,
//! a Bearer token, and (for an admin's edited file) htpasswd text. None of
//! them may panic; a token berth did not sign is never accepted.
#![no_main]

use berth_auth::{Htpasswd, Scope, SigningKey, TokenIssuer, TokenVerifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;

/// One verifier for the whole run: making a key per input would be all the
/// fuzzer measured.
fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let key = SigningKey::generate().expect("an ES256 key");
        let issuer = TokenIssuer {
            issuer: "berth".into(),
            service: "berth".into(),
            ttl: Duration::from_secs(300),
            key,
        };
        TokenVerifier::new(Some(&issuer), Vec::new())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(scope) = Scope::parse(text) {
        // What a challenge or a token carries parses back to the same scope.
        let rendered = scope.to_string();
        assert_eq!(Scope::parse(&rendered), Some(scope), "{rendered}");
    }
    let _ = Htpasswd::parse(text);
    assert!(
        verifier().verify(text).is_err(),
        "a token berth never signed was accepted"
    );
});

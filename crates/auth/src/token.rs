//! Signed tokens (Docker token spec, JWT): issuing with berth's key and
//! verifying berth's own and external issuers' tokens. Only asymmetric
//! algorithms are ever accepted, each key with an explicit allow-list.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::SigningKey;
use crate::{Actions, Resource};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 10;
/// How long a refresh token (OAuth2 `access_type=offline`) lives.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a web UI login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Algorithms any key may be used with; everything else (none, HS*) is refused.
const ASYMMETRIC: [Algorithm; 3] = [Algorithm::ES256, Algorithm::ES384, Algorithm::RS256];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("token signature does not verify with any trusted key")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token issuer not accepted")]
    WrongIssuer,
    #[error("token audience not accepted")]
    WrongAudience,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("refresh token no longer valid")]
    RefreshRevoked,
    /// The user of a session was removed or changed their password.
    #[error("session no longer valid")]
    SessionRevoked,
    #[error("signing a token: {0}")]
    Signing(String),
}

/// One entry of a token's `access` claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// `repository` or `registry`.
    pub type_: String,
    pub name: String,
    pub actions: Actions,
}

impl Access {
    pub fn for_resource(resource: &Resource, actions: Actions) -> Access {
        let name = match resource {
            Resource::Repository(name) => name.clone(),
            Resource::Catalog => "catalog".to_string(),
            Resource::Admin => "admin".to_string(),
        };
        Access {
            type_: resource.type_name().to_string(),
            name,
            actions,
        }
    }

    /// The resource this entry is about, if berth knows the type.
    pub fn resource(&self) -> Option<Resource> {
        match (self.type_.as_str(), self.name.as_str()) {
            ("repository", name) => Some(Resource::Repository(name.to_string())),
            ("registry", "catalog") => Some(Resource::Catalog),
            _ => None,
        }
    }
}

/// The `access` claim as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AccessClaim {
    #[serde(rename = "type")]
    type_: String,
    name: String,
    #[serde(default)]
    actions: Vec<String>,
}

impl From<&Access> for AccessClaim {
    fn from(access: &Access) -> AccessClaim {
        AccessClaim {
            type_: access.type_.clone(),
            name: access.name.clone(),
            actions: access
                .actions
                .token_names()
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }
}

impl AccessClaim {
    /// Unknown action names grant nothing.
    fn to_access(&self) -> Access {
        let repository = self.type_ == "repository";
        let mut actions = Actions::NONE;
        for name in &self.actions {
            actions = actions
                | match (repository, name.as_str()) {
                    (true, "pull") => Actions::PULL,
                    (true, "push") => Actions::PUSH,
                    (true, "delete") => Actions::DELETE,
                    (true, "*") => Actions::REPOSITORY,
                    (false, "*") if self.type_ == "registry" && self.name == "catalog" => {
                        Actions::CATALOG
                    }
                    _ => Actions::NONE,
                };
        }
        Access {
            type_: self.type_.clone(),
            name: self.name.clone(),
            actions,
        }
    }
}

/// The claims berth writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    access: Vec<AccessClaim>,
    /// Refresh tokens only: digest of the htpasswd hash they were issued
    /// under, so a password change revokes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pwd: Option<String>,
}

/// What a verified token's fields are read into (issuers may write `aud`
/// as a list, so it is not read here; the validation checks it).
#[derive(Deserialize)]
struct VerifiedClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    access: Vec<AccessClaim>,
    #[serde(default)]
    pwd: Option<String>,
}

/// What a valid token lets its bearer do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// `sub`; None for an anonymous token (empty `sub`).
    pub subject: Option<String>,
    pub access: Vec<Access>,
}

impl Grants {
    /// The actions the token grants on `resource` (exact names, no patterns).
    pub fn actions_for(&self, resource: &Resource) -> Actions {
        self.access
            .iter()
            .filter(|a| a.resource().as_ref() == Some(resource))
            .fold(Actions::NONE, |acc, a| acc | a.actions)
            .intersection(resource.possible_actions())
    }

    pub fn allows(&self, resource: &Resource, actions: Actions) -> bool {
        self.actions_for(resource).contains(actions)
    }
}

/// A signed token as `/token` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    /// Unix seconds.
    pub issued_at: u64,
    /// Set when a refresh token was asked for (OAuth2 `access_type=offline`).
    pub refresh_token: Option<String>,
}

impl IssuedToken {
    /// `issued_at` as RFC 3339 (UTC), as the token response carries it.
    pub fn issued_at_rfc3339(&self) -> String {
        rfc3339(self.issued_at)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds to `YYYY-MM-DDTHH:MM:SSZ`; the epoch for a time beyond what
/// the calendar can write (never for a token berth issued).
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Digest of an htpasswd hash, carried in refresh tokens.
pub(crate) fn password_digest(htpasswd_hash: &str) -> String {
    hex::encode(&Sha256::digest(htpasswd_hash.as_bytes())[..16])
}

/// Signs berth's tokens.
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    pub issuer: String,
    /// The `aud` of access tokens; refresh tokens use `<service>-refresh`.
    pub service: String,
    pub ttl: Duration,
    pub key: SigningKey,
}

impl TokenIssuer {
    pub fn refresh_audience(&self) -> String {
        format!("{}-refresh", self.service)
    }

    fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(self.key.algorithm());
        header.kid = Some(self.key.kid().to_string());
        jsonwebtoken::encode(&header, claims, self.key.encoding_key())
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// An access token for `subject` ("" for anonymous) carrying `access`.
    pub fn issue(&self, subject: &str, access: &[Access]) -> Result<IssuedToken, TokenError> {
        let now = now_secs();
        let ttl = self.ttl.as_secs().max(1);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_string(),
            aud: self.service.clone(),
            exp: now + ttl,
            nbf: now,
            iat: now,
            jti: random_id(),
            access: access.iter().map(AccessClaim::from).collect(),
            pwd: None,
        };
        Ok(IssuedToken {
            token: self.sign(&claims)?,
            expires_in: ttl,
            issued_at: now,
            refresh_token: None,
        })
    }

    /// A refresh token naming `user`, tied to their current htpasswd hash.
    pub fn issue_refresh(&self, user: &str, htpasswd_hash: &str) -> Result<String, TokenError> {
        self.issue_bound(user, htpasswd_hash, &self.refresh_audience(), REFRESH_TTL)
    }

    /// Verifies a refresh token: (user, password digest it was issued under).
    pub fn verify_refresh(&self, token: &str) -> Result<(String, String), TokenError> {
        self.verify_bound(token, &self.refresh_audience())
    }

    /// The `aud` of web UI session tokens: no other endpoint accepts them,
    /// and they accept no other token.
    pub fn session_audience(&self) -> String {
        format!("{}-ui", self.service)
    }

    /// A web UI session token naming `user`, tied to their current htpasswd
    /// hash (a password change or removal ends the session).
    pub fn issue_session(&self, user: &str, htpasswd_hash: &str) -> Result<String, TokenError> {
        self.issue_bound(user, htpasswd_hash, &self.session_audience(), SESSION_TTL)
    }

    /// Verifies a session token: (user, password digest it was issued under).
    pub fn verify_session(&self, token: &str) -> Result<(String, String), TokenError> {
        self.verify_bound(token, &self.session_audience())
    }

    /// A token for `audience` naming `user` and a digest of their htpasswd
    /// hash, granting nothing by itself.
    fn issue_bound(
        &self,
        user: &str,
        htpasswd_hash: &str,
        audience: &str,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let now = now_secs();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user.to_string(),
            aud: audience.to_string(),
            exp: now + ttl.as_secs(),
            nbf: now,
            iat: now,
            jti: random_id(),
            access: Vec::new(),
            pwd: Some(password_digest(htpasswd_hash)),
        };
        self.sign(&claims)
    }

    /// Verifies a token of [`Self::issue_bound`] with berth's own key only.
    fn verify_bound(&self, token: &str, audience: &str) -> Result<(String, String), TokenError> {
        let key = IssuerKey::new(
            Some(self.key.kid().to_string()),
            self.key.decoding_key().clone(),
            vec![self.key.algorithm()],
        );
        let claims = verify_with(token, &self.issuer, audience, &[key])?;
        match (claims.sub, claims.pwd) {
            (Some(user), Some(pwd)) if !user.is_empty() => Ok((user, pwd)),
            _ => Err(TokenError::Invalid(format!("not a token for {audience}"))),
        }
    }
}

/// A public key trusted for tokens, with the algorithms it may be used with.
#[derive(Clone)]
pub struct IssuerKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl IssuerKey {
    /// Symmetric algorithms are dropped from `algorithms`, whatever is passed.
    pub fn new(kid: Option<String>, key: DecodingKey, algorithms: Vec<Algorithm>) -> IssuerKey {
        let algorithms = algorithms
            .into_iter()
            .filter(|a| ASYMMETRIC.contains(a))
            .collect();
        IssuerKey {
            kid,
            key,
            algorithms,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssuerKeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an EC or RSA public key in PEM: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("{path}: not a usable JWKS: {reason}")]
    BadJwks { path: PathBuf, reason: String },
    #[error("token issuer {issuer:?}: give exactly one of public_key and jwks")]
    KeySource { issuer: String },
}

/// A token service besides berth whose tokens berth accepts.
#[derive(Clone, Debug)]
pub struct ExternalIssuer {
    pub issuer: String,
    pub audience: String,
    pub keys: Vec<IssuerKey>,
}

/// One `[[token_issuers]]` table of the config.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuerConfig {
    pub issuer: String,
    pub audience: String,
    pub public_key: Option<PathBuf>,
    pub jwks: Option<PathBuf>,
}

impl ExternalIssuerConfig {
    /// Reads the key file(s) it names.
    pub fn load(&self) -> Result<ExternalIssuer, IssuerKeyError> {
        let keys = match (&self.public_key, &self.jwks) {
            (Some(pem), None) => vec![public_key_from_pem_file(pem)?],
            (None, Some(jwks)) => keys_from_jwks_file(jwks)?,
            _ => {
                return Err(IssuerKeyError::KeySource {
                    issuer: self.issuer.clone(),
                })
            }
        };
        Ok(ExternalIssuer {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            keys,
        })
    }
}

/// A PEM public key (SPKI): EC keys may sign ES256/ES384, RSA keys RS256.
pub fn public_key_from_pem(pem: &str) -> Result<IssuerKey, String> {
    match DecodingKey::from_ec_pem(pem.as_bytes()) {
        Ok(key) => Ok(IssuerKey::new(
            None,
            key,
            vec![Algorithm::ES256, Algorithm::ES384],
        )),
        Err(ec_error) => match DecodingKey::from_rsa_pem(pem.as_bytes()) {
            Ok(key) => Ok(IssuerKey::new(None, key, vec![Algorithm::RS256])),
            Err(_) => Err(ec_error.to_string()),
        },
    }
}

pub fn public_key_from_pem_file(path: &Path) -> Result<IssuerKey, IssuerKeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| IssuerKeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    public_key_from_pem(&pem).map_err(|reason| IssuerKeyError::BadPem {
        path: path.to_path_buf(),
        reason,
    })
}

/// Keys of a JWKS document: EC P-256/P-384 and RSA; symmetric (`oct`) keys are refused.
pub fn keys_from_jwks(json: &str) -> Result<Vec<IssuerKey>, String> {
    let set: JwkSet = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let algorithms = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => continue,
            },
            AlgorithmParameters::RSA(_) => vec![Algorithm::RS256],
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        keys.push(IssuerKey::new(jwk.common.key_id.clone(), key, algorithms));
    }
    if keys.is_empty() {
        return Err("no EC (P-256/P-384) or RSA keys".to_string());
    }
    Ok(keys)
}

pub fn keys_from_jwks_file(path: &Path) -> Result<Vec<IssuerKey>, IssuerKeyError> {
    let json = std::fs::read_to_string(path).map_err(|source| IssuerKeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    keys_from_jwks(&json).map_err(|reason| IssuerKeyError::BadJwks {
        path: path.to_path_buf(),
        reason,
    })
}

/// Every issuer berth trusts: itself (when the token service is on) and the
/// external ones.
#[derive(Clone, Debug, Default)]
pub struct TokenVerifier {
    issuers: Vec<ExternalIssuer>,
}

impl TokenVerifier {
    pub fn new(own: Option<&TokenIssuer>, external: Vec<ExternalIssuer>) -> TokenVerifier {
        let mut issuers = Vec::with_capacity(external.len() + 1);
        if let Some(own) = own {
            issuers.push(ExternalIssuer {
                issuer: own.issuer.clone(),
                audience: own.service.clone(),
                keys: vec![IssuerKey::new(
                    Some(own.key.kid().to_string()),
                    own.key.decoding_key().clone(),
                    vec![own.key.algorithm()],
                )],
            });
        }
        issuers.extend(external);
        TokenVerifier { issuers }
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Signature, `exp`, `nbf`, `iss` and `aud` checked; the grants it carries.
    pub fn verify(&self, token: &str) -> Result<Grants, TokenError> {
        let mut best = TokenError::BadSignature;
        for issuer in &self.issuers {
            match verify_with(token, &issuer.issuer, &issuer.audience, &issuer.keys) {
                Ok(claims) => {
                    return Ok(Grants {
                        subject: claims.sub.filter(|s| !s.is_empty()),
                        access: claims.access.iter().map(AccessClaim::to_access).collect(),
                    })
                }
                // Errors other than a bad signature mean a trusted key signed it: tell that.
                Err(TokenError::BadSignature) => {}
                Err(e) => best = e,
            }
        }
        Err(best)
    }
}

fn verify_with(
    token: &str,
    issuer: &str,
    audience: &str,
    keys: &[IssuerKey],
) -> Result<VerifiedClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !ASYMMETRIC.contains(&header.alg) {
        return Err(TokenError::UnsupportedAlgorithm(format!(
            "{:?}",
            header.alg
        )));
    }
    let mut result = Err(TokenError::BadSignature);
    for key in keys {
        if !key.algorithms.contains(&header.alg) {
            continue;
        }
        if let (Some(want), Some(have)) = (&header.kid, &key.kid) {
            if want != have {
                continue;
            }
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        match jsonwebtoken::decode::<VerifiedClaims>(token, &key.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                let error = match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                    ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                    ErrorKind::InvalidAudience => TokenError::WrongAudience,
                    ErrorKind::InvalidAlgorithm => {
                        TokenError::UnsupportedAlgorithm(format!("{:?}", header.alg))
                    }
                    ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) => {
                        TokenError::Malformed
                    }
                    other => TokenError::Invalid(format!("{other:?}")),
                };
                if error != TokenError::BadSignature {
                    return Err(error);
                }
                result = Err(error);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::EncodingKey;

    fn issuer_with(key: &SigningKey, issuer: &str, service: &str) -> TokenIssuer {
        TokenIssuer {
            issuer: issuer.to_string(),
            service: service.to_string(),
            ttl: Duration::from_secs(300),
            key: key.clone(),
        }
    }

    fn pull(name: &str) -> Access {
        Access::for_resource(&Resource::Repository(name.to_string()), Actions::PULL)
    }

    struct Setup {
        key: SigningKey,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
    }

    fn setup() -> Setup {
        let key = SigningKey::generate().unwrap();
        let issuer = issuer_with(&key, "berth", "berth");
        let verifier = TokenVerifier::new(Some(&issuer), Vec::new());
        Setup {
            key,
            issuer,
            verifier,
        }
    }

    fn claims(sub: &str, exp: u64, nbf: u64) -> Claims {
        Claims {
            iss: "berth".to_string(),
            sub: sub.to_string(),
            aud: "berth".to_string(),
            exp,
            nbf,
            iat: nbf,
            jti: random_id(),
            access: vec![AccessClaim::from(&pull("team-a/app"))],
            pwd: None,
        }
    }

    fn sign_with(key: &SigningKey, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid().to_string());
        jsonwebtoken::encode(&header, claims, key.encoding_key()).unwrap()
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[test]
    fn a_token_grants_exactly_its_access_claim() {
        let s = setup();
        let issued = s.issuer.issue("alice", &[pull("team-a/app")]).unwrap();
        assert_eq!(issued.expires_in, 300);
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(s.key.kid()));
        let grants = s.verifier.verify(&issued.token).unwrap();
        assert_eq!(grants.subject.as_deref(), Some("alice"));
        let app = Resource::Repository("team-a/app".to_string());
        assert_eq!(grants.actions_for(&app), Actions::PULL);
        assert!(!grants.allows(&app, Actions::PUSH));
        // A token for one repository grants nothing on another.
        let other = Resource::Repository("team-b/app".to_string());
        assert_eq!(grants.actions_for(&other), Actions::NONE);
        assert_eq!(grants.actions_for(&Resource::Catalog), Actions::NONE);
        let anonymous = s.issuer.issue("", &[]).unwrap();
        assert_eq!(
            s.verifier.verify(&anonymous.token).unwrap(),
            Grants::default()
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let s = setup();
        let now = now_secs();
        let payload = serde_json::to_value(claims("alice", now + 300, now)).unwrap();
        for alg in ["none", "None", "NONE"] {
            let token = format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg": alg, "typ": "JWT"})),
                b64(&payload)
            );
            let error = s.verifier.verify(&token).unwrap_err();
            assert!(
                matches!(
                    error,
                    TokenError::Malformed | TokenError::UnsupportedAlgorithm(_)
                ),
                "{alg}: {error:?}"
            );
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let s = setup();
        let now = now_secs();
        for secret in [
            s.key.public_key_pem().as_bytes().to_vec(),
            s.key.public_key_pem().trim().as_bytes().to_vec(),
        ] {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let mut header = Header::new(alg);
                header.kid = Some(s.key.kid().to_string());
                let token = jsonwebtoken::encode(
                    &header,
                    &claims("alice", now + 300, now),
                    &EncodingKey::from_secret(&secret),
                )
                .unwrap();
                assert!(
                    matches!(
                        s.verifier.verify(&token),
                        Err(TokenError::UnsupportedAlgorithm(_))
                    ),
                    "{alg:?}"
                );
            }
        }
        // Even a key whose allow-list names HS256 never accepts it.
        let key = IssuerKey::new(None, DecodingKey::from_secret(b"k"), vec![Algorithm::HS256]);
        assert!(key.algorithms.is_empty());
    }

    #[test]
    fn wrong_issuer_or_audience_is_refused() {
        let s = setup();
        let token = issuer_with(&s.key, "someone-else", "berth")
            .issue("alice", &[pull("a")])
            .unwrap();
        assert_eq!(
            s.verifier.verify(&token.token),
            Err(TokenError::WrongIssuer)
        );
        let token = issuer_with(&s.key, "berth", "other-service")
            .issue("alice", &[pull("a")])
            .unwrap();
        assert_eq!(
            s.verifier.verify(&token.token),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let s = setup();
        let now = now_secs();
        let expired = sign_with(&s.key, &claims("alice", now - LEEWAY_SECS - 5, now - 400));
        assert_eq!(s.verifier.verify(&expired), Err(TokenError::Expired));
        let future = sign_with(&s.key, &claims("alice", now + 600, now + LEEWAY_SECS + 60));
        assert_eq!(s.verifier.verify(&future), Err(TokenError::NotYetValid));
        // Within the leeway both are fine.
        let skewed = sign_with(&s.key, &claims("alice", now + 300, now + 2));
        assert!(s.verifier.verify(&skewed).is_ok());
    }

    #[test]
    fn a_modified_access_claim_breaks_the_signature() {
        let s = setup();
        let token = s
            .issuer
            .issue("alice", &[pull("team-a/app")])
            .unwrap()
            .token;
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["access"] = serde_json::json!([
            {"type": "repository", "name": "team-a/app", "actions": ["pull", "push", "delete"]}
        ]);
        let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
        assert_eq!(s.verifier.verify(&forged), Err(TokenError::BadSignature));
        // Dropping the header's kid does not help either.
        let header = b64(&serde_json::json!({"alg": "ES256", "typ": "JWT"}));
        let forged = format!("{header}.{}.{}", b64(&payload), parts[2]);
        assert_eq!(s.verifier.verify(&forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_from_another_berths_key_is_refused() {
        let s = setup();
        let other = SigningKey::generate().unwrap();
        let token = issuer_with(&other, "berth", "berth")
            .issue("alice", &[pull("a")])
            .unwrap();
        assert_eq!(
            s.verifier.verify(&token.token),
            Err(TokenError::BadSignature)
        );
        // Also when it claims our kid.
        let now = now_secs();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(s.key.kid().to_string());
        let token = jsonwebtoken::encode(
            &header,
            &claims("alice", now + 300, now),
            other.encoding_key(),
        )
        .unwrap();
        assert_eq!(s.verifier.verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        let s = setup();
        for token in ["", "abc", "a.b.c", "a.b"] {
            assert_eq!(
                s.verifier.verify(token),
                Err(TokenError::Malformed),
                "{token}"
            );
        }
        assert!(TokenVerifier::default().verify("a.b.c").is_err());
    }

    #[test]
    fn refresh_and_access_tokens_are_not_interchangeable() {
        let s = setup();
        let refresh = s.issuer.issue_refresh("alice", "$2y$hash").unwrap();
        assert_eq!(
            s.issuer.verify_refresh(&refresh).unwrap(),
            ("alice".to_string(), password_digest("$2y$hash"))
        );
        assert_eq!(s.verifier.verify(&refresh), Err(TokenError::WrongAudience));
        let access = s.issuer.issue("alice", &[pull("a")]).unwrap().token;
        assert_eq!(
            s.issuer.verify_refresh(&access),
            Err(TokenError::WrongAudience)
        );
    }

    fn external_key() -> (rcgen::KeyPair, EncodingKey) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        (pair, encoding)
    }

    fn external_token(
        encoding: &EncodingKey,
        kid: Option<&str>,
        iss: &str,
        aud: serde_json::Value,
    ) -> String {
        let now = now_secs();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_string);
        let claims = serde_json::json!({
            "iss": iss, "sub": "ci-bot", "aud": aud, "exp": now + 60, "nbf": now, "iat": now,
            "access": [{"type": "repository", "name": "ci/app", "actions": ["pull", "push"]},
                       {"type": "registry", "name": "catalog", "actions": ["*"]}]
        });
        jsonwebtoken::encode(&header, &claims, encoding).unwrap()
    }

    #[test]
    fn an_external_issuer_with_a_pem_key_is_trusted_for_its_own_iss_and_aud() {
        let s = setup();
        let (pair, encoding) = external_key();
        let key = public_key_from_pem(&pair.public_key_pem()).unwrap();
        assert_eq!(key.algorithms, [Algorithm::ES256, Algorithm::ES384]);
        let verifier = TokenVerifier::new(
            Some(&s.issuer),
            vec![ExternalIssuer {
                issuer: "https://auth.example.com".to_string(),
                audience: "berth".to_string(),
                keys: vec![key],
            }],
        );
        let token = external_token(&encoding, None, "https://auth.example.com", "berth".into());
        let grants = verifier.verify(&token).unwrap();
        assert_eq!(grants.subject.as_deref(), Some("ci-bot"));
        let app = Resource::Repository("ci/app".to_string());
        assert_eq!(grants.actions_for(&app), Actions::PULL | Actions::PUSH);
        assert_eq!(grants.actions_for(&Resource::Catalog), Actions::CATALOG);
        // `aud` as a list is fine too.
        let token = external_token(
            &encoding,
            None,
            "https://auth.example.com",
            serde_json::json!(["x", "berth"]),
        );
        assert!(verifier.verify(&token).is_ok());
        // The external key cannot pose as berth, nor berth's key as the external issuer.
        let token = external_token(&encoding, None, "berth", "berth".into());
        assert_eq!(verifier.verify(&token), Err(TokenError::WrongIssuer));
        let mut own = issuer_with(&s.key, "https://auth.example.com", "berth");
        own.ttl = Duration::from_secs(60);
        let token = own.issue("x", &[]).unwrap().token;
        assert_eq!(verifier.verify(&token), Err(TokenError::WrongIssuer));
        // berth's own tokens still verify beside it.
        let token = s.issuer.issue("alice", &[pull("a")]).unwrap().token;
        assert!(verifier.verify(&token).is_ok());
    }

    #[test]
    fn an_external_issuer_from_a_jwks_file_matches_keys_by_kid() {
        let (pair, encoding) = external_key();
        let raw = pair.public_key_raw();
        assert_eq!(raw.len(), 65);
        let jwks = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "sym", "k": URL_SAFE_NO_PAD.encode(b"secret")},
            {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
             "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..])}
        ]});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let config = ExternalIssuerConfig {
            issuer: "https://auth.example.com".to_string(),
            audience: "berth".to_string(),
            public_key: None,
            jwks: Some(path),
        };
        let external = config.load().unwrap();
        assert_eq!(external.keys.len(), 1, "the oct key is not trusted");
        let verifier = TokenVerifier::new(None, vec![external]);
        let token = external_token(
            &encoding,
            Some("k1"),
            "https://auth.example.com",
            "berth".into(),
        );
        assert!(verifier.verify(&token).is_ok());
        let token = external_token(
            &encoding,
            Some("k2"),
            "https://auth.example.com",
            "berth".into(),
        );
        assert_eq!(verifier.verify(&token), Err(TokenError::BadSignature));
        // HS256 signed with the oct key's secret is refused.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("sym".to_string());
        let now = now_secs();
        let claims =
            serde_json::json!({"iss": "https://auth.example.com", "aud": "berth", "exp": now + 60});
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"secret")).unwrap();
        assert!(matches!(
            verifier.verify(&token),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn issuer_config_needs_exactly_one_key_source() {
        let config: ExternalIssuerConfig =
            toml::from_str("issuer = \"i\"\naudience = \"a\"\n").unwrap();
        assert!(matches!(
            config.load(),
            Err(IssuerKeyError::KeySource { .. })
        ));
        assert!(keys_from_jwks(r#"{"keys": []}"#).is_err());
        assert!(public_key_from_pem("junk").is_err());
    }

    #[test]
    fn issued_at_renders_as_rfc3339() {
        // Expected values from `date -u -d @SECS`.
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_999_999), "2026-11-30T00:53:19Z");
    }

    const RSA_KEY: &str = include_str!("testdata/rsa-test-key.pem");
    const RSA_PUBLIC: &str = include_str!("testdata/rsa-test-pub.pem");
    const EC384_KEY: &str = include_str!("testdata/ec384-test-key.pem");

    #[test]
    fn configured_rsa_and_p384_keys_sign_tokens_berth_verifies() {
        for (pem, alg) in [(RSA_KEY, Algorithm::RS256), (EC384_KEY, Algorithm::ES384)] {
            let key = SigningKey::from_pem(pem, Path::new("test.pem")).unwrap();
            assert_eq!(key.algorithm(), alg);
            let issuer = issuer_with(&key, "berth", "berth");
            let verifier = TokenVerifier::new(Some(&issuer), Vec::new());
            let token = issuer.issue("alice", &[pull("a")]).unwrap().token;
            assert_eq!(jsonwebtoken::decode_header(&token).unwrap().alg, alg);
            assert!(verifier.verify(&token).is_ok(), "{alg:?}");
            // Another algorithm in the header is refused for this key.
            let other = setup();
            assert_eq!(
                TokenVerifier::new(Some(&issuer), Vec::new())
                    .verify(&other.issuer.issue("alice", &[]).unwrap().token),
                Err(TokenError::BadSignature)
            );
        }
    }

    #[test]
    fn an_external_rs256_issuer_is_trusted_and_its_key_cannot_be_an_hmac_secret() {
        let key = public_key_from_pem(RSA_PUBLIC).unwrap();
        assert_eq!(key.algorithms, [Algorithm::RS256]);
        let verifier = TokenVerifier::new(
            None,
            vec![ExternalIssuer {
                issuer: "https://sso.example.com".to_string(),
                audience: "berth".to_string(),
                keys: vec![key],
            }],
        );
        let encoding = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
        let now = now_secs();
        let claims = serde_json::json!({
            "iss": "https://sso.example.com", "sub": "ci", "aud": "berth", "exp": now + 60,
            "access": [{"type": "repository", "name": "ci/app", "actions": ["pull"]}]
        });
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &encoding).unwrap();
        let grants = verifier.verify(&token).unwrap();
        let app = Resource::Repository("ci/app".to_string());
        assert_eq!(grants.actions_for(&app), Actions::PULL);
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            verifier.verify(&forged),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));
    }
}

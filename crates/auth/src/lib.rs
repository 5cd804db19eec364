//! Authentication and authorization for berth: who a request comes from
//! (htpasswd users, tokens) and what they may do (access rules). Pure logic:
//! the server hands in header strings and gets typed answers.

pub mod cache;
pub mod htpasswd;
pub mod keys;
pub mod limiter;
pub mod rules;
pub mod scope;
pub mod token;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use cache::CredentialCache;
pub use htpasswd::{Htpasswd, HtpasswdError, HtpasswdFile};
pub use keys::{KeyError, SigningKey};
pub use limiter::{Limited, LoginLimiter};
pub use rules::{AccessRules, Actions, RuleConfig, RulesConfig, RulesError};
pub use scope::Scope;
pub use token::{
    Access, ExternalIssuer, ExternalIssuerConfig, Grants, IssuedToken, IssuerKey, TokenError,
    TokenIssuer, TokenVerifier,
};

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    Anonymous,
    User { name: String },
}

impl Identity {
    pub fn user(name: &str) -> Identity {
        Identity::User {
            name: name.to_string(),
        }
    }

    /// The user name; None for anonymous.
    pub fn name(&self) -> Option<&str> {
        match self {
            Identity::Anonymous => None,
            Identity::User { name } => Some(name),
        }
    }
}

/// What a request acts on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Repository(String),
    /// `/v2/_catalog`.
    Catalog,
    /// What is not about one repository: GC, metrics, repository deletes.
    Admin,
}

impl Resource {
    /// The actions that mean something on this resource.
    pub fn possible_actions(&self) -> Actions {
        match self {
            Resource::Repository(_) => Actions::REPOSITORY,
            Resource::Catalog => Actions::CATALOG,
            Resource::Admin => Actions::ADMIN,
        }
    }

    /// The token-spec type: `repository`, or `registry` for registry-wide ones.
    pub fn type_name(&self) -> &'static str {
        match self {
            Resource::Repository(_) => "repository",
            Resource::Catalog | Resource::Admin => "registry",
        }
    }
}

/// What a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub resource: Resource,
    pub actions: Actions,
}

impl Need {
    pub fn new(resource: Resource, actions: Actions) -> Need {
        Need { resource, actions }
    }

    /// The challenge scope naming this need.
    pub fn scope(&self) -> Scope {
        Scope::new(self.resource.clone(), self.actions)
    }
}

pub const DEFAULT_REALM: &str = "berth";
pub const DEFAULT_SERVICE: &str = "berth";
pub const DEFAULT_ISSUER: &str = "berth";
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);

/// The token service (Bearer challenges and `/token`).
#[derive(Clone, Debug)]
pub struct TokenServiceConfig {
    /// Absolute `/token` URL; None: derived from each request's scheme and Host.
    pub realm: Option<String>,
    pub service: String,
    pub issuer: String,
    pub ttl: Duration,
    pub key: SigningKey,
}

impl TokenServiceConfig {
    /// Defaults (service and issuer "berth", 300 s) with the given key.
    pub fn new(key: SigningKey) -> TokenServiceConfig {
        TokenServiceConfig {
            realm: None,
            service: DEFAULT_SERVICE.to_string(),
            issuer: DEFAULT_ISSUER.to_string(),
            ttl: DEFAULT_TOKEN_TTL,
            key,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub htpasswd: PathBuf,
    pub basic_realm: String,
    /// Some: Bearer challenges and `/token`; Basic credentials still accepted.
    pub token: Option<TokenServiceConfig>,
    /// Empty: every htpasswd user may do everything, anonymous nothing.
    pub rules: AccessRules,
    /// Token issuers accepted besides berth itself.
    pub external_issuers: Vec<ExternalIssuer>,
}

impl AuthConfig {
    /// Basic auth with the given file and default everything else.
    pub fn basic(htpasswd: PathBuf) -> AuthConfig {
        AuthConfig {
            htpasswd,
            basic_realm: DEFAULT_REALM.to_string(),
            token: None,
            rules: AccessRules::default(),
            external_issuers: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password (never says which).
    #[error("invalid username or password")]
    BadCredentials,
    #[error("htpasswd: {0}")]
    Htpasswd(#[from] HtpasswdError),
    #[error("access rules: {0}")]
    Rules(#[from] RulesError),
    #[error("token key: {0}")]
    Key(#[from] KeyError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("token issuer: {0}")]
    IssuerKey(#[from] token::IssuerKeyError),
    /// `/token` asked while the token service is off.
    #[error("the token service is not enabled")]
    TokenServiceOff,
}

/// The facade the server holds (in an `Arc`).
pub struct Auth {
    basic_realm: String,
    htpasswd: HtpasswdFile,
    cache: CredentialCache,
    rules: AccessRules,
    token_service: Option<TokenServiceConfig>,
    issuer: Option<TokenIssuer>,
    verifier: TokenVerifier,
    limiter: LoginLimiter,
    bcrypt_verifications: AtomicU64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("htpasswd", &self.htpasswd.path())
            .field("token_service", &self.token_service.is_some())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Loads the htpasswd file (it must exist and parse).
    pub fn new(config: AuthConfig) -> Result<Auth, AuthError> {
        let htpasswd = HtpasswdFile::open(&config.htpasswd)?;
        let issuer = config.token.as_ref().map(|t| TokenIssuer {
            issuer: t.issuer.clone(),
            service: t.service.clone(),
            ttl: t.ttl,
            key: t.key.clone(),
        });
        let verifier = TokenVerifier::new(issuer.as_ref(), config.external_issuers);
        Ok(Auth {
            basic_realm: config.basic_realm,
            htpasswd,
            cache: CredentialCache::default(),
            rules: config.rules,
            token_service: config.token,
            issuer,
            verifier,
            limiter: LoginLimiter::default(),
            bcrypt_verifications: AtomicU64::new(0),
        })
    }

    pub fn basic_realm(&self) -> &str {
        &self.basic_realm
    }

    /// Some when challenges are Bearer and `/token` is served.
    pub fn token_service(&self) -> Option<&TokenServiceConfig> {
        self.token_service.as_ref()
    }

    pub fn rules(&self) -> &AccessRules {
        &self.rules
    }

    /// Basic credentials: the cache first, then bcrypt (counted).
    pub fn check_password(&self, user: &str, password: &str) -> Result<Identity, AuthError> {
        let htpasswd = self.htpasswd.current();
        let Some(hash) = htpasswd.hash_of(user) else {
            // Take as long as a wrong password would, so that timing does not
            // tell which users exist: run bcrypt against some user's hash.
            if let Some(other) = htpasswd.users().next().and_then(|u| htpasswd.hash_of(u)) {
                self.bcrypt(password, other);
            }
            return Err(AuthError::BadCredentials);
        };
        if self
            .cache
            .verify_once(user, password, hash, || self.bcrypt(password, hash))
        {
            Ok(Identity::user(user))
        } else {
            Err(AuthError::BadCredentials)
        }
    }

    /// One counted bcrypt verification.
    fn bcrypt(&self, password: &str, hash: &str) -> bool {
        self.bcrypt_verifications.fetch_add(1, Ordering::Relaxed);
        bcrypt::verify(password, hash).unwrap_or(false)
    }

    /// A Bearer token from berth or a trusted external issuer: its grants.
    pub fn check_token(&self, token: &str) -> Result<Grants, TokenError> {
        self.verifier.verify(token)
    }

    /// What the rules allow `who` on `resource`.
    pub fn allowed(&self, who: &Identity, resource: &Resource) -> Actions {
        self.rules.allowed(who, resource)
    }

    /// `/token`: for each asked scope, the actions both asked and allowed;
    /// scopes left with nothing are omitted (not an error).
    pub fn issue_token(&self, who: &Identity, asked: &[Scope]) -> Result<IssuedToken, AuthError> {
        let issuer = self.issuer.as_ref().ok_or(AuthError::TokenServiceOff)?;
        let mut access: Vec<Access> = Vec::new();
        for scope in asked {
            let granted = scope
                .actions
                .intersection(self.allowed(who, &scope.resource));
            if granted.is_empty() {
                continue;
            }
            let entry = Access::for_resource(&scope.resource, granted);
            match access
                .iter_mut()
                .find(|a| a.type_ == entry.type_ && a.name == entry.name)
            {
                Some(existing) => existing.actions = existing.actions | granted,
                None => access.push(entry),
            }
        }
        Ok(issuer.issue(who.name().unwrap_or(""), &access)?)
    }

    /// A refresh token (OAuth2 `access_type=offline`) for a signed-in user.
    pub fn issue_refresh_token(&self, who: &Identity) -> Result<String, AuthError> {
        let issuer = self.issuer.as_ref().ok_or(AuthError::TokenServiceOff)?;
        let user = who.name().ok_or(AuthError::BadCredentials)?;
        let htpasswd = self.htpasswd.current();
        let hash = htpasswd.hash_of(user).ok_or(AuthError::BadCredentials)?;
        Ok(issuer.issue_refresh(user, hash)?)
    }

    /// `grant_type=refresh_token`: the user, while they are still in the
    /// htpasswd file with the password the token was issued under.
    pub fn check_refresh_token(&self, token: &str) -> Result<Identity, AuthError> {
        let issuer = self.issuer.as_ref().ok_or(AuthError::TokenServiceOff)?;
        let (user, digest) = issuer.verify_refresh(token)?;
        let htpasswd = self.htpasswd.current();
        match htpasswd.hash_of(&user) {
            Some(hash) if token::password_digest(hash) == digest => Ok(Identity::user(&user)),
            _ => Err(AuthError::Token(TokenError::RefreshRevoked)),
        }
    }

    /// bcrypt verifications run so far (for tests and /metrics).
    pub fn bcrypt_verifications(&self) -> u64 {
        self.bcrypt_verifications.load(Ordering::Relaxed)
    }

    pub fn limiter(&self) -> &LoginLimiter {
        &self.limiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn htpasswd_with(dir: &std::path::Path, users: &[(&str, &str)]) -> PathBuf {
        let path = dir.join("htpasswd");
        let mut file = Htpasswd::default();
        for (user, password) in users {
            file.set_password(user, password, 4).unwrap();
        }
        file.write_atomic(&path).unwrap();
        path
    }

    #[test]
    fn twenty_checks_with_the_same_credentials_run_bcrypt_once() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::new(AuthConfig::basic(htpasswd_with(
            dir.path(),
            &[("alice", "pw")],
        )))
        .unwrap();
        for _ in 0..20 {
            assert_eq!(
                auth.check_password("alice", "pw").unwrap(),
                Identity::user("alice")
            );
        }
        assert_eq!(auth.bcrypt_verifications(), 1);
    }

    #[test]
    fn concurrent_first_checks_with_the_same_credentials_run_bcrypt_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let mut file = Htpasswd::default();
        // A cost high enough that the threads overlap the first verification.
        file.set_password("alice", "pw", 8).unwrap();
        file.write_atomic(&path).unwrap();
        let auth = Auth::new(AuthConfig::basic(path)).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..20 {
                scope.spawn(|| assert!(auth.check_password("alice", "pw").is_ok()));
            }
        });
        assert_eq!(auth.bcrypt_verifications(), 1);
    }

    #[test]
    fn wrong_passwords_are_refused_and_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::new(AuthConfig::basic(htpasswd_with(
            dir.path(),
            &[("alice", "pw")],
        )))
        .unwrap();
        for _ in 0..3 {
            assert!(matches!(
                auth.check_password("alice", "nope"),
                Err(AuthError::BadCredentials)
            ));
        }
        assert_eq!(auth.bcrypt_verifications(), 3);
        // An unknown user costs a bcrypt run too (timing must not tell who
        // exists), and is refused even with another user's password.
        assert!(matches!(
            auth.check_password("mallory", "pw"),
            Err(AuthError::BadCredentials)
        ));
        assert_eq!(auth.bcrypt_verifications(), 4);
    }

    #[test]
    fn a_changed_or_removed_password_is_refused_at_once_despite_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = htpasswd_with(dir.path(), &[("alice", "old"), ("bob", "pw")]);
        let auth = Auth::new(AuthConfig::basic(path.clone())).unwrap();
        assert!(auth.check_password("alice", "old").is_ok());
        assert!(auth.check_password("bob", "pw").is_ok());
        let mut file = Htpasswd::load(&path).unwrap();
        file.set_password("alice", "new", 4).unwrap();
        file.write_atomic(&path).unwrap();
        assert!(matches!(
            auth.check_password("alice", "old"),
            Err(AuthError::BadCredentials)
        ));
        assert!(auth.check_password("alice", "new").is_ok());
        file.remove("bob");
        file.write_atomic(&path).unwrap();
        assert!(matches!(
            auth.check_password("bob", "pw"),
            Err(AuthError::BadCredentials)
        ));
    }

    #[test]
    fn new_refuses_a_missing_htpasswd_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = Auth::new(AuthConfig::basic(dir.path().join("none"))).unwrap_err();
        assert!(matches!(
            error,
            AuthError::Htpasswd(HtpasswdError::Io { .. })
        ));
        fs::write(dir.path().join("bad"), "u:{SHA}x\n").unwrap();
        assert!(Auth::new(AuthConfig::basic(dir.path().join("bad"))).is_err());
    }

    fn token_auth(dir: &std::path::Path, rules_toml: &str) -> (Auth, PathBuf) {
        let path = htpasswd_with(dir, &[("alice", "pw"), ("bob", "pw")]);
        let mut config = AuthConfig::basic(path.clone());
        config.rules = toml::from_str(rules_toml).unwrap();
        config.token = Some(TokenServiceConfig::new(SigningKey::generate().unwrap()));
        (Auth::new(config).unwrap(), path)
    }

    const ALICE_PULLS_TEAM_A: &str = r#"
        [[access]]
        who = ["alice"]
        repositories = ["team-a/*"]
        actions = ["pull"]
        [[access]]
        who = ["anonymous"]
        repositories = ["public"]
        actions = ["pull"]
    "#;

    #[test]
    fn a_token_grants_the_intersection_of_asked_and_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = token_auth(dir.path(), ALICE_PULLS_TEAM_A);
        let asked = Scope::parse_all([
            "repository:team-a/app:pull,push repository:team-b/app:pull registry:catalog:*",
            "repository:team-a/app:delete repository:public:pull",
        ]);
        let alice = Identity::user("alice");
        let issued = auth.issue_token(&alice, &asked).unwrap();
        let grants = auth.check_token(&issued.token).unwrap();
        assert_eq!(grants.subject.as_deref(), Some("alice"));
        assert_eq!(
            grants.access,
            [
                Access::for_resource(&Resource::Repository("team-a/app".into()), Actions::PULL),
                Access::for_resource(&Resource::Repository("public".into()), Actions::PULL),
            ]
        );
        let anonymous = auth.issue_token(&Identity::Anonymous, &asked).unwrap();
        let grants = auth.check_token(&anonymous.token).unwrap();
        assert_eq!(grants.subject, None);
        assert_eq!(
            grants.access,
            [Access::for_resource(
                &Resource::Repository("public".into()),
                Actions::PULL
            )]
        );
    }

    #[test]
    fn issuing_needs_the_token_service() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::new(AuthConfig::basic(htpasswd_with(dir.path(), &[("a", "b")]))).unwrap();
        assert!(matches!(
            auth.issue_token(&Identity::user("a"), &[]),
            Err(AuthError::TokenServiceOff)
        ));
        assert!(auth.check_token("a.b.c").is_err());
    }

    #[test]
    fn a_refresh_token_holds_while_the_user_keeps_their_password() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, path) = token_auth(dir.path(), "");
        let alice = Identity::user("alice");
        let refresh = auth.issue_refresh_token(&alice).unwrap();
        assert_eq!(auth.check_refresh_token(&refresh).unwrap(), alice);
        let bob_refresh = auth.issue_refresh_token(&Identity::user("bob")).unwrap();
        assert!(auth.issue_refresh_token(&Identity::Anonymous).is_err());
        // A refresh token is no access token.
        assert!(auth.check_token(&refresh).is_err());
        let mut file = Htpasswd::load(&path).unwrap();
        file.set_password("alice", "changed", 4).unwrap();
        file.remove("bob");
        file.write_atomic(&path).unwrap();
        for token in [&refresh, &bob_refresh] {
            assert!(matches!(
                auth.check_refresh_token(token),
                Err(AuthError::Token(TokenError::RefreshRevoked))
            ));
        }
    }
}

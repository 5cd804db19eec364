//! The authorize step: between parsing a request and handling it, find
//! who is asking (Basic password, Bearer token or nobody), decide whether
//! the endpoint's [`need::Requirement`] is met, and answer 401 (with a
//! challenge), 403 or 429 when it is not.
//!
//! Secrets never leave this module: refusals say what was needed, never
//! what was presented.

pub mod challenge;
pub mod credentials;
pub mod need;
pub mod token_cache;
pub mod token_endpoint;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::request::Query;
use crate::route::Route;
use axum::http::{HeaderMap, Method};
use berth_auth::{Actions, Auth, Identity, Need, Resource};
use challenge::Challenge;
use credentials::Credentials;
use need::Requirement;
use std::net::IpAddr;
use std::sync::Arc;
use token_cache::TokenCache;

/// What the authorize step let through.
#[derive(Debug)]
pub struct Admitted {
    pub caller: Caller,
    /// A mount whose source the caller may not pull: start a plain upload
    /// instead, as distribution does.
    pub drop_mount: bool,
}

/// The request as the authorize step sees it.
pub struct Asking<'a> {
    /// Tokens verified earlier, reused until they expire.
    pub tokens: &'a TokenCache,
    pub route: &'a Route,
    pub method: &'a Method,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    pub client: Option<IpAddr>,
    /// Whether the request came over TLS (for the default token realm).
    pub https: bool,
}

/// Decides whether the request may be handled.
pub async fn authorize(auth: &Arc<Auth>, asking: &Asking<'_>) -> Result<Admitted, ApiError> {
    let requirement = need::of(asking.route, asking.method, asking.query);
    let admitted = |caller| Admitted {
        caller,
        drop_mount: false,
    };
    if requirement == Requirement::Nothing {
        return Ok(admitted(Caller::by_rules(
            auth.clone(),
            Identity::Anonymous,
        )));
    }
    let caller = identify(auth, asking, &requirement).await?;
    let refuse = |need: Option<&Need>| refusal(auth, asking, &caller, need);
    match &requirement {
        Requirement::Nothing => {}
        Requirement::AnyCredentials => {
            if !caller.is_authenticated() && !auth.rules().anonymous_has_rights() {
                return Err(refuse(None));
            }
        }
        Requirement::MetricsReader => {
            let loopback = asking
                .client
                .is_some_and(|ip| ip.to_canonical().is_loopback());
            if !loopback && !caller.may(&Resource::Admin, Actions::ADMIN) {
                return Err(refuse(Some(&need::admin())));
            }
        }
        Requirement::Admin => {
            if !caller.may_administer(asking.client) {
                return Err(refuse(Some(&need::admin())));
            }
        }
        Requirement::Rights(need) => {
            if !caller.may(&need.resource, need.actions) {
                return Err(refuse(Some(need)));
            }
        }
        Requirement::Mount { target, from } => {
            if !caller.may(&target.resource, target.actions) {
                return Err(refuse(Some(target)));
            }
            let drop_mount = !from
                .as_ref()
                .is_some_and(|from| caller.may_pull(from.as_str()));
            return Ok(Admitted { caller, drop_mount });
        }
    }
    Ok(admitted(caller))
}

/// The caller the credentials stand for; bad credentials are a 401 and a
/// failed login counted against the client's address.
async fn identify(
    auth: &Arc<Auth>,
    asking: &Asking<'_>,
    requirement: &Requirement,
) -> Result<Caller, ApiError> {
    let credentials = Credentials::from_headers(asking.headers);
    if !credentials.presented() {
        // Reads only: a cookie rides along with requests another site's
        // page makes, and `/api/v1` also has operations (POST /api/v1/gc).
        let read = matches!(*asking.method, Method::GET | Method::HEAD);
        let session = match asking.route {
            Route::Api(_) if read => session_caller(auth, asking.headers),
            _ => None,
        };
        return Ok(session.unwrap_or_else(|| Caller::by_rules(auth.clone(), Identity::Anonymous)));
    }
    check_login_limit(auth, asking.client)?;
    check_credentials(auth, asking.tokens, &credentials)
        .await
        .ok_or_else(|| {
            record_failed_login(auth, asking.client, credentials.user());
            let need = match requirement {
                Requirement::Rights(need) | Requirement::Mount { target: need, .. } => Some(need),
                _ => None,
            };
            ApiError::Unauthorized {
                challenge: challenge(auth, asking, need, None).render(),
            }
        })
}

/// The caller presented credentials stand for; `None` when they are bad.
async fn check_credentials(
    auth: &Arc<Auth>,
    tokens: &TokenCache,
    credentials: &Credentials,
) -> Option<Caller> {
    match credentials {
        Credentials::Basic { user, password } => check_password(auth, user, password)
            .await
            .map(|identity| Caller::by_rules(auth.clone(), identity)),
        Credentials::Bearer(token) => {
            let grants = match tokens.get(token) {
                Some(grants) => grants,
                None => {
                    let grants = auth.check_token(token).ok()?;
                    tokens.insert(token, &grants);
                    grants
                }
            };
            Some(Caller::by_token(auth.clone(), grants))
        }
        Credentials::None | Credentials::Malformed => None,
    }
}

/// A password check: a recently verified one from the cache at once, else
/// bcrypt on a blocking thread, so that its few hundred milliseconds of CPU
/// stall no connection but this one.
pub async fn check_password(auth: &Arc<Auth>, user: &str, password: &str) -> Option<Identity> {
    if let Some(identity) = auth.check_password_cached(user, password) {
        return Some(identity);
    }
    let (auth, user, password) = (auth.clone(), user.to_string(), password.to_string());
    tokio::task::spawn_blocking(move || auth.check_password(&user, &password))
        .await
        .ok()?
        .ok()
}

/// The caller of a web UI request: the `Authorization` header if one is
/// sent (scripts), else the session cookie of a login, else anonymous (an
/// expired or revoked session is no failed login: it is just over).
pub async fn identify_browser(
    auth: &Arc<Auth>,
    tokens: &TokenCache,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let credentials = Credentials::from_headers(headers);
    if !credentials.presented() {
        return Ok(session_caller(auth, headers)
            .unwrap_or_else(|| Caller::by_rules(auth.clone(), Identity::Anonymous)));
    }
    check_login_limit(auth, client)?;
    check_credentials(auth, tokens, &credentials)
        .await
        .ok_or_else(|| {
            record_failed_login(auth, client, credentials.user());
            ApiError::Unauthorized {
                challenge: Challenge::Basic {
                    realm: auth.basic_realm().to_string(),
                }
                .render(),
            }
        })
}

/// The user a valid session cookie names. Only the UI and `/api/v1` reads
/// (GET and HEAD, by the UI's pages) take it: on `/v2` a cookie would let
/// another site's page act as the user (CSRF).
fn session_caller(auth: &Arc<Auth>, headers: &HeaderMap) -> Option<Caller> {
    let token = crate::ui::session::token(headers)?;
    let identity = auth.check_session(token).ok()?;
    Some(Caller::by_rules(auth.clone(), identity))
}

/// 429 while the client's address has too many recent failed logins.
pub fn check_login_limit(auth: &Auth, client: Option<IpAddr>) -> Result<(), ApiError> {
    let Some(ip) = client else { return Ok(()) };
    auth.limiter()
        .check(ip)
        .map_err(|limited| ApiError::LoginsLimited {
            retry_after_secs: limited.retry_after_secs(),
        })
}

/// Counts a failed login of `client`, and logs it with the user name it
/// claimed (for fail2ban and the like; never the password or token).
pub fn record_failed_login(auth: &Auth, client: Option<IpAddr>, user: Option<&str>) {
    if let Some(ip) = client {
        auth.limiter().record_failure(ip);
    }
    tracing::info!(client = ?client, user, "failed login");
}

/// Why a valid caller is refused: 401 for the anonymous and for a token
/// lacking the scope (`insufficient_scope`), 403 `DENIED` for a user.
fn refusal(auth: &Auth, asking: &Asking<'_>, caller: &Caller, need: Option<&Need>) -> ApiError {
    if caller.has_token() && need.is_some() {
        let challenge = challenge(auth, asking, need, Some("insufficient_scope"));
        return ApiError::Unauthorized {
            challenge: challenge.render(),
        };
    }
    if !caller.is_authenticated() {
        return ApiError::Unauthorized {
            challenge: challenge(auth, asking, need, None).render(),
        };
    }
    ApiError::Denied(match need {
        Some(need) => describe(need),
        None => "no rights".into(),
    })
}

/// "push on team-a/app", for a refusal's message.
fn describe(need: &Need) -> String {
    match need::scope_of(need) {
        Some(scope) => scope,
        None => "admin".into(),
    }
}

/// The challenge of this registry's mode for `need`.
pub fn challenge(
    auth: &Auth,
    asking: &Asking<'_>,
    need: Option<&Need>,
    error: Option<&'static str>,
) -> Challenge {
    match auth.token_service() {
        Some(token) => Challenge::Bearer {
            realm: challenge::token_realm(token.realm.as_deref(), asking.https, asking.headers),
            service: token.service.clone(),
            scope: need.and_then(need::scope_of),
            error,
        },
        None => Challenge::Basic {
            realm: auth.basic_realm().to_string(),
        },
    }
}

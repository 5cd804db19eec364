//! `/token`: the Docker token service. `GET` with Basic credentials or
//! none (anonymous rights); `POST` the OAuth2 form (`grant_type=password`
//! or `refresh_token`) that newer clients use. Either answers a signed
//! token carrying the intersection of the asked scopes and what the rules
//! allow.

use super::credentials::Credentials;
use super::{check_login_limit, record_failed_login};
use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use berth_auth::Scope;
use berth_auth::{Auth, Identity, IssuedToken};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;

/// Largest POST form read: a few scopes and a refresh token.
const FORM_LIMIT: usize = 64 << 10;

/// The parameters of a token request, from the query or the form.
#[derive(Debug, Default)]
struct TokenRequest {
    scopes: Vec<String>,
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    offline: bool,
}

impl TokenRequest {
    /// `scope` may repeat, and one value may hold several scopes separated by spaces.
    fn parse(encoded: &[u8]) -> TokenRequest {
        let mut request = TokenRequest::default();
        for (key, value) in form_urlencoded::parse(encoded) {
            let value = value.into_owned();
            match &*key {
                "scope" => request
                    .scopes
                    .extend(value.split(' ').filter(|s| !s.is_empty()).map(String::from)),
                "grant_type" => request.grant_type = Some(value),
                "username" => request.username = Some(value),
                "password" => request.password = Some(value),
                "refresh_token" => request.refresh_token = Some(value),
                // OAuth2's form says `access_type=offline`; docker's GET at
                // login says `offline_token=true` (it then keeps the refresh
                // token instead of the password).
                "access_type" => request.offline |= value == "offline",
                "offline_token" => request.offline |= value == "true",
                _ => {} // service, client_id, account: accepted, not needed.
            }
        }
        request
    }
}

/// Answers `/token`.
pub async fn answer(
    auth: &Arc<Auth>,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    client: Option<IpAddr>,
) -> Result<Response, ApiError> {
    if *method == Method::POST {
        let form = crate::request::read_limited(body, FORM_LIMIT, || {
            berth_registry::Error::Unsupported("token request form too large".into())
        })
        .await?;
        let request = TokenRequest::parse(&form);
        let who = match request.grant_type.as_deref() {
            Some("password") => {
                let user = request.username.as_deref().unwrap_or_default();
                let password = request.password.as_deref().unwrap_or_default();
                login(auth, client, user, password).await?
            }
            Some("refresh_token") => {
                check_login_limit(auth, client)?;
                let token = request.refresh_token.as_deref().unwrap_or_default();
                match auth.check_refresh_token(token) {
                    Ok(identity) => identity,
                    Err(_) => {
                        record_failed_login(auth, client, None);
                        return Err(unauthorized(auth));
                    }
                }
            }
            other => {
                return Err(ApiError::TokenRequestInvalid(format!(
                    "unsupported grant_type {:?}",
                    other.unwrap_or("")
                )))
            }
        };
        let issued = issue(auth, &who, &request.scopes)?;
        let refresh = match (request.offline, &who) {
            (true, Identity::User { .. }) => Some(
                auth.issue_refresh_token(&who)
                    .map_err(|e| berth_registry::Error::Storage(format!("signing: {e}")))?,
            ),
            _ => None,
        };
        return Ok(render(&issued, &request.scopes, refresh.as_deref()));
    }
    let request = TokenRequest::parse(query.unwrap_or_default().as_bytes());
    let who = match Credentials::from_headers(headers) {
        Credentials::None => Identity::Anonymous,
        Credentials::Basic { user, password } => login(auth, client, &user, &password).await?,
        Credentials::Bearer(_) | Credentials::Malformed => {
            check_login_limit(auth, client)?;
            record_failed_login(auth, client, None);
            return Err(unauthorized(auth));
        }
    };
    let issued = issue(auth, &who, &request.scopes)?;
    let refresh = match (request.offline, &who) {
        (true, Identity::User { .. }) => auth.issue_refresh_token(&who).ok(),
        _ => None,
    };
    Ok(render(&issued, &request.scopes, refresh.as_deref()))
}

/// A password login, limited (429) and counted per client address; a
/// failure is a 401.
async fn login(
    auth: &Arc<Auth>,
    client: Option<IpAddr>,
    user: &str,
    password: &str,
) -> Result<Identity, ApiError> {
    check_login_limit(auth, client)?;
    super::check_password(auth, user, password)
        .await
        .ok_or_else(|| {
            record_failed_login(auth, client, Some(user));
            unauthorized(auth)
        })
}

/// 401 for bad credentials at `/token`: a Basic challenge, as `/token`
/// takes passwords.
fn unauthorized(auth: &Auth) -> ApiError {
    ApiError::Unauthorized {
        challenge: super::challenge::Challenge::Basic {
            realm: auth.basic_realm().to_string(),
        }
        .render(),
    }
}

/// Signs a token for the scopes that parse; unknown ones are granted nothing.
fn issue(auth: &Auth, who: &Identity, scopes: &[String]) -> Result<IssuedToken, ApiError> {
    let asked = Scope::parse_all(scopes.iter().map(String::as_str));
    auth.issue_token(who, &asked)
        .map_err(|e| berth_registry::Error::Storage(format!("signing a token: {e}")).into())
}

/// The JSON both the Docker token spec and OAuth2 clients read.
fn render(issued: &IssuedToken, scopes: &[String], refresh: Option<&str>) -> Response {
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at_rfc3339(),
        "token_type": "Bearer",
    });
    if !scopes.is_empty() {
        body["scope"] = json!(scopes.join(" "));
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    crate::handlers::respond(
        StatusCode::OK,
        &[
            ("content-type", "application/json".into()),
            ("cache-control", "no-store".into()),
        ],
        Body::from(body.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_repeat_and_split_on_spaces() {
        let r = TokenRequest::parse(
            b"service=berth&scope=repository%3Aa%3Apull&scope=repository:b:pull,push%20registry:catalog:*",
        );
        assert_eq!(
            r.scopes,
            [
                "repository:a:pull",
                "repository:b:pull,push",
                "registry:catalog:*"
            ]
        );
    }

    #[test]
    fn the_oauth_form_is_read() {
        let r = TokenRequest::parse(
            b"grant_type=password&username=alice&password=p%26w&client_id=docker&access_type=offline",
        );
        assert_eq!(r.grant_type.as_deref(), Some("password"));
        assert_eq!(r.username.as_deref(), Some("alice"));
        assert_eq!(r.password.as_deref(), Some("p&w"));
        assert!(r.offline);
    }

    #[test]
    fn docker_asks_for_a_refresh_token_with_offline_token() {
        let r =
            TokenRequest::parse(b"account=alice&client_id=docker&offline_token=true&service=berth");
        assert!(r.offline);
        let r = TokenRequest::parse(b"offline_token=false&scope=repository:a:pull");
        assert!(!r.offline);
    }
}

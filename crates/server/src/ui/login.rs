//! Logging in and out of the web UI when auth is on.
//!
//! `POST /ui/login` checks the password as `/v2` does (the credential
//! cache, the failed-login limiter per client address), then sets the
//! session cookie and sends the browser back where it was going.
//! `POST /ui/logout` clears the cookie. Both take same-origin posts only.

use super::error::UiError;
use super::view::{Context, Viewer};
use super::{csrf, pages, respond, routes, session};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use berth_auth::Auth;
use std::net::IpAddr;
use std::sync::Arc;

/// The largest login form read: a user name, a password and a path.
const FORM_LIMIT: usize = 16 * 1024;

/// What the login form posts.
#[derive(Debug, Default)]
struct Form {
    user: String,
    password: String,
    next: Option<String>,
}

impl Form {
    fn parse(body: &[u8]) -> Form {
        let mut form = Form::default();
        for (key, value) in form_urlencoded::parse(body) {
            match &*key {
                "user" => form.user = value.into_owned(),
                "password" => form.password = value.into_owned(),
                "next" => form.next = Some(value.into_owned()),
                _ => {}
            }
        }
        form
    }
}

/// The request as the login pages see it.
pub struct Attempt<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub client: Option<IpAddr>,
    /// Whether the connection is TLS (then the cookie is `Secure`).
    pub tls: bool,
}

/// Answers `/ui/login`.
pub async fn login(
    auth: &Arc<Auth>,
    context: &Context,
    attempt: Attempt<'_>,
    body: Body,
) -> Response {
    match *attempt.method {
        Method::GET | Method::HEAD => {
            let next = next_of(attempt.uri.query());
            form_page(context, StatusCode::OK, &next, "", None)
        }
        Method::POST => submit(auth, context, &attempt, body).await,
        _ => error_page(context, UiError::MethodNotAllowed),
    }
}

async fn submit(
    auth: &Arc<Auth>,
    context: &Context,
    attempt: &Attempt<'_>,
    body: Body,
) -> Response {
    if !csrf::is_same_origin(attempt.headers) {
        return error_page(context, UiError::CrossSite);
    }
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return error_page(
            context,
            UiError::Invalid("the login form is too large".into()),
        );
    };
    let form = Form::parse(&bytes);
    let next = session::next_page(form.next.as_deref());
    if let Some(ip) = attempt.client {
        if let Err(limited) = auth.limiter().check(ip) {
            let wait = limited.retry_after_secs();
            let message =
                format!("Too many failed logins from your address; try again in {wait} s.");
            let mut response = form_page(
                context,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &form.user,
                Some(&message),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return response;
        }
    }
    let identity = match crate::auth::check_password(auth, &form.user, &form.password).await {
        Some(identity) => identity,
        None => {
            crate::auth::record_failed_login(auth, attempt.client, Some(&form.user));
            let message = "Wrong user name or password.";
            return form_page(
                context,
                StatusCode::UNAUTHORIZED,
                &next,
                &form.user,
                Some(message),
            );
        }
    };
    let cookie = auth.issue_session(&identity).ok().and_then(|s| {
        session::set(
            &s.token,
            s.lifetime,
            session::is_https(attempt.tls, attempt.headers),
        )
    });
    let Some(cookie) = cookie else {
        let e = UiError::Registry(berth_registry::Error::Storage(
            "signing a session token failed".into(),
        ));
        return error_page(context, e);
    };
    tracing::info!(user = %form.user, client = ?attempt.client, "web UI login");
    let mut response = respond::redirect(StatusCode::SEE_OTHER, &next);
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// Answers `/ui/logout`: a same-origin POST clears the cookie.
pub fn logout(context: &Context, attempt: Attempt<'_>) -> Response {
    let (method, headers) = (attempt.method, attempt.headers);
    if *method != Method::POST {
        return error_page(context, UiError::MethodNotAllowed);
    }
    if !csrf::is_same_origin(headers) {
        return error_page(context, UiError::CrossSite);
    }
    let mut response = respond::redirect(StatusCode::SEE_OTHER, routes::LOGIN);
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::clear(session::is_https(attempt.tls, headers)),
    );
    response
}

/// `next` from the login page's own query.
fn next_of(query: Option<&str>) -> String {
    let next = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "next")
        .map(|(_, value)| value.into_owned());
    session::next_page(next.as_deref())
}

fn form_page(
    context: &Context,
    status: StatusCode,
    next: &str,
    user: &str,
    error: Option<&str>,
) -> Response {
    let context = Context {
        viewer: Viewer::Everyone,
        ..context.clone()
    };
    respond::html(status, pages::login::render(&context, next, user, error))
}

fn error_page(context: &Context, e: UiError) -> Response {
    super::error_response(context, &e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_user_password_and_next() {
        let form = Form::parse(b"user=alice&password=p%26w%3Dd&next=%2Fui%2Fr%2Fa&x=1");
        assert_eq!(form.user, "alice");
        assert_eq!(form.password, "p&w=d");
        assert_eq!(form.next.as_deref(), Some("/ui/r/a"));
        assert_eq!(next_of(Some("next=%2Fui%2Fr%2Fb")), "/ui/r/b");
        assert_eq!(next_of(Some("next=https%3A%2F%2Fevil")), "/ui/");
    }
}

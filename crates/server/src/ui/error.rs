//! What can go wrong answering a page, and the status and words each gets.

use crate::ui::routes::UiRouteError;
use axum::http::StatusCode;
use berth_registry::Error;

#[derive(Debug)]
pub enum UiError {
    /// No page at this path.
    NotFound,
    /// A name, tag, digest or query value that is not valid.
    Invalid(String),
    MethodNotAllowed,
    /// A POST that did not come from berth's own pages.
    CrossSite,
    /// Auth is on, nobody is logged in, and anonymous may not see this.
    LoginRequired,
    /// A logged-in user lacks the right; the sentence says which.
    Forbidden(String),
    Registry(Error),
}

impl From<Error> for UiError {
    fn from(e: Error) -> Self {
        UiError::Registry(e)
    }
}

impl From<UiRouteError> for UiError {
    fn from(e: UiRouteError) -> Self {
        match e {
            UiRouteError::NotFound => UiError::NotFound,
            UiRouteError::Invalid(why) => UiError::Invalid(why),
        }
    }
}

impl UiError {
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::NotFound => StatusCode::NOT_FOUND,
            UiError::Invalid(_) => StatusCode::BAD_REQUEST,
            UiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            UiError::CrossSite | UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::LoginRequired => StatusCode::UNAUTHORIZED,
            UiError::Registry(e) => crate::error::status_of(e),
        }
    }

    /// A title and a sentence for the page; a storage failure's cause is
    /// for the log only.
    pub fn words(&self) -> (&'static str, String) {
        match self {
            UiError::NotFound => ("Not found", "There is no page here.".into()),
            UiError::Invalid(why) => ("Bad request", why.clone()),
            UiError::MethodNotAllowed => {
                ("Not allowed", "This page does not take that method.".into())
            }
            UiError::CrossSite => (
                "Refused",
                "Deletes are only accepted from berth's own pages.".into(),
            ),
            UiError::LoginRequired => ("Log in", "Log in to see this page.".into()),
            UiError::Forbidden(why) => ("Access denied", why.clone()),
            UiError::Registry(Error::Storage(_)) => (
                "Internal error",
                "The registry could not read its storage; the cause is in its log.".into(),
            ),
            UiError::Registry(Error::DeleteDisabled) => (
                "Deletes are disabled",
                "This registry does not allow deletes.".into(),
            ),
            UiError::Registry(e) if self.status() == StatusCode::NOT_FOUND => {
                ("Not found", e.to_string())
            }
            UiError::Registry(e) => ("Refused", e.to_string()),
        }
    }

    /// What the log should say, beyond the status.
    pub fn cause(&self) -> Option<String> {
        match self {
            UiError::Registry(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

//! The `Authorization` header of a request: Basic user and password, or a
//! Bearer token. Only parsing here; checking is `berth_auth`'s job.

use axum::http::{header, HeaderMap};
use base64::Engine;

/// What a request presented. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    None,
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
    /// A header that is neither well-formed Basic nor Bearer: a failed login.
    Malformed,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user:?}, <password>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<token>)"),
            Credentials::Malformed => f.write_str("Malformed"),
        }
    }
}

impl Credentials {
    /// Reads the request's `Authorization` header (scheme names compared
    /// without case, as RFC 9110 says).
    pub fn from_headers(headers: &HeaderMap) -> Credentials {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Credentials::None;
        };
        let Ok(value) = value.to_str() else {
            return Credentials::Malformed;
        };
        Self::parse(value)
    }

    /// Parses one `Authorization` value.
    pub fn parse(value: &str) -> Credentials {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            basic(rest).unwrap_or(Credentials::Malformed)
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Credentials::Bearer(rest.to_string())
        } else {
            Credentials::Malformed
        }
    }

    /// The user name Basic credentials claim.
    pub fn user(&self) -> Option<&str> {
        match self {
            Credentials::Basic { user, .. } => Some(user),
            _ => None,
        }
    }

    /// Whether the request presented anything at all.
    pub fn presented(&self) -> bool {
        !matches!(self, Credentials::None)
    }
}

/// `base64(user:password)`; the password may contain `:`, the user may not.
pub fn basic(encoded: &str) -> Option<Credentials> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn basic_splits_at_the_first_colon() {
        assert_eq!(
            Credentials::parse(&format!("Basic {}", encode("alice:pa:ss"))),
            Credentials::Basic {
                user: "alice".into(),
                password: "pa:ss".into()
            }
        );
        assert_eq!(
            Credentials::parse(&format!("basic  {}", encode("bob:"))),
            Credentials::Basic {
                user: "bob".into(),
                password: String::new()
            }
        );
    }

    #[test]
    fn bearer_keeps_the_token() {
        assert_eq!(
            Credentials::parse("Bearer a.b.c"),
            Credentials::Bearer("a.b.c".into())
        );
        assert_eq!(
            Credentials::parse("BEARER x"),
            Credentials::Bearer("x".into())
        );
    }

    #[test]
    fn anything_else_is_malformed() {
        for value in [
            "Basic",
            "Basic !!!",
            &format!("Basic {}", encode("no-colon")),
            &format!("Basic {}", encode(":password-only")),
            "Bearer",
            "Digest x",
            "",
        ] {
            assert_eq!(Credentials::parse(value), Credentials::Malformed, "{value}");
        }
        assert_eq!(
            Credentials::from_headers(&HeaderMap::new()),
            Credentials::None
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let basic = Credentials::Basic {
            user: "alice".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{basic:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("tok.en".into())).contains("tok.en"));
    }
}

//! berth's client for remote registries: `HttpUpstream` implements the
//! pull-through cache's `Upstream` trait over HTTP(S) — `/v2/` ping,
//! Bearer (token per scope, cached) or Basic authentication, TLS on rustls
//! with the system roots plus an optional CA, timeouts, bounded retries.
//! Credentials and tokens never reach a log line or a `Debug` output.

mod challenge;
mod client;
mod errors;
mod helper;
mod settings;
mod token;

pub use challenge::{choose_scheme, AuthScheme};
pub use client::{HttpUpstream, MANIFEST_ACCEPT};
pub use settings::{Credentials, UpstreamSettings, UpstreamSetupError};

/// A username and password to present (inline or from a helper).
#[derive(Clone)]
struct Login {
    username: String,
    password: String,
}

/// Written by hand: the password is a secret.
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

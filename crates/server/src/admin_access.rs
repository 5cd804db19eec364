//! Who may call the whole-registry admin endpoints (`DELETE
//! /api/v1/repositories/<name>`, GC): the README's rights table for them,
//! in one place.
//!
//! - Through the admin socket ([`LocalAdmin`]): always. Only the user
//!   owning the data folder can open it.
//! - With auth on: a caller with the `admin` right.
//! - With auth off: loopback clients only, as `/metrics`: no credentials
//!   exist to tell the operator from anyone else on the network.

use crate::caller::Caller;
use berth_auth::{Actions, Resource};
use std::net::IpAddr;

/// Request extension marking a request that arrived over the admin socket:
/// its caller is the local operator, with every right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAdmin;

/// Whether the caller of a request may use an admin endpoint.
pub fn may_administer(caller: &Caller, client: Option<IpAddr>, local_admin: bool) -> bool {
    if local_admin {
        return true;
    }
    if caller.auth_enabled() {
        caller.may(&Resource::Admin, Actions::ADMIN)
    } else {
        client.is_some_and(|ip| ip.to_canonical().is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_auth::{Auth, AuthConfig, Identity};
    use std::sync::Arc;

    fn auth(dir: &std::path::Path) -> Arc<Auth> {
        let path = dir.join("htpasswd");
        std::fs::write(&path, "").unwrap();
        Arc::new(Auth::new(AuthConfig::basic(path)).unwrap())
    }

    #[test]
    fn without_auth_only_loopback_and_the_socket() {
        let open = Caller::unrestricted();
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(may_administer(
            &open,
            Some("127.0.0.1".parse().unwrap()),
            false
        ));
        assert!(may_administer(&open, Some(mapped), false));
        assert!(!may_administer(&open, Some(remote), false));
        assert!(!may_administer(&open, None, false), "unknown address");
        assert!(may_administer(&open, Some(remote), true));
    }

    #[test]
    fn with_auth_loopback_is_not_enough() {
        let dir = tempfile::tempdir().unwrap();
        let anonymous = Caller::by_rules(auth(dir.path()), Identity::Anonymous);
        let loopback = Some("127.0.0.1".parse().unwrap());
        assert!(!may_administer(&anonymous, loopback, false));
        assert!(may_administer(&anonymous, None, true), "the socket");
    }
}

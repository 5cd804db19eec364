//! Who is asking, and what they may do: put into every authorized
//! request's extensions by the authorize step, read by handlers that
//! filter listings and by the web UI.

use berth_auth::rules::Subject;
use berth_auth::{Actions, Auth, Grants, Identity, Resource};
use std::net::IpAddr;
use std::sync::Arc;

/// The caller of a request.
#[derive(Clone)]
pub struct Caller {
    rights: Rights,
}

#[derive(Clone)]
enum Rights {
    /// Auth is off: everything is allowed to everyone.
    Everything,
    /// Through the admin socket: the machine's operator, whatever auth says.
    LocalAdmin,
    /// Basic credentials or none: the configured rules decide.
    Rules { auth: Arc<Auth>, identity: Identity },
    /// A Bearer token: exactly what it grants (the rules only decide which
    /// repository names its subject may see listed).
    Token { auth: Arc<Auth>, grants: Grants },
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.rights {
            Rights::Everything => "unrestricted",
            Rights::LocalAdmin => "local admin",
            Rights::Rules { .. } => "rules",
            Rights::Token { .. } => "token",
        };
        f.debug_struct("Caller")
            .field("name", &self.name())
            .field("rights", &kind)
            .finish()
    }
}

impl Caller {
    /// The caller when auth is off.
    pub fn unrestricted() -> Caller {
        Caller {
            rights: Rights::Everything,
        }
    }

    /// The caller of a request through the admin socket: every right.
    pub fn local_admin() -> Caller {
        Caller {
            rights: Rights::LocalAdmin,
        }
    }

    /// An identity whose rights the configured rules give.
    pub fn by_rules(auth: Arc<Auth>, identity: Identity) -> Caller {
        Caller {
            rights: Rights::Rules { auth, identity },
        }
    }

    /// The bearer of a verified token.
    pub fn by_token(auth: Arc<Auth>, grants: Grants) -> Caller {
        Caller {
            rights: Rights::Token { auth, grants },
        }
    }

    /// The user name, if the caller presented valid credentials naming one.
    pub fn name(&self) -> Option<&str> {
        match &self.rights {
            Rights::Everything | Rights::LocalAdmin => None,
            Rights::Rules { identity, .. } => match identity {
                Identity::User { name } => Some(name),
                Identity::Anonymous => None,
            },
            Rights::Token { grants, .. } => grants.subject.as_deref(),
        }
    }

    /// Whether the caller presented valid credentials (a password or a
    /// token), or auth is off.
    pub fn is_authenticated(&self) -> bool {
        match &self.rights {
            Rights::Everything | Rights::LocalAdmin | Rights::Token { .. } => true,
            Rights::Rules { identity, .. } => !matches!(identity, Identity::Anonymous),
        }
    }

    /// Whether auth applies to this request (it does not through the admin socket).
    pub fn auth_enabled(&self) -> bool {
        !matches!(self.rights, Rights::Everything | Rights::LocalAdmin)
    }

    /// Whether the request came through the admin socket.
    pub fn is_local_admin(&self) -> bool {
        matches!(self.rights, Rights::LocalAdmin)
    }

    /// Whether the caller may run admin operations (a GC pass, deleting a
    /// repository): through the admin socket always; with auth on, who has
    /// `admin`; with auth off, loopback clients only, as for `/metrics`:
    /// without auth, nothing else tells the operator from the network.
    pub fn may_administer(&self, client: Option<IpAddr>) -> bool {
        match &self.rights {
            Rights::LocalAdmin => true,
            Rights::Everything => client.is_some_and(|ip| ip.to_canonical().is_loopback()),
            Rights::Rules { .. } | Rights::Token { .. } => {
                self.may(&Resource::Admin, Actions::ADMIN)
            }
        }
    }

    /// Whether a token (rather than a password or nothing) stands for the caller.
    pub fn has_token(&self) -> bool {
        matches!(self.rights, Rights::Token { .. })
    }

    /// What the caller may do on `resource`.
    pub fn allowed(&self, resource: &Resource) -> Actions {
        match &self.rights {
            Rights::Everything | Rights::LocalAdmin => Actions::ALL,
            Rights::Rules { auth, identity } => auth.allowed(identity, resource),
            Rights::Token { grants, .. } => grants.actions_for(resource),
        }
    }

    /// Whether the caller may do all of `actions` on `resource`.
    pub fn may(&self, resource: &Resource, actions: Actions) -> bool {
        self.allowed(resource).contains(actions)
    }

    /// Whether the caller may pull `repository`.
    pub fn may_pull(&self, repository: &str) -> bool {
        self.may(&Resource::Repository(repository.to_string()), Actions::PULL)
    }

    /// Whether the caller may pull every repository, whatever its name (a
    /// listing then needs no filtering, and the registry's totals are theirs).
    pub fn may_pull_everything(&self) -> bool {
        match &self.rights {
            Rights::Everything | Rights::LocalAdmin => true,
            Rights::Rules { auth, identity } => auth
                .rules()
                .allowed_everywhere(identity)
                .contains(Actions::PULL),
            Rights::Token { .. } => false,
        }
    }

    /// Whether the caller may pull some repository: false only for an
    /// anonymous caller no rule gives `pull` (the UI then asks for a login).
    pub fn may_pull_somewhere(&self) -> bool {
        match &self.rights {
            Rights::Rules {
                auth,
                identity: Identity::Anonymous,
            } => auth.rules().rules().iter().any(|rule| {
                rule.who.contains(&Subject::Anonymous) && rule.actions.contains(Actions::PULL)
            }),
            _ => true,
        }
    }

    /// Whether listings (catalog, `/api/v1/repositories`) show `repository`
    /// to the caller: what they may pull. A token names only the
    /// repositories of one request, so a token's bearer sees what the token
    /// grants and what the rules let its subject pull: what they would see
    /// with their password.
    pub fn may_list(&self, repository: &str) -> bool {
        let resource = Resource::Repository(repository.to_string());
        match &self.rights {
            Rights::Token { auth, grants } => {
                let subject = match &grants.subject {
                    Some(name) => Identity::user(name),
                    None => Identity::Anonymous,
                };
                grants.allows(&resource, Actions::PULL)
                    || auth.allowed(&subject, &resource).contains(Actions::PULL)
            }
            _ => self.may(&resource, Actions::PULL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_auth::{Access, AuthConfig};

    fn auth(dir: &std::path::Path) -> Arc<Auth> {
        let path = dir.join("htpasswd");
        std::fs::write(&path, "").unwrap();
        Arc::new(Auth::new(AuthConfig::basic(path)).unwrap())
    }

    fn repo(name: &str) -> Resource {
        Resource::Repository(name.into())
    }

    #[test]
    fn without_auth_everything_is_allowed() {
        let caller = Caller::unrestricted();
        assert!(caller.may(&Resource::Admin, Actions::ALL));
        assert!(caller.is_authenticated() && !caller.auth_enabled());
    }

    #[test]
    fn the_local_admin_may_do_everything_and_administer_without_an_address() {
        let caller = Caller::local_admin();
        assert!(caller.may(&Resource::Admin, Actions::ALL));
        assert!(caller.may_pull_everything() && caller.is_authenticated());
        assert!(caller.is_local_admin() && !caller.auth_enabled());
        assert!(caller.may_administer(None));
    }

    #[test]
    fn without_auth_only_loopback_may_administer() {
        let caller = Caller::unrestricted();
        assert!(caller.may_administer(Some("127.0.0.1".parse().unwrap())));
        assert!(caller.may_administer(Some("::1".parse().unwrap())));
        assert!(caller.may_administer(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!caller.may_administer(Some("192.0.2.7".parse().unwrap())));
        assert!(!caller.may_administer(None));
        assert!(!caller.is_local_admin());
    }

    #[test]
    fn with_auth_administering_takes_the_admin_right_wherever_from() {
        let dir = tempfile::tempdir().unwrap();
        let loopback = Some("127.0.0.1".parse().unwrap());
        let alice = Caller::by_rules(auth(dir.path()), Identity::user("alice"));
        assert!(alice.may_administer(Some("192.0.2.7".parse().unwrap())));
        let nobody = Caller::by_rules(auth(dir.path()), Identity::Anonymous);
        assert!(!nobody.may_administer(loopback), "loopback is no login");
        let token = Caller::by_token(
            auth(dir.path()),
            Grants {
                subject: Some("alice".into()),
                access: vec![Access::for_resource(&repo("a"), Actions::ALL)],
            },
        );
        assert!(
            !token.may_administer(loopback),
            "no token scope names admin"
        );
    }

    #[test]
    fn by_default_users_may_do_everything_and_anonymous_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path());
        let alice = Caller::by_rules(auth.clone(), Identity::user("alice"));
        assert!(alice.may(&repo("a/b"), Actions::PUSH.union(Actions::DELETE)));
        assert_eq!(alice.name(), Some("alice"));
        let nobody = Caller::by_rules(auth, Identity::Anonymous);
        assert!(!nobody.may_pull("a/b"));
        assert!(!nobody.is_authenticated());
    }

    #[test]
    fn a_token_grants_exactly_its_access_claims() {
        let dir = tempfile::tempdir().unwrap();
        let grants = Grants {
            subject: None,
            access: vec![Access::for_resource(&repo("a/b"), Actions::PULL)],
        };
        let caller = Caller::by_token(auth(dir.path()), grants);
        assert!(caller.may_pull("a/b"));
        assert!(!caller.may(&repo("a/b"), Actions::PUSH));
        assert!(!caller.may_pull("a/c"));
        assert!(caller.may_list("a/b") && !caller.may_list("a/c"));
        assert!(caller.has_token() && caller.is_authenticated());
    }
}

//! Docker credential helpers: run once, on first need, with the upstream's
//! host on stdin; their failures name them and never show their output.
//! (Its own test binary: it puts scripts on PATH.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod fake;

use base64::Engine as _;
use berth_registry::pull_through::{Upstream, UpstreamError};
use berth_upstream::{Credentials, HttpUpstream, UpstreamSettings};
use fake::{status, with_headers, Ctx, Fake};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A directory on PATH holding `docker-credential-berthtest-ok` (prints
/// me/pw and logs its stdin) and `docker-credential-berthtest-fail`
/// (prints a secret and fails).
fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = format!(
            "#!/bin/sh\nread host\necho \"$host\" >> {}/calls\n\
             echo '{{\"ServerURL\":\"x\",\"Username\":\"me\",\"Secret\":\"pw\"}}'\n",
            dir.display()
        );
        let fail = "#!/bin/sh\necho 'leaked-helper-secret'\nexit 1\n";
        for (name, script) in [("ok", ok.as_str()), ("fail", fail)] {
            let path = dir.join(format!("docker-credential-berthtest-{name}"));
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::var("PATH").unwrap_or_default();
        std::env::set_var("PATH", format!("{}:{path}", dir.display()));
        dir
    })
}

async fn basic_registry() -> Fake {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me:pw")
    );
    Fake::start(move |ctx: &Ctx| {
        if ctx.req.header("authorization") != Some(&expected) {
            return with_headers(401, &[("www-authenticate", r#"Basic realm="r""#)], "");
        }
        match ctx.req.path.as_str() {
            "/v2/" => status(200),
            _ => with_headers(
                200,
                &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
                "{}",
            ),
        }
    })
    .await
}

fn with_helper(fake: &Fake, helper: &str) -> HttpUpstream {
    HttpUpstream::new(UpstreamSettings {
        credentials: Credentials::Helper(helper.into()),
        ..UpstreamSettings::new("fake", fake.url())
    })
    .unwrap()
}

#[tokio::test]
async fn the_helper_runs_once_with_the_host_on_stdin() {
    let dir = helpers();
    let fake = basic_registry().await;
    let up = with_helper(&fake, "berthtest-ok");
    up.manifest("r", "a").await.unwrap();
    up.manifest("r", "b").await.unwrap();
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
    assert_eq!(calls, format!("{}\n", fake.addr));
}

#[tokio::test]
async fn a_failing_helper_is_unauthorized_naming_it() {
    helpers();
    let fake = basic_registry().await;
    for (helper, says) in [
        ("berthtest-fail", "docker-credential-berthtest-fail failed"),
        ("berthtest-absent", "could not be started"),
    ] {
        let err = with_helper(&fake, helper)
            .manifest("r", "a")
            .await
            .unwrap_err();
        let UpstreamError::Unauthorized(why) = err else {
            panic!("{err:?}")
        };
        assert!(why.contains(says), "{why}");
        assert!(!why.contains("leaked-helper-secret"), "{why}");
    }
}

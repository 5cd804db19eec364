//! The pull-through cache built from the configuration: one `HttpUpstream`
//! per `[[upstream]]` (and the `[proxy]` fallback) as routes, with the
//! freshness interval and size limit, for `Registry::with_pull_through`.

use crate::config::pull_through::{CredentialError, UpstreamConfig};
use crate::config::PullThroughConfig;
use berth_oci::RepositoryName;
use berth_registry::pull_through::{PullThrough, UpstreamRoute, UpstreamRoutes};
use berth_registry::units::{format_duration, format_size};
use berth_registry::Registry;
use berth_upstream::{HttpUpstream, UpstreamSettings, UpstreamSetupError};
use std::sync::Arc;

/// Why the cache could not be set up; said at start-up, naming the upstream.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Client(#[from] UpstreamSetupError),
}

/// The cache the configuration describes; `None` without any upstream.
pub fn build(config: &PullThroughConfig) -> Result<Option<PullThrough>, SetupError> {
    if !config.is_enabled() {
        return Ok(None);
    }
    let routes = config
        .upstreams
        .iter()
        .map(route)
        .collect::<Result<Vec<_>, _>>()?;
    let fallback = match &config.proxy {
        Some(proxy) => Some(route(&proxy.as_upstream())?),
        None => None,
    };
    Ok(Some(PullThrough::new(
        UpstreamRoutes::new(routes, fallback),
        config.cache.freshness,
        config.cache.max_size,
    )))
}

fn route(config: &UpstreamConfig) -> Result<UpstreamRoute, SetupError> {
    let settings = UpstreamSettings {
        credentials: config.resolve_credentials()?,
        ca_file: config.ca_file.clone(),
        ..UpstreamSettings::new(&config.name, &config.url)
    };
    Ok(UpstreamRoute {
        name: config.name.clone(),
        prefix: config.prefix.clone(),
        docker_hub: config.is_docker_hub(),
        upstream: Arc::new(HttpUpstream::new(settings)?),
    })
}

/// The start-up line's list: `name url (prefix p/)` per upstream, never
/// credentials (only whether some are configured).
pub fn describe(config: &PullThroughConfig) -> String {
    let mut parts: Vec<String> = config
        .upstreams
        .iter()
        .map(|u| {
            format!(
                "{} {} (prefix {}/{})",
                u.name,
                u.url,
                u.prefix,
                login_note(u)
            )
        })
        .collect();
    if let Some(proxy) = &config.proxy {
        let upstream = proxy.as_upstream();
        parts.push(format!(
            "{} {} (fallback for repositories without local content{})",
            upstream.name,
            upstream.url,
            login_note(&upstream)
        ));
    }
    parts.join(", ")
}

fn login_note(upstream: &UpstreamConfig) -> &'static str {
    use crate::config::pull_through::Credentials;
    match upstream.credentials {
        Credentials::Anonymous => "",
        Credentials::Password { .. } | Credentials::PasswordFile { .. } => ", with a login",
        Credentials::Helper(_) => ", with a credential helper",
    }
}

/// Logs what the cache serves, once, at start-up.
pub fn log_start(config: &PullThroughConfig) {
    if !config.is_enabled() {
        return;
    }
    let max_size = config
        .cache
        .max_size
        .map_or_else(|| "none".to_string(), format_size);
    tracing::info!(
        upstreams = %describe(config),
        freshness = %format_duration(config.cache.freshness),
        max_size = %max_size,
        "pull-through cache on"
    );
}

/// How many pushed repositories under a prefix the warning names.
const NAMED_IN_WARNING: usize = 5;

/// Warns about repositories holding pushed content under a configured
/// prefix: from now on they are caches of that upstream, read-only, their
/// tags checked upstream. A prefix chosen over an existing namespace is a
/// mistake better said at start-up than found at the next push.
pub async fn warn_local_under_prefixes(registry: &Registry, config: &PullThroughConfig) {
    for upstream in &config.upstreams {
        match local_under_prefix(registry, &upstream.prefix).await {
            Ok(names) if names.is_empty() => {}
            Ok(names) => tracing::warn!(
                upstream = %upstream.name,
                prefix = %upstream.prefix,
                repositories = %names.join(", "),
                "repositories under this upstream's prefix hold pushed content: they are now read-only caches of it; choose another prefix to keep them local"
            ),
            Err(e) => {
                tracing::warn!(error = %e, prefix = %upstream.prefix, "checking for pushed repositories under an upstream's prefix failed")
            }
        }
    }
}

/// Up to [`NAMED_IN_WARNING`] repositories under `prefix/` that are not caches.
async fn local_under_prefix(
    registry: &Registry,
    prefix: &str,
) -> berth_registry::Result<Vec<String>> {
    let under = format!("{prefix}/");
    // Names sort bytewise and `.` is the only name character below `/`:
    // every `<prefix>.…` name sorts before `<prefix>/…`, and before this.
    let mut last = format!("{prefix}.~");
    let mut found = Vec::new();
    loop {
        let page = registry.catalog(Some(&last), Some(100)).await?;
        for name in &page.items {
            if !name.starts_with(&under) {
                return Ok(found);
            }
            let Ok(repo) = name.parse::<RepositoryName>() else {
                continue;
            };
            if registry.cache_origin(&repo).await?.is_none() {
                found.push(name.clone());
                if found.len() == NAMED_IN_WARNING {
                    return Ok(found);
                }
            }
        }
        match (page.next, page.items.last()) {
            (Some(_), Some(name)) => last = name.clone(),
            _ => return Ok(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawConfig};
    use std::collections::HashMap;

    fn load(text: &str) -> PullThroughConfig {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(Some(file), &HashMap::new(), RawConfig::default())
            .unwrap()
            .pull_through
    }

    #[test]
    fn routes_reach_each_upstream_by_prefix_and_ns_and_the_fallback_by_absence() {
        let config = load(
            "[cache]\nmax_size = \"1GiB\"\n[[upstream]]\nname = \"docker.io\"\n[[upstream]]\nname = \"localhost:5001\"\nurl = \"http://127.0.0.1:5001\"\nprefix = \"local\"\nusername = \"me\"\npassword = \"hunter2\"\n[proxy]\nremoteurl = \"https://mirror.example\"\n",
        );
        let cache = build(&config).unwrap().unwrap();
        assert_eq!(cache.max_bytes(), Some(1 << 30));
        let routes = cache.routes();
        let name = |s: &str| s.parse().unwrap();
        assert_eq!(
            routes
                .local_name(&name("busybox"), Some("docker.io"))
                .unwrap()
                .as_str(),
            "docker.io/library/busybox"
        );
        assert_eq!(
            routes
                .local_name(&name("team/app"), Some("localhost:5001"))
                .unwrap()
                .as_str(),
            "local/team/app"
        );
        assert_eq!(
            routes
                .local_name(&name("team/app"), Some("localhost:5000"))
                .unwrap()
                .as_str(),
            "team/app",
            "an ns naming no upstream is local"
        );
        let fallback = routes.fallback().unwrap();
        assert_eq!(fallback.name, "proxy");
        let stats: Vec<String> = cache.stats().into_iter().map(|s| s.upstream).collect();
        assert_eq!(stats, ["docker.io", "localhost:5001", "proxy"]);
    }

    #[test]
    fn the_start_up_description_names_upstreams_but_never_credentials() {
        let config = load(
            "[[upstream]]\nname = \"up.test\"\nurl = \"http://127.0.0.1:9\"\nusername = \"me\"\npassword = \"hunter2\"\n[proxy]\nremoteurl = \"https://mirror.example\"\nusername = \"u\"\npassword = \"s3cret\"\n",
        );
        let text = describe(&config);
        assert_eq!(
            text,
            "up.test http://127.0.0.1:9 (prefix up.test/, with a login), proxy https://mirror.example (fallback for repositories without local content, with a login)"
        );
        assert!(!text.contains("hunter2") && !text.contains("s3cret"));
    }

    #[test]
    fn without_upstreams_there_is_no_cache_and_a_missing_password_file_is_said() {
        assert!(build(&load("")).unwrap().is_none());
        let config = load(
            "[[upstream]]\nname = \"x.io\"\nusername = \"me\"\npassword_file = \"/nonexistent/berth-pw\"\n",
        );
        let e = build(&config).err().unwrap().to_string();
        assert!(
            e.contains("x.io") && e.contains("/nonexistent/berth-pw"),
            "{e}"
        );
    }
}

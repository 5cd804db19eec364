//! `berth serve`: open the stores, start the HTTP server, expire abandoned
//! uploads in the background, and stop cleanly on SIGINT or SIGTERM.

use crate::config::{AuthSettings, Config};
use berth_auth::{Auth, AuthConfig, SigningKey, TokenServiceConfig};
use berth_registry::storage::fs::{create_dir_durably, FsBlobStore};
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{IoMode, Registry, RegistryOptions};
use berth_server::{CorsPolicy, ServeOptions, Timeouts};
use std::sync::Arc;
use std::time::Duration;

/// `io` is [`IoMode::Portable`] when `BERTH_PORTABLE_IO=1` forces the
/// paths other systems take (see `berth_registry::IoMode`).
pub async fn run(config: Config, io: IoMode) -> Result<(), Box<dyn std::error::Error>> {
    let cors = CorsPolicy::new(&config.cors)?;
    let OpenedData {
        registry,
        lock: _lock,
    } = open_data(&config, io)?;
    let has_repositories = !registry.catalog(None, Some(1)).await?.items.is_empty();
    crate::data_dir::check_not_unimported_distribution(&config.data_dir, has_repositories)?;
    // Before serving: no request owns anything in uploads/ yet.
    match registry.sweep_leftovers().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "removed upload files left by an earlier run"),
        Err(e) => tracing::warn!(error = %e, "sweeping leftover upload files failed"),
    }
    // Also before serving: blobs a garbage collection pass was deleting when
    // berth stopped are finished off, so that no publish waits on them.
    match registry.recover_gc().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            count = n,
            "finished deleting blobs an interrupted GC pass left"
        ),
        Err(e) => tracing::warn!(error = %e, "finishing an interrupted GC pass failed"),
    }
    crate::pull_through::log_start(&config.pull_through);
    crate::pull_through::warn_local_under_prefixes(&registry, &config.pull_through).await;
    tokio::spawn(expire_uploads(registry.clone(), config.upload_expiry));
    // Each pass logs its summary at info; `[gc] interval = "off"`: none.
    if let Some(interval) = config.gc.interval {
        tracing::info!(
            interval = %berth_registry::units::format_duration(interval),
            grace = %berth_registry::units::format_duration(config.gc.grace),
            "garbage collection runs in the background"
        );
        tokio::spawn(registry.clone().run_gc_worker());
    }
    tokio::spawn(crate::allocator::return_free_memory(
        Duration::from_secs(1),
        io,
    ));

    let stopping = registry.clone(); // for what it writes when serving ends
    let fd_limit = crate::fd_limit::raise();
    let options = ServeOptions {
        timeouts: Timeouts {
            header_read: config.header_read_timeout,
            keep_alive_idle: config.idle_timeout,
            body_idle: config.body_idle_timeout,
        },
        tls: config.tls.clone(),
        max_connections: config
            .max_connections
            .unwrap_or_else(|| crate::fd_limit::default_max_connections(fd_limit)),
        shutdown_grace: config.shutdown_grace,
        manifest_body_budget: config.manifest_body_budget,
        io,
        cors,
        metrics_public: config.metrics_public,
        admin_socket: Some(config.data_dir.join(berth_server::admin_socket::FILE_NAME)),
        auth: match &config.auth {
            Some(settings) => Some(Arc::new(build_auth(settings, &config.data_dir)?)),
            None => None,
        },
    };
    if let Some(tls) = &options.tls {
        // A bad pair is refused before the port opens, not by the accept loop.
        berth_server::tls::Tls::new(tls.clone())?;
    }
    // Before binding: said even when the bind then fails.
    warn_if_open(config.addr, options.auth.is_some());
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        scheme,
        data_dir = %config.data_dir.display(),
        max_connections = options.max_connections,
        linux_io = io.linux_calls(),
        "berth listening"
    );
    berth_server::serve_with(listener, registry.clone(), options, shutdown_signal()).await?;
    // Pull times noted in the last minute would be lost otherwise.
    if let Err(e) = registry.flush_pulls().await {
        tracing::warn!(error = %e, "writing the last pull times failed");
    }
    tracing::info!("berth stopped");
    // Blob reads of the last second, so that their blobs keep their grace.
    if let Err(e) = stopping.flush_touches().await {
        tracing::warn!(error = %e, "writing the last blob read times failed");
    }
    Ok(())
}

/// The data folder as this process owns it: its lock, held while this
/// lives, and the registry over its stores.
pub struct OpenedData {
    pub registry: Arc<Registry>,
    pub lock: std::fs::File,
}

/// Opens the data folder as `serve` does: checks it is writable, creates
/// it, takes its lock (refused while another berth holds it) and opens the
/// stores.
pub fn open_data(config: &Config, io: IoMode) -> Result<OpenedData, Box<dyn std::error::Error>> {
    crate::data_dir::check_writable(&config.data_dir)?;
    create_dir_durably(&config.data_dir)?;
    let lock = crate::data_dir::lock(&config.data_dir)?;
    let registry = open_registry(config, io)?;
    Ok(OpenedData { registry, lock })
}

/// The registry over the data folder's stores, with the configured
/// options, for a caller already holding the folder's lock: commands that
/// work without a server (`berth gc`, `berth repo delete`) see exactly what
/// a server would.
pub fn open_registry(
    config: &Config,
    io: IoMode,
) -> Result<Arc<Registry>, Box<dyn std::error::Error>> {
    let blobs = FsBlobStore::open(&config.data_dir)?.with_io_mode(io);
    let meta = SqliteMetaStore::open(&config.data_dir.join("meta.db"))?;
    let registry = Registry::new(
        Arc::new(blobs),
        Arc::new(meta),
        RegistryOptions {
            delete_enabled: config.delete_enabled,
            upload_expiry: config.upload_expiry,
            min_free_bytes: config.min_free_bytes,
            min_free_percent: config.min_free_percent,
            max_uploads: config.max_upload_sessions,
            max_uploads_per_client: config.max_upload_sessions_per_client,
            gc: config.gc.into(),
            policies: Arc::new(config.policies.clone()),
            // The embedded stores belong to this process alone.
            shared_stores: false,
        },
    );
    // Offline commands get the cache too: GC's eviction needs its limit,
    // and repository origins are the same as a server would see.
    Ok(Arc::new(
        match crate::pull_through::build(&config.pull_through)? {
            Some(pull_through) => registry.with_pull_through(pull_through),
            None => registry,
        },
    ))
}

/// The users, rules and token keys the settings name; the key (for tokens
/// and web UI sessions) is generated into the data folder on first start
/// unless one is configured.
fn build_auth(
    settings: &AuthSettings,
    data_dir: &std::path::Path,
) -> Result<Auth, Box<dyn std::error::Error>> {
    // One key signs tokens and web UI sessions; it is kept in the data
    // folder in Basic mode too, so that UI logins survive a restart.
    let key = match &settings.key {
        Some(path) => SigningKey::from_pem_file(path)?,
        None => SigningKey::load_or_generate(&berth_auth::keys::default_key_path(data_dir))?,
    };
    let token = settings.token.as_ref().map(|token| {
        let mut service = TokenServiceConfig::new(key.clone());
        service.realm = token.realm.clone();
        service.service = token.service.clone();
        service.ttl = token.ttl;
        service
    });
    let external_issuers = settings
        .issuers
        .iter()
        .map(|issuer| issuer.load())
        .collect::<Result<Vec<_>, _>>()?;
    let auth = Auth::new(AuthConfig {
        htpasswd: settings.htpasswd.clone(),
        basic_realm: settings.realm.clone(),
        token,
        rules: settings.rules.clone(),
        external_issuers,
    })?
    .with_session_key(key);
    tracing::info!(
        htpasswd = %settings.htpasswd.display(),
        mode = if settings.token.is_some() { "token" } else { "basic" },
        rules = settings.rules.rules().len(),
        external_issuers = settings.issuers.len(),
        "auth on"
    );
    Ok(auth)
}

/// What is logged when serving beyond loopback without auth.
const OPEN_WARNING: &str = "listening beyond loopback WITHOUT AUTH: anyone who can reach this address can push, pull and delete; set htpasswd (--htpasswd FILE) to require logins";

/// The safe default's other half: serving beyond loopback without auth is
/// allowed (a trusted network, a proxy in front), but never silently.
fn open_warning(addr: std::net::SocketAddr, auth: bool) -> Option<&'static str> {
    (!auth && !addr.ip().to_canonical().is_loopback()).then_some(OPEN_WARNING)
}

fn warn_if_open(addr: std::net::SocketAddr, auth: bool) {
    if let Some(warning) = open_warning(addr, auth) {
        tracing::warn!(%addr, "{warning}");
    }
}

/// Sweeps expired uploads; requests already treat them as gone, this frees the disk.
async fn expire_uploads(registry: Arc<Registry>, expiry: Duration) {
    let period = (expiry / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        match registry.expire_uploads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "expired abandoned uploads"),
            Err(e) => tracing::warn!(error = %e, "expiring uploads failed"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_beyond_loopback_without_auth_is_warned_about() {
        for addr in ["0.0.0.0:5000", "[::]:5000", "192.168.1.2:5000"] {
            let addr = addr.parse().unwrap();
            assert_eq!(open_warning(addr, false), Some(OPEN_WARNING), "{addr}");
            assert_eq!(open_warning(addr, true), None, "{addr} with auth");
        }
        for addr in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
            assert_eq!(open_warning(addr.parse().unwrap(), false), None, "{addr}");
        }
    }
}

//! `berth serve`: open the stores, start the HTTP server, expire abandoned
//! uploads in the background, and stop cleanly on SIGINT or SIGTERM.

use crate::backends::Stores;
use crate::config::{AuthSettings, Config};
use berth_auth::{Auth, AuthConfig, SigningKey, TokenServiceConfig};
use berth_registry::storage::fs::create_dir_durably;
use berth_registry::{IoMode, MetaStore, Registry, RegistryOptions};
use berth_server::{CorsPolicy, ServeOptions, Timeouts};
use std::sync::Arc;
use std::time::Duration;

/// `io` is [`IoMode::Portable`] when `BERTH_PORTABLE_IO=1` forces the
/// paths other systems take (see `berth_registry::IoMode`).
pub async fn run(config: Config, io: IoMode) -> Result<(), Box<dyn std::error::Error>> {
    let cors = CorsPolicy::new(&config.cors)?;
    let OpenedData {
        registry,
        meta,
        shared,
        lock: _lock,
    } = open_data(&config, io).await?;
    let has_repositories = !registry.catalog(None, Some(1)).await?.items.is_empty();
    crate::data_dir::check_not_unimported_distribution(&config.data_dir, has_repositories)?;
    // Before serving: no request owns anything in uploads/ yet. Not so on
    // shared stores, where another replica's uploads are in flight: there
    // abandoned uploads go when they expire.
    if !shared {
        match registry.sweep_leftovers().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "removed upload files left by an earlier run"),
            Err(e) => tracing::warn!(error = %e, "sweeping leftover upload files failed"),
        }
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
            Some(settings) => {
                let key = signing_key(settings, &config.data_dir, shared.then_some(&*meta)).await?;
                Some(Arc::new(build_auth(settings, key)?))
            }
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
/// lives, and the registry over the configured stores.
pub struct OpenedData {
    pub registry: Arc<Registry>,
    pub meta: Arc<dyn MetaStore>,
    /// Whether other replicas share the stores.
    pub shared: bool,
    pub lock: std::fs::File,
}

/// Opens the data folder as `serve` does: checks it is writable, creates
/// it, takes its lock (refused while another berth holds it) and opens the
/// stores. With S3 and PostgreSQL the folder holds only this process's
/// own files (the admin socket, a key file if one is generated there).
pub async fn open_data(
    config: &Config,
    io: IoMode,
) -> Result<OpenedData, Box<dyn std::error::Error>> {
    crate::data_dir::check_writable(&config.data_dir)?;
    create_dir_durably(&config.data_dir)?;
    let lock = crate::data_dir::lock(&config.data_dir)?;
    let stores = crate::backends::open_stores_io(config, io).await?;
    tracing::info!(stores = %stores.described, shared = stores.shared, "stores open");
    let meta = stores.meta.clone();
    let shared = stores.shared;
    let registry = registry_over(config, stores)?;
    Ok(OpenedData {
        registry,
        meta,
        shared,
        lock,
    })
}

/// The registry over the configured stores, with the configured options,
/// for a caller already holding the data folder's lock (or on shared
/// stores, which need none): commands that work without a server (`berth
/// gc`, `berth repo delete`) see exactly what a server would.
pub async fn open_registry(
    config: &Config,
    io: IoMode,
) -> Result<Arc<Registry>, Box<dyn std::error::Error>> {
    let stores = crate::backends::open_stores_io(config, io).await?;
    registry_over(config, stores)
}

fn registry_over(
    config: &Config,
    stores: Stores,
) -> Result<Arc<Registry>, Box<dyn std::error::Error>> {
    let registry = Registry::new(
        stores.blobs,
        stores.meta,
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
    // One collector at a time across replicas: each names itself to the lease.
    let registry = if stores.shared {
        registry.with_gc_holder(replica_id())
    } else {
        registry
    };
    // Offline commands get the cache too: GC's eviction needs its limit,
    // and repository origins are the same as a server would see.
    Ok(Arc::new(
        match crate::pull_through::build(&config.pull_through)? {
            Some(pull_through) => registry.with_pull_through(pull_through),
            None => registry,
        },
    ))
}

/// This process among replicas: host, PID and a random part (a PID is
/// reused after a restart, a host name may be shared by containers).
fn replica_id() -> String {
    let host = rustix::system::uname();
    let host = host.nodename().to_string_lossy();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// The key signing tokens and web UI sessions: the configured file; else,
/// when replicas share the metadata store, the one key kept in it (the
/// first replica to start stores the key it generated, every other one
/// uses that: a token from one replica is good on all); else a file in
/// the data folder, generated on first start.
async fn signing_key(
    settings: &AuthSettings,
    data_dir: &std::path::Path,
    shared: Option<&dyn MetaStore>,
) -> Result<SigningKey, Box<dyn std::error::Error>> {
    if let Some(path) = &settings.key {
        return Ok(SigningKey::from_pem_file(path)?);
    }
    let Some(meta) = shared else {
        return Ok(SigningKey::load_or_generate(
            &berth_auth::keys::default_key_path(data_dir),
        )?);
    };
    let candidate = berth_auth::keys::generate_pem()?;
    let pem = meta
        .shared_secret(SIGNING_KEY_SECRET, candidate.into_bytes())
        .await?;
    let pem = String::from_utf8(pem).map_err(|_| {
        crate::data_dir::Refused(format!(
            "the metadata store's {SIGNING_KEY_SECRET:?} is not a PEM key"
        ))
    })?;
    Ok(SigningKey::from_pem(
        &pem,
        std::path::Path::new("<metadata store: token-signing-key>"),
    )?)
}

/// The shared secret holding the signing key on a shared metadata store.
const SIGNING_KEY_SECRET: &str = "token-signing-key";

/// The users, rules and token service the settings name, signing with
/// `key` (see [`signing_key`]): one key signs tokens and web UI sessions,
/// kept in Basic mode too, so that UI logins survive a restart.
fn build_auth(
    settings: &AuthSettings,
    key: SigningKey,
) -> Result<Auth, Box<dyn std::error::Error>> {
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

    fn settings() -> AuthSettings {
        AuthSettings {
            htpasswd: "/h".into(),
            realm: "berth".into(),
            token: None,
            rules: Default::default(),
            issuers: vec![],
            key: None,
        }
    }

    #[tokio::test]
    async fn replicas_sharing_a_metadata_store_sign_with_one_key() {
        let db = tempfile::tempdir().unwrap();
        let meta =
            berth_registry::storage::sqlite::SqliteMetaStore::open(&db.path().join("meta.db"))
                .unwrap();
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = signing_key(&settings(), one.path(), Some(&meta))
            .await
            .unwrap();
        let second = signing_key(&settings(), two.path(), Some(&meta))
            .await
            .unwrap();
        assert_eq!(first.kid(), second.kid(), "one key for every replica");
        assert!(
            !berth_auth::keys::default_key_path(one.path()).exists(),
            "no key file per replica"
        );
        // Unshared, each data folder has its own.
        let own = signing_key(&settings(), one.path(), None).await.unwrap();
        let other = signing_key(&settings(), two.path(), None).await.unwrap();
        assert_ne!(own.kid(), other.kid());
    }
}

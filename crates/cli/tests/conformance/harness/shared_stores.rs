//! Conformance servers on PostgreSQL (and S3 on Garage) instead of the
//! data folder's own stores.
//!
//! `BERTH_CONFORMANCE_BACKEND` chooses the stores of every server of the
//! run, so that a chosen subset of the suite runs on them:
//! - `pg`: blobs in the data folder, metadata in PostgreSQL;
//! - `s3pg`: blobs in a Garage bucket, metadata in PostgreSQL.
//!
//! e.g. `BERTH_CONFORMANCE_BACKEND=s3pg cargo test -p berth-cli --test
//! conformance -- pull:: blob_upload:: ...` (tests/run.sh has the list).
//! The `replicas` module uses the shared stores directly.
//!
//! One PostgreSQL (and one Garage) serves every test alive at once, each
//! test with its own database (and bucket prefix); they stop, by PID, when
//! the last test holding them ends.

use berth_registry::testing::engines::{TempGarage, TempPostgres};
use std::sync::{Arc, Weak};

/// The variable choosing the stores of every conformance server.
pub const BACKEND_ENV: &str = "BERTH_CONFORMANCE_BACKEND";

/// What `BERTH_CONFORMANCE_BACKEND` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The data folder's own: filesystem and SQLite.
    Local,
    Postgres,
    S3Postgres,
}

impl Backend {
    pub fn requested() -> Backend {
        match std::env::var(BACKEND_ENV).as_deref() {
            Ok("pg") => Backend::Postgres,
            Ok("s3pg") => Backend::S3Postgres,
            Ok("") | Ok("local") | Err(_) => Backend::Local,
            Ok(other) => panic!("{BACKEND_ENV}={other:?}: pg, s3pg or local"),
        }
    }
}

struct Engines {
    postgres: TempPostgres,
    garage: Option<Garage>,
}

/// The engines while any test holds them.
static RUNNING: std::sync::Mutex<Weak<Engines>> = std::sync::Mutex::new(Weak::new());

/// The running engines, started if none are; `None` when one is missing
/// outside CI (the engines' starters print why, and fail under CI).
fn engines(with_s3: bool) -> Option<Arc<Engines>> {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(engines) = running.upgrade() {
        if !with_s3 || engines.garage.is_some() {
            return Some(engines);
        }
    }
    let postgres = TempPostgres::start()?;
    let garage = if with_s3 {
        Some(Garage::start()?)
    } else {
        None
    };
    let engines = Arc::new(Engines { postgres, garage });
    *running = Arc::downgrade(&engines);
    Some(engines)
}

/// A database (and bucket prefix) of their own on the run's engines, as
/// the environment a `berth serve` needs to use them.
#[derive(Clone)]
pub struct SharedStores {
    pub env: Vec<(String, String)>,
    _engines: Arc<Engines>,
}

impl SharedStores {
    /// Fresh S3 + PostgreSQL stores, for replicas; `None` when an engine
    /// is missing outside CI.
    pub async fn fresh() -> Option<SharedStores> {
        Self::fresh_for(Backend::S3Postgres).await
    }

    /// Fresh stores of `backend`'s kind (not [`Backend::Local`]).
    pub async fn fresh_for(backend: Backend) -> Option<SharedStores> {
        let with_s3 = backend == Backend::S3Postgres;
        let engines = tokio::task::spawn_blocking(move || engines(with_s3))
            .await
            .expect("starting engines")?;
        let database = {
            let engines = engines.clone();
            tokio::task::spawn_blocking(move || engines.postgres.fresh_database())
                .await
                .expect("creating a database")
        };
        let mut env = vec![("BERTH_METADATA_URL".to_string(), database)];
        if let Some(garage) = &engines.garage {
            env.extend(garage.env(&format!("t{}", uuid::Uuid::new_v4().simple())));
        }
        Some(SharedStores {
            env,
            _engines: engines,
        })
    }
}

/// One Garage node with its bucket and key.
struct Garage(TempGarage);

impl Garage {
    fn start() -> Option<Garage> {
        TempGarage::start().map(Garage)
    }

    /// The variables of a `berth serve` on this bucket, under `root`.
    fn env(&self, root: &str) -> Vec<(String, String)> {
        let s3 = self.0.settings();
        [
            ("BERTH_STORAGE", "s3".to_string()),
            ("BERTH_S3_ENDPOINT", s3.endpoint.unwrap_or_default()),
            ("BERTH_S3_BUCKET", s3.bucket),
            ("BERTH_S3_REGION", s3.region),
            ("BERTH_S3_ACCESS_KEY", s3.access_key),
            ("BERTH_S3_SECRET_KEY", s3.secret_key),
            ("BERTH_S3_FORCE_PATH_STYLE", "true".to_string()),
            ("BERTH_S3_ROOT", root.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

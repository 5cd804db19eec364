//! `loadgen gc-soak`: the soak with the garbage collector running. Pushers
//! that behave like docker (HEAD, skip what is there, PUT the manifest, some
//! pausing in between), pullers verifying every byte, deleters, a retention
//! rule and GC passes (the server's worker and explicit `berth gc` runs) all
//! at once against a server with a grace of seconds. Then, with the load
//! stopped: wait past the grace, two `berth gc` passes, and the end state
//! checked over HTTP. bench/soak.sh --gc starts the server with that
//! configuration, runs this, then stops the server and checks the data
//! folder offline (fsck, the blob files against the referenced set).
//!
//! Zero of the failures that concurrent GC causes elsewhere are allowed:
//! MANIFEST_BLOB_UNKNOWN on a push, BLOB_UNKNOWN for a blob of a manifest
//! that is still there, bytes that do not match their digest. How a 404 is
//! told apart from a failure: see [`model`].

mod collector;
mod deleter;
mod figures;
mod image;
mod model;
mod puller;
mod pusher;
mod verdict;
mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::content::Pool;
use crate::http::Target;
pub use collector::GcCommand;
use figures::Figures;
use model::{Model, Retained, Slot};

pub struct GcSoakArgs {
    pub duration: Duration,
    pub pushers: usize,
    pub pullers: usize,
    pub deleters: usize,
    /// Shared repositories the pushers' tags live in.
    pub repos: usize,
    /// Tags per pusher.
    pub slots: usize,
    /// Repositories under the retention rule (`soak/retained/rN`), one pusher each.
    pub retained: usize,
    /// The rule's keep_last.
    pub keep_last: u64,
    /// The server's gc.grace and gc.untagged_after: how long to wait at the end.
    pub grace: Duration,
    pub untagged_after: Duration,
    /// None: no explicit passes (only the server's worker).
    pub gc: Option<GcCommand>,
    pub gc_every: Duration,
    pub pool_bytes: u64,
    /// Blobs per size class that images share.
    pub hot: u32,
    pub timeout: Duration,
    pub server_pid: u32,
    pub server_log: Option<PathBuf>,
    pub json_out: Option<PathBuf>,
}

/// What every task shares.
pub struct Ctx {
    pub target: Target,
    pub timeout: Duration,
    /// The server's gc.grace.
    pub grace: Duration,
    pub deadline: Instant,
    pub pool: Pool,
    pub hot: u32,
    pub run_id: u64,
    pub model: Model,
    pub figures: Arc<Figures>,
    /// A repository each blob was last pushed in: where mounts come from.
    seen: Mutex<HashMap<String, Arc<str>>>,
}

impl Ctx {
    pub fn saw(&self, digest: &str, repo: &Arc<str>) {
        if let Ok(mut s) = self.seen.lock() {
            s.insert(digest.to_string(), repo.clone());
        }
    }

    pub fn seen_in(&self, digest: &str) -> Option<Arc<str>> {
        self.seen.lock().ok()?.get(digest).cloned()
    }
}

fn model(a: &GcSoakArgs) -> Model {
    let mut slots = Vec::new();
    for p in 0..a.pushers {
        for s in 0..a.slots {
            let repo = format!("soak/gc/r{}", (p + s) % a.repos.max(1));
            slots.push(Slot::new(Arc::from(repo.as_str()), format!("p{p}-s{s}")));
        }
    }
    let retained = (0..a.retained)
        .map(|r| Retained::new(Arc::from(format!("soak/retained/r{r}").as_str())))
        .collect();
    Model::new(slots, retained, a.keep_last)
}

/// Runs the soak; true if every check passed.
pub async fn run(target: Target, a: GcSoakArgs) -> Result<bool> {
    if a.pushers == 0 || a.pullers == 0 || a.slots == 0 || a.duration.is_zero() {
        bail!("--pushers, --pullers, --slots and --duration must be > 0");
    }
    if a.retained > a.pushers {
        bail!("--retained must not exceed --pushers (each retained repository has its own pusher)");
    }
    super::wait_ready(&target, Duration::from_secs(30)).await?;
    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        target: target.clone(),
        timeout: a.timeout,
        grace: a.grace,
        deadline: start + a.duration,
        pool: Pool::new(a.pool_bytes),
        hot: a.hot,
        run_id: crate::push::Rng::from_entropy().next_u64(),
        model: model(&a),
        figures: Arc::new(Figures::default()),
        seen: Mutex::new(HashMap::new()),
    });
    eprintln!(
        "[gc-soak] {} pushers, {} pullers, {} deleters, {} retained repositories for {:?} against {}; explicit gc {}",
        a.pushers,
        a.pullers,
        a.deleters,
        a.retained,
        a.duration,
        target.addr,
        if a.gc.is_some() { format!("every {:?}", a.gc_every) } else { "off".into() }
    );

    let mut tasks = Vec::new();
    for p in 0..a.pushers {
        let slots = (p * a.slots..(p + 1) * a.slots).collect();
        let retained = (p < a.retained).then_some(p);
        tasks.push(tokio::spawn(
            pusher::Pusher::new(p, ctx.clone(), slots, retained).run(),
        ));
    }
    for i in 0..a.pullers {
        tasks.push(tokio::spawn(
            puller::Puller::new(i, ctx.clone(), ctx.figures.clone()).run(),
        ));
    }
    for i in 0..a.deleters {
        tasks.push(tokio::spawn(deleter::Deleter::new(i, ctx.clone()).run()));
    }
    if let Some(gc) = &a.gc {
        tasks.push(tokio::spawn(collector::run_passes(
            ctx.clone(),
            gc.clone(),
            a.gc_every,
        )));
    }
    for t in tasks {
        t.await?;
    }
    let load_secs = start.elapsed().as_secs_f64();
    let during = collector::Reclaimed::fetch(&target, a.timeout).await;
    eprintln!("[gc-soak] load stopped after {load_secs:.1} s; settling, then two GC passes and the end-state checks");

    let end = verdict::EndState::check(ctx.clone(), &a).await;
    let after = collector::Reclaimed::fetch(&target, a.timeout).await;
    let report = verdict::Report::new(&ctx.figures, &a, load_secs, during, after, &end);
    report.print();
    if let Some(path) = &a.json_out {
        std::fs::write(path, report.json().to_string())?;
    }
    Ok(report.passed())
}

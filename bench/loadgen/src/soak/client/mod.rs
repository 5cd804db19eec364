//! One soak client: a keep-alive connection that loops over push, pull and
//! listing cycles until the deadline, checking every answer against what the
//! OCI distribution spec says it must be.
//!
//! Each client owns one repository (`soak/cNNNN-gG`) and is its only writer, so
//! the state of its tags, manifests and blob links is known exactly and every
//! status is predictable. Clients meet through cross-repository mounts and
//! pulls of each other's blobs; blob links are never removed (scratch blobs
//! aside, which no one else sees), so those reads are predictable too.
//!
//! After a failure the client's state may no longer match the server's, so
//! it drops its connection and carries on in a fresh repository.

mod blobs;
mod exchange;
mod manifests;
mod side;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::content::{BlobId, Pool};
use super::stats::Stats;
use crate::http::{Conn, Target, OCI_MANIFEST};
use crate::push::Rng;
use manifests::sha256;

/// Tags per repository (`s0`, `s1`, ...), each moved to a new manifest often.
const SLOTS: u32 = 3;
/// Versions per tag before a manifest's bytes repeat: manifests are a bounded
/// set too (clients x SLOTS x VERSIONS), so disk use stays bounded.
const VERSIONS: u32 = 4;
/// Scratch blobs per client (pushed, then deleted).
const SCRATCH: u32 = 4;
/// Linked blobs each client offers to the others for mounts and pulls.
const OFFERED: usize = 32;
/// The artifact type of the soak's referrers.
const ARTIFACT_TYPE: &str = "application/vnd.berth.soak.note";
/// The referrers API answers an image index.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Longest `Range` asked for.
const MAX_RANGE: u64 = 64 << 10;

/// What every client shares.
pub struct Shared {
    pub target: Target,
    pub pool: Pool,
    pub stats: Stats,
    pub run_id: u64,
    /// Per client: (repository, blob) pairs linked there, for the others.
    pub offers: Vec<Mutex<Vec<Offer>>>,
    pub deadline: Instant,
    pub timeout: Duration,
}

/// A blob linked in a client's repository, offered to the others.
pub type Offer = (Arc<str>, BlobId);

/// A request failed; already counted in the stats.
#[derive(Debug)]
pub struct Failed;

type Step<T = ()> = Result<T, Failed>;

pub struct Client {
    id: usize,
    shared: Arc<Shared>,
    conn: Conn,
    rng: Rng,
    generation: u32,
    repo: Arc<str>,
    linked: HashSet<BlobId>,
    /// Tag slot -> the digest of the manifest that tag points to.
    slots: BTreeMap<u32, String>,
    versions: [u32; SLOTS as usize],
    scratch_turn: u32,
}

impl Client {
    pub fn new(id: usize, shared: Arc<Shared>) -> Client {
        let conn = Conn::new(&shared.target);
        let rng = Rng::seeded(shared.run_id ^ (id as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut c = Client {
            id,
            shared,
            conn,
            rng,
            generation: 0,
            repo: Arc::from(""),
            linked: HashSet::new(),
            slots: BTreeMap::new(),
            versions: [0; SLOTS as usize],
            scratch_turn: 0,
        };
        c.reset();
        c
    }

    /// A fresh connection and an empty repository of our own.
    fn reset(&mut self) {
        self.conn = Conn::new(&self.shared.target);
        self.repo = Arc::from(format!("soak/c{:04}-g{}", self.id, self.generation).as_str());
        self.generation += 1;
        self.linked.clear();
        self.slots.clear();
    }

    pub async fn run(mut self) {
        while Instant::now() < self.shared.deadline {
            if self.cycle().await.is_err() {
                self.reset();
            }
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.next_u64() % 100 < percent
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    /// One image: push its blobs, tag it, retire the manifest it replaces,
    /// pull it back, list; plus a few reads and writes on the side.
    async fn cycle(&mut self) -> Step {
        let slot = self.below(SLOTS as u64) as u32;
        let version = (self.versions[slot as usize] + 1) % VERSIONS;
        self.versions[slot as usize] = version;
        let (config, layers) = self.image(slot, version);

        for id in std::iter::once(config).chain(layers.iter().copied()) {
            self.ensure_blob(id).await?;
        }
        if self.chance(15) && self.slots.contains_key(&slot) {
            self.untag(slot).await?;
        }
        let manifest = self.manifest(slot, version, config, &layers);
        let digest = sha256(&manifest);
        self.put_manifest(slot, &manifest, &digest).await?;
        if let Some(old) = self.slots.insert(slot, digest.clone()) {
            if old != digest {
                self.delete_manifest(&old).await?;
            }
        }

        self.pull(slot, &manifest, &digest, config, &layers).await?;
        self.list_tags().await?;
        if self.chance(15) {
            self.referrer(&manifest, &digest, config).await?;
        }

        if self.chance(20) {
            self.mount_from_peer().await?;
        }
        if self.chance(20) {
            self.pull_from_peer().await?;
        }
        if self.chance(15) {
            self.catalog().await?;
        }
        if self.chance(10) {
            self.scratch().await?;
        }
        if self.chance(10) {
            self.cancelled_upload().await?;
        }
        if self.chance(10) {
            self.unknowns().await?;
        }
        Ok(())
    }

    /// The blobs of image (slot, version): the same every time it comes
    /// round, so manifests repeat too.
    fn image(&self, slot: u32, version: u32) -> (BlobId, Vec<BlobId>) {
        let seed =
            self.shared.run_id ^ ((self.id as u64) << 20 | (slot as u64) << 8 | version as u64);
        let mut rng = Rng::seeded(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let pool = &self.shared.pool;
        // Configs are small, as real ones are.
        let config = pool.pick_in(0, &mut rng);
        let n = 1 + rng.next_u64() % 3;
        (config, (0..n).map(|_| pool.pick(&mut rng)).collect())
    }

    fn manifest(&self, slot: u32, version: u32, config: BlobId, layers: &[BlobId]) -> Bytes {
        let pool = &self.shared.pool;
        let desc = |media_type: &str, id: BlobId| serde_json::json!({ "mediaType": media_type, "digest": pool.digest(id), "size": pool.size(id) });
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": desc("application/vnd.oci.image.config.v1+json", config),
            "layers": layers.iter().map(|&l| desc("application/vnd.oci.image.layer.v1.tar", l)).collect::<Vec<_>>(),
            "annotations": { "org.berth.soak": format!("{}/s{slot}/v{version}", self.repo) },
        });
        Bytes::from(m.to_string())
    }
}

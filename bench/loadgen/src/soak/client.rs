//! One soak client: a keep-alive connection that loops over push, pull and
//! listing cycles until the deadline, checking every answer against what the
//! OCI distribution spec says it must be.
//!
//! Each client owns one repository (`soak/cNNNN`) and is its only writer, so
//! the state of its tags, manifests and blob links is known exactly and every
//! status is predictable. Clients meet through cross-repository mounts and
//! pulls of each other's blobs; blob links are never removed (scratch blobs
//! aside, which no one else sees), so those reads are predictable too.
//!
//! After a failure the client's state may no longer match the server's, so
//! it drops its connection and carries on in a fresh repository.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::content::{BlobId, Pool, CLASSES};
use super::stats::{Kind, Stats};
use crate::http::{location, with_digest, Chunks, Conn, Target, OCI_MANIFEST};
use crate::push::Rng;

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

struct Answer {
    headers: HeaderMap,
    body: Bytes,
}

/// The manifest a slot's tag points to.
struct Slot {
    digest: String,
}

pub struct Client {
    id: usize,
    shared: Arc<Shared>,
    conn: Conn,
    rng: Rng,
    generation: u32,
    repo: Arc<str>,
    linked: HashSet<BlobId>,
    slots: BTreeMap<u32, Slot>,
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
        if let Some(old) = self.slots.insert(
            slot,
            Slot {
                digest: digest.clone(),
            },
        ) {
            if old.digest != digest {
                self.delete_manifest(&old.digest).await?;
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
        let mut config = pool.pick(&mut rng);
        config.class = 0;
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

    // ---- requests ----------------------------------------------------------

    /// Sends a request, reads the whole answer, and checks its status.
    async fn call(
        &mut self,
        kind: Kind,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Chunks,
        want: StatusCode,
    ) -> Step<Answer> {
        let started = Instant::now();
        let exchange = async {
            let resp = self
                .conn
                .request(method.clone(), path, headers, body)
                .await?;
            let status = resp.status();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, parts.headers, body))
        };
        let result = tokio::time::timeout(self.shared.timeout, exchange).await;
        let stats = &self.shared.stats;
        match result {
            Err(_) => self.fail(
                kind,
                format!(
                    "{method} {path}: no answer within {:?}",
                    self.shared.timeout
                ),
            ),
            Ok(Err(e)) => self.fail(kind, format!("{method} {path}: {e:#}")),
            Ok(Ok((status, headers, body))) => {
                stats.answered(kind, started.elapsed());
                if status != want {
                    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                    return self.fail(
                        kind,
                        format!("{method} {path}: got {status}, want {want}: {text}"),
                    );
                }
                Ok(Answer { headers, body })
            }
        }
    }

    fn fail<T>(&self, kind: Kind, message: String) -> Step<T> {
        self.shared.stats.error(kind, message);
        Err(Failed)
    }

    /// Checks a header's value; a mismatch is an error of `kind`.
    fn expect_header(&self, kind: Kind, a: &Answer, name: &str, want: &str) -> Step {
        match a.headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(got) if got == want => Ok(()),
            got => self.fail(
                kind,
                format!("{} {name}: got {got:?}, want {want:?}", self.repo),
            ),
        }
    }

    fn location(&self, kind: Kind, a: &Answer) -> Step<String> {
        location(&a.headers).or_else(|e| self.fail(kind, format!("{}: {e}", self.repo)))
    }

    // ---- blobs -------------------------------------------------------------

    /// Makes sure our repository links `id`, the way clients do: sometimes a
    /// HEAD first, then one of the upload flavours.
    async fn ensure_blob(&mut self, id: BlobId) -> Step {
        let known = self.linked.contains(&id);
        if self.chance(40) {
            self.head_blob(&self.repo.clone(), id, known).await?;
            if known {
                return Ok(());
            }
        }
        match self.below(100) {
            0..=39 => self.push_monolithic(id).await?,
            40..=54 => self.push_post_digest(id).await?,
            _ => self.push_chunked(id).await?,
        }
        self.linked_now(id);
        Ok(())
    }

    fn linked_now(&mut self, id: BlobId) {
        if id.scratch {
            return;
        }
        if self.linked.insert(id) {
            if let Ok(mut offers) = self.shared.offers[self.id].lock() {
                if offers.len() >= OFFERED {
                    offers.remove(0);
                }
                offers.push((self.repo.clone(), id));
            }
        }
    }

    fn blob_path(&self, repo: &str, id: BlobId) -> String {
        format!("/v2/{repo}/blobs/{}", self.shared.pool.digest(id))
    }

    fn body(&self, id: BlobId, start: u64, end: u64) -> Chunks {
        Chunks::new(self.shared.pool.slice(id, start, end))
    }

    async fn head_blob(&mut self, repo: &str, id: BlobId, present: bool) -> Step {
        let path = self.blob_path(repo, id);
        let want = if present {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        let a = self
            .call(
                Kind::HeadBlob,
                Method::HEAD,
                &path,
                &[],
                Chunks::empty(),
                want,
            )
            .await?;
        if present {
            let size = self.shared.pool.size(id).to_string();
            self.expect_header(Kind::HeadBlob, &a, "content-length", &size)?;
            self.expect_header(
                Kind::HeadBlob,
                &a,
                "docker-content-digest",
                &self.shared.pool.digest(id),
            )?;
        }
        Ok(())
    }

    /// A blob's 201: where it lives and its digest.
    fn check_created(&self, kind: Kind, a: &Answer, id: BlobId) -> Step {
        let digest = self.shared.pool.digest(id);
        self.expect_header(kind, a, "docker-content-digest", &digest)?;
        let want = format!("/v2/{}/blobs/{digest}", self.repo);
        match self.location(kind, a)? {
            got if got == want => Ok(()),
            got => self.fail(kind, format!("Location {got}, want {want}")),
        }
    }

    async fn start_upload(&mut self) -> Step<String> {
        let path = format!("/v2/{}/blobs/uploads/", self.repo);
        let a = self
            .call(
                Kind::StartUpload,
                Method::POST,
                &path,
                &[],
                Chunks::empty(),
                StatusCode::ACCEPTED,
            )
            .await?;
        self.location(Kind::StartUpload, &a)
    }

    /// POST, then one PUT ?digest= with the whole body.
    async fn push_monolithic(&mut self, id: BlobId) -> Step {
        let loc = self.start_upload().await?;
        let size = self.shared.pool.size(id);
        let path = with_digest(&loc, &self.shared.pool.digest(id));
        let body = self.body(id, 0, size);
        let headers = [("content-type", "application/octet-stream")];
        let a = self
            .call(
                Kind::PutMonolithic,
                Method::PUT,
                &path,
                &headers,
                body,
                StatusCode::CREATED,
            )
            .await?;
        self.shared
            .stats
            .bytes_pushed
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        self.check_created(Kind::PutMonolithic, &a, id)
    }

    /// The single-request push: POST ?digest= with the body.
    async fn push_post_digest(&mut self, id: BlobId) -> Step {
        let size = self.shared.pool.size(id);
        let path = with_digest(
            &format!("/v2/{}/blobs/uploads/", self.repo),
            &self.shared.pool.digest(id),
        );
        let body = self.body(id, 0, size);
        let headers = [("content-type", "application/octet-stream")];
        let a = self
            .call(
                Kind::PostMonolithic,
                Method::POST,
                &path,
                &headers,
                body,
                StatusCode::CREATED,
            )
            .await?;
        self.shared
            .stats
            .bytes_pushed
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        self.check_created(Kind::PostMonolithic, &a, id)
    }

    /// POST, PATCH x k (Content-Range, following each Location, sometimes
    /// asking for the upload's status), then PUT ?digest= with or without
    /// the last chunk.
    async fn push_chunked(&mut self, id: BlobId) -> Step {
        let size = self.shared.pool.size(id);
        let mut loc = self.start_upload().await?;
        let chunks = 1 + self.below(4);
        let mut cuts: Vec<u64> = (1..chunks).map(|_| 1 + self.below(size - 1)).collect();
        cuts.push(0);
        cuts.push(size);
        cuts.sort_unstable();
        cuts.dedup();
        let last_in_put = cuts.len() > 2 && self.chance(50);
        let patches = if last_in_put {
            cuts.len() - 2
        } else {
            cuts.len() - 1
        };
        for w in cuts.windows(2).take(patches) {
            let (start, end) = (w[0], w[1]);
            let range = format!("{start}-{}", end - 1);
            let headers = [
                ("content-type", "application/octet-stream"),
                ("content-range", range.as_str()),
            ];
            let body = self.body(id, start, end);
            let a = self
                .call(
                    Kind::Patch,
                    Method::PATCH,
                    &loc,
                    &headers,
                    body,
                    StatusCode::ACCEPTED,
                )
                .await?;
            self.shared
                .stats
                .bytes_pushed
                .fetch_add(end - start, std::sync::atomic::Ordering::Relaxed);
            self.expect_header(Kind::Patch, &a, "range", &range_header(end))?;
            loc = self.location(Kind::Patch, &a)?;
            if self.chance(15) {
                let a = self
                    .call(
                        Kind::UploadStatus,
                        Method::GET,
                        &loc,
                        &[],
                        Chunks::empty(),
                        StatusCode::NO_CONTENT,
                    )
                    .await?;
                self.expect_header(Kind::UploadStatus, &a, "range", &range_header(end))?;
            }
        }
        let path = with_digest(&loc, &self.shared.pool.digest(id));
        let (body, headers): (Chunks, Vec<(&str, &str)>) = if last_in_put {
            let start = cuts[cuts.len() - 2];
            self.shared
                .stats
                .bytes_pushed
                .fetch_add(size - start, std::sync::atomic::Ordering::Relaxed);
            (
                self.body(id, start, size),
                vec![("content-type", "application/octet-stream")],
            )
        } else {
            (Chunks::empty(), vec![])
        };
        let a = self
            .call(
                Kind::PutFinish,
                Method::PUT,
                &path,
                &headers,
                body,
                StatusCode::CREATED,
            )
            .await?;
        self.check_created(Kind::PutFinish, &a, id)
    }

    /// GET a blob, hashing the body as it streams in.
    async fn get_blob(&mut self, repo: &str, id: BlobId) -> Step {
        let kind = Kind::GetBlob;
        let path = self.blob_path(repo, id);
        let (digest, size) = (self.shared.pool.digest(id), self.shared.pool.size(id));
        let started = Instant::now();
        let exchange = async {
            let resp = self
                .conn
                .request(Method::GET, &path, &[], Chunks::empty())
                .await?;
            let status = resp.status();
            let (parts, mut body) = resp.into_parts();
            let mut hasher = Sha256::new();
            let mut n = 0u64;
            let mut head = BytesMut::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    n += data.len() as u64;
                    hasher.update(&data);
                    if head.len() < 200 {
                        head.extend_from_slice(&data[..data.len().min(200)]);
                    }
                }
            }
            Ok::<_, anyhow::Error>((status, parts.headers, n, hasher.finalize(), head))
        };
        let stats = &self.shared.stats;
        let (status, headers, n, hash, head) =
            match tokio::time::timeout(self.shared.timeout, exchange).await {
                Err(_) => {
                    return self.fail(
                        kind,
                        format!("GET {path}: no answer within {:?}", self.shared.timeout),
                    )
                }
                Ok(Err(e)) => return self.fail(kind, format!("GET {path}: {e:#}")),
                Ok(Ok(r)) => r,
            };
        stats.answered(kind, started.elapsed());
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&head).into_owned();
            return self.fail(kind, format!("GET {path}: got {status}, want 200: {text}"));
        }
        stats
            .bytes_pulled
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        stats
            .blobs_pulled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let got = format!("sha256:{}", hex::encode(hash));
        if n != size || got != digest {
            return self.fail(
                kind,
                format!("GET {path}: {n} bytes hashing to {got}, want {size} bytes of {digest}"),
            );
        }
        let a = Answer {
            headers,
            body: Bytes::new(),
        };
        self.expect_header(kind, &a, "docker-content-digest", &digest)?;
        stats
            .blobs_verified
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// GET a random range of a blob (206) and compare it byte for byte.
    async fn get_range(&mut self, id: BlobId) -> Step {
        let kind = Kind::GetBlobRange;
        let size = self.shared.pool.size(id);
        let start = self.below(size);
        let end = (start + 1 + self.below(MAX_RANGE)).min(size);
        let range = format!("bytes={start}-{}", end - 1);
        let path = self.blob_path(&self.repo.clone(), id);
        let a = self
            .call(
                kind,
                Method::GET,
                &path,
                &[("range", range.as_str())],
                Chunks::empty(),
                StatusCode::PARTIAL_CONTENT,
            )
            .await?;
        let stats = &self.shared.stats;
        stats
            .bytes_pulled
            .fetch_add(a.body.len() as u64, std::sync::atomic::Ordering::Relaxed);
        stats
            .blobs_pulled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.expect_header(
            kind,
            &a,
            "content-range",
            &format!("bytes {start}-{}/{size}", end - 1),
        )?;
        if a.body.len() as u64 != end - start || !self.shared.pool.matches(id, start, &a.body) {
            return self.fail(
                kind,
                format!(
                    "GET {path} {range}: {} bytes that are not the blob's",
                    a.body.len()
                ),
            );
        }
        stats
            .blobs_verified
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    // ---- manifests ---------------------------------------------------------

    fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/{}/manifests/{reference}", self.repo)
    }

    async fn put_manifest(&mut self, slot: u32, manifest: &Bytes, digest: &str) -> Step {
        let path = self.manifest_path(&format!("s{slot}"));
        let headers = [("content-type", OCI_MANIFEST)];
        let body = Chunks::new([manifest.clone()]);
        let a = self
            .call(
                Kind::PutManifest,
                Method::PUT,
                &path,
                &headers,
                body,
                StatusCode::CREATED,
            )
            .await?;
        self.expect_header(Kind::PutManifest, &a, "docker-content-digest", digest)
    }

    /// DELETE the slot's tag: the manifest stays, untagged, until deleted
    /// by digest (which follows when the slot gets its new manifest).
    async fn untag(&mut self, slot: u32) -> Step {
        let path = self.manifest_path(&format!("s{slot}"));
        self.call(
            Kind::DeleteTag,
            Method::DELETE,
            &path,
            &[],
            Chunks::empty(),
            StatusCode::ACCEPTED,
        )
        .await?;
        if let Some(old) = self.slots.remove(&slot) {
            // The manifest is still there by digest.
            let by_digest = self.manifest_path(&old.digest);
            self.call(
                Kind::HeadManifest,
                Method::HEAD,
                &by_digest,
                &[],
                Chunks::empty(),
                StatusCode::OK,
            )
            .await?;
            self.call(
                Kind::GetManifest,
                Method::GET,
                &path,
                &[],
                Chunks::empty(),
                StatusCode::NOT_FOUND,
            )
            .await?;
            self.delete_manifest(&old.digest).await?;
        }
        Ok(())
    }

    async fn delete_manifest(&mut self, digest: &str) -> Step {
        let path = self.manifest_path(digest);
        self.call(
            Kind::DeleteManifest,
            Method::DELETE,
            &path,
            &[],
            Chunks::empty(),
            StatusCode::ACCEPTED,
        )
        .await?;
        if self.chance(20) {
            self.call(
                Kind::GetManifest,
                Method::GET,
                &path,
                &[],
                Chunks::empty(),
                StatusCode::NOT_FOUND,
            )
            .await?;
        }
        Ok(())
    }

    /// Pull the image back: manifest by tag (exact bytes), HEAD by digest,
    /// every blob verified, sometimes a range.
    async fn pull(
        &mut self,
        slot: u32,
        manifest: &Bytes,
        digest: &str,
        config: BlobId,
        layers: &[BlobId],
    ) -> Step {
        let kind = Kind::GetManifest;
        let path = self.manifest_path(&format!("s{slot}"));
        let accept = [("accept", OCI_MANIFEST)];
        let a = self
            .call(
                kind,
                Method::GET,
                &path,
                &accept,
                Chunks::empty(),
                StatusCode::OK,
            )
            .await?;
        if a.body != *manifest {
            return self.fail(
                kind,
                format!(
                    "GET {path}: {} bytes, not the manifest pushed",
                    a.body.len()
                ),
            );
        }
        self.expect_header(kind, &a, "docker-content-digest", digest)?;
        self.expect_header(kind, &a, "content-type", OCI_MANIFEST)?;
        self.shared
            .stats
            .manifests_verified
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

        let by_digest = self.manifest_path(digest);
        let a = self
            .call(
                Kind::HeadManifest,
                Method::HEAD,
                &by_digest,
                &accept,
                Chunks::empty(),
                StatusCode::OK,
            )
            .await?;
        self.expect_header(
            Kind::HeadManifest,
            &a,
            "content-length",
            &manifest.len().to_string(),
        )?;

        let repo = self.repo.clone();
        for &id in std::iter::once(&config).chain(layers) {
            self.get_blob(&repo, id).await?;
        }
        if self.chance(30) {
            let id = layers[self.below(layers.len() as u64) as usize];
            self.get_range(id).await?;
        }
        Ok(())
    }

    async fn list_tags(&mut self) -> Step {
        if self.slots.is_empty() {
            return Ok(());
        }
        let path = format!("/v2/{}/tags/list", self.repo);
        let a = self
            .call(
                Kind::TagsList,
                Method::GET,
                &path,
                &[],
                Chunks::empty(),
                StatusCode::OK,
            )
            .await?;
        let want: Vec<String> = self.slots.keys().map(|s| format!("s{s}")).collect();
        let got: Option<Vec<String>> = serde_json::from_slice::<serde_json::Value>(&a.body)
            .ok()
            .and_then(|v| serde_json::from_value(v.get("tags")?.clone()).ok());
        match got {
            Some(got) if got == want => Ok(()),
            got => self.fail(
                Kind::TagsList,
                format!("GET {path}: tags {got:?}, want {want:?}"),
            ),
        }
    }

    /// An artifact whose subject is the image just pushed: PUT by digest,
    /// listed by the referrers API (it alone), then deleted.
    async fn referrer(&mut self, subject: &Bytes, subject_digest: &str, config: BlobId) -> Step {
        let pool = &self.shared.pool;
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": pool.digest(config), "size": pool.size(config) },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": pool.digest(config), "size": pool.size(config) }],
            "subject": { "mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject.len() },
        });
        let body = Bytes::from(m.to_string());
        let digest = sha256(&body);
        let path = self.manifest_path(&digest);
        let headers = [("content-type", OCI_MANIFEST)];
        let a = self
            .call(
                Kind::PutReferrer,
                Method::PUT,
                &path,
                &headers,
                Chunks::new([body]),
                StatusCode::CREATED,
            )
            .await?;
        self.expect_header(Kind::PutReferrer, &a, "oci-subject", subject_digest)?;
        self.expect_referrers(subject_digest, Some(&digest)).await?;
        self.delete_manifest(&digest).await?;
        if self.chance(30) {
            self.expect_referrers(subject_digest, None).await?;
        }
        Ok(())
    }

    /// The referrers of `subject` are exactly `want` (a manifest of our artifact type).
    async fn expect_referrers(&mut self, subject: &str, want: Option<&str>) -> Step {
        let path = format!("/v2/{}/referrers/{subject}", self.repo);
        let a = self
            .call(
                Kind::Referrers,
                Method::GET,
                &path,
                &[],
                Chunks::empty(),
                StatusCode::OK,
            )
            .await?;
        self.expect_header(Kind::Referrers, &a, "content-type", OCI_INDEX)?;
        let got: Option<Vec<(String, String)>> =
            serde_json::from_slice::<serde_json::Value>(&a.body)
                .ok()
                .and_then(|v| {
                    v.get("manifests")?
                        .as_array()?
                        .iter()
                        .map(|d| {
                            Some((
                                d.get("digest")?.as_str()?.to_string(),
                                d.get("artifactType")?.as_str()?.to_string(),
                            ))
                        })
                        .collect()
                });
        let want: Vec<(String, String)> = want
            .map(|d| (d.to_string(), ARTIFACT_TYPE.to_string()))
            .into_iter()
            .collect();
        match got {
            Some(got) if got == want => Ok(()),
            got => self.fail(
                Kind::Referrers,
                format!("GET {path}: referrers {got:?}, want {want:?}"),
            ),
        }
    }

    // ---- on the side -------------------------------------------------------

    /// A blob another client linked in its repository (None if it has none yet).
    fn peer_offer(&mut self) -> Option<Offer> {
        let peers = self.shared.offers.len();
        if peers < 2 {
            return None;
        }
        let mut peer = self.below(peers as u64 - 1) as usize;
        if peer >= self.id {
            peer += 1;
        }
        let offers = self.shared.offers[peer].lock().ok()?;
        if offers.is_empty() {
            return None;
        }
        let pick = (self.rng.next_u64() % offers.len() as u64) as usize;
        Some(offers[pick].clone())
    }

    /// Cross-repository mount of a peer's blob: 201, then it is ours.
    async fn mount_from_peer(&mut self) -> Step {
        let Some((from, id)) = self.peer_offer() else {
            return Ok(());
        };
        let digest = self.shared.pool.digest(id);
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={}&from={from}",
            self.repo,
            digest.replace(':', "%3A")
        );
        let a = self
            .call(
                Kind::Mount,
                Method::POST,
                &path,
                &[],
                Chunks::empty(),
                StatusCode::CREATED,
            )
            .await?;
        self.check_created(Kind::Mount, &a, id)?;
        self.linked_now(id);
        let repo = self.repo.clone();
        self.head_blob(&repo, id, true).await
    }

    async fn pull_from_peer(&mut self) -> Step {
        let Some((from, id)) = self.peer_offer() else {
            return Ok(());
        };
        self.get_blob(&from, id).await
    }

    /// A page or two of the catalog, from a random point.
    async fn catalog(&mut self) -> Step {
        let n = if self.chance(50) { 10 } else { 100 };
        let last = format!("soak/c{:04}", self.below(self.shared.offers.len() as u64));
        let mut path = format!("/v2/_catalog?n={n}&last={}", last.replace('/', "%2F"));
        let mut after = last;
        for _ in 0..2 {
            let a = self
                .call(
                    Kind::Catalog,
                    Method::GET,
                    &path,
                    &[],
                    Chunks::empty(),
                    StatusCode::OK,
                )
                .await?;
            let repos: Option<Vec<String>> = serde_json::from_slice::<serde_json::Value>(&a.body)
                .ok()
                .and_then(|v| serde_json::from_value(v.get("repositories")?.clone()).ok());
            let Some(repos) = repos else {
                return self.fail(Kind::Catalog, format!("GET {path}: no repositories list"));
            };
            let ordered =
                repos.windows(2).all(|w| w[0] < w[1]) && repos.first().is_none_or(|f| *f > after);
            if repos.len() > n || !ordered {
                return self.fail(
                    Kind::Catalog,
                    format!(
                        "GET {path}: {} names, not a sorted page after {after}",
                        repos.len()
                    ),
                );
            }
            let Some(link) = a.headers.get("link").and_then(|l| l.to_str().ok()) else {
                return Ok(());
            };
            let next = link
                .strip_prefix('<')
                .and_then(|l| l.split_once('>'))
                .map(|(p, _)| p.to_string());
            match (next, repos.last()) {
                (Some(next), Some(last)) if link.contains("rel=\"next\"") => {
                    path = crate::http::origin_form(&next);
                    after = last.clone();
                }
                _ => return self.fail(Kind::Catalog, format!("GET {path}: bad Link {link:?}")),
            }
        }
        Ok(())
    }

    /// Push a blob nobody references, then delete it: 202, and HEAD says 404.
    async fn scratch(&mut self) -> Step {
        self.scratch_turn = (self.scratch_turn + 1) % SCRATCH;
        let id = self
            .shared
            .pool
            .scratch(self.id as u32 * SCRATCH + self.scratch_turn);
        self.push_post_digest(id).await?;
        let repo = self.repo.clone();
        self.head_blob(&repo, id, true).await?;
        let path = self.blob_path(&repo, id);
        self.call(
            Kind::DeleteBlob,
            Method::DELETE,
            &path,
            &[],
            Chunks::empty(),
            StatusCode::ACCEPTED,
        )
        .await?;
        self.head_blob(&repo, id, false).await
    }

    /// Start an upload, send a chunk, cancel it: the session is gone.
    async fn cancelled_upload(&mut self) -> Step {
        let id = self.shared.pool.pick(&mut self.rng);
        let loc = self.start_upload().await?;
        let end = self.shared.pool.size(id).min(CLASSES[1] as u64);
        let range = format!("0-{}", end - 1);
        let headers = [
            ("content-type", "application/octet-stream"),
            ("content-range", range.as_str()),
        ];
        let body = self.body(id, 0, end);
        let a = self
            .call(
                Kind::Patch,
                Method::PATCH,
                &loc,
                &headers,
                body,
                StatusCode::ACCEPTED,
            )
            .await?;
        let loc = self.location(Kind::Patch, &a)?;
        self.call(
            Kind::CancelUpload,
            Method::DELETE,
            &loc,
            &[],
            Chunks::empty(),
            StatusCode::NO_CONTENT,
        )
        .await?;
        self.call(
            Kind::UploadStatus,
            Method::GET,
            &loc,
            &[],
            Chunks::empty(),
            StatusCode::NOT_FOUND,
        )
        .await?;
        Ok(())
    }

    /// Things that do not exist answer 404.
    async fn unknowns(&mut self) -> Step {
        let missing = format!(
            "sha256:{}",
            hex::encode(self.rng.next_u64().to_le_bytes().repeat(4))
        );
        let path = format!("/v2/{}/blobs/{missing}", self.repo);
        self.call(
            Kind::HeadBlob,
            Method::HEAD,
            &path,
            &[],
            Chunks::empty(),
            StatusCode::NOT_FOUND,
        )
        .await?;
        let path = self.manifest_path("missing");
        self.call(
            Kind::GetManifest,
            Method::GET,
            &path,
            &[],
            Chunks::empty(),
            StatusCode::NOT_FOUND,
        )
        .await?;
        Ok(())
    }
}

/// The `Range` header of an upload holding `end` bytes.
fn range_header(end: u64) -> String {
    format!("0-{}", end.saturating_sub(1))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

//! Pushers behave like docker: HEAD each blob in the target repository,
//! upload (or mount) only those that answer 404, then PUT the manifest. Half
//! of them wait up to a second between their HEADs and the manifest PUT, the
//! window in which a collector that ignores HEADs deletes a blob the client
//! was told is there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use super::figures::{Failure, Figures};
use super::image::{Blob, Image};
use super::wire::send;
use super::Ctx;
use crate::http::{with_digest, Chunks, Conn, OCI_MANIFEST};
use crate::push::Rng;

/// A retained repository gets a push at most this often, so that two of its
/// tags never share a second of push time (retention orders by it).
const RETAINED_EVERY: Duration = Duration::from_millis(1500);
/// Longest wait between the HEADs and the manifest PUT.
const MAX_PAUSE_MS: u64 = 1000;

/// How long the server may leave a touch unwritten (the design's TouchLog:
/// max(grace / 8, 1 s)): a blob reported present keeps the grace less this.
pub fn protected_window(grace: Duration) -> Duration {
    grace.saturating_sub((grace / 8).max(Duration::from_secs(1)))
}

/// A request failed; already counted.
pub struct Failed;
pub type Step<T = ()> = Result<T, Failed>;

pub struct Pusher {
    id: usize,
    ctx: Arc<Ctx>,
    conn: Conn,
    rng: Rng,
    seq: u64,
    pauses: bool,
    /// Indexes of our slots in the model.
    slots: Vec<usize>,
    /// The retained repository we own, and when we last pushed there.
    retained: Option<(usize, Instant)>,
    /// When the server first said a blob of the image being pushed is there
    /// (a HEAD's 200, an upload's or mount's 201).
    first_present: Option<Instant>,
}

impl Pusher {
    pub fn new(id: usize, ctx: Arc<Ctx>, slots: Vec<usize>, retained: Option<usize>) -> Pusher {
        Pusher {
            id,
            conn: Conn::new(&ctx.target),
            rng: Rng::seeded(ctx.run_id ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            seq: 0,
            pauses: id % 2 == 1,
            slots,
            retained: retained.map(|r| (r, Instant::now() - RETAINED_EVERY)),
            first_present: None,
            ctx,
        }
    }

    pub async fn run(mut self) {
        while Instant::now() < self.ctx.deadline {
            let outcome = match self.retained {
                Some((r, last)) if last.elapsed() >= RETAINED_EVERY => {
                    let o = self.push_retained(r).await;
                    self.retained = Some((r, Instant::now()));
                    o
                }
                _ => self.push_slot().await,
            };
            if outcome.is_err() {
                // The connection may be in any state after a failure.
                self.conn = Conn::new(&self.ctx.target);
            }
        }
    }

    fn figures(&self) -> &Figures {
        &self.ctx.figures
    }

    fn fail<T>(&self, class: Failure, message: String) -> Step<T> {
        self.figures().fail(class, message);
        Err(Failed)
    }

    fn image(&mut self) -> Image {
        self.seq += 1;
        let ctx = &self.ctx;
        Image::build(
            &ctx.pool,
            ctx.hot,
            ctx.run_id,
            self.id,
            self.seq,
            &mut self.rng,
        )
    }

    /// A new image under one of our tags in a shared repository; the image the
    /// tag leaves is retired (untagged: the collector's to remove).
    async fn push_slot(&mut self) -> Step {
        let idx = self.slots[(self.rng.next_u64() % self.slots.len() as u64) as usize];
        let ctx = self.ctx.clone();
        let slot = &ctx.model.slots[idx];
        let image = self.image();
        self.send_blobs(&slot.repo, &image).await?;
        self.pause().await;
        let _writer = slot.writer.lock().await;
        slot.changing();
        let put = self.put_manifest(&slot.repo, &slot.tag, &image).await;
        let now = put.is_ok().then(|| image.digest.clone());
        if let Some(old) = slot.changed(now) {
            ctx.model.retire(slot.repo.clone(), old);
        }
        put
    }

    /// A new tag `tK` in our retained repository; the rule keeps the newest two.
    async fn push_retained(&mut self, r: usize) -> Step {
        let ctx = self.ctx.clone();
        let retained = &ctx.model.retained[r];
        let image = self.image();
        self.send_blobs(&retained.repo, &image).await?;
        self.pause().await;
        let k = retained.announce();
        self.put_manifest(&retained.repo, &format!("t{k}"), &image)
            .await?;
        retained.complete(k);
        Ok(())
    }

    async fn pause(&mut self) {
        if self.pauses {
            let ms = self.rng.next_u64() % MAX_PAUSE_MS;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Figures::add(&self.figures().paused_pushes, 1);
        }
    }

    async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Chunks,
    ) -> Step<super::wire::Reply> {
        Figures::add(&self.figures().requests, 1);
        match send(
            &mut self.conn,
            self.ctx.timeout,
            method,
            path,
            headers,
            body,
        )
        .await
        {
            Ok(r) => Ok(r),
            Err(e) => self.fail(Failure::Other, format!("{e:#}")),
        }
    }

    /// HEAD every blob; upload or mount the ones that answer 404.
    async fn send_blobs(&mut self, repo: &Arc<str>, image: &Image) -> Step {
        self.first_present = None;
        for blob in image.blobs() {
            let path = format!("/v2/{repo}/blobs/{}", blob.digest);
            let r = self
                .request(Method::HEAD, &path, &[], Chunks::empty())
                .await?;
            match r.status {
                StatusCode::OK => Figures::add(&self.figures().heads_present, 1),
                StatusCode::NOT_FOUND => {
                    Figures::add(&self.figures().heads_absent, 1);
                    self.upload(repo, blob).await?;
                }
                _ => return self.fail(Failure::Other, format!("HEAD {path}: {}", r.describe())),
            }
            self.first_present.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// A mount from a repository that had the blob (a quarter of the time,
    /// when one is known), else POST + PUT with the whole body.
    async fn upload(&mut self, repo: &Arc<str>, blob: &Blob) -> Step {
        let from = self.ctx.seen_in(&blob.digest).filter(|f| f != repo);
        let start = match from {
            Some(from) if self.rng.next_u64().is_multiple_of(4) => {
                let path = format!(
                    "/v2/{repo}/blobs/uploads/?mount={}&from={from}",
                    blob.digest.replace(':', "%3A")
                );
                let r = self
                    .request(Method::POST, &path, &[], Chunks::empty())
                    .await?;
                match r.status {
                    StatusCode::CREATED => {
                        Figures::add(&self.figures().mounts, 1);
                        return Ok(());
                    }
                    // The source's link is gone (deleted, collected): upload.
                    StatusCode::ACCEPTED => {
                        Figures::add(&self.figures().mount_fallbacks, 1);
                        r
                    }
                    _ => {
                        return self.fail(Failure::Other, format!("POST {path}: {}", r.describe()))
                    }
                }
            }
            _ => {
                let path = format!("/v2/{repo}/blobs/uploads/");
                let r = self
                    .request(Method::POST, &path, &[], Chunks::empty())
                    .await?;
                if r.status != StatusCode::ACCEPTED {
                    return self.fail(Failure::Other, format!("POST {path}: {}", r.describe()));
                }
                r
            }
        };
        let loc = match crate::http::location(&start.headers) {
            Ok(l) => l,
            Err(e) => return self.fail(Failure::Other, format!("upload in {repo}: {e}")),
        };
        let path = with_digest(&loc, &blob.digest);
        let headers = [("content-type", "application/octet-stream")];
        let body = Chunks::new(blob.pieces.clone());
        let r = self.request(Method::PUT, &path, &headers, body).await?;
        if r.status != StatusCode::CREATED {
            return self.fail(Failure::Other, format!("PUT {path}: {}", r.describe()));
        }
        Figures::add(&self.figures().blobs_uploaded, 1);
        Figures::add(&self.figures().bytes_pushed, blob.size);
        Ok(())
    }

    async fn put_manifest(&mut self, repo: &Arc<str>, tag: &str, image: &Image) -> Step {
        let path = format!("/v2/{repo}/manifests/{tag}");
        let headers = [("content-type", OCI_MANIFEST)];
        let body = Chunks::new([image.manifest.clone()]);
        let window = self.first_present.map(|t| t.elapsed()).unwrap_or_default();
        Figures::max(&self.figures().longest_window_ms, window.as_millis() as u64);
        let r = self.request(Method::PUT, &path, &headers, body).await?;
        match r.status {
            StatusCode::CREATED => {}
            StatusCode::BAD_REQUEST if r.code().as_deref() == Some("MANIFEST_BLOB_UNKNOWN") => {
                let message = format!(
                    "PUT {path} {} ms after the first blob was reported present: {}",
                    window.as_millis(),
                    r.describe()
                );
                if window > protected_window(self.ctx.grace) {
                    Figures::add(&self.figures().late_refusals, 1);
                    eprintln!("[gc-soak] manifest later than the grace protects (not a failure): {message}");
                    return Err(Failed);
                }
                return self.fail(Failure::ManifestBlobUnknown, message);
            }
            _ => return self.fail(Failure::Other, format!("PUT {path}: {}", r.describe())),
        }
        if r.header("docker-content-digest") != Some(image.digest.as_str()) {
            return self.fail(
                Failure::DigestMismatch,
                format!(
                    "PUT {path}: Docker-Content-Digest {:?}, want {}",
                    r.header("docker-content-digest"),
                    image.digest
                ),
            );
        }
        Figures::add(&self.figures().pushes, 1);
        for blob in image.blobs() {
            self.ctx.saw(&blob.digest, repo);
        }
        Ok(())
    }
}

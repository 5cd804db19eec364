//! Pullers fetch images by tag and by digest and verify every byte: the
//! manifest against its digest, every blob it names against its own. A 404
//! is judged against the model: expected when something removed the image,
//! a failure when nothing did. A blob that answers 404 while its manifest is
//! still there is the failure the collector must never cause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use super::figures::{Failure, Figures};
use super::image::referenced;
use super::pusher::{Failed, Step};
use super::wire::{send, Reply};
use super::Ctx;
use crate::http::{Chunks, Conn, OCI_MANIFEST};
use crate::push::Rng;

/// Why a manifest may answer 404.
pub enum Expect {
    /// A slot's tag or digest: gone only if the slot changed since `version`.
    Slot { index: usize, version: u64 },
    /// Tag K of a retained repository.
    Retained { index: usize, k: u64 },
    /// A retired manifest: may be gone at any time.
    Retired,
}

pub struct Puller {
    ctx: Arc<Ctx>,
    /// Where this puller counts (the end-state check uses its own).
    figures: Arc<Figures>,
    conn: Conn,
    rng: Rng,
}

impl Puller {
    pub fn new(id: usize, ctx: Arc<Ctx>, figures: Arc<Figures>) -> Puller {
        Puller {
            conn: Conn::new(&ctx.target),
            rng: Rng::seeded(ctx.run_id ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            figures,
            ctx,
        }
    }

    pub async fn run(mut self) {
        while Instant::now() < self.ctx.deadline {
            let pick = self.rng.next_u64();
            let outcome = match pick % 10 {
                0..=5 => {
                    self.pull_slot(
                        (pick >> 8) as usize % self.ctx.model.slots.len(),
                        pick & 16 == 0,
                    )
                    .await
                }
                6..=7 if !self.ctx.model.retained.is_empty() => {
                    self.pull_retained((pick >> 8) as usize % self.ctx.model.retained.len())
                        .await
                }
                _ => self.pull_retired(pick >> 8).await,
            };
            match outcome {
                Ok(true) => {}
                // Nothing to pull yet: do not spin.
                Ok(false) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(Failed) => self.conn = Conn::new(&self.ctx.target),
            }
        }
    }

    /// The image a slot's tag points to, by tag or by its digest. Ok(false)
    /// if the slot has none.
    pub async fn pull_slot(&mut self, index: usize, by_tag: bool) -> Step<bool> {
        let ctx = self.ctx.clone();
        let slot = &ctx.model.slots[index];
        let (version, digest) = slot.snapshot();
        let Some(digest) = digest else {
            return Ok(false);
        };
        let reference = if by_tag {
            slot.tag.clone()
        } else {
            digest.clone()
        };
        self.pull(&slot.repo, &reference, Expect::Slot { index, version })
            .await?;
        Ok(true)
    }

    /// One of the newest tags of a retained repository.
    pub async fn pull_retained(&mut self, index: usize) -> Step<bool> {
        let ctx = self.ctx.clone();
        let r = &ctx.model.retained[index];
        let completed = r.completed();
        if completed == 0 {
            return Ok(false);
        }
        let k = completed - self.rng.next_u64() % completed.min(ctx.model.keep_last + 1);
        self.pull(&r.repo, &format!("t{k}"), Expect::Retained { index, k })
            .await?;
        Ok(true)
    }

    async fn pull_retired(&mut self, pick: u64) -> Step<bool> {
        let Some((repo, digest)) = self.ctx.model.retired(pick) else {
            return Ok(false);
        };
        self.pull(&repo, &digest, Expect::Retired).await?;
        Ok(true)
    }

    fn fail<T>(&self, class: Failure, message: String) -> Step<T> {
        self.figures.fail(class, message);
        Err(Failed)
    }

    async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Step<Reply> {
        Figures::add(&self.figures.requests, 1);
        match send(
            &mut self.conn,
            self.ctx.timeout,
            method,
            path,
            headers,
            Chunks::empty(),
        )
        .await
        {
            Ok(r) => Ok(r),
            Err(e) => self.fail(Failure::Other, format!("{e:#}")),
        }
    }

    /// True if a 404 for this reference is explained by a removal.
    fn may_be_gone(&self, expect: &Expect) -> bool {
        let model = &self.ctx.model;
        match *expect {
            Expect::Slot { index, version } => model.slots[index].changed_since(version),
            Expect::Retained { index, k } => model.retained[index].may_be_gone(k, model.keep_last),
            Expect::Retired => true,
        }
    }

    /// GET the manifest, verify it, then GET and verify every blob it names.
    pub async fn pull(&mut self, repo: &Arc<str>, reference: &str, expect: Expect) -> Step {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = self
            .request(Method::GET, &path, &[("accept", OCI_MANIFEST)])
            .await?;
        match r.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND if r.code().as_deref() == Some("MANIFEST_UNKNOWN") => {
                if self.may_be_gone(&expect) {
                    Figures::add(&self.figures.gone, 1);
                    return Ok(());
                }
                return self.fail(
                    Failure::ManifestLost,
                    format!("GET {path}: {}", r.describe()),
                );
            }
            _ => return self.fail(Failure::Other, format!("GET {path}: {}", r.describe())),
        }
        let digest = crate::http::sha256_digest(&r.body);
        let header = r.header("docker-content-digest").unwrap_or("");
        let by_digest = reference.starts_with("sha256:");
        if header != digest || (by_digest && reference != digest) {
            return self.fail(
                Failure::DigestMismatch,
                format!("GET {path}: body hashes to {digest}, Docker-Content-Digest {header}"),
            );
        }
        let Some(blobs) = referenced(&r.body) else {
            return self.fail(
                Failure::Other,
                format!("GET {path}: not an image manifest the soak pushed"),
            );
        };
        for (blob, size) in blobs {
            if !self.pull_blob(repo, &digest, &blob, size).await? {
                Figures::add(&self.figures.gone_mid_pull, 1);
                return Ok(());
            }
        }
        Figures::add(&self.figures.pulls, 1);
        let kind = if by_digest {
            &self.figures.pulls_by_digest
        } else {
            &self.figures.pulls_by_tag
        };
        Figures::add(kind, 1);
        Ok(())
    }

    /// GET a blob of `manifest` and hash it. Ok(false) if it answered 404
    /// because the manifest itself is gone meanwhile.
    async fn pull_blob(
        &mut self,
        repo: &Arc<str>,
        manifest: &str,
        blob: &str,
        size: u64,
    ) -> Step<bool> {
        let path = format!("/v2/{repo}/blobs/{blob}");
        let r = self.request(Method::GET, &path, &[]).await?;
        match r.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                let check = format!("/v2/{repo}/manifests/{manifest}");
                let m = self
                    .request(Method::HEAD, &check, &[("accept", OCI_MANIFEST)])
                    .await?;
                return match m.status {
                    StatusCode::NOT_FOUND => Ok(false),
                    StatusCode::OK => self.fail(
                        Failure::BlobUnknown,
                        format!(
                            "GET {path}: {} while {manifest} is still there",
                            r.describe()
                        ),
                    ),
                    _ => self.fail(Failure::Other, format!("HEAD {check}: {}", m.describe())),
                };
            }
            _ => return self.fail(Failure::Other, format!("GET {path}: {}", r.describe())),
        }
        let got = format!("sha256:{}", hex::encode(Sha256::digest(&r.body)));
        if got != blob || r.body.len() as u64 != size {
            return self.fail(
                Failure::DigestMismatch,
                format!(
                    "GET {path}: {} bytes hashing to {got}, want {size} of {blob}",
                    r.body.len()
                ),
            );
        }
        Figures::add(&self.figures.blobs_verified, 1);
        Figures::add(&self.figures.bytes_pulled, size);
        Ok(true)
    }
}

//! Deleters remove images the pushers made: the manifest by digest (its tag
//! goes with it) or the tag alone (the manifest stays, untagged, for the
//! collector's untagged-manifest rule). A 404 on either is a lost manifest:
//! the slot's writer lock is held, so nothing else removed it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use super::figures::{Failure, Figures};
use super::wire::send;
use super::Ctx;
use crate::http::{Chunks, Conn};
use crate::push::Rng;

pub struct Deleter {
    ctx: Arc<Ctx>,
    conn: Conn,
    rng: Rng,
}

impl Deleter {
    pub fn new(id: usize, ctx: Arc<Ctx>) -> Deleter {
        Deleter {
            conn: Conn::new(&ctx.target),
            rng: Rng::seeded(ctx.run_id ^ (id as u64 + 1).wrapping_mul(0x6a09_e667_f3bc_c909)),
            ctx,
        }
    }

    pub async fn run(mut self) {
        while Instant::now() < self.ctx.deadline {
            let ms = 100 + self.rng.next_u64() % 300;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if !self.delete_one().await {
                self.conn = Conn::new(&self.ctx.target);
            }
        }
    }

    /// One deletion; false if it failed (already counted).
    async fn delete_one(&mut self) -> bool {
        let ctx = self.ctx.clone();
        let figures = &ctx.figures;
        let index = (self.rng.next_u64() % ctx.model.slots.len() as u64) as usize;
        let slot = &ctx.model.slots[index];
        let _writer = slot.writer.lock().await;
        let (_, Some(digest)) = slot.snapshot() else {
            return true;
        };
        let by_digest = self.rng.next_u64().is_multiple_of(2);
        let reference = if by_digest {
            digest.as_str()
        } else {
            slot.tag.as_str()
        };
        let path = format!("/v2/{}/manifests/{reference}", slot.repo);
        slot.changing();
        Figures::add(&figures.requests, 1);
        let r = send(
            &mut self.conn,
            ctx.timeout,
            Method::DELETE,
            &path,
            &[],
            Chunks::empty(),
        )
        .await;
        slot.changed(None);
        ctx.model.retire(slot.repo.clone(), digest.clone());
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                figures.fail(Failure::Other, format!("{e:#}"));
                return false;
            }
        };
        match r.status {
            StatusCode::ACCEPTED => {}
            StatusCode::NOT_FOUND => {
                figures.fail(
                    Failure::ManifestLost,
                    format!("DELETE {path}: {}", r.describe()),
                );
                return false;
            }
            _ => {
                figures.fail(Failure::Other, format!("DELETE {path}: {}", r.describe()));
                return false;
            }
        }
        Figures::add(
            if by_digest {
                &figures.deleted_manifests
            } else {
                &figures.deleted_tags
            },
            1,
        );
        true
    }
}

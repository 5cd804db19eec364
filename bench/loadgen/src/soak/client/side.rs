//! What clients do on the side: mounts and pulls of each other's blobs,
//! catalog pages, scratch blobs deleted, uploads cancelled, unknown names.

use http::{Method, StatusCode};

use super::{Client, Offer, Step, SCRATCH};
use crate::http::Chunks;
use crate::soak::content::CLASSES;
use crate::soak::stats::Kind;

impl Client {
    /// A blob another client linked in its repository (None if it has none yet).
    pub(super) fn peer_offer(&mut self) -> Option<Offer> {
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
    pub(super) async fn mount_from_peer(&mut self) -> Step {
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

    pub(super) async fn pull_from_peer(&mut self) -> Step {
        let Some((from, id)) = self.peer_offer() else {
            return Ok(());
        };
        self.get_blob(&from, id).await
    }

    /// A page or two of the catalog, from a random point.
    pub(super) async fn catalog(&mut self) -> Step {
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
    pub(super) async fn scratch(&mut self) -> Step {
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
    pub(super) async fn cancelled_upload(&mut self) -> Step {
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
    pub(super) async fn unknowns(&mut self) -> Step {
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

//! Blob pushes (monolithic, single-POST, chunked), HEADs and verified pulls.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::exchange::{describe, Answer};
use super::{Client, Step, MAX_RANGE, OFFERED};
use crate::http::{with_digest, Chunks};
use crate::soak::content::BlobId;
use crate::soak::stats::Kind;

impl Client {
    /// Makes sure our repository links `id`, the way clients do: sometimes a
    /// HEAD first, then one of the upload flavours.
    pub(super) async fn ensure_blob(&mut self, id: BlobId) -> Step {
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

    pub(super) fn linked_now(&mut self, id: BlobId) {
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

    pub(super) fn blob_path(&self, repo: &str, id: BlobId) -> String {
        format!("/v2/{repo}/blobs/{}", self.shared.pool.digest(id))
    }

    pub(super) fn body(&self, id: BlobId, start: u64, end: u64) -> Chunks {
        Chunks::new(self.shared.pool.slice(id, start, end))
    }

    pub(super) async fn head_blob(&mut self, repo: &str, id: BlobId, present: bool) -> Step {
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
    pub(super) fn check_created(&self, kind: Kind, a: &Answer, id: BlobId) -> Step {
        let digest = self.shared.pool.digest(id);
        self.expect_header(kind, a, "docker-content-digest", &digest)?;
        let want = format!("/v2/{}/blobs/{digest}", self.repo);
        match self.location(kind, a)? {
            got if got == want => Ok(()),
            got => self.fail(kind, format!("Location {got}, want {want}")),
        }
    }

    pub(super) async fn start_upload(&mut self) -> Step<String> {
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
    pub(super) async fn push_monolithic(&mut self, id: BlobId) -> Step {
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
        self.shared.stats.bytes_pushed.fetch_add(size, Relaxed);
        self.check_created(Kind::PutMonolithic, &a, id)
    }

    /// The single-request push: POST ?digest= with the body.
    pub(super) async fn push_post_digest(&mut self, id: BlobId) -> Step {
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
        self.shared.stats.bytes_pushed.fetch_add(size, Relaxed);
        self.check_created(Kind::PostMonolithic, &a, id)
    }

    /// POST, PATCH x k (Content-Range, following each Location, sometimes
    /// asking for the upload's status), then PUT ?digest= with or without
    /// the last chunk.
    pub(super) async fn push_chunked(&mut self, id: BlobId) -> Step {
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
                .fetch_add(end - start, Relaxed);
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
                .fetch_add(size - start, Relaxed);
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
    pub(super) async fn get_blob(&mut self, repo: &str, id: BlobId) -> Step {
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
                Ok(Err(e)) => return self.fail(kind, describe(&Method::GET, &path, &e)),
                Ok(Ok(r)) => r,
            };
        stats.answered(kind, started.elapsed());
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&head).into_owned();
            return self.fail(kind, format!("GET {path}: got {status}, want 200: {text}"));
        }
        stats.bytes_pulled.fetch_add(n, Relaxed);
        stats.blobs_pulled.fetch_add(1, Relaxed);
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
        stats.blobs_verified.fetch_add(1, Relaxed);
        Ok(())
    }

    /// GET a random range of a blob (206) and compare it byte for byte.
    pub(super) async fn get_range(&mut self, id: BlobId) -> Step {
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
        stats.bytes_pulled.fetch_add(a.body.len() as u64, Relaxed);
        stats.blobs_pulled.fetch_add(1, Relaxed);
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
        stats.blobs_verified.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// The `Range` header of an upload holding `end` bytes.
pub(super) fn range_header(end: u64) -> String {
    format!("0-{}", end.saturating_sub(1))
}

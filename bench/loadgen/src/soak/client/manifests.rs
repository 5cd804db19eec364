//! Manifests by tag and digest, their deletion, tag lists and referrers.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use super::{Client, Step, ARTIFACT_TYPE, OCI_INDEX};
use crate::http::{Chunks, OCI_MANIFEST};
use crate::soak::content::BlobId;
use crate::soak::stats::Kind;

impl Client {
    pub(super) fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/{}/manifests/{reference}", self.repo)
    }

    pub(super) async fn put_manifest(&mut self, slot: u32, manifest: &Bytes, digest: &str) -> Step {
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
    pub(super) async fn untag(&mut self, slot: u32) -> Step {
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
            let by_digest = self.manifest_path(&old);
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
            self.delete_manifest(&old).await?;
        }
        Ok(())
    }

    pub(super) async fn delete_manifest(&mut self, digest: &str) -> Step {
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
    pub(super) async fn pull(
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
        self.shared.stats.manifests_verified.fetch_add(1, Relaxed);

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

    pub(super) async fn list_tags(&mut self) -> Step {
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
    pub(super) async fn referrer(
        &mut self,
        subject: &Bytes,
        subject_digest: &str,
        config: BlobId,
    ) -> Step {
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
    pub(super) async fn expect_referrers(&mut self, subject: &str, want: Option<&str>) -> Step {
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
}

pub(super) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

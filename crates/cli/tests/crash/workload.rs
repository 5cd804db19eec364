//! Concurrent pushers: blobs (monolithic and chunked), images tagged by
//! manifest PUTs, mounts between repositories and manifest deletes, each
//! acknowledgement written to the ledger as soon as it arrives.

use crate::client::{image_manifest, sha256_digest, Client, Rng};
use crate::ledger::{with, Manifest, SharedLedger};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One pusher's identity and its two repositories (mounts go between them).
pub struct Worker {
    pub id: usize,
    pub round: usize,
    pub client: Client,
    pub ledger: SharedLedger,
    pub stop: Arc<AtomicBool>,
    pub rng: Rng,
    /// Blobs every worker pushes at once, to race publishers on one digest.
    pub shared: Arc<Vec<Vec<u8>>>,
}

impl Worker {
    fn repo(&self, which: usize) -> String {
        format!("crash/w{}-{}", self.id, which)
    }

    /// Pushes until told to stop (the server is killed under it).
    pub async fn run(mut self) {
        for blob in self.shared.clone().iter() {
            let repo = self.repo(0);
            let _ = self.push_blob(&repo, blob).await;
        }
        let mut n = 0;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let done = match self.rng.range(0, 10) {
                0..=5 => self.push_image(n).await,
                6..=7 => self.mount_one().await,
                _ => self.delete_one().await,
            };
            if done.is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    async fn push_blob(&mut self, repo: &str, blob: &[u8]) -> Result<String, String> {
        let digest = sha256_digest(blob);
        let key = (repo.to_string(), digest.clone());
        with(&self.ledger, |l| l.attempted_blobs.insert(key.clone()));
        if blob.len() > 1024 && self.rng.range(0, 2) == 0 {
            let chunk = self.rng.range(1024, blob.len() as u64 + 1) as usize;
            self.client.push_chunked(repo, blob, chunk).await?;
        } else {
            self.client.push_monolithic(repo, blob).await?;
        }
        with(&self.ledger, |l| l.blobs.insert(key));
        Ok(digest)
    }

    /// A config and one or two layers, then the manifest by a fresh tag.
    async fn push_image(&mut self, n: usize) -> Result<(), String> {
        let which = self.rng.range(0, 2) as usize;
        let repo = self.repo(which);
        let config = format!(r#"{{"worker":{},"round":{},"n":{n}}}"#, self.id, self.round);
        let config_digest = self.push_blob(&repo, config.as_bytes()).await?;
        let mut layers = Vec::new();
        for _ in 0..self.rng.range(1, 3) {
            let size = self.rng.blob_size();
            let layer = self.rng.bytes(size);
            layers.push((self.push_blob(&repo, &layer).await?, size));
        }
        if self.rng.range(0, 3) == 0 {
            // A layer every worker has: its publish races the others'.
            let shared = self.shared[self.rng.range(0, self.shared.len() as u64) as usize].clone();
            layers.push((self.push_blob(&repo, &shared).await?, shared.len()));
        }
        let body = image_manifest((&config_digest, config.len()), &layers);
        let tag = format!("r{}-{n}", self.round);
        self.client.put_manifest(&repo, &tag, &body).await?;
        let digest = sha256_digest(&body);
        let manifest = Manifest {
            repo: repo.clone(),
            tag,
            digest: digest.clone(),
            body,
        };
        with(&self.ledger, |l| {
            l.manifests.insert((repo, digest), manifest)
        });
        Ok(())
    }

    /// Mounts one of this worker's acknowledged blobs into its other repository.
    async fn mount_one(&mut self) -> Result<(), String> {
        let (from, to) = (self.repo(0), self.repo(1));
        let pick = self.rng.next() as usize;
        let candidate = with(&self.ledger, |l| {
            let mine: Vec<&(String, String)> = l.blobs.iter().filter(|(r, _)| *r == from).collect();
            (!mine.is_empty()).then(|| mine[pick % mine.len()].1.clone())
        });
        let Some(digest) = candidate else {
            return Ok(());
        };
        let key = (to.clone(), digest.clone());
        with(&self.ledger, |l| l.attempted_blobs.insert(key.clone()));
        self.client.mount(&to, &from, &digest).await?;
        with(&self.ledger, |l| l.blobs.insert(key));
        Ok(())
    }

    /// Deletes one of this worker's manifests: from the moment the request
    /// leaves, it may or may not be there; once 202 comes, it must be gone.
    async fn delete_one(&mut self) -> Result<(), String> {
        let prefix = format!("crash/w{}-", self.id);
        let pick = self.rng.next() as usize;
        let doomed = with(&self.ledger, |l| {
            let mine: Vec<(String, String)> = l
                .manifests
                .keys()
                .filter(|(r, _)| r.starts_with(&prefix))
                .cloned()
                .collect();
            if mine.is_empty() {
                return None;
            }
            let key = mine[pick % mine.len()].clone();
            l.manifests.remove(&key);
            Some(key)
        });
        let Some((repo, digest)) = doomed else {
            return Ok(());
        };
        self.client.delete_manifest(&repo, &digest).await?;
        with(&self.ledger, |l| l.deleted.insert((repo, digest)));
        Ok(())
    }
}

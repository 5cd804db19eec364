//! What the registry acknowledged (and so must keep) and what was only
//! attempted (and so may be there or not, but never half there).

use crate::client::{referenced_blobs, sha256_digest, Client};
use futures_util::{stream, StreamExt};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Manifest {
    pub repo: String,
    pub tag: String,
    pub digest: String,
    pub body: Vec<u8>,
}

#[derive(Default, Debug)]
pub struct Ledger {
    /// (repo, digest) answered 201.
    pub blobs: BTreeSet<(String, String)>,
    /// (repo, digest) sent, whatever the answer.
    pub attempted_blobs: BTreeSet<(String, String)>,
    /// Manifests answered 201 by tag, by (repo, digest), and not deleted since.
    pub manifests: HashMap<(String, String), Manifest>,
    /// (repo, digest) whose delete was answered 202.
    pub deleted: BTreeSet<(String, String)>,
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

pub fn with<T>(ledger: &SharedLedger, f: impl FnOnce(&mut Ledger) -> T) -> T {
    f(&mut ledger.lock().unwrap())
}

/// Parallel requests while verifying.
const CHECKS_IN_FLIGHT: usize = 16;

/// Every difference between the registry and the ledger, as readable lines
/// (empty when the registry keeps every promise).
pub async fn check(client: &Client, ledger: &Ledger) -> Vec<String> {
    let mut problems = Vec::new();

    // Every acknowledged blob is there, byte-exact; every attempted one is
    // either absent or exact.
    let blobs: Vec<(String, String, bool)> = ledger
        .attempted_blobs
        .iter()
        .map(|(repo, digest)| {
            let acked = ledger.blobs.contains(&(repo.clone(), digest.clone()));
            (repo.clone(), digest.clone(), acked)
        })
        .chain(
            ledger
                .blobs
                .iter()
                .filter(|b| !ledger.attempted_blobs.contains(b))
                .map(|(r, d)| (r.clone(), d.clone(), true)),
        )
        .collect();
    let found: Vec<Option<String>> = stream::iter(blobs)
        .map(|(repo, digest, acked)| async move {
            match client.get(&format!("/v2/{repo}/blobs/{digest}")).await {
                Ok((status, _, body)) if status == 200 => {
                    (sha256_digest(&body) != digest).then(|| {
                        format!(
                            "blob {repo}@{digest}: 200 with other bytes ({} bytes)",
                            body.len()
                        )
                    })
                }
                Ok((status, _, _)) if status == 404 && !acked => None,
                Ok((status, _, _)) => Some(format!(
                    "blob {repo}@{digest} ({}): {status}",
                    if acked { "acknowledged" } else { "attempted" }
                )),
                Err(e) => Some(format!("blob {repo}@{digest}: {e}")),
            }
        })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .collect()
        .await;
    problems.extend(found.into_iter().flatten());

    // Every acknowledged manifest, by tag and by digest.
    let manifests: Vec<Manifest> = ledger.manifests.values().cloned().collect();
    let found: Vec<Vec<String>> = stream::iter(manifests)
        .map(|m| async move {
            let mut out = Vec::new();
            for reference in [&m.tag, &m.digest] {
                match client
                    .get(&format!("/v2/{}/manifests/{reference}", m.repo))
                    .await
                {
                    Ok((status, _, body)) if status == 200 && body[..] == m.body[..] => {}
                    Ok((status, _, body)) => out.push(format!(
                        "manifest {}:{reference} (acknowledged {}): {status}, {} bytes",
                        m.repo,
                        m.digest,
                        body.len()
                    )),
                    Err(e) => out.push(format!("manifest {}:{reference}: {e}", m.repo)),
                }
            }
            out
        })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .collect()
        .await;
    problems.extend(found.into_iter().flatten());

    for (repo, digest) in &ledger.deleted {
        match client.get(&format!("/v2/{repo}/manifests/{digest}")).await {
            Ok((status, _, _)) if status == 404 => {}
            other => problems.push(format!(
                "manifest {repo}@{digest} deleted (202) but: {:?}",
                other.map(|o| o.0)
            )),
        }
    }

    problems.extend(check_everything_listed(client).await);
    problems
}

/// Nothing half-visible: every tag the registry lists resolves to a manifest
/// whose bytes match its digest and whose blobs are all there and exact.
async fn check_everything_listed(client: &Client) -> Vec<String> {
    let mut problems = Vec::new();
    let catalog = match client.get_json("/v2/_catalog?n=100000").await {
        Ok(c) => c,
        Err(e) => return vec![format!("catalog: {e}")],
    };
    let repos: Vec<String> = catalog["repositories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let mut tagged = Vec::new();
    for repo in repos {
        match client
            .get_json(&format!("/v2/{repo}/tags/list?n=100000"))
            .await
        {
            Ok(tags) => tagged.extend(
                tags["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .map(|t| (repo.clone(), t.to_string())),
            ),
            Err(e) => problems.push(format!("tags of {repo}: {e}")),
        }
    }
    let found: Vec<Vec<String>> = stream::iter(tagged)
        .map(|(repo, tag)| async move { check_listed_tag(client, &repo, &tag).await })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .collect()
        .await;
    problems.extend(found.into_iter().flatten());
    problems
}

async fn check_listed_tag(client: &Client, repo: &str, tag: &str) -> Vec<String> {
    let (status, digest, body) = match client.get(&format!("/v2/{repo}/manifests/{tag}")).await {
        Ok(got) => got,
        Err(e) => return vec![format!("listed tag {repo}:{tag}: {e}")],
    };
    if status != 200 {
        return vec![format!("listed tag {repo}:{tag}: {status}")];
    }
    if digest.as_deref() != Some(sha256_digest(&body).as_str()) {
        return vec![format!(
            "listed tag {repo}:{tag}: digest header {digest:?} but the body hashes to {}",
            sha256_digest(&body)
        )];
    }
    let Ok(manifest) = serde_json::from_slice(&body) else {
        return vec![format!("listed tag {repo}:{tag}: not JSON")];
    };
    let mut problems = Vec::new();
    for blob in referenced_blobs(&manifest) {
        match client.get(&format!("/v2/{repo}/blobs/{blob}")).await {
            Ok((s, _, b)) if s == 200 && sha256_digest(&b) == blob => {}
            Ok((s, _, b)) => problems.push(format!(
                "{repo}:{tag} references {blob}: {s}, {} bytes",
                b.len()
            )),
            Err(e) => problems.push(format!("{repo}:{tag} references {blob}: {e}")),
        }
    }
    problems
}

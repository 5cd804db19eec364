//! Single-flight for the cache: one upstream fetch per manifest reference
//! and per blob at a time, whoever asks.

use super::UpstreamError;
use crate::error::Error;
use berth_oci::{Digest, RepositoryName};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One holder per key at a time: the others wait, then look again (the
/// holder may have filled what they want).
pub(crate) struct KeyedLocks<K> {
    keys: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        KeyedLocks {
            keys: Mutex::default(),
        }
    }
}

pub(crate) struct KeyGuard<'a, K: Eq + Hash> {
    owner: &'a KeyedLocks<K>,
    key: K,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    pub async fn lock(&self, key: K) -> KeyGuard<'_, K> {
        let lock = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.entry(key.clone()).or_default().clone()
        };
        KeyGuard {
            owner: self,
            key,
            _held: lock.lock_owned().await,
        }
    }
}

impl<K: Eq + Hash> Drop for KeyGuard<'_, K> {
    fn drop(&mut self) {
        // Waiters hold their own handle; a newcomer makes a fresh lock and
        // finds the work done.
        let mut keys = self.owner.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&self.key);
    }
}

/// Why a blob fill failed, in a form every waiter can have a copy of.
#[derive(Debug, Clone)]
pub(crate) enum FillFailure {
    Upstream {
        upstream: String,
        error: UpstreamError,
    },
    Mismatch {
        upstream: String,
        expected: Digest,
        actual: Digest,
    },
    Other(String),
}

impl FillFailure {
    pub fn into_error(self, digest: &Digest) -> Error {
        match self {
            FillFailure::Upstream {
                error: UpstreamError::NotFound,
                ..
            } => Error::BlobUnknown(digest.clone()),
            FillFailure::Upstream { upstream, error } => Error::Upstream { upstream, error },
            FillFailure::Mismatch {
                upstream,
                expected,
                actual,
            } => Error::UpstreamDigestMismatch {
                upstream,
                expected,
                actual,
            },
            FillFailure::Other(reason) => Error::Storage(reason),
        }
    }
}

/// `None` while the fill runs; then how it ended.
pub(crate) type FillState = Option<Result<(), FillFailure>>;

type BlobKey = (RepositoryName, Digest);

/// Blob fills in progress, by (repository, digest).
#[derive(Default)]
pub(crate) struct BlobFills {
    fills: Mutex<HashMap<BlobKey, watch::Receiver<FillState>>>,
}

/// What a caller is for a blob: the one that fetches it, or one that waits.
pub(crate) enum Role {
    Leader(FillDone),
    Waiter(watch::Receiver<FillState>),
}

/// The leader's end of a fill: reports the outcome to every waiter and
/// forgets the fill, also if dropped without a word (then waiters see an
/// error, never a hang).
pub(crate) struct FillDone {
    fills: Arc<BlobFills>,
    key: BlobKey,
    sender: Option<watch::Sender<FillState>>,
}

impl BlobFills {
    pub fn join(self: &Arc<Self>, repo: &RepositoryName, digest: &Digest) -> Role {
        let key = (repo.clone(), digest.clone());
        let mut fills = self.fills.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = fills.get(&key) {
            return Role::Waiter(running.clone());
        }
        let (sender, receiver) = watch::channel(None);
        fills.insert(key.clone(), receiver);
        Role::Leader(FillDone {
            fills: self.clone(),
            key,
            sender: Some(sender),
        })
    }
}

impl FillDone {
    /// Forgets the fill (a newcomer then finds the blob linked, or starts
    /// afresh), then tells the waiters how it ended.
    pub fn finish(mut self, outcome: Result<(), FillFailure>) {
        self.forget();
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Some(outcome));
        }
    }

    /// Another end to wait on, for the leader itself.
    pub fn watcher(&self) -> watch::Receiver<FillState> {
        match &self.sender {
            Some(sender) => sender.subscribe(),
            None => watch::channel(Some(Ok(()))).1,
        }
    }

    fn forget(&self) {
        let mut fills = self.fills.fills.lock().unwrap_or_else(|p| p.into_inner());
        fills.remove(&self.key);
    }
}

impl Drop for FillDone {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.forget();
            let _ = sender.send(Some(Err(FillFailure::Other(
                "the upstream fetch of this blob ended without an outcome".into(),
            ))));
        }
    }
}

/// Waits for a fill led by someone else; how it ended.
pub(crate) async fn wait(mut fill: watch::Receiver<FillState>) -> Result<(), FillFailure> {
    match fill.wait_for(Option::is_some).await {
        Ok(state) => state.clone().unwrap_or(Ok(())),
        Err(_) => Err(FillFailure::Other(
            "the upstream fetch of this blob ended without an outcome".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (RepositoryName, Digest) {
        (
            "docker.io/library/a".parse().unwrap(),
            Digest::sha256_of(b"a"),
        )
    }

    #[tokio::test]
    async fn one_leader_per_blob_and_waiters_hear_how_it_ended() {
        let fills = Arc::new(BlobFills::default());
        let (repo, digest) = key();
        let Role::Leader(done) = fills.join(&repo, &digest) else {
            panic!("the first caller leads")
        };
        let Role::Waiter(waiter) = fills.join(&repo, &digest) else {
            panic!("the second waits")
        };
        let other: RepositoryName = "docker.io/library/b".parse().unwrap();
        assert!(
            matches!(fills.join(&other, &digest), Role::Leader(_)),
            "per repository: another one's fill is no word from its upstream"
        );
        done.finish(Err(FillFailure::Mismatch {
            upstream: "docker.io".into(),
            expected: digest.clone(),
            actual: Digest::sha256_of(b"b"),
        }));
        assert!(matches!(
            wait(waiter).await,
            Err(FillFailure::Mismatch { .. })
        ));
        assert!(
            matches!(fills.join(&repo, &digest), Role::Leader(_)),
            "a finished fill is forgotten"
        );
    }

    #[tokio::test]
    async fn a_leader_dropped_without_a_word_never_leaves_waiters_hanging() {
        let fills = Arc::new(BlobFills::default());
        let (repo, digest) = key();
        let Role::Leader(done) = fills.join(&repo, &digest) else {
            panic!("the first caller leads")
        };
        let Role::Waiter(waiter) = fills.join(&repo, &digest) else {
            panic!("the second waits")
        };
        drop(done);
        assert!(matches!(wait(waiter).await, Err(FillFailure::Other(_))));
        assert!(matches!(fills.join(&repo, &digest), Role::Leader(_)));
    }
}

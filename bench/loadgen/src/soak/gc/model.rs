//! What the soak knows the registry must hold, so that a 404 can be judged:
//! expected (something removed it) or a failure (nothing did).
//!
//! - A [`Slot`] is one tag in a shared repository (`soak/gc/rN`) with a single
//!   writer, its pusher; deleters also remove it. Every change bumps the slot's
//!   version *before* its request is sent and again after, so a puller that
//!   reads the same version before its GET and after a 404 knows that nothing
//!   removed the manifest: the 404 is a lost manifest. An odd version means
//!   a change is in flight (its request may already have taken effect), so a
//!   snapshot taken then proves nothing.
//! - A [`Retained`] repository (`soak/retained/rN`) gets a new tag `tK` per push
//!   from its one pusher, and a retention rule keeps the newest two: tag K may
//!   only be gone once two newer pushes have at least been started.
//! - Retired manifests (moved off their tag, or deleted) may be there or not;
//!   while one answers 200 its blobs must answer too.
//!
//! Every manifest is unique (its config blob names the pusher and a sequence
//! number), so a digest that went away never comes back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// How many retired manifests pullers draw from.
const RETIRED: usize = 256;

pub struct Slot {
    pub repo: Arc<str>,
    pub tag: String,
    /// Held by whoever changes the tag (its pusher or a deleter) across the request.
    pub writer: tokio::sync::Mutex<()>,
    version: AtomicU64,
    digest: Mutex<Option<String>>,
}

impl Slot {
    pub fn new(repo: Arc<str>, tag: String) -> Slot {
        Slot {
            repo,
            tag,
            writer: tokio::sync::Mutex::new(()),
            version: AtomicU64::new(0),
            digest: Mutex::new(None),
        }
    }

    pub fn version(&self) -> u64 {
        self.version.load(SeqCst)
    }

    /// True if the slot may have lost its manifest since `snapshot` (a
    /// version from [`Slot::snapshot`]): it changed since, or was changing then.
    pub fn changed_since(&self, snapshot: u64) -> bool {
        snapshot % 2 == 1 || self.version() != snapshot
    }

    /// Marks a change about to be sent (call with `writer` held).
    pub fn changing(&self) {
        self.version.fetch_add(1, SeqCst);
    }

    /// Records the outcome of a change (call with `writer` held); returns the
    /// digest the tag pointed to before.
    pub fn changed(&self, digest: Option<String>) -> Option<String> {
        let old = self
            .digest
            .lock()
            .map(|mut d| std::mem::replace(&mut *d, digest))
            .unwrap_or(None);
        self.version.fetch_add(1, SeqCst);
        old
    }

    /// The version, then the digest the tag points to (None if untagged).
    pub fn snapshot(&self) -> (u64, Option<String>) {
        let v = self.version();
        let d = self.digest.lock().map(|d| d.clone()).unwrap_or(None);
        (v, d)
    }
}

pub struct Retained {
    pub repo: Arc<str>,
    /// The highest K whose manifest PUT was sent.
    announced: AtomicU64,
    /// The highest K whose manifest PUT answered 201 (0: none yet).
    completed: AtomicU64,
}

impl Retained {
    pub fn new(repo: Arc<str>) -> Retained {
        Retained {
            repo,
            announced: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        }
    }

    pub fn announce(&self) -> u64 {
        self.announced.fetch_add(1, SeqCst) + 1
    }

    pub fn complete(&self, k: u64) {
        self.completed.fetch_max(k, SeqCst);
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(SeqCst)
    }

    /// True if tag K may have been removed by a keep-last-`keep` rule: at
    /// least `keep` newer pushes were started.
    pub fn may_be_gone(&self, k: u64, keep: u64) -> bool {
        k + keep <= self.announced.load(SeqCst)
    }
}

/// The whole model, shared by every role.
pub struct Model {
    pub slots: Vec<Slot>,
    pub retained: Vec<Retained>,
    pub keep_last: u64,
    retired: Mutex<VecDeque<(Arc<str>, String)>>,
}

impl Model {
    pub fn new(slots: Vec<Slot>, retained: Vec<Retained>, keep_last: u64) -> Model {
        Model {
            slots,
            retained,
            keep_last,
            retired: Mutex::new(VecDeque::new()),
        }
    }

    pub fn retire(&self, repo: Arc<str>, digest: String) {
        if let Ok(mut r) = self.retired.lock() {
            if r.len() >= RETIRED {
                r.pop_front();
            }
            r.push_back((repo, digest));
        }
    }

    pub fn retired(&self, pick: u64) -> Option<(Arc<str>, String)> {
        let r = self.retired.lock().ok()?;
        if r.is_empty() {
            return None;
        }
        r.get((pick % r.len() as u64) as usize).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_shows_in_the_version_before_and_after() {
        let s = Slot::new(Arc::from("r"), "t".into());
        let (v0, d0) = s.snapshot();
        assert_eq!(d0, None);
        s.changing();
        assert_ne!(s.version(), v0);
        assert_eq!(s.changed(Some("d1".into())), None);
        let (v1, d1) = s.snapshot();
        assert_eq!(d1.as_deref(), Some("d1"));
        assert_eq!(v1, v0 + 2);
        assert!(!s.changed_since(v1));
        s.changing();
        // A snapshot taken while the change is in flight proves nothing, even
        // if the version has not moved again by the time of the 404.
        let (mid, _) = s.snapshot();
        assert!(s.changed_since(mid));
        assert!(s.changed_since(v1));
        assert_eq!(s.changed(None).as_deref(), Some("d1"));
    }

    #[test]
    fn retention_may_remove_a_tag_only_behind_two_newer_pushes() {
        let r = Retained::new(Arc::from("r"));
        for k in 1..=3 {
            assert_eq!(r.announce(), k);
            r.complete(k);
        }
        assert!(r.may_be_gone(1, 2));
        assert!(!r.may_be_gone(2, 2));
        assert!(!r.may_be_gone(3, 2));
        assert_eq!(r.completed(), 3);
    }
}

//! [`TouchLog`]: reads of blobs restart their grace delay without a
//! database write per read.
//!
//! A read records itself here before it looks the blob up. The log writes a
//! touch for a (repository, digest) only if it wrote none for it within the
//! last `max(grace / 8, 1 s)`, and always in the background (a lazy commit,
//! batched about once a second): a hot blob costs no write per read, and the
//! database's `touched_at` is never more than an eighth of the grace behind
//! the latest read. The collector asks the log too (see [`TouchLog::hold`]),
//! so reads not yet written still rescue their blob.

use crate::storage::MetaStore;
use berth_oci::{Digest, RepositoryName};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Entries kept at most before clean ones are dropped. Dropping one costs at
/// most an extra write later, never a lost touch: only entries whose touch
/// is written go.
const MAX_ENTRIES: usize = 50_000;

/// Touches written per transaction.
const FLUSH_BATCH: usize = 1000;

/// How long after the first unwritten read its touch is written.
const FLUSH_DELAY: Duration = Duration::from_secs(1);

/// A read waits at most this long for the collector to finish the step that
/// removes its blob, then looks the blob up anyway.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// What the log knows of reads of one digest in one repository.
#[derive(Debug, Clone, Copy)]
struct Read {
    /// Unix seconds of the latest read.
    last: i64,
    /// Unix seconds the latest written touch carried.
    written: Option<i64>,
    /// A touch is due to be written.
    dirty: bool,
    /// The read found the blob (a miss is forgotten, not written).
    found: bool,
}

#[derive(Default)]
struct State {
    reads: HashMap<Digest, HashMap<RepositoryName, Read>>,
    entries: usize,
    /// Digests the collector is removing right now.
    removing: HashSet<Digest>,
    last_prune: i64,
}

pub struct TouchLog {
    state: Mutex<State>,
    /// Bumped whenever a removal step ends, waking reads that waited for it.
    removal_ended: tokio::sync::watch::Sender<u64>,
    /// Seconds a written touch stays fresh enough: `max(grace / 8, 1 s)`.
    window: i64,
    flush_scheduled: AtomicBool,
}

/// The collector's hold on a digest it is removing: reads of it wait until
/// the hold is dropped.
pub struct RemovalHold<'a> {
    log: &'a TouchLog,
    digest: Digest,
}

impl Drop for RemovalHold<'_> {
    fn drop(&mut self) {
        self.log.lock().removing.remove(&self.digest);
        self.log
            .removal_ended
            .send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl TouchLog {
    pub fn new(grace: Duration) -> Self {
        let window = i64::try_from((grace / 8).as_secs()).unwrap_or(i64::MAX);
        TouchLog {
            state: Mutex::default(),
            removal_ended: tokio::sync::watch::channel(0).0,
            window: window.max(1),
            flush_scheduled: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a read of `digest` in `repo` at `now`, before the read looks
    /// the blob up. If the collector is removing that digest at this moment,
    /// waits until it is done, so that the lookup sees the outcome.
    pub async fn record(&self, repo: &RepositoryName, digest: &Digest, now: i64) {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        let mut first = true;
        loop {
            let mut ended = {
                let mut state = self.lock();
                if first {
                    state.note(repo, digest, now);
                    first = false;
                }
                if !state.removing.contains(digest) {
                    return;
                }
                self.removal_ended.subscribe()
            };
            if tokio::time::timeout_at(deadline, ended.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// The read found the blob: its touch is written unless a recent one
    /// was. Returns whether a flush should be scheduled.
    pub fn found(&self, repo: &RepositoryName, digest: &Digest, now: i64) -> bool {
        let window = self.window;
        let mut state = self.lock();
        state.note(repo, digest, now); // it may have been pruned meanwhile
        let due = match state.reads.get_mut(digest).and_then(|r| r.get_mut(repo)) {
            Some(read) => {
                read.found = true;
                if !read.dirty && read.written.is_none_or(|w| now - w >= window) {
                    read.dirty = true;
                }
                read.dirty
            }
            None => false,
        };
        if state.entries > MAX_ENTRIES && state.last_prune != now {
            state.prune(now, window);
        }
        due && !self.flush_scheduled.swap(true, Ordering::AcqRel)
    }

    /// The read did not find the blob: nothing to write for it.
    pub fn missed(&self, repo: &RepositoryName, digest: &Digest) {
        let mut state = self.lock();
        let Some(by_repo) = state.reads.get_mut(digest) else {
            return;
        };
        if by_repo.get(repo).is_some_and(|r| !r.found) {
            by_repo.remove(repo);
            let empty = by_repo.is_empty();
            if empty {
                state.reads.remove(digest);
            }
            state.entries = state.entries.saturating_sub(1);
        }
    }

    /// The collector's atomic check-and-mark: `None` if `digest` was read
    /// (in `repo`, or in any repository when `None`) at or after `cutoff`,
    /// so it must be kept; otherwise a hold under which reads of it wait.
    pub fn hold(
        &self,
        repo: Option<&RepositoryName>,
        digest: &Digest,
        cutoff: i64,
    ) -> Option<RemovalHold<'_>> {
        let mut state = self.lock();
        let read_since = state.reads.get(digest).is_some_and(|by_repo| match repo {
            Some(repo) => by_repo.get(repo).is_some_and(|r| r.last >= cutoff),
            None => by_repo.values().any(|r| r.last >= cutoff),
        });
        if read_since {
            return None;
        }
        state.removing.insert(digest.clone());
        Some(RemovalHold {
            log: self,
            digest: digest.clone(),
        })
    }

    /// Takes the touches due, grouped by the time of their latest read,
    /// marking them written (the caller puts them back with
    /// [`TouchLog::unwritten`] if the write fails).
    fn take_due(&self) -> HashMap<i64, Vec<(RepositoryName, Digest)>> {
        let mut state = self.lock();
        let mut due: HashMap<i64, Vec<_>> = HashMap::new();
        for (digest, by_repo) in state.reads.iter_mut() {
            for (repo, read) in by_repo.iter_mut() {
                if read.dirty && read.found {
                    read.dirty = false;
                    read.written = Some(read.last);
                    due.entry(read.last)
                        .or_default()
                        .push((repo.clone(), digest.clone()));
                }
            }
        }
        due
    }

    fn unwritten(&self, touches: &[(RepositoryName, Digest)]) {
        let mut state = self.lock();
        for (repo, digest) in touches {
            if let Some(read) = state.reads.get_mut(digest).and_then(|r| r.get_mut(repo)) {
                read.dirty = true;
                read.written = None;
            }
        }
    }

    /// Writes every touch due, in batches, each with the time of its read;
    /// the number written.
    pub async fn flush(&self, meta: &dyn MetaStore) -> crate::Result<usize> {
        self.flush_scheduled.store(false, Ordering::Release);
        let due = self.take_due();
        let mut written = 0;
        let mut failed = None;
        for (at, touches) in &due {
            for batch in touches.chunks(FLUSH_BATCH) {
                match meta.touch_blobs(batch.to_vec(), *at).await {
                    Ok(()) => written += batch.len(),
                    Err(e) => {
                        self.unwritten(batch);
                        failed = Some(e);
                    }
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// Entries held now (for tests of the bound).
    pub fn len(&self) -> usize {
        self.lock().entries
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    fn note(&mut self, repo: &RepositoryName, digest: &Digest, now: i64) {
        let by_repo = self.reads.entry(digest.clone()).or_default();
        match by_repo.get_mut(repo) {
            Some(read) => read.last = read.last.max(now),
            None => {
                by_repo.insert(
                    repo.clone(),
                    Read {
                        last: now,
                        written: None,
                        dirty: false,
                        found: false,
                    },
                );
                self.entries += 1;
            }
        }
    }

    /// Drops entries whose touch is written and no longer needed to coalesce,
    /// and misses nobody cleaned up; if that is not enough, every entry with
    /// nothing left to write (the database has its touch: at worst a read
    /// costs one more write later).
    fn prune(&mut self, now: i64, window: i64) {
        self.last_prune = now;
        let removing = self.removing.clone();
        let stale = |r: &Read| {
            !r.dirty
                && match r.written {
                    Some(w) => now - w >= window,
                    None => !r.found && now - r.last > 60,
                }
        };
        self.retain(|digest, r| removing.contains(digest) || !stale(r));
        if self.entries > MAX_ENTRIES {
            self.retain(|digest, r| {
                removing.contains(digest) || r.dirty || (r.written.is_none() && r.found)
            });
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Digest, &Read) -> bool) {
        let mut entries = 0;
        self.reads.retain(|digest, by_repo| {
            by_repo.retain(|_, r| keep(digest, r));
            entries += by_repo.len();
            !by_repo.is_empty()
        });
        self.entries = entries;
    }
}

/// Writes the log's due touches shortly after the first read that made one
/// due, on a task of its own: no request waits for a touch to be written.
pub(crate) fn schedule_flush(log: std::sync::Arc<TouchLog>, meta: std::sync::Arc<dyn MetaStore>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        tokio::time::sleep(FLUSH_DELAY).await;
        if let Err(e) = log.flush(&*meta).await {
            tracing::warn!(error = %e, "writing blob read times failed; retrying later");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn repo(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    fn digest(i: usize) -> Digest {
        Digest::sha256_of(format!("touch {i}").as_bytes())
    }

    /// A read the blob answered.
    async fn read(log: &TouchLog, r: &RepositoryName, d: &Digest, at: i64) -> bool {
        log.record(r, d, at).await;
        log.found(r, d, at)
    }

    fn due(log: &TouchLog) -> usize {
        log.take_due().values().map(Vec::len).sum()
    }

    #[tokio::test]
    async fn a_read_since_the_cutoff_keeps_its_blob_from_the_collector() {
        let log = TouchLog::new(Duration::from_secs(3600));
        let (a, b, d) = (repo("a"), repo("b"), digest(0));
        read(&log, &a, &d, 100).await;
        assert!(log.hold(None, &d, 100).is_none(), "read at the cutoff");
        assert!(log.hold(Some(&a), &d, 90).is_none());
        assert!(log.hold(Some(&b), &d, 90).is_some(), "not read in b");
        assert!(log.hold(None, &d, 101).is_some(), "read before the cutoff");
        assert!(log.hold(None, &digest(1), 0).is_some(), "never read");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_waits_while_the_collector_holds_its_blob() {
        let log = Arc::new(TouchLog::new(Duration::from_secs(3600)));
        let (a, d) = (repo("a"), digest(0));
        let hold = log.hold(None, &d, 0).unwrap();
        let reading = {
            let (log, a, d) = (log.clone(), a.clone(), d.clone());
            tokio::spawn(async move { log.record(&a, &d, 5).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!reading.is_finished(), "waits for the tombstone's outcome");
        drop(hold);
        tokio::time::timeout(Duration::from_secs(5), reading)
            .await
            .unwrap()
            .unwrap();
        // Other digests never wait.
        let _hold = log.hold(None, &d, 0);
        tokio::time::timeout(Duration::from_secs(1), log.record(&a, &digest(1), 5))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn reads_are_written_once_per_eighth_of_the_grace() {
        let log = TouchLog::new(Duration::from_secs(80)); // window: 10 s
        let (a, d) = (repo("a"), digest(0));
        assert!(
            read(&log, &a, &d, 100).await,
            "the first read schedules a flush"
        );
        assert!(!read(&log, &a, &d, 101).await, "already scheduled");
        let taken = log.take_due();
        assert_eq!(
            taken.get(&101).map(Vec::len),
            Some(1),
            "written with its read's time"
        );
        read(&log, &a, &d, 110).await;
        assert_eq!(due(&log), 0, "within the window of the last write");
        read(&log, &a, &d, 111).await;
        assert_eq!(due(&log), 1);
        read(&log, &repo("b"), &d, 111).await;
        assert_eq!(due(&log), 1, "each repository's link has its own");
    }

    #[tokio::test]
    async fn a_miss_is_forgotten_and_never_written() {
        let log = TouchLog::new(Duration::from_secs(3600));
        let (a, d) = (repo("a"), digest(0));
        log.record(&a, &d, 100).await;
        log.missed(&a, &d);
        assert!(log.is_empty());
        read(&log, &a, &d, 100).await;
        log.record(&a, &d, 101).await;
        log.missed(&a, &d); // a later miss does not forget a hit
        assert_eq!(log.len(), 1);
        assert_eq!(due(&log), 1);
    }

    #[tokio::test]
    async fn the_log_stays_bounded() {
        let log = TouchLog::new(Duration::from_secs(8)); // window: 1 s
        let a = repo("a");
        for i in 0..MAX_ENTRIES + 10 {
            read(&log, &a, &digest(i), 100).await;
        }
        assert_eq!(due(&log), MAX_ENTRIES + 10);
        read(&log, &a, &digest(0), 101).await;
        assert!(
            log.len() < 10,
            "written entries past their window go: {}",
            log.len()
        );
    }
}

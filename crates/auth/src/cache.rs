//! Verified Basic credentials, cached briefly so a push does not run bcrypt
//! on every request. Keys are salted hashes, never passwords; an entry holds
//! only while the user's htpasswd hash is the one that verified it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
pub const DEFAULT_CAPACITY: usize = 10_000;

type Key = [u8; 32];

struct Entry {
    /// sha256 of the htpasswd hash that verified the password.
    line: Key,
    verified_at: Instant,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    /// First-insertion order, for evicting the oldest when full; holds
    /// exactly the keys of `map`.
    order: VecDeque<Key>,
}

/// Verifications of credentials hashing to the same stripe run one at a
/// time, so that concurrent first requests with the same credentials (the
/// parallel layer uploads of a push) run bcrypt once, not once each.
const STRIPES: usize = 64;

pub struct CredentialCache {
    salt: [u8; 32],
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
    stripes: [Mutex<()>; STRIPES],
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache::new(DEFAULT_TTL, DEFAULT_CAPACITY)
    }
}

impl CredentialCache {
    /// A cache with a fresh random salt for this process.
    pub fn new(ttl: Duration, capacity: usize) -> CredentialCache {
        CredentialCache {
            salt: rand::random(),
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
            stripes: std::array::from_fn(|_| Mutex::new(())),
        }
    }

    /// True if the credentials are cached as verified against `hash`, else
    /// runs `verify` (bcrypt) and caches a success. Concurrent calls with
    /// the same credentials wait for the first one's answer.
    pub fn verify_once(
        &self,
        user: &str,
        password: &str,
        hash: &str,
        verify: impl FnOnce() -> bool,
    ) -> bool {
        if self.is_verified(user, password, hash) {
            return true;
        }
        let key = self.key(user, password);
        let stripe = &self.stripes[usize::from(key[0]) % STRIPES];
        let _turn = match stripe.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if self.is_verified(user, password, hash) {
            return true;
        }
        let verified = verify();
        if verified {
            self.insert(user, password, hash);
        }
        verified
    }

    /// sha256(salt ‖ user ‖ 0 ‖ password): the NUL keeps ("ab","c") and
    /// ("a","bc") apart (user names cannot hold NUL bytes in htpasswd lines).
    fn key(&self, user: &str, password: &str) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(user.as_bytes());
        hasher.update([0u8]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    fn line_key(hash: &str) -> Key {
        Sha256::digest(hash.as_bytes()).into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        match self.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// True if these credentials were verified within the TTL against the
    /// same htpasswd hash the user has now.
    pub fn is_verified(&self, user: &str, password: &str, current_hash: &str) -> bool {
        let key = self.key(user, password);
        let entries = self.lock();
        entries.map.get(&key).is_some_and(|entry| {
            entry.verified_at.elapsed() < self.ttl && entry.line == Self::line_key(current_hash)
        })
    }

    /// Records credentials that bcrypt just verified against `hash`.
    pub fn insert(&self, user: &str, password: &str, hash: &str) {
        let key = self.key(user, password);
        let entry = Entry {
            line: Self::line_key(hash),
            verified_at: Instant::now(),
        };
        let mut entries = self.lock();
        if entries.map.insert(key, entry).is_none() {
            entries.order.push_back(key);
        }
        while entries.map.len() > self.capacity {
            match entries.order.pop_front() {
                Some(oldest) => {
                    entries.map.remove(&oldest);
                }
                None => break,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$04$5NI7LcRsnsVVs34w5CpboeMHGtn07.ssQm121h/7XmK0A3K9n0682";
    const OTHER: &str = "$2y$05$r8601WKbzglhe9zjZu6eNe3GnoKhuZTCRShQFSM6tjgkS6gDjNY4.";

    #[test]
    fn hit_only_for_the_same_user_password_and_hash() {
        let cache = CredentialCache::default();
        assert!(!cache.is_verified("alice", "pw", HASH));
        cache.insert("alice", "pw", HASH);
        assert!(cache.is_verified("alice", "pw", HASH));
        assert!(!cache.is_verified("alice", "pw2", HASH));
        assert!(!cache.is_verified("bob", "pw", HASH));
        // The user's line changed (new password or removed and re-added).
        assert!(!cache.is_verified("alice", "pw", OTHER));
        // The separator keeps user and password apart.
        cache.insert("ab", "c", HASH);
        assert!(!cache.is_verified("a", "bc", HASH));
    }

    #[test]
    fn keys_are_salted_per_process_and_never_the_password() {
        let one = CredentialCache::default();
        let two = CredentialCache::default();
        assert_ne!(one.key("alice", "pw"), two.key("alice", "pw"));
        let key = one.key("alice", "pw");
        assert!(!key.windows(2).any(|w| w == b"pw"));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = CredentialCache::new(Duration::from_millis(50), 10);
        cache.insert("alice", "pw", HASH);
        assert!(cache.is_verified("alice", "pw", HASH));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!cache.is_verified("alice", "pw", HASH));
    }

    #[test]
    fn size_is_bounded_by_evicting_the_oldest() {
        let cache = CredentialCache::new(DEFAULT_TTL, 3);
        for user in ["a", "b", "c", "d"] {
            cache.insert(user, "pw", HASH);
        }
        cache.insert("d", "pw", HASH);
        assert_eq!(cache.len(), 3);
        assert!(!cache.is_verified("a", "pw", HASH));
        for user in ["b", "c", "d"] {
            assert!(cache.is_verified(user, "pw", HASH), "{user}");
        }
    }
}

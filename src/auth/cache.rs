//! The bind cache (issue 5): remembers, for a short time, that a password
//! verified against a stored hash, so a repeated identical bind skips
//! argon2.
//!
//! # What is cached, and why it cannot let a refused bind through
//! Only the one expensive and pure step of the decision is memoised: "this
//! password verifies against this stored hash". Everything else — the user
//! record (disabled?), the effective MFA/app-password policy (global
//! override, config, the user's groups), the user's confirmed devices and
//! app passwords — is checked on every bind, before the cache is
//! consulted, exactly as without it, from what the store holds when the
//! bind reads it (`kept.rs` keeps those reads only while no write has
//! finished since). So a change of status, policy or group membership
//! takes effect on the next bind.
//!
//! The entry's key is HMAC-SHA256, under a random key made for this
//! process, of the user's id, the user's `cred_generation`, the stored hash
//! (PHC string, which carries its own salt) and the password. Any change to
//! the password (even to the same text: a new salt), devices, app passwords
//! or status changes the generation or the hash and so misses. The password
//! itself is never stored, and the key dies with the process.
//!
//! The cache is consulted only for a bind whose whole password is the
//! password (no code: users without MFA, or `mfa = off`). Binds that carry
//! a code are never cached; app-password binds cost no argon2 and are not
//! cached either (their revocation and expiry are read on every bind).
//! Hashes that will be rehashed (imported `{SSHA}` …) are not cached.
//!
//! # Refreshed before they expire
//! A successful bind answered by an entry in the last quarter of its life
//! starts one verification of the same password in the background, when a
//! hashing worker is idle, and the bind is answered at once. When that
//! verification succeeds, the entry counts from the time of that bind. So
//! an account that binds steadily (a service account on every request, a
//! busy mail user) keeps its entry and never waits for argon2 after its
//! first bind, and the accounts whose entries were made together (after a
//! restart) are not all verified again on the login path a minute later,
//! when every one of their binds would queue behind the others' hashes.
//! Only a bind that succeeded can start one, so a refresh costs what the
//! miss a ttl later would have cost, and never runs for a wrong password;
//! at most one runs per entry, and never while a bind waits for a worker.
//!
//! # Bounds
//! Entries live `ttl` from the verification that made them (a hit does not
//! extend them; a refresh is a new verification), and at most
//! `max_entries` are kept: a full cache first drops expired entries, then
//! admits nothing new until the oldest entry expires. Time is a parameter,
//! so tests need no sleeping.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::UserId;

/// The cache settings (`[bind] cache`, `cache_ttl_secs`,
/// `cache_max_entries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    pub enabled: bool,
    /// How long a verified password is remembered.
    pub ttl: Duration,
    /// Most entries kept; bounds the memory (about 100 bytes each).
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            max_entries: 100_000,
        }
    }
}

/// The key of one entry: a keyed hash, never the password.
pub type Digest = [u8; 32];

/// Domain label of the keyed hash, so it can never equal another keyed
/// hash of the server.
const DOMAIN: &[u8] = b"portcullis bind cache v1\0";

/// Verified (user, generation, stored hash, password) combinations, by
/// keyed hash, with the time each was verified.
pub struct BindCache {
    key: [u8; 32],
    config: CacheConfig,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    refreshed: AtomicU64,
}

struct Inner {
    /// Digest → when the password was verified.
    entries: HashMap<Digest, SystemTime>,
    /// While the cache is full of live entries, nothing is admitted before
    /// this time (when the oldest entry expires).
    no_room_until: Option<SystemTime>,
    /// Entries being verified again in the background (one [`Refresh`]
    /// each); as many as the hashing pool runs at once.
    refreshing: HashSet<Digest>,
}

/// The right to verify an entry's password again, in the background: one
/// per entry at a time. Dropped unfinished, it lets the next bind try.
pub struct Refresh {
    cache: Arc<BindCache>,
    digest: Digest,
}

impl Refresh {
    /// The background verification's answer: when the password verified,
    /// the entry counts from `verified_at` (the time of the bind that
    /// started it). Otherwise the entry stays as it was.
    pub fn finish(self, verified: bool, verified_at: SystemTime) {
        if verified {
            self.cache.insert(self.digest, verified_at);
            self.cache.refreshed.fetch_add(1, Ordering::Relaxed);
            crate::metrics::bind_cache_refreshed();
        }
    }
}

impl Drop for Refresh {
    fn drop(&mut self) {
        self.cache.lock().refreshing.remove(&self.digest);
    }
}

impl fmt::Debug for Refresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresh").finish_non_exhaustive()
    }
}

impl fmt::Debug for BindCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindCache")
            .field("config", &self.config)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl BindCache {
    /// An empty cache under a fresh random key.
    pub fn new(config: CacheConfig) -> BindCache {
        BindCache {
            key: rand::random(),
            config,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                no_room_until: None,
                refreshing: HashSet::new(),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            refreshed: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> CacheConfig {
        self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a map that is still
        // consistent (every operation is a single insert or remove).
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The entry key of a bind: every input that decides whether the
    /// password verifies, length-prefixed so no two inputs collide.
    pub fn digest(&self, user: UserId, generation: u64, stored: &str, password: &str) -> Digest {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; never reached. An all-zero
            // digest is never inserted (see `insert`).
            Err(_) => return [0u8; 32],
        };
        mac.update(DOMAIN);
        mac.update(user.0.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.update(&(stored.len() as u64).to_be_bytes());
        mac.update(stored.as_bytes());
        mac.update(&(password.len() as u64).to_be_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn live(&self, verified_at: SystemTime, now: SystemTime) -> bool {
        // A clock that went backwards makes the entry stale, not eternal.
        match now.duration_since(verified_at) {
            Ok(age) => age < self.config.ttl,
            Err(_) => false,
        }
    }

    /// Whether `digest` was verified less than `ttl` ago; counts a hit or
    /// a miss.
    pub fn hit(&self, digest: &Digest, now: SystemTime) -> bool {
        let found = {
            let mut inner = self.lock();
            match inner.entries.get(digest).copied() {
                Some(at) if self.live(at, now) => true,
                Some(_) => {
                    inner.entries.remove(digest);
                    false
                }
                None => false,
            }
        };
        if found {
            self.hits.fetch_add(1, Ordering::Relaxed);
            crate::metrics::bind_cache(true);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            crate::metrics::bind_cache(false);
        }
        found
    }

    /// For a bind that succeeded from the cache at `now`: the right to
    /// verify its password again, when the entry is in the last quarter of
    /// its life and no refresh of it is under way.
    pub fn refresh_due(self: &Arc<Self>, digest: &Digest, now: SystemTime) -> Option<Refresh> {
        let mut inner = self.lock();
        let at = *inner.entries.get(digest)?;
        let age = now.duration_since(at).ok()?;
        if age < self.config.ttl - self.config.ttl / 4 || !self.live(at, now) {
            return None;
        }
        inner.refreshing.insert(*digest).then(|| Refresh {
            cache: Arc::clone(self),
            digest: *digest,
        })
    }

    /// Refreshes under way now.
    pub fn refreshing(&self) -> usize {
        self.lock().refreshing.len()
    }

    /// Entries verified again in the background since this cache was made.
    pub fn refreshed(&self) -> u64 {
        self.refreshed.load(Ordering::Relaxed)
    }

    /// Remembers that `digest` verified at `now`, if there is room.
    pub fn insert(&self, digest: Digest, now: SystemTime) {
        if digest == [0u8; 32] {
            return;
        }
        let mut inner = self.lock();
        if inner.entries.len() >= self.config.max_entries && !inner.entries.contains_key(&digest) {
            if inner.no_room_until.is_some_and(|until| now < until) {
                return;
            }
            let ttl = self.config.ttl;
            inner.entries.retain(|_, at| match now.duration_since(*at) {
                Ok(age) => age < ttl,
                Err(_) => false,
            });
            if inner.entries.len() >= self.config.max_entries {
                inner.no_room_until = inner.entries.values().min().map(|oldest| *oldest + ttl);
                return;
            }
            inner.no_room_until = None;
        }
        // A refresh that finishes after a later bind verified the same
        // password keeps the later time.
        let at = inner.entries.entry(digest).or_insert(now);
        *at = (*at).max(now);
    }

    /// Entries held now (live or not yet purged).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) since this cache was made.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn cache(ttl: u64, max: usize) -> BindCache {
        BindCache::new(CacheConfig {
            enabled: true,
            ttl: Duration::from_secs(ttl),
            max_entries: max,
        })
    }

    #[test]
    fn every_input_changes_the_digest() {
        let c = cache(60, 10);
        let u = UserId(Uuid::new_v4());
        let base = c.digest(u, 1, "$argon2id$x", "pw");
        assert_eq!(base, c.digest(u, 1, "$argon2id$x", "pw"));
        for other in [
            c.digest(UserId(Uuid::new_v4()), 1, "$argon2id$x", "pw"),
            c.digest(u, 2, "$argon2id$x", "pw"),
            c.digest(u, 1, "$argon2id$y", "pw"),
            c.digest(u, 1, "$argon2id$x", "pw2"),
            // length prefixes: moving bytes between fields changes it
            c.digest(u, 1, "$argon2id$xp", "w"),
        ] {
            assert_ne!(base, other);
        }
        // a different process (key) never shares digests
        assert_ne!(base, cache(60, 10).digest(u, 1, "$argon2id$x", "pw"));
    }

    #[test]
    fn entries_expire_after_the_ttl_and_hits_do_not_extend_them() {
        let c = cache(60, 10);
        let d = c.digest(UserId(Uuid::new_v4()), 0, "h", "pw");
        assert!(!c.hit(&d, at(1000)));
        c.insert(d, at(1000));
        assert!(c.hit(&d, at(1000)));
        assert!(c.hit(&d, at(1059)));
        assert!(!c.hit(&d, at(1060)), "expired after the ttl");
        assert!(c.is_empty(), "an expired entry is dropped when seen");
        assert_eq!(c.stats(), (2, 2));
    }

    #[test]
    fn an_entry_in_its_last_quarter_is_refreshed_one_at_a_time() {
        let c = Arc::new(cache(60, 10));
        let d = c.digest(UserId(Uuid::new_v4()), 0, "h", "pw");
        assert!(c.refresh_due(&d, at(1000)).is_none(), "nothing cached");
        c.insert(d, at(1000));
        assert!(c.refresh_due(&d, at(1044)).is_none(), "not yet due");
        let first = c.refresh_due(&d, at(1045)).expect("due at 3/4 of the ttl");
        assert!(c.refresh_due(&d, at(1046)).is_none(), "one at a time");
        assert_eq!(c.refreshing(), 1);
        drop(first);
        assert_eq!(c.refreshing(), 0, "an unfinished refresh lets the next try");
        let again = c.refresh_due(&d, at(1050)).expect("due again");
        again.finish(true, at(1050));
        assert_eq!((c.refreshing(), c.refreshed()), (0, 1));
        assert!(c.hit(&d, at(1109)), "the entry counts from the refresh");
        assert!(!c.hit(&d, at(1110)), "for one ttl");
        // An expired entry is not refreshed: the next bind verifies.
        let old = c.digest(UserId(Uuid::new_v4()), 0, "h", "pw");
        c.insert(old, at(1000));
        assert!(c.refresh_due(&old, at(1060)).is_none());
        assert!(c.refresh_due(&old, at(999)).is_none(), "clock went back");
    }

    #[test]
    fn a_refresh_that_did_not_verify_leaves_the_entry_as_it_was() {
        let c = Arc::new(cache(60, 10));
        let d = c.digest(UserId(Uuid::new_v4()), 0, "h", "pw");
        c.insert(d, at(1000));
        let refresh = c.refresh_due(&d, at(1050)).expect("due");
        refresh.finish(false, at(1050));
        assert_eq!((c.refreshing(), c.refreshed()), (0, 0));
        assert!(c.hit(&d, at(1059)));
        assert!(!c.hit(&d, at(1060)), "expired as it would have");
    }

    #[test]
    fn a_refresh_that_finishes_late_keeps_a_later_verification() {
        let c = Arc::new(cache(60, 10));
        let d = c.digest(UserId(Uuid::new_v4()), 0, "h", "pw");
        c.insert(d, at(1000));
        let refresh = c.refresh_due(&d, at(1050)).expect("due");
        // The entry expired before the refresh finished, and a bind
        // verified the password again at 1061.
        assert!(!c.hit(&d, at(1061)));
        c.insert(d, at(1061));
        refresh.finish(true, at(1050));
        assert!(c.hit(&d, at(1120)), "counts from 1061, not 1050");
    }

    #[test]
    fn a_clock_that_went_back_makes_entries_stale() {
        let c = cache(60, 10);
        let d = c.digest(UserId(Uuid::new_v4()), 0, "h", "pw");
        c.insert(d, at(1000));
        assert!(!c.hit(&d, at(999)));
    }

    #[test]
    fn the_size_is_bounded() {
        let c = cache(60, 3);
        let u = UserId(Uuid::new_v4());
        let ds: Vec<Digest> = (0..5).map(|i| c.digest(u, i, "h", "pw")).collect();
        for (i, d) in ds.iter().enumerate() {
            c.insert(*d, at(1000 + i as u64));
        }
        assert_eq!(c.len(), 3, "never more than max_entries");
        assert!(c.hit(&ds[0], at(1010)));
        assert!(!c.hit(&ds[3], at(1010)), "no room: not admitted");
        // Once the oldest expires, room is made for new entries.
        c.insert(ds[3], at(1060));
        assert!(c.hit(&ds[3], at(1061)));
        assert!(c.len() <= 3);
    }

    #[test]
    fn debug_shows_no_key() {
        let c = cache(60, 3);
        let text = format!("{c:?}");
        assert!(text.contains("BindCache"), "{text}");
        assert!(!text.contains("key"), "{text}");
    }
}

//! Bind throttling (DESIGN.md section 4), in memory.
//!
//! - Per account: after `account_failures` consecutive failures, every
//!   further attempt is refused until a delay has passed: `account_delay`
//!   after the N-th failure, doubling with each failure after it, capped at
//!   `account_max_delay`. A success resets the count; so does a quiet
//!   period of `account_max_delay` after the last failure.
//! - Per account's second factor: wrong or replayed codes after a right
//!   password (and only those) are counted apart, under the same rule with
//!   `code_failures`, `code_delay` and `code_max_delay`. Only a bind with a
//!   correct code resets this count (an app password's success does not:
//!   otherwise a mail client binding every minute would reset it for a
//!   code guesser), and it is forgotten only after a quiet period of
//!   `code_max_delay` after its lock has ended, so waiting out each lock
//!   does not start the count over. The caller refuses code binds (never
//!   app passwords) while it is locked.
//! - Per source address: at most `address_failures` failures in a window of
//!   `address_window`; generous by default, since many users of one
//!   application bind from one address. Successes do not reset it.
//!
//! The caller asks [`Throttle::check`] before any hashing, so a refused
//! attempt costs nothing. The clock is a parameter. Memory is bounded: at
//! most [`MAX_ENTRIES`] keys per kind are tracked; stale ones are dropped
//! first when the map is full.
//!
//! # Several instances (PostgreSQL)
//! When the store is shared ([`Throttle::with_shared`], from
//! `Backend::failure_counters`), account and code keys are counted in
//! the database, one atomic statement per failure, so failures through
//! any instance add up and a softlock holds on every instance; address
//! keys stay per instance. The database decides while it answers. When
//! it does not (an error, or no answer within the store's bound), the
//! failure is counted in this instance's memory instead, and a check
//! refuses while either the database or the memory says locked: an
//! outage falls back to the per-instance softlock, never to none, and an
//! attacker gains nothing by making the database slow. A success resets
//! both; the database's count only when the check before the attempt
//! found one ([`Found`]), so for a login of an account without failures
//! the throttle asks the database once (the check), not twice.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::store::{FailureCounters, SoftlockRule};

/// Keys tracked per kind before stale entries are purged (and, if none is
/// stale, new keys are not tracked until some are).
pub const MAX_ENTRIES: usize = 100_000;
/// Longest account key kept as is; longer names cannot exist and share
/// one key.
const MAX_KEY_LEN: usize = 256;

/// What a check found in the shared counters for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No failure counted: a success has nothing there to reset. A
    /// failure counted between the check and the success (another
    /// attempt, through any instance) stays counted until the next
    /// success or until the rule forgets it: the safe side.
    Nothing,
    /// A count, an unreadable database, or a key not counted there: a
    /// success resets.
    Count,
}

/// The thresholds (config section `[throttle]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub account_failures: u32,
    pub account_delay: Duration,
    pub account_max_delay: Duration,
    /// Wrong or replayed codes of one account before its code binds are
    /// refused for a while.
    pub code_failures: u32,
    pub code_delay: Duration,
    pub code_max_delay: Duration,
    /// 0 turns the per-address limit off.
    pub address_failures: u32,
    pub address_window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            account_failures: 5,
            account_delay: Duration::from_secs(1),
            account_max_delay: Duration::from_secs(300),
            code_failures: 3,
            code_delay: Duration::from_secs(1),
            code_max_delay: Duration::from_secs(900),
            address_failures: 1000,
            address_window: Duration::from_secs(60),
        }
    }
}

/// What is throttled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// An account, by lower-case username (also names that do not exist,
    /// so throttling does not tell them apart).
    Account(String),
    /// The second factor of an account, by lower-case username: wrong and
    /// replayed codes only.
    Code(String),
    Address(IpAddr),
}

impl Key {
    pub fn account(username: &str) -> Key {
        Key::Account(account_name(username))
    }

    pub fn code(username: &str) -> Key {
        Key::Code(account_name(username))
    }

    /// The key of an account-like entry in shared counters: a kind byte,
    /// then the name. `None` for addresses (counted per instance).
    fn shared_id(&self) -> Option<Vec<u8>> {
        let (kind, name) = match self {
            Key::Account(name) => (b'a', name),
            Key::Code(name) => (b'c', name),
            Key::Address(_) => return None,
        };
        let mut id = Vec::with_capacity(name.len() + 1);
        id.push(kind);
        id.extend_from_slice(name.as_bytes());
        Some(id)
    }
}

fn account_name(username: &str) -> String {
    if username.len() > MAX_KEY_LEN {
        return String::from("\u{0}too-long");
    }
    username.to_ascii_lowercase()
}

/// The answer of [`Throttle::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused; retrying before `retry_after` has passed is refused too.
    Throttled {
        retry_after: Duration,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// Consecutive failures (account) or failures in the window (address).
    failures: u32,
    /// Last failure (account) or start of the window (address), ms since
    /// the epoch.
    since_ms: u64,
    /// Refused until then (accounts), ms since the epoch.
    until_ms: u64,
}

pub struct Throttle {
    config: ThrottleConfig,
    accounts: Mutex<HashMap<Key, State>>,
    codes: Mutex<HashMap<Key, State>>,
    addresses: Mutex<HashMap<Key, State>>,
    /// The counters of account and code keys shared with other
    /// instances, if the store is shared.
    shared: Option<Arc<dyn FailureCounters>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Warns that the shared counters failed: while the database is away,
/// every bind would, so at most a line a second (`crate::quiet`).
fn shared_failed(e: &crate::store::StoreError, what: &str) {
    static FAILED: crate::quiet::Every = crate::quiet::Every::new();
    if let Some(left_out) = FAILED.line() {
        tracing::warn!(error = %e, left_out, "shared failure counters {what} (left_out: failures since the last line)");
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn dur_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle {
            config,
            accounts: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Counts account and code keys in `shared` (see the module
    /// documentation); `None` keeps them in memory.
    pub fn with_shared(mut self, shared: Option<Arc<dyn FailureCounters>>) -> Throttle {
        self.shared = shared;
        self
    }

    /// Whether `key` is counted in shared counters (so asking about it is
    /// a database round trip: blocking).
    pub fn asks_shared(&self, key: &Key) -> bool {
        self.shared.is_some() && !matches!(key, Key::Address(_))
    }

    /// The rule of an account-like key, for the shared counters.
    fn shared_rule(&self, key: &Key) -> Option<SoftlockRule> {
        let (threshold, first_ms, cap_ms) = self.softlock(key)?;
        Some(SoftlockRule {
            threshold,
            first_ms,
            cap_ms,
            forget_after_lock: matches!(key, Key::Code(_)),
        })
    }

    /// The shared counters and `key`'s id in them, when `key` is counted
    /// there.
    fn shared_for(&self, key: &Key) -> Option<(&dyn FailureCounters, Vec<u8>)> {
        Some((self.shared.as_deref()?, key.shared_id()?))
    }

    fn map(&self, key: &Key) -> &Mutex<HashMap<Key, State>> {
        match key {
            Key::Account(_) => &self.accounts,
            Key::Code(_) => &self.codes,
            Key::Address(_) => &self.addresses,
        }
    }

    /// The softlock rule of an account-like key: (failures before the
    /// lock, first delay, cap). `None` for addresses.
    fn softlock(&self, key: &Key) -> Option<(u32, u64, u64)> {
        let c = &self.config;
        match key {
            Key::Account(_) => Some((
                c.account_failures,
                dur_ms(c.account_delay),
                dur_ms(c.account_max_delay),
            )),
            Key::Code(_) => Some((
                c.code_failures,
                dur_ms(c.code_delay),
                dur_ms(c.code_max_delay),
            )),
            Key::Address(_) => None,
        }
    }

    /// Whether an account-like entry's count is forgotten at `now`: an
    /// account after `account_max_delay` without failures (once its lock
    /// is over); a second factor only `code_max_delay` after its lock has
    /// ended.
    fn forgotten(&self, key: &Key, s: &State, now: u64) -> bool {
        let c = &self.config;
        match key {
            Key::Account(_) => {
                now.saturating_sub(s.since_ms) >= dur_ms(c.account_max_delay) && now >= s.until_ms
            }
            Key::Code(_) => {
                now >= s
                    .since_ms
                    .max(s.until_ms)
                    .saturating_add(dur_ms(c.code_max_delay))
            }
            Key::Address(_) => now.saturating_sub(s.since_ms) >= dur_ms(c.address_window),
        }
    }

    /// Whether an attempt for `key` may go ahead at `now`: refused while
    /// the shared counters (if any) or this instance's memory lock it.
    pub fn check(&self, key: &Key, now: SystemTime) -> Verdict {
        self.check_found(key, now).0
    }

    /// [`Throttle::check`], and what the shared counters held for `key`
    /// (for [`Throttle::success_after`]).
    pub fn check_found(&self, key: &Key, now: SystemTime) -> (Verdict, Found) {
        let read = self
            .shared_for(key)
            .map(|(shared, id)| shared.locked_until(&id));
        self.check_with(key, now, read)
    }

    /// `key`'s id in the shared counters, when it is counted there: what
    /// a caller that reads the counters itself asks for
    /// ([`crate::store::Backend::bind_reads`]), then hands
    /// to [`Throttle::check_with`].
    pub fn shared_id(&self, key: &Key) -> Option<Vec<u8>> {
        self.shared_for(key).map(|(_, id)| id)
    }

    /// [`Throttle::check_found`] with the shared counters' answer for
    /// `key` already `read` (`None`: `key` is not counted there).
    pub fn check_with(
        &self,
        key: &Key,
        now: SystemTime,
        read: Option<crate::store::Result<Option<u64>>>,
    ) -> (Verdict, Found) {
        let local = self.check_local(key, now);
        let Some(read) = read else {
            return (local, Found::Count);
        };
        let now_ms = ms(now);
        let (until, found) = match read {
            Ok(Some(until)) => (until, Found::Count),
            Ok(None) => (0, Found::Nothing),
            Err(e) => {
                shared_failed(&e, "unreadable: this instance's own count decides");
                (0, Found::Count)
            }
        };
        let local_wait = match local {
            Verdict::Throttled { retry_after } => dur_ms(retry_after),
            Verdict::Allowed => 0,
        };
        let verdict = match until.saturating_sub(now_ms).max(local_wait) {
            0 => Verdict::Allowed,
            wait => Verdict::Throttled {
                retry_after: Duration::from_millis(wait),
            },
        };
        (verdict, found)
    }

    fn check_local(&self, key: &Key, now: SystemTime) -> Verdict {
        let now = ms(now);
        let Ok(map) = self.map(key).lock() else {
            // A poisoned lock means a panic elsewhere: refuse, never fail open.
            return Verdict::Throttled {
                retry_after: Duration::from_secs(1),
            };
        };
        let Some(state) = map.get(key) else {
            return Verdict::Allowed;
        };
        let until = match key {
            Key::Account(_) | Key::Code(_) => state.until_ms,
            Key::Address(_) => {
                let c = &self.config;
                if c.address_failures == 0 || state.failures < c.address_failures {
                    return Verdict::Allowed;
                }
                state.since_ms.saturating_add(dur_ms(c.address_window))
            }
        };
        if now < until {
            Verdict::Throttled {
                retry_after: Duration::from_millis(until - now),
            }
        } else {
            Verdict::Allowed
        }
    }

    /// Counts a failed attempt: in the shared counters if `key` is
    /// counted there and they answer, else in memory. Returns the lock
    /// this failure set on an account-like key, if it set one (for the
    /// caller's audit event).
    pub fn failure(&self, key: &Key, now: SystemTime) -> Option<Duration> {
        if let (Some((shared, id)), Some(rule)) = (self.shared_for(key), self.shared_rule(key)) {
            let now_ms = ms(now);
            match shared.count_failure(&id, now_ms, &rule) {
                Ok((failures, until)) => {
                    return (failures >= rule.threshold)
                        .then(|| Duration::from_millis(until.saturating_sub(now_ms)));
                }
                Err(e) => shared_failed(&e, "unwritable: counted by this instance alone"),
            }
        }
        self.failure_local(key, now)
    }

    fn failure_local(&self, key: &Key, now: SystemTime) -> Option<Duration> {
        let now = ms(now);
        let Ok(mut map) = self.map(key).lock() else {
            return None;
        };
        if !map.contains_key(key) && map.len() >= MAX_ENTRIES {
            self.purge(&mut map, now);
            if map.len() >= MAX_ENTRIES {
                tracing::warn!("bind throttle is tracking {MAX_ENTRIES} keys; not tracking more");
                return None;
            }
        }
        let state = map.entry(key.clone()).or_default();
        let forgotten = self.forgotten(key, state, now);
        let Some((threshold, first, cap)) = self.softlock(key) else {
            if forgotten {
                state.failures = 0;
                state.since_ms = now;
            }
            state.failures = state.failures.saturating_add(1);
            return None;
        };
        if forgotten {
            state.failures = 0;
        }
        state.failures = state.failures.saturating_add(1);
        state.since_ms = now;
        if state.failures < threshold {
            return None;
        }
        let doublings = (state.failures - threshold).min(32);
        let delay = first.saturating_mul(1u64 << doublings).min(cap);
        state.until_ms = now.saturating_add(delay);
        Some(Duration::from_millis(delay))
    }

    /// Counts a success: an account (or its second factor) starts over;
    /// an address is unaffected. Which successes reset which key is the
    /// caller's rule.
    pub fn success(&self, key: &Key) {
        self.success_after(key, Found::Count)
    }

    /// [`Throttle::success`] after a check that found `found`: the shared
    /// count is reset only if the check found one.
    pub fn success_after(&self, key: &Key, found: Found) {
        if let (Some((shared, id)), Found::Count) = (self.shared_for(key), found) {
            if let Err(e) = shared.reset(&id) {
                shared_failed(&e, "not reset after a success");
            }
        }
        if let Key::Account(_) | Key::Code(_) = key {
            if let Ok(mut map) = self.map(key).lock() {
                map.remove(key);
            }
        }
    }

    /// Drops entries that no longer refuse anything and would be reset on
    /// their next failure anyway.
    fn purge(&self, map: &mut HashMap<Key, State>, now: u64) {
        map.retain(|key, s| !self.forgotten(key, s, now));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A test body that makes its throttles with the function it is given.
    pub(crate) type Scenario = fn(&dyn Fn(ThrottleConfig) -> Throttle);

    /// The scenarios every way of counting must pass (the shared
    /// counters run them too: `store::postgres::tests`).
    pub(crate) const SCENARIOS: &[(&str, Scenario)] = &[
        (
            "account_delay_grows_doubles_and_caps",
            account_delay_grows_doubles_and_caps,
        ),
        ("success_resets_the_account", success_resets_the_account),
        (
            "code_failures_are_counted_apart_and_not_forgiven_by_waiting",
            code_failures_are_counted_apart_and_not_forgiven_by_waiting,
        ),
        (
            "quiet_period_forgets_old_failures",
            quiet_period_forgets_old_failures,
        ),
        ("address_limit_is_a_window", address_limit_is_a_window),
    ];

    #[test]
    fn scenarios_in_memory() {
        for (_, scenario) in SCENARIOS {
            scenario(&Throttle::new);
        }
    }

    fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_secs_f64(secs)
    }

    fn throttled(v: Verdict) -> bool {
        matches!(v, Verdict::Throttled { .. })
    }

    pub(crate) fn account_delay_grows_doubles_and_caps(make: &dyn Fn(ThrottleConfig) -> Throttle) {
        let t = make(ThrottleConfig {
            account_failures: 3,
            account_delay: Duration::from_secs(1),
            account_max_delay: Duration::from_secs(5),
            ..ThrottleConfig::default()
        });
        let k = Key::account("Alice");
        assert_eq!(k, Key::account("alice"));
        t.failure(&k, at(0.0));
        t.failure(&k, at(0.0));
        assert_eq!(
            t.check(&k, at(0.0)),
            Verdict::Allowed,
            "below the threshold"
        );
        t.failure(&k, at(0.0)); // 3rd: 1 s
        assert_eq!(
            t.check(&k, at(0.5)),
            Verdict::Throttled {
                retry_after: Duration::from_millis(500)
            }
        );
        assert_eq!(t.check(&k, at(1.0)), Verdict::Allowed);
        t.failure(&k, at(1.0)); // 4th: 2 s
        assert!(throttled(t.check(&k, at(2.9))));
        assert_eq!(t.check(&k, at(3.0)), Verdict::Allowed);
        t.failure(&k, at(3.0)); // 5th: 4 s
        assert!(throttled(t.check(&k, at(6.9))));
        assert_eq!(t.check(&k, at(7.0)), Verdict::Allowed);
        t.failure(&k, at(7.0)); // 6th: 8 s, capped at 5
        assert!(throttled(t.check(&k, at(11.9))));
        assert_eq!(t.check(&k, at(12.0)), Verdict::Allowed);
        // other accounts are unaffected
        assert_eq!(t.check(&Key::account("bob"), at(7.5)), Verdict::Allowed);
    }

    pub(crate) fn success_resets_the_account(make: &dyn Fn(ThrottleConfig) -> Throttle) {
        let t = make(ThrottleConfig {
            account_failures: 2,
            ..ThrottleConfig::default()
        });
        let k = Key::account("alice");
        t.failure(&k, at(0.0));
        t.success(&k);
        t.failure(&k, at(0.0));
        assert_eq!(t.check(&k, at(0.0)), Verdict::Allowed, "count started over");
        t.failure(&k, at(0.0));
        assert!(throttled(t.check(&k, at(0.0))));
    }

    pub(crate) fn code_failures_are_counted_apart_and_not_forgiven_by_waiting(
        make: &dyn Fn(ThrottleConfig) -> Throttle,
    ) {
        let t = make(ThrottleConfig {
            code_failures: 2,
            code_delay: Duration::from_secs(1),
            code_max_delay: Duration::from_secs(4),
            ..ThrottleConfig::default()
        });
        let code = Key::code("Alice");
        let account = Key::account("alice");
        assert_eq!(code, Key::code("alice"));
        assert_eq!(t.failure(&code, at(0.0)), None, "below the threshold");
        assert_eq!(t.failure(&code, at(0.0)), Some(Duration::from_secs(1)));
        assert!(throttled(t.check(&code, at(0.5))));
        assert_eq!(t.check(&account, at(0.5)), Verdict::Allowed, "apart");
        t.success(&account);
        assert!(throttled(t.check(&code, at(0.5))), "an account success");
        // waiting out each lock does not start the count over
        assert_eq!(t.failure(&code, at(1.0)), Some(Duration::from_secs(2)));
        assert_eq!(t.failure(&code, at(3.0)), Some(Duration::from_secs(4)));
        assert_eq!(t.failure(&code, at(7.0)), Some(Duration::from_secs(4)));
        assert!(throttled(t.check(&code, at(10.9))));
        // quiet for code_max_delay after the lock ended: forgotten
        assert_eq!(t.failure(&code, at(15.0)), None);
        t.failure(&code, at(15.0));
        t.success(&code);
        assert_eq!(t.check(&code, at(15.0)), Verdict::Allowed, "a code success");
    }

    pub(crate) fn quiet_period_forgets_old_failures(make: &dyn Fn(ThrottleConfig) -> Throttle) {
        let t = make(ThrottleConfig {
            account_failures: 2,
            account_max_delay: Duration::from_secs(60),
            ..ThrottleConfig::default()
        });
        let k = Key::account("alice");
        t.failure(&k, at(0.0));
        t.failure(&k, at(61.0));
        assert_eq!(t.check(&k, at(61.0)), Verdict::Allowed);
    }

    pub(crate) fn address_limit_is_a_window(make: &dyn Fn(ThrottleConfig) -> Throttle) {
        let t = make(ThrottleConfig {
            address_failures: 3,
            address_window: Duration::from_secs(10),
            ..ThrottleConfig::default()
        });
        let k = Key::Address("192.0.2.1".parse().expect("ip"));
        for _ in 0..3 {
            assert_eq!(t.check(&k, at(1.0)), Verdict::Allowed);
            t.failure(&k, at(1.0));
        }
        assert!(throttled(t.check(&k, at(5.0))));
        t.success(&k);
        assert!(throttled(t.check(&k, at(10.9))), "success does not reset");
        assert_eq!(t.check(&k, at(11.0)), Verdict::Allowed);
        t.failure(&k, at(11.0));
        assert_eq!(t.check(&k, at(11.0)), Verdict::Allowed, "new window");
        let off = make(ThrottleConfig {
            address_failures: 0,
            ..ThrottleConfig::default()
        });
        for _ in 0..10 {
            off.failure(&k, at(0.0));
        }
        assert_eq!(off.check(&k, at(0.0)), Verdict::Allowed);
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(ThrottleConfig::default());
        for i in 0..MAX_ENTRIES + 10 {
            t.failure(&Key::account(&format!("u{i}")), at(0.0));
        }
        assert!(t.accounts.lock().expect("lock").len() <= MAX_ENTRIES);
        // once stale, room is made
        t.failure(&Key::account("late"), at(10_000.0));
        assert!(t
            .accounts
            .lock()
            .expect("lock")
            .contains_key(&Key::account("late")));
    }
}

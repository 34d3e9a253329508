//! Bind throttling (DESIGN.md section 4), in memory.
//!
//! - Per account: after `account_failures` consecutive failures, every
//!   further attempt is refused until a delay has passed: `account_delay`
//!   after the N-th failure, doubling with each failure after it, capped at
//!   `account_max_delay`. A success resets the count; so does a quiet
//!   period of `account_max_delay` after the last failure.
//! - Per source address: at most `address_failures` failures in a window of
//!   `address_window`; generous by default, since many users of one
//!   application bind from one address. Successes do not reset it.
//!
//! The caller asks [`Throttle::check`] before any hashing, so a refused
//! attempt costs nothing. The clock is a parameter. Memory is bounded: at
//! most [`MAX_ENTRIES`] keys per kind are tracked; stale ones are dropped
//! first when the map is full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Keys tracked per kind before stale entries are purged (and, if none is
/// stale, new keys are not tracked until some are).
pub const MAX_ENTRIES: usize = 100_000;
/// Longest account key kept as is; longer names cannot exist and share
/// one key.
const MAX_KEY_LEN: usize = 256;

/// The thresholds (config section `[throttle]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub account_failures: u32,
    pub account_delay: Duration,
    pub account_max_delay: Duration,
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
    Address(IpAddr),
}

impl Key {
    pub fn account(username: &str) -> Key {
        if username.len() > MAX_KEY_LEN {
            return Key::Account(String::from("\u{0}too-long"));
        }
        Key::Account(username.to_ascii_lowercase())
    }
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
    addresses: Mutex<HashMap<Key, State>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .finish_non_exhaustive()
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
            addresses: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self, key: &Key) -> &Mutex<HashMap<Key, State>> {
        match key {
            Key::Account(_) => &self.accounts,
            Key::Address(_) => &self.addresses,
        }
    }

    /// Whether an attempt for `key` may go ahead at `now`.
    pub fn check(&self, key: &Key, now: SystemTime) -> Verdict {
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
            Key::Account(_) => state.until_ms,
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

    /// Counts a failed attempt.
    pub fn failure(&self, key: &Key, now: SystemTime) {
        let now = ms(now);
        let c = &self.config;
        let Ok(mut map) = self.map(key).lock() else {
            return;
        };
        if !map.contains_key(key) && map.len() >= MAX_ENTRIES {
            self.purge(&mut map, now);
            if map.len() >= MAX_ENTRIES {
                tracing::warn!("bind throttle is tracking {MAX_ENTRIES} keys; not tracking more");
                return;
            }
        }
        let state = map.entry(key.clone()).or_default();
        match key {
            Key::Account(_) => {
                if state.failures > 0
                    && now.saturating_sub(state.since_ms) >= dur_ms(c.account_max_delay)
                    && now >= state.until_ms
                {
                    state.failures = 0;
                }
                state.failures = state.failures.saturating_add(1);
                state.since_ms = now;
                if state.failures >= c.account_failures {
                    let doublings = (state.failures - c.account_failures).min(32);
                    let delay = dur_ms(c.account_delay)
                        .saturating_mul(1u64 << doublings)
                        .min(dur_ms(c.account_max_delay));
                    state.until_ms = now.saturating_add(delay);
                }
            }
            Key::Address(_) => {
                if now.saturating_sub(state.since_ms) >= dur_ms(c.address_window) {
                    state.failures = 0;
                    state.since_ms = now;
                }
                state.failures = state.failures.saturating_add(1);
            }
        }
    }

    /// Counts a success: an account starts over; an address is unaffected.
    pub fn success(&self, key: &Key) {
        if let Key::Account(_) = key {
            if let Ok(mut map) = self.accounts.lock() {
                map.remove(key);
            }
        }
    }

    /// Drops entries that no longer refuse anything and would be reset on
    /// their next failure anyway.
    fn purge(&self, map: &mut HashMap<Key, State>, now: u64) {
        let c = &self.config;
        map.retain(|key, s| match key {
            Key::Account(_) => {
                now < s.until_ms || now.saturating_sub(s.since_ms) < dur_ms(c.account_max_delay)
            }
            Key::Address(_) => now.saturating_sub(s.since_ms) < dur_ms(c.address_window),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_secs_f64(secs)
    }

    fn throttled(v: Verdict) -> bool {
        matches!(v, Verdict::Throttled { .. })
    }

    #[test]
    fn account_delay_grows_doubles_and_caps() {
        let t = Throttle::new(ThrottleConfig {
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

    #[test]
    fn success_resets_the_account() {
        let t = Throttle::new(ThrottleConfig {
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

    #[test]
    fn quiet_period_forgets_old_failures() {
        let t = Throttle::new(ThrottleConfig {
            account_failures: 2,
            account_max_delay: Duration::from_secs(60),
            ..ThrottleConfig::default()
        });
        let k = Key::account("alice");
        t.failure(&k, at(0.0));
        t.failure(&k, at(61.0));
        assert_eq!(t.check(&k, at(61.0)), Verdict::Allowed);
    }

    #[test]
    fn address_limit_is_a_window() {
        let t = Throttle::new(ThrottleConfig {
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
        let off = Throttle::new(ThrottleConfig {
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

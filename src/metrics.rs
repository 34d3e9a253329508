//! Process-wide counters, gauges and histograms, rendered in the Prometheus
//! text exposition format by [`render`] for `GET /metrics`.
//!
//! A small hand-rolled registry of atomics rather than a metrics crate: the
//! set of series is fixed and tiny, recording is a few relaxed atomic adds
//! on the hot path, and it keeps the dependency tree small. Any module may
//! record (`metrics::throttled()` is the hook for bind throttling); `http`
//! reads them all, the cache warm the count of operations answered. Labels
//! never carry user input.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The operation kinds latencies are kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Bind,
    Search,
    Compare,
    Extended,
    Other,
}

impl Op {
    const ALL: [Op; 5] = [Op::Bind, Op::Search, Op::Compare, Op::Extended, Op::Other];
    fn as_str(self) -> &'static str {
        match self {
            Op::Bind => "bind",
            Op::Search => "search",
            Op::Compare => "compare",
            Op::Extended => "extended",
            Op::Other => "other",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Buckets are stored non-cumulative; render adds them up.
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

struct Registry {
    latencies: [Histogram; 5],
    /// (method, outcome) → count.
    binds: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    open_connections: AtomicI64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    throttled: AtomicU64,
    code_failures: AtomicU64,
    code_locks: AtomicU64,
    code_throttled: AtomicU64,
    bind_cache_hits: AtomicU64,
    bind_cache_misses: AtomicU64,
    bind_cache_refreshes: AtomicU64,
    busy: AtomicU64,
    abandoned: AtomicU64,
    closed_protocol_errors: AtomicU64,
    /// Estimated bytes held by stored paged searches.
    paged_bytes: AtomicI64,
    paged_refused: AtomicU64,
    /// Unix time of the last scheduled backup written (0: none yet).
    backup_last_success: AtomicI64,
    backup_failures: AtomicU64,
}

static REGISTRY: Registry = Registry {
    latencies: [const { Histogram::new() }; 5],
    binds: Mutex::new(BTreeMap::new()),
    open_connections: AtomicI64::new(0),
    connections_total: AtomicU64::new(0),
    connections_refused: AtomicU64::new(0),
    throttled: AtomicU64::new(0),
    code_failures: AtomicU64::new(0),
    code_locks: AtomicU64::new(0),
    code_throttled: AtomicU64::new(0),
    bind_cache_hits: AtomicU64::new(0),
    bind_cache_misses: AtomicU64::new(0),
    bind_cache_refreshes: AtomicU64::new(0),
    busy: AtomicU64::new(0),
    abandoned: AtomicU64::new(0),
    closed_protocol_errors: AtomicU64::new(0),
    paged_bytes: AtomicI64::new(0),
    paged_refused: AtomicU64::new(0),
    backup_last_success: AtomicI64::new(0),
    backup_failures: AtomicU64::new(0),
};

/// Operations of every kind answered so far: what the cache warm
/// ([`crate::server`]) watches to pause while requests keep coming.
pub fn operations_answered() -> u64 {
    REGISTRY
        .latencies
        .iter()
        .map(|h| h.count.load(Ordering::Relaxed))
        .fold(0, u64::wrapping_add)
}

/// Records the latency of one operation.
pub fn observe(op: Op, elapsed: Duration) {
    if let Some(h) = REGISTRY.latencies.get(op.index()) {
        h.observe(elapsed);
    }
}

/// Records one bind decision. `method` and `outcome` are fixed strings of
/// the server's (`password`, `anonymous`, …; `success`, `refused`, …).
pub fn bind(method: &'static str, outcome: &'static str) {
    let mut map = match REGISTRY.binds.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    *map.entry((method, outcome)).or_insert(0) += 1;
}

/// A bind attempt refused by throttling (the hook for `auth`'s throttle).
pub fn throttled() {
    REGISTRY.throttled.fetch_add(1, Ordering::Relaxed);
}

/// A wrong or replayed second factor after a right password.
pub fn code_failure() {
    REGISTRY.code_failures.fetch_add(1, Ordering::Relaxed);
}

/// An account's code binds locked by the code throttle (each time a
/// failure sets a lock).
pub fn code_lock() {
    REGISTRY.code_locks.fetch_add(1, Ordering::Relaxed);
}

/// A code bind refused because its account's code binds are locked (also
/// counted by [`throttled`]).
pub fn code_throttled() {
    REGISTRY.code_throttled.fetch_add(1, Ordering::Relaxed);
}

/// A password bind that looked in the bind cache: `hit` when argon2 was
/// skipped.
pub fn bind_cache(hit: bool) {
    let c = if hit {
        &REGISTRY.bind_cache_hits
    } else {
        &REGISTRY.bind_cache_misses
    };
    c.fetch_add(1, Ordering::Relaxed);
}

/// A bind cache entry verified again in the background before it expired.
pub fn bind_cache_refreshed() {
    REGISTRY
        .bind_cache_refreshes
        .fetch_add(1, Ordering::Relaxed);
}

/// A request answered busy (51): too many operations or queued binds.
pub fn busy() {
    REGISTRY.busy.fetch_add(1, Ordering::Relaxed);
}

/// An operation cancelled by Abandon.
pub fn abandoned() {
    REGISTRY.abandoned.fetch_add(1, Ordering::Relaxed);
}

/// A connection closed for malformed input.
pub fn protocol_error() {
    REGISTRY
        .closed_protocol_errors
        .fetch_add(1, Ordering::Relaxed);
}

/// A connection closed at once because the cap was reached.
pub fn connection_refused() {
    REGISTRY.connections_refused.fetch_add(1, Ordering::Relaxed);
}

/// Bytes reserved for a stored paged search.
pub fn paged_bytes_add(bytes: usize) {
    let n = i64::try_from(bytes).unwrap_or(i64::MAX);
    REGISTRY.paged_bytes.fetch_add(n, Ordering::Relaxed);
}

/// Bytes of stored paged searches given back.
pub fn paged_bytes_sub(bytes: usize) {
    let n = i64::try_from(bytes).unwrap_or(i64::MAX);
    REGISTRY.paged_bytes.fetch_sub(n, Ordering::Relaxed);
}

/// A paged search refused because the paged results memory cap was
/// reached.
pub fn paged_refused() {
    REGISTRY.paged_refused.fetch_add(1, Ordering::Relaxed);
}

/// Counts an open connection until dropped.
pub struct ConnectionGuard(());

impl ConnectionGuard {
    pub fn open() -> ConnectionGuard {
        REGISTRY.connections_total.fetch_add(1, Ordering::Relaxed);
        REGISTRY.open_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        REGISTRY.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every series in the Prometheus text format (version 0.0.4).
/// A scheduled backup was written at `at` (unix seconds).
pub fn backup_written(at: i64) {
    REGISTRY.backup_last_success.store(at, Ordering::Relaxed);
}

/// A scheduled backup failed.
pub fn backup_failed() {
    REGISTRY.backup_failures.fetch_add(1, Ordering::Relaxed);
}

pub fn render() -> String {
    let r = &REGISTRY;
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };

    let _ = writeln!(
        out,
        "# HELP portcullis_bind_total Bind decisions by method and outcome.\n# TYPE portcullis_bind_total counter"
    );
    {
        let map = match r.binds.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        for ((method, outcome), n) in map.iter() {
            let _ = writeln!(
                out,
                "portcullis_bind_total{{method=\"{method}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }

    let _ = writeln!(
        out,
        "# HELP portcullis_operation_duration_seconds LDAP operation latency.\n# TYPE portcullis_operation_duration_seconds histogram"
    );
    for op in Op::ALL {
        let Some(h) = r.latencies.get(op.index()) else {
            continue;
        };
        let name = op.as_str();
        let mut cumulative = 0u64;
        for (bound, b) in BUCKETS.iter().zip(h.buckets.iter()) {
            cumulative += b.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "portcullis_operation_duration_seconds_bucket{{op=\"{name}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "portcullis_operation_duration_seconds_bucket{{op=\"{name}\",le=\"+Inf\"}} {count}\n\
             portcullis_operation_duration_seconds_sum{{op=\"{name}\"}} {sum}\n\
             portcullis_operation_duration_seconds_count{{op=\"{name}\"}} {count}"
        );
    }

    let _ = writeln!(
        out,
        "# HELP portcullis_open_connections LDAP connections open now.\n# TYPE portcullis_open_connections gauge\nportcullis_open_connections {}",
        r.open_connections.load(Ordering::Relaxed)
    );
    counter(
        &mut out,
        "portcullis_connections_total",
        "LDAP connections accepted.",
        r.connections_total.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_connections_refused_total",
        "Connections closed at once because max_connections was reached.",
        r.connections_refused.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_bind_throttled_total",
        "Bind attempts refused by throttling.",
        r.throttled.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_bind_code_failures_total",
        "Wrong or replayed codes after a right password.",
        r.code_failures.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_bind_code_locks_total",
        "Times an account's code binds were locked by the code throttle.",
        r.code_locks.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_bind_code_throttled_total",
        "Code binds refused because the account's code binds were locked.",
        r.code_throttled.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_bind_cache_hits_total",
        "Password binds answered from the bind cache (argon2 skipped).",
        r.bind_cache_hits.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_bind_cache_misses_total",
        "Password binds that looked in the bind cache and ran argon2.",
        r.bind_cache_misses.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_bind_cache_refreshes_total",
        "Bind cache entries verified again in the background before they expired.",
        r.bind_cache_refreshes.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_busy_total",
        "Requests answered busy (too many operations or queued binds).",
        r.busy.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_abandoned_total",
        "Operations cancelled by Abandon.",
        r.abandoned.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "portcullis_protocol_errors_total",
        "Connections closed for malformed or oversized requests.",
        r.closed_protocol_errors.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP portcullis_paged_results_bytes Estimated bytes held by open paged searches.\n# TYPE portcullis_paged_results_bytes gauge\nportcullis_paged_results_bytes {}",
        r.paged_bytes.load(Ordering::Relaxed)
    );
    counter(
        &mut out,
        "portcullis_paged_results_refused_total",
        "Paged searches refused because ldap.paged_results_max_bytes was reached.",
        r.paged_refused.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP portcullis_backup_last_success_timestamp_seconds Unix time of the last scheduled backup written (0: none yet).\n# TYPE portcullis_backup_last_success_timestamp_seconds gauge\nportcullis_backup_last_success_timestamp_seconds {}",
        r.backup_last_success.load(Ordering::Relaxed)
    );
    counter(
        &mut out,
        "portcullis_backup_failures_total",
        "Scheduled backups that failed (see the WARN log).",
        r.backup_failures.load(Ordering::Relaxed),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        bind("password", "success");
        observe(Op::Search, Duration::from_millis(3));
        throttled();
        code_failure();
        code_lock();
        code_throttled();
        bind_cache(true);
        let _open = ConnectionGuard::open();
        let text = render();
        for needle in [
            "portcullis_bind_total{method=\"password\",outcome=\"success\"}",
            "portcullis_operation_duration_seconds_bucket{op=\"search\",le=\"0.005\"}",
            "portcullis_operation_duration_seconds_count{op=\"search\"}",
            "portcullis_open_connections ",
            "portcullis_bind_throttled_total ",
            "portcullis_bind_code_failures_total ",
            "portcullis_bind_code_locks_total ",
            "portcullis_bind_code_throttled_total ",
            "portcullis_bind_cache_hits_total ",
            "portcullis_bind_cache_misses_total ",
            "portcullis_bind_cache_refreshes_total ",
            "portcullis_paged_results_bytes ",
            "portcullis_paged_results_refused_total ",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
        // The bucket holding 3 ms counts it, and so do all larger ones.
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(
                    "portcullis_operation_duration_seconds_bucket{op=\"search\",le=\"0.0025\"}",
                )
            })
            .expect("bucket");
        let below: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("n");
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(
                    "portcullis_operation_duration_seconds_bucket{op=\"search\",le=\"+Inf\"}",
                )
            })
            .expect("bucket");
        let all: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("n");
        assert!(all > below);
    }
}

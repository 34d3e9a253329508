//! The per-account failure counters every instance shares (issue 14):
//! five failed binds through any mix of instances softlock the account on
//! all of them. One statement per call, decided by the database: a
//! failure is one `INSERT … ON CONFLICT DO UPDATE … RETURNING` that
//! applies the throttle's rule (migration 3's functions) to the row it
//! locks, so concurrent failures through several instances each count.
//!
//! The throttle asks on the path of every bind (from the blocking pool:
//! `auth::Authenticator::throttle_check`; an instance's bind asks the
//! account's counter beside its catch-up, [`locked_until_on`] in
//! `PgInstance::bind_reads`), so every call here is bounded
//! ([`DEADLINE`], [`PgStore::bounded`]) and runs on the store's runtime:
//! a slow or unreachable database answers an error within the deadline,
//! and the throttle falls back to its own memory (`auth::throttle`),
//! never to "allowed".
//!
//! Rows of names that were never used again are purged now and then
//! (every [`PURGE_EVERY`]-th failure of this process), once the rule
//! would forget them anyway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::PgStore;
use crate::store::{FailureCounters, Result, SoftlockRule};

/// The longest a call waits for a connection and its statement.
pub(super) const DEADLINE: Duration = Duration::from_secs(2);

/// One failure in this many is followed by a purge of forgotten rows.
const PURGE_EVERY: u64 = 1024;

/// The statements of a bind's path, prepared once per connection
/// (`prepare_cached`): a statement given as text is prepared and then run,
/// two round trips to the database where one does.
const LOCKED_UNTIL: &str = "SELECT until_ms FROM failure_counters WHERE key = $1";
const COUNT_FAILURE: &str =
    "INSERT INTO failure_counters AS f (key, failures, since_ms, until_ms) \
     VALUES ($1, 1, $2, portcullis_lock_until(1, 0, $2, $3, $4, $5)) \
     ON CONFLICT (key) DO UPDATE SET \
       failures = portcullis_failures_after( \
         f.failures, f.since_ms, f.until_ms, $2, $5, $6), \
       since_ms = $2, \
       until_ms = portcullis_lock_until( \
         portcullis_failures_after( \
           f.failures, f.since_ms, f.until_ms, $2, $5, $6), \
         f.until_ms, $2, $3, $4, $5) \
     RETURNING failures, until_ms";
const RESET: &str = "DELETE FROM failure_counters WHERE key = $1";

static FAILURES: AtomicU64 = AtomicU64::new(0);

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PgStore {
    /// Deletes the rows of `key`'s kind whose count `rule` has forgotten
    /// (both rules forget a row once `cap_ms` has passed since its last
    /// failure and its lock). In the background: nobody waits for it.
    fn purge_forgotten(&self, key: &[u8], now_ms: u64, rule: &SoftlockRule) {
        let (Some(&kind), Ok(rt)) = (key.first(), self.runtime()) else {
            return;
        };
        let pool = self.inner.pool.clone();
        let (now, cap) = (to_i64(now_ms), to_i64(rule.cap_ms));
        rt.spawn(async move {
            let done = tokio::time::timeout(DEADLINE, async move {
                let client = pool.get().await.ok()?;
                client
                    .execute(
                        "DELETE FROM failure_counters WHERE substring(key FROM 1 FOR 1) = $1 \
                         AND $2 >= GREATEST(since_ms, until_ms) + $3",
                        &[&vec![kind], &now, &cap],
                    )
                    .await
                    .ok()
            })
            .await;
            if let Ok(Some(n)) = done {
                tracing::debug!(purged = n, "forgotten failure counters purged");
            }
        });
    }
}

/// [`FailureCounters::locked_until`] on `c` (a pooled connection: the
/// statement is prepared once per connection).
pub(super) async fn locked_until_on(
    c: &deadpool_postgres::Client,
    key: &[u8],
) -> std::result::Result<Option<u64>, tokio_postgres::Error> {
    let lock = c.prepare_cached(LOCKED_UNTIL).await?;
    let row = c.query_opt(&lock, &[&key]).await?;
    Ok(row.map(|r| to_u64(r.get::<_, i64>(0))))
}

impl FailureCounters for PgStore {
    fn locked_until(&self, key: &[u8]) -> Result<Option<u64>> {
        let key = key.to_vec();
        self.bounded(DEADLINE, async move |c| locked_until_on(&c, &key).await)
    }

    fn count_failure(&self, key: &[u8], now_ms: u64, rule: &SoftlockRule) -> Result<(u32, u64)> {
        let owned = key.to_vec();
        let now = to_i64(now_ms);
        let threshold = i32::try_from(rule.threshold).unwrap_or(i32::MAX);
        let (first, cap, forget) = (
            to_i64(rule.first_ms),
            to_i64(rule.cap_ms),
            rule.forget_after_lock,
        );
        let (failures, until) = self.bounded(DEADLINE, async move |c| {
            let count = c.prepare_cached(COUNT_FAILURE).await?;
            let row = c
                .query_one(&count, &[&owned, &now, &threshold, &first, &cap, &forget])
                .await?;
            Ok((row.get::<_, i32>(0), row.get::<_, i64>(1)))
        })?;
        if FAILURES.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            self.purge_forgotten(key, now_ms, rule);
        }
        Ok((u32::try_from(failures).unwrap_or(0), to_u64(until)))
    }

    fn reset(&self, key: &[u8]) -> Result<()> {
        let key = key.to_vec();
        self.bounded(DEADLINE, async move |c| {
            let reset = c.prepare_cached(RESET).await?;
            c.execute(&reset, &[&key]).await.map(|_| ())
        })
    }
}

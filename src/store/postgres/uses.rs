//! The uses of app passwords and API tokens
//! ([`crate::store::Backend::touch_app_password`]) written in batches.
//! A use is bookkeeping that no answer depends on (the store contract's
//! exception), and it was an UPDATE with its own commit, waited for by
//! every bind that used an app password. Now a use is noted here (the
//! latest per app password) and written within [`DELAY`], together with
//! every other use noted meanwhile, in one statement run by a task on the
//! store's runtime. What is pending is written first, and waited for, by
//! a listing of a user's app passwords through this process, a snapshot
//! (backups, exports, `migrate-store`) and
//! [`crate::store::Backend::flush`] (at shutdown); another instance's
//! listing shows a use within [`DELAY`]. A use never overwrites a later
//! one already written (two instances, or a write that overtook another),
//! and a write that fails is logged and dropped: the next use records it
//! again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::store::mfa::AppPasswordId;
use crate::store::{Timestamp, UserId};

/// How long a use waits before it is written.
pub(super) const DELAY: Duration = Duration::from_secs(1);

/// Past this many app passwords with a use waiting, a use is written
/// without waiting for [`DELAY`] (what waits stays bounded).
const MAX_PENDING: usize = 16_384;

/// Uses noted and not yet written: (user, app password) -> (when, from).
type Pending = HashMap<(Uuid, Uuid), (Timestamp, String)>;

#[derive(Default)]
pub(super) struct Uses {
    pending: Mutex<Pending>,
    /// A write is on its way: it takes whatever is pending when it runs.
    scheduled: AtomicBool,
}

/// What [`Uses::note`] asks of its caller.
pub(super) enum Schedule {
    /// A write is already on its way.
    Nothing,
    /// Start a write after [`DELAY`].
    Later,
    /// Start a write now ([`MAX_PENDING`] reached).
    Now,
}

impl Uses {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a use of `id` at `at` from `from` (the later of two uses of
    /// one app password is kept).
    pub(super) fn note(
        &self,
        user: UserId,
        id: AppPasswordId,
        at: Timestamp,
        from: String,
    ) -> Schedule {
        let full = {
            let mut pending = self.pending();
            let slot = pending.entry((user.0, id.0)).or_insert((at, String::new()));
            if at >= slot.0 {
                *slot = (at, from);
            }
            pending.len() >= MAX_PENDING
        };
        let first = !self.scheduled.swap(true, Ordering::AcqRel);
        match (first, full) {
            (_, true) => Schedule::Now,
            (true, false) => Schedule::Later,
            (false, false) => Schedule::Nothing,
        }
    }

    /// Takes every use pending. A use noted after the flag is cleared
    /// schedules a write of its own (which may then find nothing left).
    pub(super) fn take(&self) -> Pending {
        self.scheduled.store(false, Ordering::Release);
        std::mem::take(&mut *self.pending())
    }
}

/// Writes `uses` in one statement.
pub(super) async fn write(
    c: &tokio_postgres::Client,
    uses: Pending,
) -> Result<u64, tokio_postgres::Error> {
    if uses.is_empty() {
        return Ok(0);
    }
    let n = uses.len();
    let (mut users, mut ids, mut ats, mut froms) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((user, id), (at, from)) in uses {
        users.push(user);
        ids.push(id);
        ats.push(at);
        froms.push(from);
    }
    c.execute(
        "UPDATE app_passwords AS a SET last_used = v.at, last_used_from = v.used_from \
         FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::text[]) \
           AS v(user_id, id, at, used_from) \
         WHERE a.user_id = v.user_id AND a.id = v.id \
           AND (a.last_used IS NULL OR a.last_used <= v.at)",
        &[&users, &ids, &ats, &froms],
    )
    .await
}

/// Takes what `uses` holds and writes it on a pooled connection, after
/// `delay`: the task [`Uses::note`] asks for.
pub(super) async fn write_later(pool: deadpool_postgres::Pool, uses: Arc<Uses>, delay: Duration) {
    tokio::time::sleep(delay).await;
    let taken = uses.take();
    if taken.is_empty() {
        return;
    }
    let written = match pool.get().await {
        Ok(c) => write(&c, taken).await.map_err(|e| super::db_error(&e)),
        Err(e) => Err(super::pool_error(e)),
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "app password uses not recorded");
    }
}

//! Where blocking is not allowed: the LDAP reactors.
//!
//! Each reactor thread serves many connections; a blocking call there (an
//! fsync, a store write that waits on the disk) stalls every connection on
//! it. The LDAP handler runs each operation inside [`on_reactor`]; the
//! store calls [`assert_may_block`] before each durable write and flush,
//! so a debug build (every test) panics where a write would run on a
//! reactor instead of the blocking pool. Release builds pay nothing.

use std::future::Future;

tokio::task_local! {
    static ON_REACTOR: ();
}

/// Runs `op` marked as reactor work: blocking inside it is a bug. Not an
/// `async fn`: that would hold `op` twice (before and inside the scope).
pub fn on_reactor<F: Future>(op: F) -> impl Future<Output = F::Output> {
    ON_REACTOR.scope((), op)
}

/// False inside [`on_reactor`] (and not inside a `spawn_blocking` task
/// started from it, which is a task of its own).
pub fn may_block() -> bool {
    ON_REACTOR.try_with(|()| ()).is_err()
}

/// Debug builds: panics when called from reactor work. `what` names the
/// blocking call for the message.
#[track_caller]
pub fn assert_may_block(what: &str) {
    debug_assert!(
        may_block(),
        "{what} would block an LDAP reactor: run it on the blocking pool"
    );
}

/// A task of the blocking pool panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("a blocking task failed: {0}")]
pub struct TaskFailed(String);

/// Runs `work`, which may block (a durable store write, a scan), on the
/// blocking pool, and awaits it without holding up the reactor.
pub async fn off_reactor<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<TaskFailed> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(TaskFailed(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reactor_work_is_marked_and_blocking_tasks_are_not() {
        assert!(may_block());
        on_reactor(async {
            assert!(!may_block());
            let inside = tokio::task::spawn_blocking(may_block).await.expect("task");
            assert!(inside, "the blocking pool may block");
            assert!(!may_block());
        })
        .await;
        assert!(may_block());
    }

    #[tokio::test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "would block an LDAP reactor")]
    async fn a_blocking_call_on_a_reactor_panics_in_debug_builds() {
        on_reactor(async { assert_may_block("a store write") }).await;
    }
}

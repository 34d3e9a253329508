//! The threads that serve LDAP connections.
//!
//! Each reactor is an OS thread (`portcullis-ldap-N`) running a
//! single-threaded tokio runtime with its own I/O driver. Every reactor
//! accepts on the listeners (see `accept.rs`) and serves what it accepted,
//! unless it serves clearly more connections than another reactor; then
//! it hands the connection to the least busy ([`Reactors::place_from`]).
//! The connection then stays there, so a request is read, answered and
//! written by one thread, and a short connection (a pool-less web
//! application's, one per request) is accepted and served by one thread
//! without waking another. On the work-stealing runtime a
//! short search cost a cross-thread wake-up or two (the reader woke an idle
//! worker to share work that was already done), which was a quarter of the
//! server's CPU per search on two cores. What still needs other threads
//! does not change: scans run on the reactor's blocking pool, password
//! hashing on the hashing pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A connection stays on the reactor that accepted it while that reactor
/// serves at most this many more connections than the least busy one.
/// Handing it over costs a wake-up of the other thread, which is most of
/// what a short connection costs (a pool-less web application opens one
/// per request); a few connections of imbalance cost nothing measurable,
/// and beyond them connections still spread (an argon2 flood on one
/// reactor delays the searches it serves).
pub const HAND_OFF_SLACK: usize = 2;

/// How long a reactor's runtime waits for its blocking tasks at the end.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// One reactor per core. On two cores shared with the load generator one
/// reactor spent less CPU per uid search (0.025 against 0.029–0.032 ms:
/// a busy event loop finds more work per wake-up), but during an argon2
/// bind flood it was the bottleneck: searches waited behind one thread at
/// 75% load and their p99 rose to 2–3 ms, against 0.6 ms with two. Tail
/// latency on the login path matters more than that CPU; set
/// `ldap.reactor_threads = 1` where CPU per request matters most.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

struct Reactor {
    handle: Handle,
    /// Connections it serves now.
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The reactor threads; stopped (and joined) on drop.
pub struct Reactors {
    reactors: Vec<Reactor>,
    /// Where the search for the least busy reactor starts, so that ties
    /// go round.
    next: AtomicUsize,
}

/// Counts a connection against its reactor while it lives.
pub struct Placement {
    open: Arc<AtomicUsize>,
}

impl Drop for Placement {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Reactors {
    /// Starts `threads` reactors (0: [`default_threads`]).
    pub fn start(threads: usize) -> std::io::Result<Reactors> {
        let threads = match threads {
            0 => default_threads(),
            n => n,
        };
        let mut reactors = Vec::with_capacity(threads);
        for i in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("portcullis-ldap-{i}-blocking"))
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("portcullis-ldap-{i}"))
                .spawn(move || {
                    // Drives the connections spawned on `handle` until stop.
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    runtime.shutdown_timeout(STOP_TIMEOUT);
                })?;
            reactors.push(Reactor {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Reactors {
            reactors,
            next: AtomicUsize::new(0),
        })
    }

    /// How many reactors there are.
    pub fn count(&self) -> usize {
        self.reactors.len()
    }

    /// The runtime of reactor `i` (< [`Reactors::count`]).
    pub fn handle(&self, i: usize) -> &Handle {
        &self.reactors[i].handle
    }

    /// Where a connection accepted on reactor `here` is served, and the
    /// count that keeps it on that reactor's books until dropped: `here`,
    /// unless another reactor serves more than [`HAND_OFF_SLACK`] fewer
    /// connections; then the least busy (ties go round).
    pub fn place_from(&self, here: usize) -> (&Handle, Placement) {
        let n = self.reactors.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let least = (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| self.reactors[i].open.load(Ordering::Relaxed))
            .expect("at least one reactor");
        let load = |i: usize| self.reactors[i].open.load(Ordering::Relaxed);
        let chosen = if load(here) <= load(least) + HAND_OFF_SLACK {
            &self.reactors[here]
        } else {
            &self.reactors[least]
        };
        chosen.open.fetch_add(1, Ordering::Relaxed);
        (
            &chosen.handle,
            Placement {
                open: chosen.open.clone(),
            },
        )
    }
}

impl Drop for Reactors {
    fn drop(&mut self) {
        for r in &mut self.reactors {
            if let Some(stop) = r.stop.take() {
                let _ = stop.send(());
            }
        }
        let me = std::thread::current().id();
        for r in &mut self.reactors {
            // The last owner may be a task on a reactor (after shutdown
            // gave up waiting for it): that thread ends by itself.
            if let Some(thread) = r.thread.take().filter(|t| t.thread().id() != me) {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_where_accepted_until_the_imbalance_is_too_large() {
        let reactors = Reactors::start(3).expect("start");
        assert_eq!(reactors.count(), 3);
        let counts = || -> Vec<usize> {
            reactors
                .reactors
                .iter()
                .map(|r| r.open.load(Ordering::Relaxed))
                .collect()
        };
        // All accepted on reactor 0: it keeps HAND_OFF_SLACK + 1, then
        // the others get theirs as it runs ahead of them.
        let placed: Vec<_> = (0..9).map(|_| reactors.place_from(0).1).collect();
        let c = counts();
        assert_eq!(c.iter().sum::<usize>(), 9);
        let (max, min) = (c.iter().max().unwrap(), c.iter().min().unwrap());
        assert!(max - min <= HAND_OFF_SLACK + 1, "{c:?}");
        assert!(c[0] > HAND_OFF_SLACK, "{c:?}");
        drop(placed);
        assert!(reactors
            .reactors
            .iter()
            .all(|r| r.open.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn tasks_run_on_the_reactor_threads() {
        let reactors = Reactors::start(2).expect("start");
        let (handle, _placement) = reactors.place_from(1);
        let name = std::thread::spawn({
            let handle = handle.clone();
            move || {
                handle.block_on(async {
                    tokio::spawn(async { std::thread::current().name().map(str::to_string) })
                        .await
                        .expect("join")
                })
            }
        })
        .join()
        .expect("thread");
        // block_on on a handle drives only the given future; the spawned
        // task runs on the reactor's own thread.
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("portcullis-ldap-")),
            "{name:?}"
        );
    }
}

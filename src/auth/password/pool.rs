//! The hashing pool: `hash_workers` threads fed over a bounded channel,
//! each reusing one argon2 memory block, with the starvation guard that
//! moves them between `SCHED_IDLE` and nice [`HASH_NICE`]. "The module
//! doc" in the comments here is that of `auth::password`, which describes
//! the scheduling and the guard's rule.

use super::{Hasher, PasswordError, Slot};
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

/// Niceness of the hashing threads (Linux, per thread): the reactor and the
/// store's threads win the CPU when both want it, the hashes take the rest.
/// It applies when `SCHED_IDLE` is unavailable, and while the starvation
/// guard has promoted the workers.
pub const HASH_NICE: i32 = 10;

/// Sets the calling thread to nice [`HASH_NICE`], as a worker starts.
fn lower_nice() {
    crate::niceness::lower_own(HASH_NICE, "a hashing thread");
}

/// Niceness of starved workers that nice [`HASH_NICE`] did not get going
/// within [`STARVED_AFTER`] (the module doc's second step): the same share
/// of the CPU as any thread of the server.
pub const BOOSTED_NICE: i32 = 0;

/// Wall time after which a hash in flight counts as starved (see the module
/// doc): about ten times the CPU cost of one hash at the default costs.
pub const STARVED_AFTER: Duration = Duration::from_millis(250);

/// How often the starvation guard looks while hashes are in flight.
pub const GUARD_TICK: Duration = Duration::from_millis(50);

/// Upper bound of the channel between callers and workers when no queue
/// limit is set (`verify`/`hash` then wait for room instead of growing it).
const MAX_CHANNEL: usize = 65_536;

/// What a worker is asked to do. Passwords are not `Debug`.
pub(super) enum Work {
    Hash(String),
    /// `phc = None`: verify against the dummy hash and answer false.
    Verify(String, Option<String>),
}

pub(super) enum Answer {
    Hashed(Result<String, PasswordError>),
    Verified(bool),
}

pub(super) struct Job {
    pub(super) work: Work,
    pub(super) reply: oneshot::Sender<Answer>,
    pub(super) _slot: Slot,
}

/// The sending side of the worker pool; the workers stop when it is dropped
/// (with the last `Hasher` clone), and so does the guard.
pub(super) struct Pool {
    pub(super) jobs: mpsc::Sender<Job>,
    watch: Arc<Watch>,
    /// The starvation guard, when the workers run under `SCHED_IDLE`.
    guard: Option<std::thread::Thread>,
}

impl Pool {
    pub(super) fn start(hasher: &Hasher) -> Pool {
        let bound = hasher.capacity.clamp(1, MAX_CHANNEL);
        let (jobs, rx) = mpsc::channel::<Job>(bound);
        let rx = Arc::new(Mutex::new(rx));
        let watch = Arc::new(Watch::new(hasher.in_flight.clone(), hasher.workers));
        // The guard starts first: without it, the workers must not be idle.
        let (handles_tx, handles_rx) = std::sync::mpsc::channel();
        let guard = if sched::idle_allowed() {
            // Probed now, not when the pool is first starved: the probe
            // thread would then wait for a CPU like the workers.
            sched::boost_allowed();
            let w = watch.clone();
            std::thread::Builder::new()
                .name("hashpool-guard".into())
                .spawn(move || guard(&w, handles_rx))
                .map_err(|e| tracing::warn!(error = %e, "cannot start the hashing guard"))
                .ok()
        } else {
            None
        };
        let mut handles = Vec::new();
        for n in 0..hasher.workers {
            let rx = rx.clone();
            let worker = Worker::new(hasher, n, watch.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("portcullis-hash-{n}"))
                .spawn(move || worker.run(&rx));
            match spawned {
                Ok(handle) => handles.push(handle),
                // With no worker at all, jobs are dropped unanswered and
                // every verification fails: closed, never open.
                Err(e) => tracing::error!(error = %e, "cannot start a password hashing thread"),
            }
        }
        // The guard keeps the handles (so their pthread ids stay valid) and
        // moves the workers to SCHED_IDLE; without a guard they are dropped
        // (detached) and the workers stay at nice HASH_NICE.
        let _ = handles_tx.send(handles);
        Pool {
            jobs,
            watch,
            guard: guard.map(|g| g.thread().clone()),
        }
    }

    /// The workers' kernel thread ids (0 for one not started yet) and
    /// whether they run under the guard, for tests that read their nice
    /// and policy from /proc.
    #[cfg(test)]
    pub(super) fn workers_for_tests(&self) -> (Vec<i32>, bool) {
        (self.watch.tids_for_tests(), self.guard.is_some())
    }

    /// What the workers stamp, outliving the pool (for tests).
    #[cfg(test)]
    pub(super) fn watch_for_tests(&self) -> Arc<Watch> {
        self.watch.clone()
    }

    /// Wakes the guard if it sleeps: call after queueing a job.
    pub(super) fn kick(&self) {
        if let Some(guard) = &self.guard {
            if !self.watch.watching.swap(true, Ordering::SeqCst) {
                guard.unpark();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.watch.closed.store(true, Ordering::SeqCst);
        if let Some(guard) = &self.guard {
            guard.unpark();
        }
    }
}

/// What the starvation guard watches, stamped by the workers. Times are
/// milliseconds since `epoch`.
pub(super) struct Watch {
    epoch: Instant,
    /// Hashes waiting or running (the `Hasher`'s counter).
    in_flight: Arc<AtomicUsize>,
    /// The last time a worker took or finished a hash (or the pool woke
    /// up from idle): a queue that does not move is starved too.
    progress: AtomicU64,
    /// Per worker: 0 while it waits for work, else 1 + the time it took
    /// its current hash.
    busy_since: Vec<AtomicU64>,
    /// Per worker: its kernel thread id once it runs (0 before), for the
    /// guard's changes of its nice.
    tids: Vec<AtomicI32>,
    /// The guard is awake; it parks while nothing is in flight.
    watching: AtomicBool,
    /// The pool was dropped: the guard ends.
    closed: AtomicBool,
    /// How often the guard promoted the workers (logged at debug).
    promotions: AtomicU64,
}

impl Watch {
    pub(super) fn new(in_flight: Arc<AtomicUsize>, workers: usize) -> Watch {
        Watch {
            epoch: Instant::now(),
            in_flight,
            progress: AtomicU64::new(0),
            busy_since: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            tids: (0..workers).map(|_| AtomicI32::new(0)).collect(),
            watching: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            promotions: AtomicU64::new(0),
        }
    }

    #[cfg(test)]
    pub(super) fn tids_for_tests(&self) -> Vec<i32> {
        self.tids
            .iter()
            .map(|t| t.load(Ordering::Acquire))
            .collect()
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn started(&self, worker: usize) {
        if let Some(t) = self.tids.get(worker) {
            t.store(sched::own_tid(), Ordering::Release);
        }
    }

    /// The worker's thread ends: its id may be another thread's next, so
    /// the guard must not renice it any more.
    fn ended(&self, worker: usize) {
        if let Some(t) = self.tids.get(worker) {
            t.store(0, Ordering::Release);
        }
    }

    fn took(&self, worker: usize) {
        let now = self.now();
        if let Some(b) = self.busy_since.get(worker) {
            b.store(now + 1, Ordering::Release);
        }
        self.progress.store(now, Ordering::Release);
    }

    fn finished(&self, worker: usize) {
        if let Some(b) = self.busy_since.get(worker) {
            b.store(0, Ordering::Release);
        }
        self.progress.store(self.now(), Ordering::Release);
    }

    /// The rule of the module doc.
    fn starved(&self) -> bool {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.late(self.progress.load(Ordering::Acquire))
            || self.busy_since.iter().any(|b| {
                let b = b.load(Ordering::Acquire);
                b != 0 && self.late(b - 1)
            })
    }

    /// More than [`STARVED_AFTER`] has passed since `since`.
    fn late(&self, since: u64) -> bool {
        let bound = u64::try_from(STARVED_AFTER.as_millis()).unwrap_or(u64::MAX);
        self.now().saturating_sub(since) > bound
    }
}

/// Where the starvation guard has put the workers (module doc).
#[derive(Clone, Copy, PartialEq)]
enum Level {
    /// `SCHED_IDLE` at nice [`HASH_NICE`]: nothing starved.
    Idle,
    /// `SCHED_OTHER` at nice [`HASH_NICE`] since the given guard time.
    Promoted(u64),
    /// `SCHED_OTHER` at nice [`BOOSTED_NICE`].
    Boosted,
}

/// The starvation guard (module doc): the only thread that changes the
/// workers' scheduling once they run.
fn guard(watch: &Watch, handles: std::sync::mpsc::Receiver<Vec<std::thread::JoinHandle<()>>>) {
    let Ok(handles) = handles.recv() else { return };
    let workers: Vec<_> = handles.iter().map(sched::native).collect();
    let set = |idle: bool| {
        for (n, &w) in workers.iter().enumerate() {
            if !sched::set(w, idle) {
                // An idle worker that stays idle is slower, never wrong; a
                // worker that cannot be promoted is what the guard is for.
                tracing::warn!(worker = n, idle, "cannot change a hashing thread's policy");
            }
        }
    };
    let renice = |nice: i32| {
        for tid in &watch.tids {
            sched::set_nice(tid.load(Ordering::Acquire), nice);
        }
    };
    // Back to where an unstarved pool runs.
    let demote = || {
        renice(HASH_NICE);
        set(true);
    };
    set(true);
    let mut level = Level::Idle;
    while !watch.closed.load(Ordering::SeqCst) {
        if watch.in_flight.load(Ordering::SeqCst) == 0 {
            if level != Level::Idle {
                demote();
                level = Level::Idle;
            }
            // `kick` unparks after queueing when it finds `watching` false;
            // the second look catches a job queued before the store.
            watch.watching.store(false, Ordering::SeqCst);
            if watch.in_flight.load(Ordering::SeqCst) == 0 && !watch.closed.load(Ordering::SeqCst) {
                std::thread::park();
            }
            watch.watching.store(true, Ordering::SeqCst);
            // The wait of whatever is queued now starts now.
            watch.progress.store(watch.now(), Ordering::Release);
            continue;
        }
        let starved = watch.starved();
        match level {
            Level::Idle if starved => {
                set(false);
                level = Level::Promoted(watch.now());
                let n = watch.promotions.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    promotions = n,
                    "hashing starved: workers promoted to nice {HASH_NICE}"
                );
            }
            Level::Promoted(at) if starved && watch.late(at) && sched::boost_allowed() => {
                renice(BOOSTED_NICE);
                level = Level::Boosted;
                tracing::debug!("hashing still starved: workers at nice {BOOSTED_NICE}");
            }
            Level::Promoted(_) | Level::Boosted if !starved => {
                demote();
                level = Level::Idle;
            }
            _ => {}
        }
        std::thread::park_timeout(GUARD_TICK);
    }
    // The handles drop here: the workers end with the channel.
}

/// One hashing thread's state: the argon2 memory it reuses for every hash.
pub(super) struct Worker {
    argon2: Argon2<'static>,
    dummy: Arc<String>,
    memory: Vec<Block>,
    /// This worker's number, for its stamps in `watch`.
    index: usize,
    watch: Arc<Watch>,
}

impl Worker {
    pub(super) fn new(hasher: &Hasher, index: usize, watch: Arc<Watch>) -> Worker {
        Worker {
            argon2: hasher.argon2.clone(),
            dummy: hasher.dummy.clone(),
            // Allocated on the worker's first hash, in its own thread.
            memory: Vec::new(),
            index,
            watch,
        }
    }

    fn run(mut self, rx: &Mutex<mpsc::Receiver<Job>>) {
        lower_nice();
        self.watch.started(self.index);
        // However the thread ends (a panic outside a hash included).
        struct Ended(Arc<Watch>, usize);
        impl Drop for Ended {
            fn drop(&mut self) {
                self.0.ended(self.1);
            }
        }
        let _ended = Ended(self.watch.clone(), self.index);
        self.serve(rx);
    }

    fn serve(&mut self, rx: &Mutex<mpsc::Receiver<Job>>) {
        loop {
            let job = {
                let Ok(mut rx) = rx.lock() else { return };
                match rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            };
            let job = match job {
                Some(job) => job,
                None => {
                    // Idle: wipe what the last hash left before sleeping.
                    self.wipe();
                    let Ok(mut rx) = rx.lock() else { return };
                    match rx.blocking_recv() {
                        Some(job) => job,
                        None => return,
                    }
                }
            };
            self.watch.took(self.index);
            let Job {
                work,
                reply,
                _slot: slot,
            } = job;
            // A panic in a hash drops `reply` unanswered: the caller sees a
            // failed verification (never fail open) and the thread lives on.
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(work)));
            self.watch.finished(self.index);
            // The slot is free before the caller hears the answer.
            drop(slot);
            if let Ok(answer) = answer {
                let _ = reply.send(answer);
            }
        }
    }

    fn work(&mut self, work: Work) -> Answer {
        match work {
            Work::Hash(password) => Answer::Hashed(self.hash(&password)),
            Work::Verify(password, Some(phc)) => Answer::Verified(self.verify(&password, &phc)),
            Work::Verify(password, None) => {
                let dummy = self.dummy.clone();
                let _ = self.verify(&password, &dummy);
                Answer::Verified(false)
            }
        }
    }

    /// The reused memory, grown to `blocks` on first use.
    fn memory(&mut self, blocks: usize) -> &mut [Block] {
        if self.memory.len() < blocks {
            self.memory = vec![Block::new(); blocks];
        }
        &mut self.memory[..blocks]
    }

    /// argon2's memory holds data derived from the password (its first
    /// blocks are one Blake2b away from it: a cheap guess oracle), so it is
    /// cleared whenever the worker goes idle. Under a flood the next hash
    /// overwrites it anyway, and clearing 19 MiB per hash would cost
    /// throughput.
    fn wipe(&mut self) {
        self.memory.fill(Block::new());
    }

    fn hash(&mut self, password: &str) -> Result<String, PasswordError> {
        let argon2 = self.argon2.clone();
        let params = argon2.params().clone();
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt
            .as_salt()
            .decode_b64(&mut salt_bytes)
            .map_err(|_| PasswordError::Hash)?;
        let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
        let memory = self.memory(params.block_count());
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, memory)
            .map_err(|_| PasswordError::Hash)?;
        let output = argon2::password_hash::Output::new(&out).map_err(|_| PasswordError::Hash)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: (&params).try_into().map_err(|_| PasswordError::Hash)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Verifies like `PasswordVerifier::verify_password`, but in the
    /// worker's memory. A hash that needs more memory than the configured
    /// cost (imported with other parameters) gets a one-off allocation.
    pub(super) fn verify(&mut self, password: &str, phc: &str) -> bool {
        if crate::auth::legacy::is_legacy(phc) {
            return crate::auth::legacy::verify_legacy(phc, password);
        }
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        let blocks = params.block_count();
        let done = if blocks <= self.argon2.params().block_count() {
            let memory = self.memory(blocks);
            argon2.hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, memory)
        } else {
            let memory = vec![Block::new(); blocks];
            argon2.hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, memory)
        };
        done.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
    }
}

/// The hashing threads' scheduling (module doc). Linux: nice through
/// rustix, the policy through the `thread-priority` crate (this crate
/// forbids unsafe code). Elsewhere: nothing, the hashes compete as equals.
#[cfg(target_os = "linux")]
mod sched {
    use super::{BOOSTED_NICE, HASH_NICE};
    use std::os::unix::thread::JoinHandleExt;
    use std::sync::OnceLock;
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, thread_schedule_policy_param,
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };

    pub type Native = thread_priority::ThreadId;

    const IDLE: ThreadSchedulePolicy =
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    const OTHER: ThreadSchedulePolicy =
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);

    pub fn native(handle: &std::thread::JoinHandle<()>) -> Native {
        handle.as_pthread_t()
    }

    /// The calling thread's kernel id.
    pub fn own_tid() -> i32 {
        rustix::thread::gettid().as_raw_nonzero().get()
    }

    /// Sets thread `tid`'s nice (0: not started yet, nothing to do). A
    /// failure leaves the worker where it was: slower, never wrong.
    pub fn set_nice(tid: i32, nice: i32) {
        let Some(pid) = rustix::process::Pid::from_raw(tid) else {
            return;
        };
        if let Err(e) = rustix::process::setpriority_process(Some(pid), nice) {
            tracing::debug!(error = %e, nice, "cannot change a hashing thread's nice");
        }
    }

    /// Whether a starved worker may go from nice `HASH_NICE` to
    /// `BOOSTED_NICE` (CAP_SYS_NICE or RLIMIT_NICE >= 20 - BOOSTED_NICE).
    /// Checked once per process, logged once.
    pub fn boost_allowed() -> bool {
        static ALLOWED: OnceLock<bool> = OnceLock::new();
        *ALLOWED.get_or_init(|| {
            let allowed =
                probe(|| rustix::process::setpriority_process(None, BOOSTED_NICE).is_ok());
            if !allowed {
                tracing::warn!(
                    "starved password hashes stay at nice {HASH_NICE}: going back to nice \
                     {BOOSTED_NICE} needs CAP_SYS_NICE or RLIMIT_NICE >= {} (systemd: \
                     LimitNICE=+{}); a login may wait long while normal threads fill every core",
                    20 - BOOSTED_NICE,
                    20 - BOOSTED_NICE
                );
            }
            allowed
        })
    }

    /// Runs `check` on a throwaway thread at nice `HASH_NICE`, as a worker
    /// starts: what a worker's thread may do.
    fn probe(check: fn() -> bool) -> bool {
        let probe = std::thread::Builder::new()
            .name("hashpool-probe".into())
            .spawn(move || {
                super::lower_nice();
                check()
            })
            .map(|t| t.join().unwrap_or(false));
        matches!(probe, Ok(true))
    }

    /// Moves `thread` to SCHED_IDLE (`idle`) or back to SCHED_OTHER, keeping
    /// its nice; true when the policy read back is the one asked for.
    ///
    /// `set_thread_priority_and_policy` calls pthread_setschedparam on
    /// `thread` (the kernel keeps the target's nice), then setpriority on
    /// the *calling* thread with the priority given. So the caller passes
    /// its own nice for SCHED_OTHER (no change); for SCHED_IDLE the crate
    /// only accepts 0, which sets the caller to nice 0 (it is the guard, a
    /// normal-priority thread anyway, or the probe). An error from that
    /// second step does not undo the first, hence the read-back.
    pub fn set(thread: Native, idle: bool) -> bool {
        let (policy, priority) = if idle {
            (IDLE, ThreadPriority::Min)
        } else {
            (OTHER, own_nice())
        };
        let _ = set_thread_priority_and_policy(thread, priority, policy);
        matches!(thread_schedule_policy_param(thread), Ok((p, _)) if p == policy)
    }

    /// The crate's priority value that maps to the calling thread's nice.
    fn own_nice() -> ThreadPriority {
        let nice = rustix::process::getpriority_process(None).unwrap_or(0);
        (0..=99u8)
            .filter_map(|p| ThreadPriorityValue::try_from(p).ok())
            .map(ThreadPriority::Crossplatform)
            .find(|p| p.to_posix(OTHER).ok() == Some(nice))
            .unwrap_or(ThreadPriority::Crossplatform(ThreadPriorityValue::default()))
    }

    /// Whether the workers may use SCHED_IDLE: a worker's thread must be
    /// able to go there and come back, which the guard relies on. Checked
    /// once per process, logged once.
    pub fn idle_allowed() -> bool {
        static ALLOWED: OnceLock<bool> = OnceLock::new();
        *ALLOWED.get_or_init(|| {
            let allowed = probe(|| {
                let me = thread_native_id();
                set(me, true) && set(me, false)
            });
            if !allowed {
                tracing::warn!(
                    "password hashing threads stay at nice {HASH_NICE}, not SCHED_IDLE: leaving \
                     SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE >= {} (systemd: LimitNICE=+{HASH_NICE}); \
                     searches may slow down during a bind flood",
                    20 - HASH_NICE
                );
            }
            allowed
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod sched {
    pub type Native = ();
    pub fn native(_: &std::thread::JoinHandle<()>) -> Native {}
    pub fn own_tid() -> i32 {
        0
    }
    pub fn set_nice(_: i32, _: i32) {}
    pub fn boost_allowed() -> bool {
        false
    }
    pub fn set(_: Native, _: bool) -> bool {
        false
    }
    pub fn idle_allowed() -> bool {
        false
    }
}

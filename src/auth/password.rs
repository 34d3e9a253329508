//! argon2id password hashing and verification.
//!
//! Hashing is CPU-heavy: async callers go through [`Hasher`], which hands the
//! work to a dedicated pool of `hash_workers` OS threads (`portcullis-hash-N`)
//! over a bounded channel and gets the answer back over a oneshot, so a
//! burst of binds cannot stall the reactor. Each worker owns one argon2
//! memory block and reuses it for every hash, so memory stays at workers ×
//! m_cost however long a flood lasts (a fresh 19 MiB allocation per hash on
//! whatever thread runs it left glibc arenas holding hundreds of megabytes).
//!
//! The number of hashes waiting or running is bounded too: past
//! `workers + queue limit`, [`Hasher::try_verify`] answers [`Busy`] at once
//! (the LDAP layer sends busy (51)), so a bind flood cannot grow memory.
//!
//! # Scheduling: SCHED_IDLE with a starvation guard
//!
//! The workers run at nice [`HASH_NICE`] and, on Linux, under `SCHED_IDLE`:
//! a thread serving a search preempts a hash at once and the kernel places
//! a woken reactor thread on a CPU that only runs hashes as if it were
//! idle, so during a bind flood searches keep their latency (nice alone
//! still left them 6× slower at the 99th percentile), while hashing takes
//! every cycle nothing else wants.
//!
//! `SCHED_IDLE` work gets almost nothing while normal threads keep every
//! core busy, and a login must not wait without bound. So a guard thread
//! (`hashpool-guard`, normal priority, parked while no hash is in flight,
//! otherwise looking every [`GUARD_TICK`]) applies one rule: the pool is
//! *starved* when a hash is in flight and either a worker has been on its
//! current hash for longer than [`STARVED_AFTER`] of wall time (a hash
//! costs ~20 ms of CPU) or no worker has taken or finished a hash for that
//! long. While starved, the workers are promoted to `SCHED_OTHER` at nice
//! [`HASH_NICE`] (today's fallback, where hashes get their fair share of a
//! nice-10 thread); at the first look where the pool is no longer starved
//! (the late hash finished), they go back to `SCHED_IDLE`. So a hash waits
//! at most about `STARVED_AFTER` + a tick to be taken by a worker and as
//! much again to run before it competes as a nice-10 thread; under a
//! lasting saturation the workers alternate between the two policies,
//! which bounds each login's wait instead of letting the queue stall.
//!
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` or an `RLIMIT_NICE` of at
//! least 20 − [`HASH_NICE`] (systemd: `LimitNICE=+10`); a process cannot
//! undo it otherwise. The pool checks this once with a throwaway thread
//! before it uses `SCHED_IDLE`; where it cannot come back (or `SCHED_IDLE`
//! cannot be set), it logs once and keeps the workers at nice `HASH_NICE`,
//! never failing a hash for it.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

/// The `[auth]` section: argon2id costs and the size of the hashing pool.
/// Owned here, so `auth` needs nothing from `config`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashConfig {
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Hashes computed at once: the threads of the hashing pool, each with
    /// its own argon2 memory (0 = number of cores).
    pub hash_workers: usize,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_workers: 0,
        }
    }
}

/// Niceness of the hashing threads (Linux, per thread): the reactor and the
/// store's threads win the CPU when both want it, the hashes take the rest.
/// It applies when `SCHED_IDLE` is unavailable, and while the starvation
/// guard has promoted the workers.
pub const HASH_NICE: i32 = 10;

/// Wall time after which a hash in flight counts as starved (see the module
/// doc): about ten times the CPU cost of one hash at the default costs.
pub const STARVED_AFTER: Duration = Duration::from_millis(250);

/// How often the starvation guard looks while hashes are in flight.
pub const GUARD_TICK: Duration = Duration::from_millis(50);

/// Upper bound of the channel between callers and workers when no queue
/// limit is set (`verify`/`hash` then wait for room instead of growing it).
const MAX_CHANNEL: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed")]
    Hash,
    #[error("the hashing pool is closed")]
    Closed,
}

/// The hashing queue is full: try again later (LDAP busy, 51).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy;

/// argon2id with the configured costs.
#[derive(Clone)]
pub struct Hasher {
    argon2: Argon2<'static>,
    /// Threads of the pool (resolved: never 0).
    workers: usize,
    /// The pool, started on first use: the CLI and tests that only call
    /// `hash_blocking` never start threads, and `with_queue_limit` sizes
    /// the channel before it exists.
    pool: Arc<OnceLock<Pool>>,
    /// Verified against when the user does not exist, so an unknown user
    /// costs the same time as a wrong password.
    dummy: Arc<String>,
    /// Hashes waiting for a worker or running now.
    in_flight: Arc<AtomicUsize>,
    /// Most hashes waiting or running before `try_verify` answers `Busy`:
    /// the workers plus the queue limit.
    capacity: usize,
}

/// One slot of `in_flight`, released on drop. It travels with the job, so
/// a hash still counts while it runs even if its caller went away.
pub(super) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a worker is asked to do. Passwords are not `Debug`.
enum Work {
    Hash(String),
    /// `phc = None`: verify against the dummy hash and answer false.
    Verify(String, Option<String>),
}

enum Answer {
    Hashed(Result<String, PasswordError>),
    Verified(bool),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Answer>,
    _slot: Slot,
}

/// The sending side of the worker pool; the workers stop when it is dropped
/// (with the last `Hasher` clone), and so does the guard.
struct Pool {
    jobs: mpsc::Sender<Job>,
    watch: Arc<Watch>,
    /// The starvation guard, when the workers run under `SCHED_IDLE`.
    guard: Option<std::thread::Thread>,
}

impl Pool {
    fn start(hasher: &Hasher) -> Pool {
        let bound = hasher.capacity.clamp(1, MAX_CHANNEL);
        let (jobs, rx) = mpsc::channel::<Job>(bound);
        let rx = Arc::new(Mutex::new(rx));
        let watch = Arc::new(Watch::new(hasher.in_flight.clone(), hasher.workers));
        // The guard starts first: without it, the workers must not be idle.
        let (handles_tx, handles_rx) = std::sync::mpsc::channel();
        let guard = if sched::idle_allowed() {
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

    /// Wakes the guard if it sleeps: call after queueing a job.
    fn kick(&self) {
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
struct Watch {
    epoch: Instant,
    /// Hashes waiting or running (the `Hasher`'s counter).
    in_flight: Arc<AtomicUsize>,
    /// The last time a worker took or finished a hash (or the pool woke
    /// up from idle): a queue that does not move is starved too.
    progress: AtomicU64,
    /// Per worker: 0 while it waits for work, else 1 + the time it took
    /// its current hash.
    busy_since: Vec<AtomicU64>,
    /// The guard is awake; it parks while nothing is in flight.
    watching: AtomicBool,
    /// The pool was dropped: the guard ends.
    closed: AtomicBool,
    /// How often the guard promoted the workers (logged at debug).
    promotions: AtomicU64,
}

impl Watch {
    fn new(in_flight: Arc<AtomicUsize>, workers: usize) -> Watch {
        Watch {
            epoch: Instant::now(),
            in_flight,
            progress: AtomicU64::new(0),
            busy_since: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            watching: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            promotions: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
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
        let bound = u64::try_from(STARVED_AFTER.as_millis()).unwrap_or(u64::MAX);
        let now = self.now();
        let late = |since: u64| now.saturating_sub(since) > bound;
        late(self.progress.load(Ordering::Acquire))
            || self.busy_since.iter().any(|b| {
                let b = b.load(Ordering::Acquire);
                b != 0 && late(b - 1)
            })
    }
}

/// The starvation guard (module doc): the only thread that changes the
/// workers' scheduling policy once they run.
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
    set(true);
    let mut promoted = false;
    while !watch.closed.load(Ordering::SeqCst) {
        if watch.in_flight.load(Ordering::SeqCst) == 0 {
            if promoted {
                set(true);
                promoted = false;
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
        if starved != promoted {
            set(!starved);
            promoted = starved;
            if starved {
                let n = watch.promotions.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    promotions = n,
                    "hashing starved: workers promoted to nice {HASH_NICE}"
                );
            }
        }
        std::thread::park_timeout(GUARD_TICK);
    }
    // The handles drop here: the workers end with the channel.
}

/// One hashing thread's state: the argon2 memory it reuses for every hash.
struct Worker {
    argon2: Argon2<'static>,
    dummy: Arc<String>,
    memory: Vec<Block>,
    /// This worker's number, for its stamps in `watch`.
    index: usize,
    watch: Arc<Watch>,
}

impl Worker {
    fn new(hasher: &Hasher, index: usize, watch: Arc<Watch>) -> Worker {
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
        sched::lower_nice();
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
    fn verify(&mut self, password: &str, phc: &str) -> bool {
        if super::legacy::is_legacy(phc) {
            return super::legacy::verify_legacy(phc, password);
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
    use super::HASH_NICE;
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

    /// Sets the calling thread to nice `HASH_NICE` (nice is per thread on
    /// Linux). Failing to is harmless: the hashes then compete as equals.
    pub fn lower_nice() {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), HASH_NICE) {
            tracing::debug!(error = %e, "cannot lower the priority of a hashing thread");
        }
    }

    pub fn native(handle: &std::thread::JoinHandle<()>) -> Native {
        handle.as_pthread_t()
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

    /// Whether the workers may use SCHED_IDLE: a throwaway thread at nice
    /// `HASH_NICE` goes to SCHED_IDLE and must be able to come back, which
    /// the guard relies on. Checked once per process, logged once.
    pub fn idle_allowed() -> bool {
        static ALLOWED: OnceLock<bool> = OnceLock::new();
        *ALLOWED.get_or_init(|| {
            let probe = std::thread::Builder::new()
                .name("hashpool-probe".into())
                .spawn(|| {
                    lower_nice();
                    let me = thread_native_id();
                    set(me, true) && set(me, false)
                })
                .map(|t| t.join().unwrap_or(false));
            let allowed = matches!(probe, Ok(true));
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
    pub fn lower_nice() {}
    pub fn native(_: &std::thread::JoinHandle<()>) -> Native {}
    pub fn set(_: Native, _: bool) -> bool {
        false
    }
    pub fn idle_allowed() -> bool {
        false
    }
}

impl Hasher {
    pub fn new(config: &HashConfig) -> Result<Hasher, PasswordError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let workers = if config.hash_workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.hash_workers
        };
        let dummy = hash_with(&argon2, "portcullis-dummy-password")?;
        Ok(Hasher {
            argon2,
            workers,
            pool: Arc::new(OnceLock::new()),
            dummy: Arc::new(dummy),
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity: usize::MAX,
        })
    }

    /// A hasher at the lowest costs (64 KiB, one pass, one worker), for
    /// tests and fuzzing only: its hashes are cheap to brute-force, so no
    /// configuration can reach it. The one helper every test shares.
    #[doc(hidden)]
    pub fn for_tests() -> Hasher {
        Hasher::new(&HashConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            hash_workers: 1,
        })
        .unwrap_or_else(|e| unreachable!("fixed test parameters are valid: {e}"))
    }

    /// Bounds the queue: at most `queued` hashes wait for a worker besides
    /// those running; beyond that `try_verify` answers `Busy`. Call before
    /// the first hash (the pool's channel is sized on first use).
    pub fn with_queue_limit(mut self, queued: usize) -> Hasher {
        self.capacity = self.workers.saturating_add(queued);
        self
    }

    /// True when a new check would have to be refused; the bind handler
    /// asks before deciding a bind, so a flood is answered busy (51).
    pub fn queue_full(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) >= self.capacity
    }

    /// Hashes waiting or running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Takes a slot unless the queue is full.
    pub(super) fn try_slot(&self) -> Result<Slot, Busy> {
        let mut current = self.in_flight.load(Ordering::Acquire);
        loop {
            if current >= self.capacity {
                return Err(Busy);
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Slot(self.in_flight.clone())),
                Err(seen) => current = seen,
            }
        }
    }

    /// A slot even past the limit: for callers that must not be refused.
    fn slot(&self) -> Slot {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Slot(self.in_flight.clone())
    }

    fn pool(&self) -> &Pool {
        self.pool.get_or_init(|| Pool::start(self))
    }

    /// Like [`Hasher::verify`], but answers `Busy` at once when the queue
    /// is full instead of waiting.
    pub async fn try_verify(&self, password: String, phc: Option<String>) -> Result<bool, Busy> {
        let slot = self.try_slot()?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work: Work::Verify(password, phc),
            reply,
            _slot: slot,
        };
        let pool = self.pool();
        match pool.jobs.try_send(job) {
            Ok(()) => pool.kick(),
            // The channel holds at least `capacity` jobs, so with a slot it
            // is never full; should it be, the check is refused, not passed.
            Err(mpsc::error::TrySendError::Full(_)) => return Err(Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => return Ok(false),
        }
        Ok(matches!(answer.await, Ok(Answer::Verified(true))))
    }

    /// Hashes on the calling thread (CLI, bootstrap, blocking contexts).
    pub fn hash_blocking(&self, password: &str) -> Result<String, PasswordError> {
        hash_with(&self.argon2, password)
    }

    /// Verifies on the calling thread. A malformed stored hash is a mismatch.
    pub fn verify_blocking(&self, password: &str, phc: &str) -> bool {
        // Hashes imported from other directories ({SSHA}, {CRYPT}, …) keep
        // their scheme tag; they are replaced by argon2id on a successful
        // bind (`Authenticator::authenticate`).
        let watch = Arc::new(Watch::new(self.in_flight.clone(), 0));
        Worker::new(self, 0, watch).verify(password, phc)
    }

    /// Hashes off the reactor.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        match self.submit(Work::Hash(password)).await? {
            Answer::Hashed(hashed) => hashed,
            Answer::Verified(_) => Err(PasswordError::Hash),
        }
    }

    /// Verifies off the reactor. `phc = None` (unknown user, no password set)
    /// verifies against a dummy hash and returns false, costing the same.
    /// A panic or pool failure is a failed verification: never fail open.
    pub async fn verify(&self, password: String, phc: Option<String>) -> bool {
        matches!(
            self.submit(Work::Verify(password, phc)).await,
            Ok(Answer::Verified(true))
        )
    }

    /// Queues work even past the limit (waiting for room in the channel)
    /// and awaits its answer.
    async fn submit(&self, work: Work) -> Result<Answer, PasswordError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work,
            reply,
            _slot: self.slot(),
        };
        let pool = self.pool();
        pool.jobs
            .send(job)
            .await
            .map_err(|_| PasswordError::Closed)?;
        pool.kick();
        answer.await.map_err(|_| PasswordError::Hash)
    }
}

fn hash_with(argon2: &Argon2<'static>, password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Hasher {
        Hasher::for_tests()
    }

    #[test]
    fn hash_then_verify() {
        let h = cheap();
        let phc = h.hash_blocking("s3cret;x").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(h.verify_blocking("s3cret;x", &phc));
        assert!(!h.verify_blocking("s3cret", &phc));
        assert!(!h.verify_blocking("s3cret;x", "not a hash"));
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_and_frees_its_slots() {
        let h = cheap().with_queue_limit(1);
        let phc = h.hash_blocking("pw").expect("hash");
        assert!(!h.queue_full());
        // One worker and one queued place: two checks fit, a third is busy.
        let a = h.try_slot().expect("first");
        let b = h.try_slot().expect("second");
        assert!(h.queue_full());
        assert_eq!(
            h.try_verify("pw".into(), Some(phc.clone())).await,
            Err(Busy)
        );
        drop((a, b));
        assert!(!h.queue_full());
        assert_eq!(h.try_verify("pw".into(), Some(phc)).await, Ok(true));
        assert_eq!(h.in_flight(), 0);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let h = cheap();
        assert!(!h.verify("portcullis-dummy-password".into(), None).await);
    }

    #[tokio::test]
    async fn the_pool_hashes_what_the_argon2_crate_verifies() {
        use argon2::password_hash::PasswordVerifier;
        let h = cheap();
        let phc = h.hash("pool pw".into()).await.expect("hash");
        let parsed = PasswordHash::new(&phc).expect("phc");
        assert!(h.argon2.verify_password(b"pool pw", &parsed).is_ok());
        assert!(h.argon2.verify_password(b"other", &parsed).is_err());
        // And the pool verifies what the crate hashed, twice in a row with
        // the same reused memory.
        let theirs = hash_with(&h.argon2, "theirs").expect("hash");
        assert!(h.verify("theirs".into(), Some(theirs.clone())).await);
        assert!(!h.verify("mine".into(), Some(theirs.clone())).await);
        assert!(h.verify("theirs".into(), Some(theirs)).await);
    }

    #[tokio::test]
    async fn hashes_with_other_costs_and_variants_verify() {
        let h = cheap();
        // More memory than the configured cost (a one-off allocation), and
        // argon2i/argon2d as imported from other directories.
        for (alg, m) in [
            (Algorithm::Argon2id, 256),
            (Algorithm::Argon2i, 32),
            (Algorithm::Argon2d, 64),
        ] {
            let params = Params::new(m, 2, 1, Some(16)).expect("params");
            let other = Argon2::new(alg, Version::V0x10, params);
            let phc = hash_with(&other, "imported").expect("hash");
            assert!(
                h.verify("imported".into(), Some(phc.clone())).await,
                "{phc}"
            );
            assert!(!h.verify("imported!".into(), Some(phc)).await);
        }
        // A truncated hash is a mismatch, not an error.
        let phc = h.hash_blocking("pw").expect("hash");
        assert!(
            !h.verify("pw".into(), Some(phc[..phc.len() - 4].into()))
                .await
        );
    }

    #[tokio::test]
    async fn concurrent_checks_all_get_their_own_answer() {
        let h = Hasher::new(&HashConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            hash_workers: 3,
        })
        .expect("params")
        .with_queue_limit(64);
        let phc = h.hash_blocking("right").expect("hash");
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (h, phc) = (h.clone(), phc.clone());
            tasks.push(tokio::spawn(async move {
                let pw = if i % 2 == 0 { "right" } else { "wrong" };
                (i, h.try_verify(pw.into(), Some(phc)).await)
            }));
        }
        for task in tasks {
            let (i, answer) = task.await.expect("task");
            assert_eq!(answer, Ok(i % 2 == 0), "check {i}");
        }
        assert_eq!(h.in_flight(), 0);
    }

    /// The starvation guard. Twice as many normal-priority threads as cores
    /// spin, so SCHED_IDLE workers get next to nothing (weight 3 against
    /// 2 × 1024 per core). With the guard, the worker is promoted to nice 10
    /// once it makes no progress for STARVED_AFTER, and three real-cost
    /// hashes in a row end in a second or two. Checked without the guard
    /// (`sched::set(_, false)` made a no-op): one hash then took 0.8 s,
    /// 6.8 s and 13.2 s in three runs, and the three in a row below 31.8 s,
    /// 30.5 s and 14.2 s, far past the bound. The number of promotions is
    /// not asserted: now and then the kernel gives an idle worker a burst
    /// of CPU all the same (three hashes in 0.2 s once, with no promotion).
    /// Where SCHED_IDLE is not allowed (no CAP_SYS_NICE and a low
    /// RLIMIT_NICE), the worker runs at nice 10 from the start and the
    /// bound holds as well.
    #[tokio::test]
    async fn real_cost_hashes_complete_while_normal_threads_fill_every_core() {
        let h = Hasher::new(&HashConfig {
            hash_workers: 1,
            ..HashConfig::default()
        })
        .expect("params");
        let phc = h.hash_blocking("pw").expect("hash");
        // Starts the pool and the guard, and sizes the worker's memory.
        assert!(h.verify("pw".into(), Some(phc.clone())).await);

        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let spinners: Vec<_> = (0..2 * cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let until = Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let answers = tokio::time::timeout(Duration::from_secs(45), async {
            let mut answers = Vec::new();
            for pw in ["pw", "wrong", "pw"] {
                answers.push(h.verify(pw.into(), Some(phc.clone())).await);
            }
            answers
        })
        .await;
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for s in spinners {
            s.join().expect("spinner");
        }
        assert_eq!(answers, Ok(vec![true, false, true]), "after {took:?}");
        assert!(took < Duration::from_secs(8), "took {took:?}");
    }
}

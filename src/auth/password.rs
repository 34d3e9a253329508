//! argon2id password hashing and verification.
//!
//! Hashing is CPU-heavy: async callers go through [`Hasher`], which hands the
//! work to a dedicated pool of `hash_workers` OS threads (`portcullis-hash-N`)
//! over a bounded channel and gets the answer back over a oneshot, so a
//! burst of binds cannot stall the reactor. The workers run at a lower
//! scheduling priority (nice [`HASH_NICE`]) than the reactor threads: during
//! a bind flood searches keep their latency, while hashing still takes every
//! idle cycle. Each worker owns one argon2 memory block and reuses it for
//! every hash, so memory stays at workers × m_cost however long a flood lasts
//! (a fresh 19 MiB allocation per hash on whatever thread runs it left glibc
//! arenas holding hundreds of megabytes).
//!
//! The number of hashes waiting or running is bounded too: past
//! `workers + queue limit`, [`Hasher::try_verify`] answers [`Busy`] at once
//! (the LDAP layer sends busy (51)), so a bind flood cannot grow memory.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use crate::config::AuthConfig;

/// Niceness of the hashing threads (Linux, per thread): the reactor and the
/// store's threads win the CPU when both want it, the hashes take the rest.
pub const HASH_NICE: i32 = 10;

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
/// (with the last `Hasher` clone).
struct Pool {
    jobs: mpsc::Sender<Job>,
}

impl Pool {
    fn start(hasher: &Hasher) -> Pool {
        let bound = hasher.capacity.clamp(1, MAX_CHANNEL);
        let (jobs, rx) = mpsc::channel::<Job>(bound);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..hasher.workers {
            let rx = rx.clone();
            let worker = Worker::new(hasher);
            let spawned = std::thread::Builder::new()
                .name(format!("portcullis-hash-{n}"))
                .spawn(move || worker.run(&rx));
            if let Err(e) = spawned {
                // With no worker at all, jobs are dropped unanswered and
                // every verification fails: closed, never open.
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Pool { jobs }
    }
}

/// One hashing thread's state: the argon2 memory it reuses for every hash.
struct Worker {
    argon2: Argon2<'static>,
    dummy: Arc<String>,
    memory: Vec<Block>,
}

impl Worker {
    fn new(hasher: &Hasher) -> Worker {
        Worker {
            argon2: hasher.argon2.clone(),
            dummy: hasher.dummy.clone(),
            // Allocated on the worker's first hash, in its own thread.
            memory: Vec::new(),
        }
    }

    fn run(mut self, rx: &Mutex<mpsc::Receiver<Job>>) {
        lower_priority();
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
            let Job {
                work,
                reply,
                _slot: slot,
            } = job;
            // A panic in a hash drops `reply` unanswered: the caller sees a
            // failed verification (never fail open) and the thread lives on.
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(work)));
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

/// Lowers the calling thread's priority (Linux: nice is per thread).
/// Failing to is harmless: the hashes then compete as equals.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), HASH_NICE) {
            tracing::debug!(error = %e, "cannot lower the priority of a hashing thread");
        }
    }
}

impl Hasher {
    pub fn new(config: &AuthConfig) -> Result<Hasher, PasswordError> {
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
        match self.pool().jobs.try_send(job) {
            Ok(()) => {}
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
        Worker::new(self).verify(password, phc)
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
        self.pool()
            .jobs
            .send(job)
            .await
            .map_err(|_| PasswordError::Closed)?;
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
        Hasher::new(&AuthConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            hash_workers: 1,
        })
        .expect("params")
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
        let h = Hasher::new(&AuthConfig {
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
}

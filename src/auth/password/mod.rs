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
//! [`HASH_NICE`], where hashes get the share of a nice-10 thread; if the
//! pool is still starved [`STARVED_AFTER`] after that, they go to nice
//! [`BOOSTED_NICE`] and compete as equals with every other thread. The
//! second step exists because a thread moved out of `SCHED_IDLE` at nice
//! 10 can still wait tens of seconds while normal threads fill every core
//! (measured on Linux 6.18: 25 s for a quarter second of CPU, against half
//! a second at nice 0). At the first look where the pool is no longer
//! starved (the late hash finished), the workers go back to nice
//! [`HASH_NICE`] and `SCHED_IDLE`. So a hash waits at most about
//! `STARVED_AFTER` + a tick to be taken by a worker and twice that before
//! it runs as an equal; under a lasting saturation the workers cycle
//! through the three steps, which bounds each login's wait instead of
//! letting the queue stall, while searches lose CPU to hashes only in the
//! starved moments.
//!
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` or an `RLIMIT_NICE` of at
//! least 20 − [`HASH_NICE`], going to nice [`BOOSTED_NICE`] one of at
//! least 20 − [`BOOSTED_NICE`] (systemd: `LimitNICE=+20` for both); a
//! process cannot undo a lower priority otherwise. The pool checks each
//! once with a throwaway thread. Where the workers could not leave
//! `SCHED_IDLE` (or it cannot be set), it logs once and keeps them at nice
//! `HASH_NICE`; where they cannot reach nice `BOOSTED_NICE`, it logs once
//! and the guard stops at the first step. A hash never fails for it.
//!
//! # Layout
//!
//! - this file: [`HashConfig`], [`Hasher`] (hash and verify, on the pool
//!   or on the calling thread) and the bound on hashes in flight.
//! - `pool`: the hashing pool: its queue, the workers and their reused
//!   argon2 memory, the starvation guard and the threads' scheduling.

mod pool;

pub use pool::{BOOSTED_NICE, GUARD_TICK, HASH_NICE, STARVED_AFTER};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use pool::{Answer, Job, Pool, Watch, Work, Worker};
use rand::rngs::OsRng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
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
    /// costs the same time as a wrong password ([`dummy_phc`]).
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
        let dummy = dummy_phc(&argon2)?;
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

    /// True when a worker has nothing to do: work queued now waits for
    /// no one's hash and delays no one's.
    pub fn idle_worker(&self) -> bool {
        self.in_flight() < self.workers
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

/// A hash in PHC form at `argon2`'s costs whose salt and output are
/// random bytes: verifying any password against it costs what verifying
/// against a real hash does (the costs and lengths come from the string),
/// and no password matches it but with chance 2^-256. Made without
/// running argon2, which took some 60 ms of every start and every offline
/// command.
fn dummy_phc(argon2: &Argon2<'static>) -> Result<String, PasswordError> {
    use argon2::password_hash::{Output, ParamsString, PasswordHash};
    use rand::RngCore;
    let salt = SaltString::generate(&mut OsRng);
    let params = argon2.params();
    let mut output = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    OsRng.fill_bytes(&mut output);
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|_| PasswordError::Hash)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(|_| PasswordError::Hash)?),
    };
    Ok(phc.to_string())
}

#[cfg(test)]
mod tests;

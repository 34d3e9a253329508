//! argon2id password hashing and verification.
//!
//! Hashing is CPU-heavy: async callers go through [`Hasher`], which runs it on
//! the blocking pool behind a semaphore so a burst of binds cannot stall the
//! reactor. The number of hashes waiting or running is bounded too: past
//! `workers + queue limit`, [`Hasher::try_verify`] answers [`Busy`] at once
//! (the LDAP layer sends busy (51)), so a bind flood cannot grow memory.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

use crate::config::AuthConfig;

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
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so an unknown user
    /// costs the same time as a wrong password.
    dummy: Arc<String>,
    /// Hashes waiting for a worker or running now.
    in_flight: Arc<AtomicUsize>,
    /// Most hashes waiting or running before `try_verify` answers `Busy`:
    /// the workers plus the queue limit.
    capacity: usize,
}

/// One slot of `in_flight`, released on drop.
pub(super) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
            permits: Arc::new(Semaphore::new(workers)),
            dummy: Arc::new(dummy),
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity: usize::MAX,
        })
    }

    /// Bounds the queue: at most `queued` hashes wait for a worker besides
    /// those running; beyond that `try_verify` answers `Busy`.
    pub fn with_queue_limit(mut self, queued: usize) -> Hasher {
        self.capacity = self.permits.available_permits().saturating_add(queued);
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

    /// Like [`Hasher::verify`], but answers `Busy` at once when the queue
    /// is full instead of waiting.
    pub async fn try_verify(&self, password: String, phc: Option<String>) -> Result<bool, Busy> {
        let slot = self.try_slot()?;
        let verified = self.verify_in(password, phc).await;
        drop(slot);
        Ok(verified)
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
        if super::legacy::is_legacy(phc) {
            return super::legacy::verify_legacy(phc, password);
        }
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon2
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Hashes off the reactor.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let _slot = self.slot();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Closed)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_blocking(&password))
            .await
            .map_err(|_| PasswordError::Hash)?
    }

    /// Verifies off the reactor. `phc = None` (unknown user, no password set)
    /// verifies against a dummy hash and returns false, costing the same.
    /// A panic or pool failure is a failed verification: never fail open.
    pub async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let _slot = self.slot();
        self.verify_in(password, phc).await
    }

    async fn verify_in(&self, password: String, phc: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => this.verify_blocking(&password, &phc),
            None => {
                let _ = this.verify_blocking(&password, &this.dummy);
                false
            }
        })
        .await
        .unwrap_or(false)
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
}

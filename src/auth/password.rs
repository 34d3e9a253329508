//! argon2id password hashing and verification.
//!
//! Hashing is CPU-heavy: async callers go through [`Hasher`], which runs it on
//! the blocking pool behind a semaphore so a burst of binds cannot stall the
//! reactor.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
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

/// argon2id with the configured costs.
#[derive(Clone)]
pub struct Hasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so an unknown user
    /// costs the same time as a wrong password.
    dummy: Arc<String>,
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
        })
    }

    /// Hashes on the calling thread (CLI, bootstrap, blocking contexts).
    pub fn hash_blocking(&self, password: &str) -> Result<String, PasswordError> {
        hash_with(&self.argon2, password)
    }

    /// Verifies on the calling thread. A malformed stored hash is a mismatch.
    pub fn verify_blocking(&self, password: &str, phc: &str) -> bool {
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
    async fn unknown_user_never_verifies() {
        let h = cheap();
        assert!(!h.verify("portcullis-dummy-password".into(), None).await);
    }
}

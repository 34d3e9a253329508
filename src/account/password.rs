//! The password rules: one copy, used by the CLI and the admin socket
//! (`user add`, `user passwd`), LDAP add/modify of `userPassword` in clear,
//! and Password Modify. Each front end maps a refusal to its own answer
//! (an admin error, constraintViolation); the rule and its wording are here.

use rand::distributions::{Alphanumeric, DistString};

use super::AccountError;
use crate::auth::password::Hasher;

/// Longest password accepted, in bytes. The CLI reads at most this much
/// from standard input; LDAP refuses longer ones with constraintViolation.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// Length of a password the server generates (Password Modify without a
/// new password): 24 alphanumerics, about 143 bits.
const GENERATED_LEN: usize = 24;

/// Why a new password is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRefusal {
    #[error("the password must not be empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
}

/// Checks a new password in clear against the policy.
pub fn check_new(password: &str) -> Result<(), PasswordRefusal> {
    check_len(password.len())
}

/// [`check_new`] for a password still in bytes (standard input, an LDAP
/// value): only its length matters here.
pub fn check_len(len: usize) -> Result<(), PasswordRefusal> {
    match len {
        0 => Err(PasswordRefusal::Empty),
        n if n > MAX_PASSWORD_LEN => Err(PasswordRefusal::TooLong),
        _ => Ok(()),
    }
}

/// Checks a new password against the policy and hashes it (argon2id, on
/// the calling thread: blocking, for the CLI, the admin socket's blocking
/// pool and bootstrap).
pub fn hash_blocking(hasher: &Hasher, password: &str) -> Result<String, AccountError> {
    check_new(password)?;
    hasher
        .hash_blocking(password)
        .map_err(|e| AccountError::Internal(e.to_string()))
}

/// A new random password, for a change that names none (Password Modify)
/// and for the first admin.
pub fn generate() -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, GENERATED_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limits() {
        assert_eq!(check_new(""), Err(PasswordRefusal::Empty));
        assert_eq!(check_new("x"), Ok(()));
        assert_eq!(check_new(&"a".repeat(MAX_PASSWORD_LEN)), Ok(()));
        assert_eq!(
            check_new(&"a".repeat(MAX_PASSWORD_LEN + 1)),
            Err(PasswordRefusal::TooLong)
        );
        assert_eq!(
            PasswordRefusal::TooLong.to_string(),
            "the password is longer than 4096 bytes"
        );
    }

    #[test]
    fn generated_passwords_pass_the_policy_and_differ() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), GENERATED_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(check_new(&a), Ok(()));
        assert_ne!(a, b);
    }
}

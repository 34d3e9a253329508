//! The password rules: one copy, used by the CLI and the admin socket
//! (`user add`, `user passwd`), LDAP add/modify of `userPassword` in clear,
//! Password Modify, bootstrap, import and the portal. Each front end maps a
//! refusal to its own answer (an admin error, constraintViolation); the
//! rule and its wording are here. Strength is zxcvbn's estimate (a
//! maintained port of Dropbox's estimator: common passwords, words, names,
//! keyboard patterns, dates, the account's own name), not a list of ours.

use rand::distributions::{Alphanumeric, DistString};

use super::AccountError;
use crate::auth::password::Hasher;

/// Longest password accepted, in bytes. The CLI reads at most this much
/// from standard input; LDAP refuses longer ones with constraintViolation.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// Length of a password the server generates (Password Modify without a
/// new password): 24 alphanumerics, about 143 bits.
const GENERATED_LEN: usize = 24;

/// The password policy (`[password]` in the configuration): a minimum
/// length in characters and a minimum zxcvbn strength score. The same one
/// for `user add`, `user passwd`, LDAP add/modify of a cleartext
/// `userPassword`, Password Modify and the portal. Hashes (imported, or
/// written as `{SSHA}`… over LDAP) cannot be checked and are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values), at least 1.
    pub min_length: usize,
    /// Lowest zxcvbn score accepted, 0–4: 0 turns the strength check off,
    /// 2 refuses common passwords, words and simple patterns ("password",
    /// "12345678", the user's own name), 4 asks for very strong ones.
    pub min_strength: u8,
}

impl Default for PasswordPolicy {
    fn default() -> PasswordPolicy {
        PasswordPolicy {
            min_length: DEFAULT_MIN_LENGTH,
            min_strength: DEFAULT_MIN_STRENGTH,
        }
    }
}

/// `password.min_length` unless configured.
pub const DEFAULT_MIN_LENGTH: usize = 8;
/// `password.min_strength` unless configured.
pub const DEFAULT_MIN_STRENGTH: u8 = 2;
/// The highest zxcvbn score.
pub const MAX_STRENGTH: u8 = 4;

impl PasswordPolicy {
    /// Length bounds only (a minimum of one character, no strength check):
    /// what tests that are not about the policy use for short passwords.
    pub const LENGTH_ONLY: PasswordPolicy = PasswordPolicy {
        min_length: 1,
        min_strength: 0,
    };

    /// Checks a new password in clear. `context` holds what an attacker
    /// would try first for this account (its name, full name, email):
    /// a password built from them scores lower.
    pub fn check(&self, password: &str, context: &[&str]) -> Result<(), PasswordRefusal> {
        check_new(password)?;
        if password.trim().is_empty() {
            return Err(PasswordRefusal::Blank);
        }
        if password.chars().count() < self.min_length {
            return Err(PasswordRefusal::TooShort(self.min_length));
        }
        if self.min_strength > 0 {
            // zxcvbn looks at the first 100 characters and splits the
            // context words itself; empty ones only cost time.
            let context: Vec<&str> = context.iter().copied().filter(|c| !c.is_empty()).collect();
            let entropy = zxcvbn::zxcvbn(password, &context);
            if u8::from(entropy.score()) < self.min_strength {
                let hint = entropy
                    .feedback()
                    .and_then(|f| f.warning())
                    .map(|w| w.to_string());
                return Err(PasswordRefusal::TooWeak(hint));
            }
        }
        Ok(())
    }
}

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRefusal {
    #[error("the password must not be empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    #[error("the password must not be only spaces")]
    Blank,
    #[error("the password must have at least {0} characters")]
    TooShort(usize),
    /// zxcvbn's warning, when it has one ("This is a top-10 common
    /// password.").
    #[error("the password is too easy to guess{}", .0.as_ref().map(|w| format!(" ({})", w.trim_end_matches('.'))).unwrap_or_default())]
    TooWeak(Option<String>),
}

/// The bounds every password in clear keeps, whatever the policy: not
/// empty, at most [`MAX_PASSWORD_LEN`] bytes. Imported cleartext passwords
/// are held to these only (see [`PasswordPolicy`]).
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

/// Checks a new password against `policy` and hashes it (argon2id, on the
/// calling thread: blocking, for the CLI, the admin socket's blocking pool
/// and bootstrap).
pub fn hash_blocking(
    hasher: &Hasher,
    policy: &PasswordPolicy,
    password: &str,
    context: &[&str],
) -> Result<String, AccountError> {
    policy.check(password, context)?;
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
    fn the_default_policy_refuses_short_blank_and_common_passwords() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check("x", &[]), Err(PasswordRefusal::TooShort(8)));
        assert_eq!(p.check("        ", &[]), Err(PasswordRefusal::Blank));
        assert_eq!(p.check(" \t ", &[]), Err(PasswordRefusal::Blank));
        for weak in [
            "password",
            "12345678",
            "qwertyuiop",
            "aaaaaaaaaa",
            "Password1",
        ] {
            assert!(
                matches!(p.check(weak, &[]), Err(PasswordRefusal::TooWeak(_))),
                "{weak}"
            );
        }
        // Built from the account's own name.
        assert!(matches!(
            p.check("bartholomew2026", &["bartholomew", "Bart Smith"]),
            Err(PasswordRefusal::TooWeak(_))
        ));
        assert_eq!(
            p.check("password", &[]).unwrap_err().to_string(),
            "the password is too easy to guess (This is a top-10 common password)"
        );
        // Characters, not bytes: eight umlauts are long enough.
        assert_eq!(PasswordPolicy::LENGTH_ONLY.check("ä", &[]), Ok(()));
        for ok in [
            "correct horse battery staple",
            "Tea-at-the-Mad-Hatter's",
            "vK4#pz91!qQ",
        ] {
            assert_eq!(p.check(ok, &["alice"]), Ok(()), "{ok}");
        }
    }

    /// The passwords of the README's walkthrough pass the default policy.
    #[test]
    fn the_readme_examples_pass() {
        let p = PasswordPolicy::default();
        for (pw, user) in [
            ("down-the-rabbit-hole", "alice"),
            ("bot-secret", "search-bot"),
            ("carol-secret", "carol"),
        ] {
            assert_eq!(p.check(pw, &[user]), Ok(()), "{pw}");
            let readme = include_str!("../../README.md");
            assert!(readme.contains(pw), "{pw} is no longer in the README");
        }
    }

    #[test]
    fn length_only_keeps_the_bounds() {
        let p = PasswordPolicy::LENGTH_ONLY;
        assert_eq!(p.check("x", &[]), Ok(()));
        assert_eq!(p.check("", &[]), Err(PasswordRefusal::Empty));
        assert_eq!(p.check(" ", &[]), Err(PasswordRefusal::Blank));
        assert_eq!(
            p.check(&"a".repeat(MAX_PASSWORD_LEN + 1), &[]),
            Err(PasswordRefusal::TooLong)
        );
    }

    #[test]
    fn generated_passwords_pass_the_policy_and_differ() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), GENERATED_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(PasswordPolicy::default().check(&a, &["admin"]), Ok(()));
        let strict = PasswordPolicy {
            min_length: GENERATED_LEN,
            min_strength: MAX_STRENGTH,
        };
        assert_eq!(strict.check(&a, &["admin"]), Ok(()));
        assert_ne!(a, b);
    }
}

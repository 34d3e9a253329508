//! Password hashes imported from other directories, and how they verify.
//!
//! A user moved in from OpenLDAP, 389-ds, glauth or lldap keeps the hash it
//! had, so nobody's password has to be reset. The credentials tree then
//! holds one string per user, and the prefix says what it is:
//!
//! | stored string | meaning |
//! | --- | --- |
//! | `$argon2id$v=19$…` | native: Portcullis's own argon2id PHC string |
//! | `{SSHA}…`, `{SSHA256}…`, `{SSHA512}…`, `{SHA}…` | RFC 2307-style digests (salted: base64 of digest ‖ salt) |
//! | `{CRYPT}$6$…`, `{CRYPT}$5$…`, `{CRYPT}$2b$…` | sha512-crypt, sha256-crypt, bcrypt (`$2a$`/`$2b$`/`$2y$`) |
//! | `{ARGON2}$argon2i$…` | OpenLDAP pw-argon2 (PHC string; argon2i or argon2id) |
//! | `{PBKDF2-SHA512}<iter>$<salt>$<dk>` | OpenLDAP pw-pbkdf2; salt and key in "adapted base64" (`.` for `+`, no padding) |
//!
//! Legacy hashes verify through [`verify_legacy`] and should be replaced by
//! an argon2id hash at the next successful bind ([`needs_rehash`]).
//! `{CLEARTEXT}` and scheme-less values are passwords in clear, which the
//! importer hashes at once ([`StoredPassword::Cleartext`]).
//!
//! Every comparison of a computed digest with a stored one is constant-time.
//! Work factors are bounded ([`MAX_ROUNDS`], [`MAX_BCRYPT_COST`],
//! [`MAX_ARGON2_MEMORY_KIB`]), so an imported hash cannot make a bind cost
//! minutes. Nothing here logs, and no `Debug` shows a hash or password.
//! This module decides nothing about users: the bind path calls it.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::fmt;
use subtle::ConstantTimeEq;

use super::Secret;

/// Longest `userPassword` value accepted at import (bytes).
pub const MAX_PASSWORD_VALUE: usize = 4096;
/// Highest sha-crypt rounds / PBKDF2 iterations accepted. sha512-crypt's
/// default is 5,000 and pw-pbkdf2's 10,000; passlib's defaults reach
/// 656,000, which stays under this.
pub const MAX_ROUNDS: u32 = 1_000_000;
/// Highest bcrypt cost accepted (2^16 rounds, a few seconds).
pub const MAX_BCRYPT_COST: u32 = 16;
/// Highest argon2 memory cost accepted for an imported hash, in KiB.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
/// Highest argon2 time cost accepted for an imported hash.
pub const MAX_ARGON2_ITERATIONS: u32 = 16;

/// Why a `userPassword` value cannot be imported. The message never holds
/// the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyError {
    #[error("the password scheme {0} is not supported")]
    UnsupportedScheme(String),
    #[error("malformed {0} hash: {1}")]
    Malformed(&'static str, String),
    #[error("the {0} hash asks for more work than allowed: {1}")]
    TooCostly(&'static str, String),
    #[error("the userPassword value is not valid UTF-8")]
    NotUtf8,
    #[error("the userPassword value is empty")]
    Empty,
    #[error("the userPassword value is longer than {MAX_PASSWORD_VALUE} bytes")]
    TooLong,
}

/// The digest of an `{SSHA*}`/`{SHA}` hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlg {
    Sha1,
    Sha256,
    Sha512,
}

impl DigestAlg {
    fn len(self) -> usize {
        match self {
            DigestAlg::Sha1 => 20,
            DigestAlg::Sha256 => 32,
            DigestAlg::Sha512 => 64,
        }
    }

    fn digest(self, password: &[u8], salt: &[u8]) -> Vec<u8> {
        match self {
            DigestAlg::Sha1 => Sha1::new()
                .chain_update(password)
                .chain_update(salt)
                .finalize()
                .to_vec(),
            DigestAlg::Sha256 => Sha256::new()
                .chain_update(password)
                .chain_update(salt)
                .finalize()
                .to_vec(),
            DigestAlg::Sha512 => Sha512::new()
                .chain_update(password)
                .chain_update(salt)
                .finalize()
                .to_vec(),
        }
    }
}

/// A parsed legacy hash. Its `Debug` shows the scheme only.
#[derive(Clone, PartialEq, Eq)]
pub enum LegacyHash {
    /// `{SSHA}`, `{SSHA256}`, `{SSHA512}`: digest(password ‖ salt) ‖ salt.
    Salted {
        alg: DigestAlg,
        digest: Vec<u8>,
        salt: Vec<u8>,
    },
    /// `{SHA}`: unsalted SHA-1.
    Sha1(Vec<u8>),
    /// `{CRYPT}$6$…`
    ShaCrypt512(String),
    /// `{CRYPT}$5$…`
    ShaCrypt256(String),
    /// `{CRYPT}$2a$…`, `$2b$`, `$2y$`
    Bcrypt(String),
    /// `{ARGON2}` or a bare PHC string: argon2i or argon2id.
    Argon2(String),
    /// `{PBKDF2-SHA512}iterations$salt$dk`.
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        dk: Vec<u8>,
    },
}

impl fmt::Debug for LegacyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LegacyHash({}, ********)", self.scheme())
    }
}

/// Splits `{SCHEME}rest`, the scheme uppercased. `None` without braces.
fn split_scheme(value: &str) -> Option<(String, &str)> {
    let rest = value.strip_prefix('{')?;
    let end = rest.find('}')?;
    let scheme = &rest[..end];
    if scheme.is_empty()
        || scheme.len() > 32
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return None;
    }
    Some((scheme.to_ascii_uppercase(), &rest[end + 1..]))
}

fn malformed(scheme: &'static str, why: impl Into<String>) -> LegacyError {
    LegacyError::Malformed(scheme, why.into())
}

impl LegacyHash {
    /// Parses a scheme-tagged stored string (`{SSHA}…`, `{CRYPT}$6$…`, …)
    /// or a bare `$argon2i$`/`$argon2id$` PHC string. `{CLEARTEXT}` and
    /// untagged values are not hashes: see [`parse_user_password`].
    pub fn parse(stored: &str) -> Result<LegacyHash, LegacyError> {
        if stored.starts_with("$argon2") {
            return parse_argon2(stored);
        }
        let Some((scheme, rest)) = split_scheme(stored) else {
            return Err(LegacyError::UnsupportedScheme("(none)".into()));
        };
        match scheme.as_str() {
            "SSHA" => salted(DigestAlg::Sha1, "{SSHA}", rest),
            "SSHA256" => salted(DigestAlg::Sha256, "{SSHA256}", rest),
            "SSHA512" => salted(DigestAlg::Sha512, "{SSHA512}", rest),
            "SHA" => {
                let digest = STANDARD
                    .decode(rest.trim())
                    .map_err(|e| malformed("{SHA}", e.to_string()))?;
                if digest.len() != 20 {
                    return Err(malformed("{SHA}", "the digest is not 20 bytes"));
                }
                Ok(LegacyHash::Sha1(digest))
            }
            "CRYPT" => parse_crypt(rest),
            "ARGON2" => parse_argon2(rest),
            "PBKDF2-SHA512" => parse_pbkdf2(rest),
            other => Err(LegacyError::UnsupportedScheme(format!("{{{other}}}"))),
        }
    }

    /// The scheme tag, e.g. `{SSHA512}` or `{CRYPT} sha512-crypt`.
    pub fn scheme(&self) -> &'static str {
        match self {
            LegacyHash::Salted {
                alg: DigestAlg::Sha1,
                ..
            } => "{SSHA}",
            LegacyHash::Salted {
                alg: DigestAlg::Sha256,
                ..
            } => "{SSHA256}",
            LegacyHash::Salted {
                alg: DigestAlg::Sha512,
                ..
            } => "{SSHA512}",
            LegacyHash::Sha1(_) => "{SHA}",
            LegacyHash::ShaCrypt512(_) => "{CRYPT} sha512-crypt",
            LegacyHash::ShaCrypt256(_) => "{CRYPT} sha256-crypt",
            LegacyHash::Bcrypt(_) => "{CRYPT} bcrypt",
            LegacyHash::Argon2(_) => "{ARGON2}",
            LegacyHash::Pbkdf2Sha512 { .. } => "{PBKDF2-SHA512}",
        }
    }

    /// True when `password` matches. CPU-heavy for the crypt, PBKDF2 and
    /// argon2 schemes: call it off the async reactor.
    pub fn verify(&self, password: &str) -> bool {
        let pw = password.as_bytes();
        match self {
            LegacyHash::Salted { alg, digest, salt } => {
                bool::from(alg.digest(pw, salt).ct_eq(digest))
            }
            LegacyHash::Sha1(digest) => bool::from(DigestAlg::Sha1.digest(pw, &[]).ct_eq(digest)),
            // sha-crypt compares with `subtle`; bcrypt compares its output
            // in constant time too.
            LegacyHash::ShaCrypt512(h) => sha_crypt::sha512_check(password, h).is_ok(),
            LegacyHash::ShaCrypt256(h) => sha_crypt::sha256_check(password, h).is_ok(),
            LegacyHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            LegacyHash::Argon2(phc) => match PasswordHash::new(phc) {
                // The verifier takes algorithm, version and costs from the
                // hash and compares in constant time.
                Ok(parsed) => argon2::Argon2::default()
                    .verify_password(pw, &parsed)
                    .is_ok(),
                Err(_) => false,
            },
            LegacyHash::Pbkdf2Sha512 {
                iterations,
                salt,
                dk,
            } => {
                let mut out = vec![0u8; dk.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(pw, salt, *iterations, &mut out);
                bool::from(out.ct_eq(dk))
            }
        }
    }
}

fn salted(alg: DigestAlg, scheme: &'static str, rest: &str) -> Result<LegacyHash, LegacyError> {
    let bytes = STANDARD
        .decode(rest.trim())
        .map_err(|e| malformed(scheme, e.to_string()))?;
    if bytes.len() <= alg.len() {
        return Err(malformed(scheme, "no salt after the digest"));
    }
    let (digest, salt) = bytes.split_at(alg.len());
    Ok(LegacyHash::Salted {
        alg,
        digest: digest.to_vec(),
        salt: salt.to_vec(),
    })
}

/// Reads `rounds=N$` of a sha-crypt string, if present.
fn sha_crypt_rounds(rest: &str) -> Result<(), LegacyError> {
    if let Some(r) = rest.strip_prefix("rounds=") {
        let n: u32 = r
            .split('$')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| malformed("{CRYPT}", "unreadable rounds"))?;
        if n > MAX_ROUNDS {
            return Err(LegacyError::TooCostly(
                "{CRYPT}",
                format!("{n} rounds (at most {MAX_ROUNDS})"),
            ));
        }
    }
    Ok(())
}

fn parse_crypt(rest: &str) -> Result<LegacyHash, LegacyError> {
    let h = rest.trim();
    if let Some(tail) = h.strip_prefix("$6$") {
        sha_crypt_rounds(tail)?;
        check_shape(h, "sha512-crypt")?;
        return Ok(LegacyHash::ShaCrypt512(h.to_string()));
    }
    if let Some(tail) = h.strip_prefix("$5$") {
        sha_crypt_rounds(tail)?;
        check_shape(h, "sha256-crypt")?;
        return Ok(LegacyHash::ShaCrypt256(h.to_string()));
    }
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        if let Some(tail) = h.strip_prefix(prefix) {
            let cost: u32 = tail
                .get(..2)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| malformed("{CRYPT}", "unreadable bcrypt cost"))?;
            if cost > MAX_BCRYPT_COST {
                return Err(LegacyError::TooCostly(
                    "{CRYPT}",
                    format!("bcrypt cost {cost} (at most {MAX_BCRYPT_COST})"),
                ));
            }
            // $2x$NN$ + 22 salt + 31 hash characters.
            if h.len() != 60 {
                return Err(malformed("{CRYPT}", "a bcrypt hash has 60 characters"));
            }
            return Ok(LegacyHash::Bcrypt(h.to_string()));
        }
    }
    let kind = if h.starts_with("$1$") {
        "{CRYPT} md5-crypt".to_string()
    } else if h.starts_with('$') {
        format!(
            "{{CRYPT}} {}",
            h.split('$')
                .nth(1)
                .unwrap_or_default()
                .chars()
                .take(8)
                .collect::<String>()
        )
    } else {
        "{CRYPT} DES".to_string()
    };
    Err(LegacyError::UnsupportedScheme(kind))
}

/// A crypt string must be printable ASCII with `$`-separated fields.
fn check_shape(h: &str, what: &str) -> Result<(), LegacyError> {
    if h.len() > 256 || !h.bytes().all(|b| b.is_ascii_graphic()) || h.split('$').count() < 4 {
        return Err(malformed("{CRYPT}", format!("not a {what} string")));
    }
    Ok(())
}

fn parse_argon2(phc: &str) -> Result<LegacyHash, LegacyError> {
    let phc = phc.trim();
    let parsed = PasswordHash::new(phc).map_err(|e| malformed("{ARGON2}", e.to_string()))?;
    let alg = parsed.algorithm.as_str();
    if alg != "argon2i" && alg != "argon2id" {
        return Err(LegacyError::UnsupportedScheme(format!("{{ARGON2}} {alg}")));
    }
    if parsed.hash.is_none() {
        return Err(malformed("{ARGON2}", "no hash"));
    }
    let param = |name: &str| parsed.params.get_decimal(name);
    if param("m").is_some_and(|m| m > MAX_ARGON2_MEMORY_KIB)
        || param("t").is_some_and(|t| t > MAX_ARGON2_ITERATIONS)
        || param("p").is_some_and(|p| p > 16)
    {
        return Err(LegacyError::TooCostly(
            "{ARGON2}",
            format!("m={:?} t={:?} p={:?}", param("m"), param("t"), param("p")),
        ));
    }
    Ok(LegacyHash::Argon2(phc.to_string()))
}

/// OpenLDAP's "adapted base64": standard alphabet with `.` for `+`, no
/// padding.
fn adapted_b64(s: &str) -> Option<Vec<u8>> {
    STANDARD_NO_PAD
        .decode(s.replace('.', "+").trim_end_matches('='))
        .ok()
}

fn parse_pbkdf2(rest: &str) -> Result<LegacyHash, LegacyError> {
    const S: &str = "{PBKDF2-SHA512}";
    let mut parts = rest.trim().split('$');
    let (Some(iter), Some(salt), Some(dk), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(S, "expected iterations$salt$key"));
    };
    let iterations: u32 = iter
        .parse()
        .map_err(|_| malformed(S, "unreadable iteration count"))?;
    if iterations == 0 {
        return Err(malformed(S, "zero iterations"));
    }
    if iterations > MAX_ROUNDS {
        return Err(LegacyError::TooCostly(
            S,
            format!("{iterations} iterations (at most {MAX_ROUNDS})"),
        ));
    }
    let salt = adapted_b64(salt).ok_or_else(|| malformed(S, "unreadable salt"))?;
    let dk = adapted_b64(dk).ok_or_else(|| malformed(S, "unreadable key"))?;
    if salt.is_empty() || dk.is_empty() || dk.len() > 64 {
        return Err(malformed(S, "empty salt or key of a wrong length"));
    }
    Ok(LegacyHash::Pbkdf2Sha512 {
        iterations,
        salt,
        dk,
    })
}

/// What an imported `userPassword` value becomes.
pub enum StoredPassword {
    /// A native argon2id PHC string (`$argon2id$…`, or `{ARGON2}$argon2id$…`
    /// with the tag dropped): stored as-is and verified by the normal path.
    Argon2Phc(String),
    /// A legacy hash, stored as its scheme-tagged string (`{SSHA}…`,
    /// `{CRYPT}$6$…`, `{ARGON2}$argon2i$…`), scheme tag uppercased.
    Legacy(String),
    /// A password in clear (`{CLEARTEXT}` or no scheme): hash it before
    /// storing it.
    Cleartext(Secret),
}

impl StoredPassword {
    /// A short, secret-free label for reports: `argon2id`, the legacy
    /// scheme, or `cleartext`.
    pub fn kind(&self) -> String {
        match self {
            StoredPassword::Argon2Phc(_) => "argon2id".into(),
            StoredPassword::Legacy(s) => LegacyHash::parse(s)
                .map(|h| h.scheme().to_string())
                .unwrap_or_else(|_| "legacy".into()),
            StoredPassword::Cleartext(_) => "cleartext (hashed at import)".into(),
        }
    }
}

impl fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredPassword({}, ********)", self.kind())
    }
}

impl Clone for StoredPassword {
    fn clone(&self) -> Self {
        match self {
            StoredPassword::Argon2Phc(s) => StoredPassword::Argon2Phc(s.clone()),
            StoredPassword::Legacy(s) => StoredPassword::Legacy(s.clone()),
            StoredPassword::Cleartext(s) => StoredPassword::Cleartext(Secret(s.0.clone())),
        }
    }
}

/// Classifies one imported `userPassword` value.
///
/// - `$argon2id$…` and `{ARGON2}$argon2id$…` → [`StoredPassword::Argon2Phc`];
/// - `{SSHA}`, `{SSHA256}`, `{SSHA512}`, `{SHA}`, `{CRYPT}` (sha512-crypt,
///   sha256-crypt, bcrypt), `{ARGON2}$argon2i$…`, `{PBKDF2-SHA512}` →
///   [`StoredPassword::Legacy`] after checking that it parses;
/// - `{CLEARTEXT}x` → cleartext `x`; a value with no `{SCHEME}` prefix →
///   cleartext, the whole value;
/// - any other `{SCHEME}` (`{MD5}`, `{SMD5}`, `{SASL}`, DES or MD5 crypt…)
///   → [`LegacyError::UnsupportedScheme`]: such a user is imported without
///   a password, and the importer says so.
pub fn parse_user_password(value: &[u8]) -> Result<StoredPassword, LegacyError> {
    if value.is_empty() {
        return Err(LegacyError::Empty);
    }
    if value.len() > MAX_PASSWORD_VALUE {
        return Err(LegacyError::TooLong);
    }
    let text = std::str::from_utf8(value).map_err(|_| LegacyError::NotUtf8)?;
    if text.starts_with("$argon2id$") {
        parse_argon2(text)?;
        return Ok(StoredPassword::Argon2Phc(text.trim().to_string()));
    }
    let Some((scheme, rest)) = split_scheme(text) else {
        return Ok(StoredPassword::Cleartext(Secret(text.to_string())));
    };
    if scheme == "CLEARTEXT" {
        if rest.is_empty() {
            return Err(LegacyError::Empty);
        }
        return Ok(StoredPassword::Cleartext(Secret(rest.to_string())));
    }
    if scheme == "ARGON2" && rest.trim().starts_with("$argon2id$") {
        parse_argon2(rest)?;
        return Ok(StoredPassword::Argon2Phc(rest.trim().to_string()));
    }
    let tagged = format!("{{{scheme}}}{}", rest.trim());
    LegacyHash::parse(&tagged)?;
    Ok(StoredPassword::Legacy(tagged))
}

/// True when `stored` is a legacy, scheme-tagged hash (starts with `{`),
/// which [`verify_legacy`] verifies rather than the native argon2id path.
pub fn is_legacy(stored: &str) -> bool {
    stored.starts_with('{')
}

/// Verifies `password` against a stored legacy string (`{SSHA}…`, …).
/// Unparsable or unsupported strings never verify. CPU-heavy for the
/// crypt, PBKDF2 and argon2 schemes: run it on the blocking pool.
pub fn verify_legacy(stored: &str, password: &str) -> bool {
    match LegacyHash::parse(stored) {
        Ok(h) => h.verify(password),
        Err(_) => false,
    }
}

/// True when a stored string should be replaced by a fresh argon2id hash
/// after the next successful bind: anything but a native `$argon2id$`
/// PHC string.
pub fn needs_rehash(stored: &str) -> bool {
    !stored.starts_with("$argon2id$")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The password of every vector below.
    const PW: &str = "correct horse";

    // Produced with Python's hashlib (salt 01..08) and crypt(3) of glibc /
    // libxcrypt, and the reference `argon2` command-line tool (Debian
    // package argon2); PBKDF2 with hashlib.pbkdf2_hmac, salt 00..0f,
    // encoded in adapted base64 as pw-pbkdf2 and passlib write it.
    const SSHA: &str = "{SSHA}NSZEu/ZzEMKdBO5ESNEYml3qKRYBAgMEBQYHCA==";
    const SSHA256: &str = "{SSHA256}CFsq5JPfiBQ0W3uR5Dnao+9mknEq9a739V+FPkJ6yjABAgMEBQYHCA==";
    const SSHA512: &str = "{SSHA512}ggObOJHDWCqgI5uFv/j9yDNYMvdTgt+Toj8d6cGrSG/e+E9GbH4DkQ8y5jY3NblhoGens+zNVX1mZaFy0qwRwwECAwQFBgcI";
    const SHA: &str = "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=";
    const SHA512_CRYPT: &str = "{CRYPT}$6$saltsaltsalt$Cy2drr8kDRji6smvDcT28wkqtq0R0VzVL5CkrjPQCITc5d/31j94knt9rGTcVSyjLXfjsiIsBh5ee8qR/3QDx1";
    const SHA512_CRYPT_ROUNDS: &str = "{CRYPT}$6$rounds=10000$Nacl$U1gXg5z/ev6MhQxjuTcDx0HmhGCodsd1zXamBokWYXSQjLw2kIUjxPb/iYmBhJ7iiZrEqbwIwPz8Bxo.eJKzn/";
    const SHA256_CRYPT: &str = "{CRYPT}$5$saltsalt$myjXcpMpE2Ofk7fj9hqyNYSn6lmWG4Mqnjx.KIRRr4/";
    const BCRYPT_2A: &str = "{CRYPT}$2a$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e";
    const BCRYPT_2B: &str = "{CRYPT}$2b$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e";
    const BCRYPT_2Y: &str = "{CRYPT}$2y$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e";
    const ARGON2I: &str = "{ARGON2}$argon2i$v=19$m=1024,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$DvOFzkGfq+KnIJd6iT3E79g7tvGBhMTX1w99hbpDw54";
    const ARGON2ID: &str = "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4BnlcpLz5MRq0Izs2E2zIqpIFISeK/m9DFKmAc7uq5Y";
    const PBKDF2: &str = "{PBKDF2-SHA512}10000$AAECAwQFBgcICQoLDA0ODw$ECEiF3rHxiQNn3eIhD3/rQu7JgNUuHNkEwXr67HsHXDuCHXNSrvzIej3ijbWJ6UeJwPOircNgc2J7kJoHTU9dA";

    const LEGACY: &[&str] = &[
        SSHA,
        SSHA256,
        SSHA512,
        SHA,
        SHA512_CRYPT,
        SHA512_CRYPT_ROUNDS,
        SHA256_CRYPT,
        BCRYPT_2A,
        BCRYPT_2B,
        BCRYPT_2Y,
        ARGON2I,
        PBKDF2,
    ];

    #[test]
    fn every_scheme_verifies_the_right_password_only() {
        for stored in LEGACY {
            assert!(verify_legacy(stored, PW), "{stored}");
            assert!(!verify_legacy(stored, "correct horsf"), "{stored}");
            assert!(!verify_legacy(stored, ""), "{stored}");
            assert!(is_legacy(stored));
            assert!(needs_rehash(stored));
        }
    }

    #[test]
    fn native_argon2id() {
        match parse_user_password(ARGON2ID.as_bytes()) {
            Ok(StoredPassword::Argon2Phc(s)) => assert_eq!(s, ARGON2ID),
            other => panic!("{other:?}"),
        }
        let tagged = format!("{{ARGON2}}{ARGON2ID}");
        match parse_user_password(tagged.as_bytes()) {
            Ok(StoredPassword::Argon2Phc(s)) => assert_eq!(s, ARGON2ID),
            other => panic!("{other:?}"),
        }
        assert!(!needs_rehash(ARGON2ID));
        assert!(!is_legacy(ARGON2ID));
        // The generic path verifies it too (used when the hash is bare).
        assert!(LegacyHash::parse(ARGON2ID).is_ok_and(|h| h.verify(PW)));
    }

    #[test]
    fn import_classification() {
        for stored in LEGACY {
            match parse_user_password(stored.as_bytes()) {
                Ok(StoredPassword::Legacy(s)) => assert_eq!(&s, stored),
                other => panic!("{stored}: {other:?}"),
            }
        }
        // Scheme tags are case-insensitive; the stored form is uppercased.
        match parse_user_password(b"{ssha}NSZEu/ZzEMKdBO5ESNEYml3qKRYBAgMEBQYHCA==") {
            Ok(StoredPassword::Legacy(s)) => assert_eq!(s, SSHA),
            other => panic!("{other:?}"),
        }
        match parse_user_password(b"{CLEARTEXT}s3cret") {
            Ok(StoredPassword::Cleartext(s)) => assert_eq!(s.0, "s3cret"),
            other => panic!("{other:?}"),
        }
        match parse_user_password(b"plain words") {
            Ok(StoredPassword::Cleartext(s)) => assert_eq!(s.0, "plain words"),
            other => panic!("{other:?}"),
        }
        for (bad, needle) in [
            (&b"{MD5}X03MO1qnZdYdgyfeuILPmQ=="[..], "{MD5}"),
            (b"{CRYPT}$1$salt$hash", "md5-crypt"),
            (b"{CRYPT}abJnggxhB/yWI", "DES"),
            (b"{SSHA}!!!", "malformed"),
            (b"{SSHA}NSZEu/ZzEMKdBO5ESNEYml3qKRY=", "salt"),
            (b"{CRYPT}$6$rounds=99999999$x$y", "more work"),
            (b"{CRYPT}$2b$31$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e", "more work"),
            (b"{PBKDF2-SHA512}10000$AAEC", "iterations$salt$key"),
            (b"{ARGON2}$argon2d$v=19$m=1024,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$DvOFzkGfq+KnIJd6iT3E79g7tvGBhMTX1w99hbpDw54", "argon2d"),
            (b"", "empty"),
            (b"\xff\xfe", "UTF-8"),
        ] {
            let e = parse_user_password(bad).expect_err(&String::from_utf8_lossy(bad));
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
        assert!(matches!(
            parse_user_password(&vec![b'a'; MAX_PASSWORD_VALUE + 1]),
            Err(LegacyError::TooLong)
        ));
    }

    #[test]
    fn garbage_never_verifies() {
        for stored in [
            "",
            "{",
            "{SSHA}",
            "{CRYPT}",
            "{NOPE}abc",
            "$argon2id$x",
            "plain",
        ] {
            assert!(!verify_legacy(stored, ""), "{stored}");
            assert!(!verify_legacy(stored, PW), "{stored}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let h = LegacyHash::parse(SSHA512).expect("parses");
        let shown = format!("{h:?}");
        assert!(!shown.contains("ggOb"), "{shown}");
        let p = parse_user_password(b"{CLEARTEXT}hunter2").expect("parses");
        assert!(!format!("{p:?}").contains("hunter2"));
        let p = parse_user_password(SSHA.as_bytes()).expect("parses");
        assert!(!format!("{p:?}").contains("NSZE"));
    }
}

//! Static (recovery) tokens: single-use codes of [`TOKEN_LEN`] characters
//! from an alphabet without look-alikes (no 0/O, 1/I/L), shown once and
//! stored only as keyed hashes.
//!
//! 12 characters from 31 symbols are about 59 bits: far beyond guessing
//! under the bind throttle, so a keyed hash (not argon2) is enough.

use rand::Rng;

use super::keys::ServerKey;
use crate::domain::KeyedHash;

/// Characters of a token.
pub const TOKEN_LEN: usize = 12;
/// Tokens per device unless `--count` says otherwise.
pub const DEFAULT_COUNT: u8 = 6;
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const DOMAIN: &str = "portcullis static token v1";

/// A new random token.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    (0..TOKEN_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Whether `code` has the shape of a token (case-insensitive).
pub fn looks_like_token(code: &str) -> bool {
    code.len() == TOKEN_LEN
        && code
            .bytes()
            .all(|b| ALPHABET.contains(&b.to_ascii_uppercase()))
}

/// The stored form of a token: its keyed hash, after upper-casing (users
/// may type tokens in lower case).
pub fn hash(key: &ServerKey, token: &str) -> KeyedHash {
    key.keyed_hash(DOMAIN, token.to_ascii_uppercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_promised_shape() {
        for _ in 0..100 {
            let t = generate();
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(looks_like_token(&t), "{t}");
            assert!(!t.contains(['0', 'O', '1', 'I', 'L']), "{t}");
        }
        assert!(!looks_like_token("123456"));
        assert!(!looks_like_token("ABCDEFGHJKM0"));
    }

    #[test]
    fn hash_ignores_case_only() {
        let k = ServerKey::generate();
        assert_eq!(hash(&k, "abcdefghjkmn"), hash(&k, "ABCDEFGHJKMN"));
        assert_ne!(hash(&k, "ABCDEFGHJKMN"), hash(&k, "ABCDEFGHJKMP"));
    }
}

//! App passwords: random secrets for systems that cannot send a code.
//!
//! A secret is [`PREFIX`] followed by 32 lower-case base32 characters (160
//! random bits), so secret scanners can recognise a leaked one. Only its
//! keyed hash is stored, and the store indexes that hash, so checking a
//! bind is one HMAC and one lookup.

use super::keys::ServerKey;
use crate::domain::KeyedHash;

/// Marks a Portcullis app password.
pub const PREFIX: &str = "pcap_";
const RANDOM_BYTES: usize = 20;
/// base32 of 20 bytes, without padding.
const BODY_LEN: usize = 32;
const DOMAIN: &str = "portcullis app password v1";
const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new secret.
pub fn generate() -> String {
    generate_with(PREFIX)
}

/// `prefix` and 160 random bits in lower-case base32 (API tokens share the
/// shape with their own prefix).
pub(super) fn generate_with(prefix: &str) -> String {
    let bytes: [u8; RANDOM_BYTES] = rand::random();
    let mut out = String::with_capacity(prefix.len() + BODY_LEN);
    out.push_str(prefix);
    // 20 bytes = 160 bits = 32 groups of 5 bits.
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((acc >> bits) & 31) as usize]));
        }
    }
    out
}

/// Whether `candidate` has the shape of an app password; anything else
/// is not looked up at all.
pub fn looks_like_app_password(candidate: &str) -> bool {
    has_shape(PREFIX, candidate)
}

/// `candidate` is `prefix` and a body of the generated shape.
pub(super) fn has_shape(prefix: &str, candidate: &str) -> bool {
    candidate.len() == prefix.len() + BODY_LEN
        && candidate.starts_with(prefix)
        && candidate[prefix.len()..]
            .bytes()
            .all(|b| BASE32.contains(&b))
}

/// The stored (and indexed) form of an app password.
pub fn hash(key: &ServerKey, secret: &str) -> KeyedHash {
    key.keyed_hash(DOMAIN, secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognisable_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with("pcap_"), "{a}");
        assert_eq!(a.len(), 37);
        assert!(looks_like_app_password(&a));
        assert!(!looks_like_app_password("pcap_short"));
        assert!(!looks_like_app_password(&a.to_uppercase()));
        assert!(!looks_like_app_password(&format!("{a};123456")));
        let k = ServerKey::generate();
        assert_ne!(hash(&k, &a), hash(&k, &b));
    }
}

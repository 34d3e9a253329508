//! RFC 6238 TOTP codes (HMAC-SHA1, 30 s steps) and the RFC 4648 base32 the
//! secrets are shown in, for the `bind-totp` workload.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Decodes RFC 4648 base32 (upper or lower case, `=` padding and spaces
/// ignored).
pub fn base32_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for c in text.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            other => return Err(format!("{other:?} is not a base32 character")),
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// The code of `secret` for time step `step` (RFC 4226 dynamic truncation).
pub fn code(secret: &[u8], step: u64, digits: u32) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let value = binary % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The 30-second step of `unix_secs`.
pub fn step(unix_secs: u64) -> u64 {
    unix_secs / 30
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA1 key "12345678901234567890", 8 digits.
        let key = b"12345678901234567890";
        for (t, want) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
        ] {
            assert_eq!(code(key, step(t), 8), want, "t={t}");
        }
    }

    #[test]
    fn base32_round() {
        // "12345678901234567890" in base32.
        let decoded = base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").expect("valid");
        assert_eq!(decoded, b"12345678901234567890");
        assert!(base32_decode("not base32!").is_err());
    }
}

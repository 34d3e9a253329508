//! TOTP (RFC 6238): HMAC-SHA1, 30-second steps, 6 or 8 digits, one step of
//! drift either way. The HOTP arithmetic is the `totp-rs` crate's; this
//! module adds what it leaves to the caller: which step a code matched (so
//! a replay of that step, or of an older one, can be refused), secret
//! generation and the `otpauth://` URI.
//!
//! Clock as a parameter: [`matching_step`] takes `now`, so windows and
//! drift are tested without sleeping.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// Seconds per step (RFC 6238 §4, the default every authenticator app uses).
pub const PERIOD: u64 = 30;
/// Bytes of a new secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_LEN: usize = 20;
/// Steps of drift accepted either way.
pub const SKEW: u64 = 1;

/// A fresh random secret.
pub fn generate_secret() -> Vec<u8> {
    let bytes: [u8; SECRET_LEN] = rand::random();
    bytes.to_vec()
}

/// The secret in base32 (RFC 4648, no padding), as authenticator apps
/// expect it.
pub fn secret_base32(secret: &[u8]) -> String {
    totp(secret, 6).get_secret_base32()
}

fn totp(secret: &[u8], digits: u8) -> TOTP {
    // `new_unchecked`: the length rules are enforced where secrets are
    // created and stored, and the RFC test vectors use short secrets.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        usize::from(digits),
        1,
        PERIOD,
        secret.to_vec(),
    )
}

/// The code for `step` (tests and clients).
pub fn code_at_step(secret: &[u8], digits: u8, step: u64) -> String {
    totp(secret, digits).generate(step.saturating_mul(PERIOD))
}

/// The step that `unix_secs` falls in.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / PERIOD
}

/// The latest step within `now`'s window (±[`SKEW`]) whose code equals
/// `code`, if any. Every candidate is compared, in constant time, so the
/// time taken does not tell which one matched.
pub fn matching_step(secret: &[u8], digits: u8, code: &str, unix_secs: u64) -> Option<u64> {
    if code.len() != usize::from(digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, digits);
    let current = step_of(unix_secs);
    let mut found = None;
    for step in current.saturating_sub(SKEW)..=current.saturating_add(SKEW) {
        let expected = t.generate(step.saturating_mul(PERIOD));
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=…&period=30`
/// (the Key Uri Format of Google Authenticator, which every app reads).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8], digits: u8) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={digits}&period={PERIOD}",
        percent_encode(issuer),
        percent_encode(account),
        secret_base32(secret),
        percent_encode(issuer),
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B, SHA1 column.
    #[test]
    fn rfc6238_sha1_vectors() {
        for (t, code) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at_step(RFC_SECRET, 8, step_of(t)), code, "T={t}");
            assert_eq!(matching_step(RFC_SECRET, 8, code, t), Some(step_of(t)));
        }
        // 6 digits are the last six of the same value.
        assert_eq!(code_at_step(RFC_SECRET, 6, step_of(59)), "287082");
    }

    #[test]
    fn window_is_one_step_either_way() {
        let code = code_at_step(RFC_SECRET, 6, 1000);
        for (now, ok) in [
            (999 * PERIOD - 1, false),
            (999 * PERIOD, true),
            (1000 * PERIOD + 29, true),
            (1001 * PERIOD + 29, true),
            (1002 * PERIOD, false),
        ] {
            assert_eq!(
                matching_step(RFC_SECRET, 6, &code, now).is_some(),
                ok,
                "now={now}"
            );
        }
        assert_eq!(
            matching_step(RFC_SECRET, 6, &code, 1001 * PERIOD),
            Some(1000)
        );
    }

    #[test]
    fn malformed_codes_never_match() {
        let now = 1000 * PERIOD;
        let code = code_at_step(RFC_SECRET, 6, 1000);
        assert_eq!(matching_step(RFC_SECRET, 8, &code, now), None);
        assert_eq!(matching_step(RFC_SECRET, 6, "", now), None);
        assert_eq!(matching_step(RFC_SECRET, 6, &format!(" {code}"), now), None);
        assert_eq!(matching_step(RFC_SECRET, 6, "12345a", now), None);
    }

    #[test]
    fn uri_format() {
        let uri = otpauth_uri("Portcullis", "alice", RFC_SECRET, 6);
        assert_eq!(
            uri,
            "otpauth://totp/Portcullis:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Portcullis&algorithm=SHA1&digits=6&period=30"
        );
        assert!(otpauth_uri("My Org", "a", RFC_SECRET, 8).starts_with("otpauth://totp/My%20Org:a?"));
        assert_eq!(generate_secret().len(), SECRET_LEN);
        assert_ne!(generate_secret(), generate_secret());
    }
}

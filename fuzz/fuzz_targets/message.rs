//! Bytes → LDAP codec → operation handler (in-memory store) → responses.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = portcullis::fuzz::messages(data);
});

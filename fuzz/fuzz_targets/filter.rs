//! Bytes → RFC 4515 filter string → `Filter::from_ldap` → matches.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = portcullis::fuzz::filter(data);
});

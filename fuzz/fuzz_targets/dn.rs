//! Bytes → `Dn::parse`; a parsed DN must survive printing and parsing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = portcullis::fuzz::dn(data) {
        panic!("{violation}");
    }
});

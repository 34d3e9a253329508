//! Bytes → LDIF reader → import planner and dry-run report; every entry
//! read must survive the writer unchanged.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = portcullis::fuzz::ldif(data) {
        panic!("{violation}");
    }
});

#![no_main]
//! cargo fuzz run key: see certforge::fuzz::key.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::key(data));

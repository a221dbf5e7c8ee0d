#![no_main]
//! cargo fuzz run expires: see certforge::fuzz::expires.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::expires(data));

#![no_main]
//! cargo fuzz run jws: see certforge::fuzz::jws.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::jws(data));

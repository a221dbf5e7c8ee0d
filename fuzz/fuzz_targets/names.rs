#![no_main]
//! cargo fuzz run names: see certforge::fuzz::names.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::names(data));

#![no_main]
//! cargo fuzz run plan: see certforge::fuzz::plan.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::plan(data));

#![no_main]
//! cargo fuzz run template: see certforge::fuzz::template.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::template(data));

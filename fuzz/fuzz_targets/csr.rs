#![no_main]
//! cargo fuzz run csr: see certforge::fuzz::csr.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::csr(data));

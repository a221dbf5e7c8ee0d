#![no_main]
//! cargo fuzz run finalize_csr: see certforge::fuzz::finalize_csr.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::finalize_csr(data));

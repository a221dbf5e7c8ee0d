#![no_main]
//! cargo fuzz run pem_bundle: see certforge::fuzz::pem_bundle.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::pem_bundle(data));

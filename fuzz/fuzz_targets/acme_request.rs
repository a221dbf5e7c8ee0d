#![no_main]
//! cargo fuzz run acme_request: see certforge::fuzz::acme_request.
libfuzzer_sys::fuzz_target!(|data: &[u8]| certforge::fuzz::acme_request(data));

//! A presented API key, session token or Cookie header.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::credentials(data));

//! A recording file as read back, and written then cut or altered.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::recording(data));

//! SRTP and SRTCP unprotect on both legs, and the protect/unprotect round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::srtp(data));

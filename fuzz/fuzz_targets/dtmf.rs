//! RFC 4733 telephone events as they follow one another from a trunk.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::dtmf(data));

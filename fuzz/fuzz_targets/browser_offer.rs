//! A browser's SDP offer, as signalling checks it and a session answers it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::browser_offer(data));

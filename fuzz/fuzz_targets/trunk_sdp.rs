//! A trunk's SDP, as an answer to our offer and as an offer of its own.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::trunk_sdp(data));

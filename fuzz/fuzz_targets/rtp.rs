//! An RTP packet: the parser, every field, and a rewrite in place.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::rtp(data));

//! A compound RTCP packet and what our receive statistics take from it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::rtcp(data));

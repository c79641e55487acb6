//! A trunk's digest challenge, answered as the SIP stack answers it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::sip_digest(data));

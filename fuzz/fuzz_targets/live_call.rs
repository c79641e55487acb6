//! One call's media after the handshake, driven by a script of datagrams and time.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::live_call(data));

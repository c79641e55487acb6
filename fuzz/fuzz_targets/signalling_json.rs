//! A call request's body and a message on a call's events socket.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::signalling_json(data));

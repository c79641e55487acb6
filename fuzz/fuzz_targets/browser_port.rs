//! A datagram on the browser port: the demux, the routing table and the ICE check.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::browser_port(data));

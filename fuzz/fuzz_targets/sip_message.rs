//! A SIP message on the node's SIP port (UDP, and the TCP/TLS framing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callgate::fuzzing::sip_message(data));

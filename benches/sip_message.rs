//! SIP message parse and build on the trunk leg's call-setup path:
//! parsing a carrier's INVITE answer (200 OK with SDP), serialising a
//! request, and the SDP offer/answer work around it.
//!
//! Run: `cargo bench --bench sip_message`.

use std::hint::black_box;

use callgate::media::sdp::{LocalMediaConfig, Negotiator};
use criterion::{Criterion, criterion_group, criterion_main};
use rsipstack::sip::SipMessage;

const OK_WITH_SDP: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKn5EH5DX7hNBq;rport=5060\r\n\
Record-Route: <sip:198.51.100.7:5060;lr>\r\n\
From: <sip:callgate@192.0.2.1:5060>;tag=21zC4gEP\r\n\
To: <sip:+15550100@203.0.113.9:5060>;tag=6492SIPpTag011\r\n\
Call-ID: 432a43345c314aa9abc5fdfa5ef3543e@callgate\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:203.0.113.9:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, UPDATE\r\n\
Supported: timer\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 232\r\n\
\r\n\
v=0\r\n\
o=carrier 53655765 2353687637 IN IP4 203.0.113.9\r\n\
s=-\r\n\
c=IN IP4 203.0.113.9\r\n\
t=0 0\r\n\
m=audio 16000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn parse_and_build(c: &mut Criterion) {
    c.bench_function("sip_parse_200_ok_with_sdp", |b| {
        b.iter(|| {
            let message = SipMessage::try_from(black_box(OK_WITH_SDP)).expect("parses");
            black_box(message);
        })
    });
    let message = SipMessage::try_from(OK_WITH_SDP).expect("parses");
    c.bench_function("sip_build_200_ok_with_sdp", |b| {
        b.iter(|| black_box(black_box(&message).to_string()))
    });
}

fn offer_answer(c: &mut Criterion) {
    let config = LocalMediaConfig::new("192.0.2.1".parse().expect("ip"), 20000);
    c.bench_function("sdp_offer_then_answer", |b| {
        b.iter(|| {
            let mut negotiator = Negotiator::new(config.clone(), 1).expect("config");
            let offer = negotiator.create_offer().expect("offer");
            black_box(offer);
            let body = OK_WITH_SDP.split("\r\n\r\n").nth(1).expect("body");
            black_box(negotiator.handle_answer(body.as_bytes()).expect("answer"))
        })
    });
}

criterion_group!(benches, parse_and_build, offer_answer);
criterion_main!(benches);

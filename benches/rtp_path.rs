//! The trunk-side packet path without sockets: what one 172-byte PCMU
//! packet costs from arrival to the datagram we send on.
//!
//! - `parse`: header view and validation.
//! - `relay_plain`: parse, source and payload-type checks, stream rewrite,
//!   header rewrite in a reusable buffer.
//! - `relay_srtp`: the same with SRTP unprotect on the way in and protect on
//!   the way out (the packet to unprotect is made outside the timing).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use callgate::media::rtp::{
    RewriteInput, RtpHeader, RtpPacket, RtpPacketMut, Ssrc, StreamRewriter, StreamStart,
};
use callgate::media::srtp::{SrtpKeyMaterial, sdes};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const AUDIO_PT: u8 = 0;
const DTMF_PT: u8 = 101;

fn pcmu_packet(seq: u16) -> Vec<u8> {
    let mut buf = Vec::with_capacity(200);
    let header = RtpHeader {
        payload_type: AUDIO_PT,
        marker: false,
        sequence: seq,
        timestamp: u32::from(seq).wrapping_mul(160),
        ssrc: Ssrc(0x1234_5678),
    };
    header
        .write_packet(&[0xd5; 160], &mut buf)
        .expect("valid header");
    buf
}

/// Receive side checks and the rewrite into `out`; false when dropped.
fn relay(
    packet: &[u8],
    src: SocketAddr,
    latched: SocketAddr,
    rewriter: &mut StreamRewriter,
    now: Instant,
    out: &mut Vec<u8>,
) -> bool {
    let Ok(parsed) = RtpPacket::parse(packet) else {
        return false;
    };
    if src != latched || (parsed.payload_type() != AUDIO_PT && parsed.payload_type() != DTMF_PT) {
        return false;
    }
    let input = RewriteInput {
        ssrc: parsed.ssrc(),
        sequence: parsed.sequence(),
        timestamp: parsed.timestamp(),
        marker: parsed.marker(),
    };
    let Some(rewritten) = rewriter.rewrite(now, input) else {
        return false;
    };
    out.clear();
    out.extend_from_slice(packet);
    let Ok(mut header) = RtpPacketMut::new(out) else {
        return false;
    };
    header.apply(&rewritten);
    header.set_payload_type(AUDIO_PT).is_ok()
}

fn rewriter(t0: Instant) -> StreamRewriter {
    let start = StreamStart {
        ssrc: Ssrc(0xcafe_f00d),
        sequence: 1,
        timestamp: 1,
    };
    StreamRewriter::new(start, 8000, t0)
}

fn bench(c: &mut Criterion) {
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000);
    let t0 = Instant::now();

    let packet = pcmu_packet(1);
    c.bench_function("parse", |b| {
        b.iter(|| RtpPacket::parse(black_box(&packet)).map(|p| p.payload().len()))
    });

    let mut rw = rewriter(t0);
    let mut packet = pcmu_packet(0);
    let mut out = Vec::with_capacity(256);
    let mut seq = 0u16;
    c.bench_function("relay_plain", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            let now = t0 + Duration::from_millis(20 * u64::from(seq));
            relay(black_box(&packet), peer, peer, &mut rw, now, &mut out)
        })
    });

    let (theirs, ours) = (SrtpKeyMaterial::generate(), SrtpKeyMaterial::generate());
    let mut far_end = sdes::sender(&theirs).expect("key");
    let mut inbound = sdes::receiver(&theirs).expect("key");
    let mut outbound = sdes::sender(&ours).expect("key");
    let mut rw = rewriter(t0);
    let mut out = Vec::with_capacity(256);
    let mut seq = 0u16;
    c.bench_function("relay_srtp", |b| {
        b.iter_batched(
            || {
                seq = seq.wrapping_add(1);
                let now = t0 + Duration::from_millis(20 * u64::from(seq));
                let mut wire = pcmu_packet(seq);
                far_end.protect_rtp(&mut wire).expect("protect");
                (wire, now)
            },
            |(mut wire, now)| {
                let Ok(len) = inbound.unprotect_rtp(&mut wire) else {
                    return None;
                };
                if !relay(&wire[..len], peer, peer, &mut rw, now, &mut out) {
                    return None;
                }
                outbound.protect_rtp(&mut out).ok()
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

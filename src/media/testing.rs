//! Fixtures shared by the media module's unit tests.

use std::net::SocketAddr;

use super::endpoint::RemoteMedia;
use super::rtp::{RtpHeader, Ssrc};

/// Deterministic pseudo-random bytes (xorshift32): reproducible garbage
/// for malformed-input tests.
pub(crate) struct Noise(u32);

impl Noise {
    pub(crate) fn new(seed: u32) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 17;
                self.0 ^= self.0 << 5;
                (self.0 >> 8) as u8
            })
            .collect()
    }
}

/// A plain G.711 remote with telephone-event 101 and rtcp-mux.
pub(crate) fn remote_at(rtp: SocketAddr) -> RemoteMedia {
    RemoteMedia {
        rtp,
        rtcp: None,
        audio_pt: 0,
        clock_rate: 8000,
        dtmf_pt: Some(101),
        srtp: None,
        send: true,
        recv: true,
    }
}

/// A plain RTP packet with a 20 ms-spaced timestamp derived from `seq`.
pub(crate) fn rtp_packet(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let header = RtpHeader {
        payload_type: pt,
        marker: false,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc: Ssrc(ssrc),
    };
    header
        .write_packet(payload, &mut buf)
        .expect("test payload type fits");
    buf
}

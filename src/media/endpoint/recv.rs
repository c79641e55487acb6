//! The receiving half of an endpoint, with no I/O: classifies each
//! datagram, latches symmetric RTP, authenticates SRTP, keeps reception
//! statistics and turns packets into [`MediaEvent`]s.
//!
//! Invariants:
//! - Every datagram ends in exactly one verdict; garbage is a counted drop,
//!   never an error that ends the call and never a panic.
//! - Cheap checks run before crypto: the source address is checked before
//!   SRTP work, so spraying the port costs us a comparison, not an HMAC.
//! - Symmetric RTP (RFC 4961, "comedia"): until latched, the first packet
//!   that is valid RTP with a negotiated payload type (and, with SRTP,
//!   authentic) latches its source. After that, only the latched address
//!   and the signalled address are accepted; the signalled address wins
//!   if it later sends, because the SDP is authoritative. A new remote
//!   description clears the latch.
//! - Only the signalled host may latch at once (a NAT may rewrite its
//!   port). Any other host must wait [`LEARN_WINDOW`] after the remote
//!   description, and is dropped until then: otherwise whoever sprays our
//!   port first, before the trunk's first packet, would receive the
//!   caller's audio and speak into the call ("RTP bleed").

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::stats::DropReason;
use super::types::{MediaEvent, MediaFrame, RemoteMedia};
use crate::media::MediaError;
use crate::media::dtmf::DtmfReceiver;
use crate::media::rtcp::{self, ReceiveStats, ReportBlock, RtcpPacket};
use crate::media::rtp::{RtpPacket, Ssrc};
use crate::media::srtp::{SrtpKeyMaterial, SrtpReceiver, sdes};

/// How long only the signalled host may latch a fresh remote description
/// before any source may (a trunk behind NAT that signalled a private
/// address). rtpengine's "delayed" endpoint learning waits the same 3 s.
pub(super) const LEARN_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy)]
struct RecvParams {
    sdp_rtp: SocketAddr,
    /// `None` with rtcp-mux.
    sdp_rtcp: Option<SocketAddr>,
    audio_pt: u8,
    dtmf_pt: Option<u8>,
    clock_rate: u32,
    recv: bool,
}

/// What became of one datagram.
#[derive(Debug)]
pub(super) enum Verdict {
    Drop(DropReason),
    /// Valid media for the owner.
    Deliver(MediaEvent),
    /// Valid RTCP; carries the far end's report about our stream, if any.
    Rtcp(Option<ReportBlock>),
}

/// A new address to send to, learned from what arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Latch {
    Rtp(SocketAddr),
    Rtcp(SocketAddr),
}

#[derive(Debug)]
pub(super) struct Received {
    pub verdict: Verdict,
    pub latch: Option<Latch>,
}

impl Received {
    fn drop(reason: DropReason) -> Self {
        Self {
            verdict: Verdict::Drop(reason),
            latch: None,
        }
    }
}

/// Statistics of the remote source currently sending.
struct Source {
    ssrc: Ssrc,
    stats: ReceiveStats,
}

pub(super) struct RecvCore {
    generation: u64,
    params: Option<RecvParams>,
    srtp: Option<(SrtpKeyMaterial, SrtpReceiver)>,
    latched_rtp: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    /// Until then only the signalled host may latch.
    strangers_latch_from: Option<Instant>,
    source: Option<Source>,
    /// Loss of sources that have since been replaced.
    lost_before: i64,
    dtmf: DtmfReceiver,
}

fn drop_reason(err: &MediaError) -> DropReason {
    match err {
        MediaError::RtpVersion(_) => DropReason::NotRtp,
        MediaError::SrtpAuth => DropReason::SrtpAuth,
        MediaError::SrtpReplay => DropReason::SrtpReplay,
        _ => DropReason::Malformed,
    }
}

impl RecvCore {
    pub(super) fn new() -> Self {
        Self {
            generation: 0,
            params: None,
            srtp: None,
            latched_rtp: None,
            latched_rtcp: None,
            strangers_latch_from: None,
            source: None,
            lost_before: 0,
            dtmf: DtmfReceiver::new(),
        }
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes the remote description the send side stamped `generation`.
    /// The SRTP receiver (and its replay window) is kept while the peer's
    /// key is unchanged.
    pub(super) fn apply_remote(
        &mut self,
        now: Instant,
        generation: u64,
        remote: &RemoteMedia,
    ) -> Result<(), MediaError> {
        self.srtp = match (&remote.srtp, self.srtp.take()) {
            (None, _) => None,
            (Some((_, theirs)), Some((key, receiver))) if *theirs == key => Some((key, receiver)),
            (Some((_, theirs)), _) => Some((theirs.clone(), sdes::receiver(theirs)?)),
        };
        self.params = Some(RecvParams {
            sdp_rtp: remote.rtp,
            sdp_rtcp: remote.rtcp,
            audio_pt: remote.audio_pt,
            dtmf_pt: remote.dtmf_pt,
            clock_rate: remote.clock_rate,
            recv: remote.recv,
        });
        self.generation = generation;
        self.latched_rtp = None;
        self.latched_rtcp = None;
        self.strangers_latch_from = Some(now + LEARN_WINDOW);
        Ok(())
    }

    pub(super) fn clock_rate(&self) -> u32 {
        self.params.map_or(8000, |p| p.clock_rate)
    }

    /// Cumulative loss over all sources and the current source's jitter.
    pub(super) fn reception(&self) -> (i64, Duration) {
        let (lost, jitter) = self.source.as_ref().map_or((0, Duration::ZERO), |s| {
            (
                i64::from(s.stats.cumulative_lost()),
                s.stats.jitter_duration(),
            )
        });
        (self.lost_before + lost, jitter)
    }

    /// Our report block about the current source, if it is validated.
    #[must_use]
    pub(super) fn poll_report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let source = self.source.as_mut()?;
        source.stats.poll_report_block(source.ssrc, now)
    }

    /// A datagram on the RTP port. `our_ssrc` picks report blocks about us
    /// out of muxed RTCP.
    pub(super) fn handle_rtp_port(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        our_ssrc: Ssrc,
    ) -> Received {
        let Some(params) = self.params else {
            return Received::drop(DropReason::NotNegotiated);
        };
        if rtcp::is_rtcp(data) {
            if params.sdp_rtcp.is_some() {
                return Received::drop(DropReason::RtcpOnRtpPort);
            }
            if !self.rtp_source_allowed(&params, src, now) {
                return Received::drop(DropReason::UnexpectedSource);
            }
            return self.handle_rtcp(now, data, our_ssrc, None);
        }
        if !self.rtp_source_allowed(&params, src, now) {
            return Received::drop(DropReason::UnexpectedSource);
        }
        match self.accept_rtp(&params, data) {
            Ok(plain) => {
                let latch = self.latch_rtp(&params, src);
                let verdict = if params.recv {
                    self.on_media(now, &params, &plain)
                } else {
                    Verdict::Drop(DropReason::NotReceiving)
                };
                Received { verdict, latch }
            }
            Err(reason) => Received::drop(reason),
        }
    }

    /// A datagram on the RTCP port (only used without rtcp-mux).
    pub(super) fn handle_rtcp_port(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        our_ssrc: Ssrc,
    ) -> Received {
        let Some(params) = self.params else {
            return Received::drop(DropReason::NotNegotiated);
        };
        let signalled = params.sdp_rtcp.unwrap_or(params.sdp_rtp);
        let allowed = match self.latched_rtcp {
            None => self.may_learn(signalled, src, now),
            Some(latched) => latched == src || signalled == src,
        };
        if !allowed {
            return Received::drop(DropReason::UnexpectedSource);
        }
        let latch_to = (self.latched_rtcp != Some(src)).then_some(src);
        self.handle_rtcp(now, data, our_ssrc, latch_to)
    }

    fn rtp_source_allowed(&self, params: &RecvParams, src: SocketAddr, now: Instant) -> bool {
        match self.latched_rtp {
            None => self.may_learn(params.sdp_rtp, src, now),
            Some(latched) => latched == src || params.sdp_rtp == src,
        }
    }

    /// Whether an unlatched stream may take `src`: the signalled host at
    /// once, anyone else only once [`LEARN_WINDOW`] has passed.
    fn may_learn(&self, signalled: SocketAddr, src: SocketAddr, now: Instant) -> bool {
        src.ip() == signalled.ip() || self.strangers_latch_from.is_none_or(|from| now >= from)
    }

    /// Validates version, lengths, payload type and SRTP; returns the
    /// plain packet.
    fn accept_rtp(&mut self, params: &RecvParams, data: &[u8]) -> Result<Bytes, DropReason> {
        let packet = RtpPacket::parse(data).map_err(|e| drop_reason(&e))?;
        let pt = packet.payload_type();
        if pt != params.audio_pt && Some(pt) != params.dtmf_pt {
            return Err(DropReason::UnknownPayloadType);
        }
        match &mut self.srtp {
            Some((_, receiver)) => {
                sdes::unprotect_rtp(receiver, data).map_err(|e| drop_reason(&e.into()))
            }
            None => Ok(Bytes::copy_from_slice(data)),
        }
    }

    fn latch_rtp(&mut self, params: &RecvParams, src: SocketAddr) -> Option<Latch> {
        let relatch = match self.latched_rtp {
            None => true,
            Some(latched) => latched != src && src == params.sdp_rtp,
        };
        relatch.then(|| {
            self.latched_rtp = Some(src);
            Latch::Rtp(src)
        })
    }

    /// Statistics, then DTMF or an audio frame for the owner.
    fn on_media(&mut self, now: Instant, params: &RecvParams, plain: &Bytes) -> Verdict {
        let Ok(packet) = RtpPacket::parse(plain) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        self.track_source(&packet, now, params.clock_rate);
        if Some(packet.payload_type()) == params.dtmf_pt {
            return match self
                .dtmf
                .handle_payload(packet.timestamp(), packet.payload())
            {
                Ok(Some(digit)) => Verdict::Deliver(MediaEvent::Dtmf {
                    digit,
                    sequence: packet.sequence(),
                }),
                Ok(None) => Verdict::Deliver(MediaEvent::DtmfContinued {
                    sequence: packet.sequence(),
                }),
                Err(_) => Verdict::Drop(DropReason::Malformed),
            };
        }
        let start = packet.header_len();
        let frame = MediaFrame {
            payload_type: packet.payload_type(),
            seq: packet.sequence(),
            timestamp: packet.timestamp(),
            marker: packet.marker(),
            payload: plain.slice(start..start + packet.payload().len()),
            received_at: now,
        };
        Verdict::Deliver(MediaEvent::Frame(frame))
    }

    /// A new SSRC is a new source (RFC 3550 §8.2): fresh statistics and a
    /// fresh DTMF receiver, since its timestamps start elsewhere.
    fn track_source(&mut self, packet: &RtpPacket<'_>, now: Instant, clock_rate: u32) {
        if self.source.as_ref().is_none_or(|s| s.ssrc != packet.ssrc()) {
            if let Some(old) = self.source.take() {
                self.lost_before += i64::from(old.stats.cumulative_lost());
            }
            self.dtmf.reset();
            self.source = Some(Source {
                ssrc: packet.ssrc(),
                stats: ReceiveStats::new(clock_rate),
            });
        }
        if let Some(source) = &mut self.source {
            let _counted = source
                .stats
                .handle_packet(packet.sequence(), packet.timestamp(), now);
        }
    }

    fn handle_rtcp(
        &mut self,
        now: Instant,
        data: &[u8],
        our_ssrc: Ssrc,
        latch_to: Option<SocketAddr>,
    ) -> Received {
        let plain = match &mut self.srtp {
            Some((_, receiver)) => match sdes::unprotect_rtcp(receiver, data) {
                Ok(plain) => plain,
                Err(e) => return Received::drop(drop_reason(&e.into())),
            },
            None => Bytes::copy_from_slice(data),
        };
        let Ok(packets) = rtcp::parse_compound(&plain) else {
            return Received::drop(DropReason::MalformedRtcp);
        };
        let about_us = self.absorb_rtcp(&packets, now, our_ssrc);
        if let Some(addr) = latch_to {
            self.latched_rtcp = Some(addr);
        }
        Received {
            verdict: Verdict::Rtcp(about_us),
            latch: latch_to.map(Latch::Rtcp),
        }
    }

    /// Notes their SR for our LSR/DLSR and returns their block about us.
    fn absorb_rtcp(
        &mut self,
        packets: &[RtcpPacket<'_>],
        now: Instant,
        our_ssrc: Ssrc,
    ) -> Option<ReportBlock> {
        let mut about_us = None;
        for packet in packets {
            let blocks = match packet {
                RtcpPacket::SenderReport(sr) => {
                    if let Some(source) = self.source.as_mut().filter(|s| s.ssrc == sr.ssrc) {
                        source.stats.handle_sender_report(sr.info.ntp, now);
                    }
                    &sr.reports
                }
                RtcpPacket::ReceiverReport(rr) => &rr.reports,
                _ => continue,
            };
            if let Some(block) = blocks.iter().find(|b| b.ssrc == our_ssrc) {
                about_us = Some(*block);
            }
        }
        about_us
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::media::dtmf::EventPayload;
    use crate::media::srtp::sdes;
    use crate::media::testing::{remote_at, rtp_packet};

    const US: Ssrc = Ssrc(0xface);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    fn core() -> RecvCore {
        let mut c = RecvCore::new();
        c.apply_remote(Instant::now(), 1, &remote_at(addr(4000)))
            .unwrap();
        c
    }

    fn reason(r: &Received) -> Option<DropReason> {
        match r.verdict {
            Verdict::Drop(reason) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn everything_is_dropped_before_negotiation() {
        let mut c = RecvCore::new();
        let r = c.handle_rtp_port(
            Instant::now(),
            addr(4000),
            &rtp_packet(0, 1, 9, &[1; 160]),
            US,
        );
        assert_eq!(reason(&r), Some(DropReason::NotNegotiated));
    }

    #[test]
    fn first_valid_packet_latches_and_frames_are_delivered() {
        let mut c = core();
        let now = Instant::now();
        let r = c.handle_rtp_port(now, addr(6000), &rtp_packet(0, 1, 9, &[7; 160]), US);
        assert_eq!(r.latch, Some(Latch::Rtp(addr(6000))));
        let Verdict::Deliver(MediaEvent::Frame(frame)) = r.verdict else {
            panic!("{r:?}")
        };
        assert_eq!(
            (frame.payload_type, frame.seq, frame.payload.len()),
            (0, 1, 160)
        );
        let r = c.handle_rtp_port(now, addr(6000), &rtp_packet(0, 2, 9, &[7; 160]), US);
        assert_eq!(r.latch, None);
    }

    #[test]
    fn invalid_packets_never_latch() {
        let mut c = core();
        let now = Instant::now();
        for (bytes, why) in [
            (
                rtp_packet(96, 1, 9, &[1; 20]),
                DropReason::UnknownPayloadType,
            ),
            (vec![0x40; 20], DropReason::NotRtp),
            (vec![0x80; 5], DropReason::Malformed),
        ] {
            let r = c.handle_rtp_port(now, addr(6666), &bytes, US);
            assert_eq!((reason(&r), r.latch), (Some(why), None));
        }
        let r = c.handle_rtp_port(now, addr(6000), &rtp_packet(0, 1, 9, &[7; 160]), US);
        assert_eq!(r.latch, Some(Latch::Rtp(addr(6000))));
    }

    #[test]
    fn rtp_source_hijack_after_latching_is_dropped() {
        let mut c = core();
        let now = Instant::now();
        let _ = c.handle_rtp_port(now, addr(6000), &rtp_packet(0, 1, 9, &[7; 160]), US);
        let r = c.handle_rtp_port(now, addr(6001), &rtp_packet(0, 2, 9, &[6; 160]), US);
        assert_eq!(
            (reason(&r), r.latch),
            (Some(DropReason::UnexpectedSource), None)
        );
        // The signalled address may always take over.
        let r = c.handle_rtp_port(now, addr(4000), &rtp_packet(0, 3, 9, &[7; 160]), US);
        assert_eq!(r.latch, Some(Latch::Rtp(addr(4000))));
        let r = c.handle_rtp_port(now, addr(6000), &rtp_packet(0, 4, 9, &[7; 160]), US);
        assert_eq!(reason(&r), Some(DropReason::UnexpectedSource));
    }

    fn other_host(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66)), port)
    }

    #[test]
    fn rtp_bleed_a_stranger_cannot_latch_before_the_trunk_speaks() {
        let mut c = RecvCore::new();
        let t0 = Instant::now();
        c.apply_remote(t0, 1, &remote_at(addr(4000))).unwrap();
        let soon = t0 + Duration::from_millis(200);
        let r = c.handle_rtp_port(soon, other_host(6000), &rtp_packet(0, 1, 7, &[5; 160]), US);
        assert_eq!(
            (reason(&r), r.latch),
            (Some(DropReason::UnexpectedSource), None),
            "a stranger's packet neither latches nor reaches the call"
        );
        let r = c.handle_rtcp_port(soon, other_host(6001), &[0x80, 200, 0, 1], US);
        assert_eq!(
            (reason(&r), r.latch),
            (Some(DropReason::UnexpectedSource), None)
        );
        // The trunk's host latches at once, even from another port (NAT).
        let r = c.handle_rtp_port(soon, addr(4002), &rtp_packet(0, 1, 9, &[7; 160]), US);
        assert_eq!(r.latch, Some(Latch::Rtp(addr(4002))));
        let later = t0 + LEARN_WINDOW;
        let r = c.handle_rtp_port(later, other_host(6000), &rtp_packet(0, 2, 7, &[5; 160]), US);
        assert_eq!(reason(&r), Some(DropReason::UnexpectedSource));
    }

    #[test]
    fn a_trunk_behind_nat_is_learned_once_the_window_has_passed() {
        let mut c = RecvCore::new();
        let t0 = Instant::now();
        c.apply_remote(t0, 1, &remote_at(addr(4000))).unwrap();
        let r = c.handle_rtp_port(
            t0 + LEARN_WINDOW,
            other_host(6000),
            &rtp_packet(0, 1, 7, &[5; 160]),
            US,
        );
        assert_eq!(r.latch, Some(Latch::Rtp(other_host(6000))));
        // The signalled address still wins when it speaks.
        let r = c.handle_rtp_port(
            t0 + LEARN_WINDOW,
            addr(4000),
            &rtp_packet(0, 2, 9, &[7; 160]),
            US,
        );
        assert_eq!(r.latch, Some(Latch::Rtp(addr(4000))));
    }

    #[test]
    fn new_remote_description_allows_a_new_latch() {
        let mut c = core();
        let now = Instant::now();
        let _ = c.handle_rtp_port(now, addr(6000), &rtp_packet(0, 1, 9, &[7; 160]), US);
        c.apply_remote(now, 2, &remote_at(addr(4000))).unwrap();
        let r = c.handle_rtp_port(now, addr(6002), &rtp_packet(0, 2, 9, &[7; 160]), US);
        assert_eq!(r.latch, Some(Latch::Rtp(addr(6002))));
    }

    #[test]
    fn rtcp_on_the_rtp_port_depends_on_mux() {
        let mut report = Vec::new();
        rtcp::write_goodbye(&mut report, Ssrc(9), b"c").unwrap();
        let now = Instant::now();
        let mut muxed = core();
        let r = muxed.handle_rtp_port(now, addr(4000), &report, US);
        assert!(matches!(r.verdict, Verdict::Rtcp(None)), "{r:?}");
        let mut split = RecvCore::new();
        split
            .apply_remote(
                now,
                1,
                &RemoteMedia {
                    rtcp: Some(addr(4001)),
                    ..remote_at(addr(4000))
                },
            )
            .unwrap();
        let r = split.handle_rtp_port(now, addr(4000), &report, US);
        assert_eq!(reason(&r), Some(DropReason::RtcpOnRtpPort));
        let r = split.handle_rtcp_port(now, addr(7001), &report, US);
        assert_eq!(r.latch, Some(Latch::Rtcp(addr(7001))));
        let r = split.handle_rtcp_port(now, addr(7002), &report, US);
        assert_eq!(reason(&r), Some(DropReason::UnexpectedSource));
    }

    #[test]
    fn hold_still_latches_but_delivers_nothing() {
        let mut c = RecvCore::new();
        c.apply_remote(
            Instant::now(),
            1,
            &RemoteMedia {
                recv: false,
                ..remote_at(addr(4000))
            },
        )
        .unwrap();
        let r = c.handle_rtp_port(
            Instant::now(),
            addr(6000),
            &rtp_packet(0, 1, 9, &[7; 160]),
            US,
        );
        assert_eq!(
            (reason(&r), r.latch),
            (Some(DropReason::NotReceiving), Some(Latch::Rtp(addr(6000))))
        );
    }

    #[test]
    fn dtmf_is_delivered_once_per_event() {
        let mut c = core();
        let now = Instant::now();
        let start = EventPayload {
            event: 11,
            end: false,
            volume: 10,
            duration: 400,
        }
        .to_bytes();
        let end = EventPayload {
            end: true,
            duration: 800,
            ..EventPayload::parse(&start).unwrap()
        }
        .to_bytes();
        let mut events = Vec::new();
        for (seq, payload) in [(1, start), (2, end), (3, end), (4, end)] {
            let mut packet = rtp_packet(101, seq, 9, &payload);
            packet[4..8].copy_from_slice(&1000u32.to_be_bytes());
            if let Verdict::Deliver(event) = c.handle_rtp_port(now, addr(6000), &packet, US).verdict
            {
                events.push(event);
            }
        }
        assert_eq!(
            events,
            [
                MediaEvent::Dtmf {
                    digit: '#',
                    sequence: 1
                },
                MediaEvent::DtmfContinued { sequence: 2 },
                MediaEvent::DtmfContinued { sequence: 3 },
                MediaEvent::DtmfContinued { sequence: 4 },
            ]
        );
    }

    #[test]
    fn srtp_forgeries_are_dropped_before_latching() {
        let theirs = SrtpKeyMaterial::generate();
        let mut c = RecvCore::new();
        let keys = Some((SrtpKeyMaterial::generate(), theirs.clone()));
        c.apply_remote(
            Instant::now(),
            1,
            &RemoteMedia {
                srtp: keys,
                ..remote_at(addr(4000))
            },
        )
        .unwrap();
        let now = Instant::now();
        let r = c.handle_rtp_port(now, addr(6666), &rtp_packet(0, 1, 9, &[1; 160]), US);
        assert_eq!((reason(&r), r.latch), (Some(DropReason::SrtpAuth), None));
        let mut peer = sdes::sender(&theirs).unwrap();
        let mut wire = rtp_packet(0, 2, 9, &[3; 160]);
        peer.protect_rtp(&mut wire).unwrap();
        let r = c.handle_rtp_port(now, addr(6000), &wire, US);
        assert_eq!(r.latch, Some(Latch::Rtp(addr(6000))));
        let Verdict::Deliver(MediaEvent::Frame(f)) = r.verdict else {
            panic!("{r:?}")
        };
        assert_eq!(&f.payload[..], &[3; 160]);
        let r = c.handle_rtp_port(now, addr(6000), &wire, US);
        assert_eq!(reason(&r), Some(DropReason::SrtpReplay));
    }

    #[test]
    fn loss_accumulates_across_sources() {
        let mut c = core();
        let now = Instant::now();
        for seq in [1, 2, 4, 5] {
            let _ = c.handle_rtp_port(now, addr(4000), &rtp_packet(0, seq, 9, &[0; 10]), US);
        }
        let mut other = rtp_packet(0, 100, 9, &[0; 10]);
        other[8..12].copy_from_slice(&[0, 0, 0, 10]);
        let _ = c.handle_rtp_port(now, addr(4000), &other, US);
        assert_eq!(c.reception().0, 1);
        assert!(
            c.poll_report_block(now).is_none(),
            "new source still on probation"
        );
    }

    #[test]
    fn their_report_about_us_is_picked_out() {
        let mut c = core();
        let block = ReportBlock {
            ssrc: US,
            fraction_lost: 3,
            cumulative_lost: 7,
            extended_highest_seq: 0,
            jitter: 80,
            last_sr: 0,
            delay_since_last_sr: 0,
        };
        let other = ReportBlock {
            ssrc: Ssrc(1),
            ..block
        };
        let mut report = Vec::new();
        rtcp::write_receiver_report(&mut report, Ssrc(9), &[other, block]).unwrap();
        let r = c.handle_rtp_port(Instant::now(), addr(4000), &report, US);
        assert!(
            matches!(r.verdict, Verdict::Rtcp(Some(b)) if b == block),
            "{r:?}"
        );
    }
}

//! The sending half of an endpoint, with no I/O: turns audio payloads,
//! relayed packets, DTMF ticks and report timers into datagrams for the
//! driver or the owner to put on the socket.
//!
//! Invariants:
//! - Everything we send, whatever its origin, goes through one
//!   [`StreamRewriter`], so the far end sees one SSRC with +1 sequence
//!   numbers and wall-clock timestamps.
//! - Nothing is sent before a remote description exists or while it says
//!   `send: false`, except RTCP, which continues during hold (RFC 3550 §6).
//! - An SRTP sender is kept for as long as our key is unchanged: a fresh
//!   context would restart the rollover counter and could reuse keystream.
//! - Datagrams are built into one reusable buffer; only the SRTP transform
//!   allocates (see `srtp`).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::types::{EndpointConfig, MAX_PAYLOAD, RemoteMedia};
use crate::media::MediaError;
use crate::media::dtmf::{DtmfConfig, DtmfSender, EVENT_PAYLOAD_LEN};
use crate::media::rtcp::{self, NtpTime, ReportBlock, ReportInput, SenderStats};
use crate::media::rtp::{
    FIXED_HEADER_LEN, RewriteInput, RtpHeader, RtpPacket, RtpPacketMut, Ssrc, StreamRewriter,
    StreamStart,
};
use crate::media::srtp::{SrtpKeyMaterial, SrtpSender, sdes};

/// Which counter a datagram belongs to and which socket it leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Rtp,
    /// `muxed`: leaves from the RTP socket (rtcp-mux, RFC 5761).
    Rtcp {
        muxed: bool,
    },
}

/// A datagram ready for the socket.
#[derive(Debug)]
pub struct Transmit<'a> {
    pub to: SocketAddr,
    pub kind: PacketKind,
    pub bytes: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct SendParams {
    rtp_to: SocketAddr,
    /// `None` with rtcp-mux.
    rtcp_to: Option<SocketAddr>,
    audio_pt: u8,
    dtmf_pt: Option<u8>,
    send: bool,
}

/// Our own generated audio, seen by the rewriter as one more source.
#[derive(Debug, Clone, Copy)]
struct LocalSource {
    ssrc: Ssrc,
    sequence: u16,
    timestamp: u32,
}

/// The current DTMF event's timestamp and when it began.
#[derive(Debug, Clone, Copy)]
struct DtmfEvent {
    timestamp: u32,
    started: Instant,
}

pub(super) struct SendCore {
    generation: u64,
    params: Option<SendParams>,
    rewriter: StreamRewriter,
    local: LocalSource,
    srtp: Option<(SrtpKeyMaterial, SrtpSender)>,
    stats: SenderStats,
    dtmf: DtmfSender,
    dtmf_config: DtmfConfig,
    dtmf_event: Option<DtmfEvent>,
    cname: Vec<u8>,
    /// The packet being sent: written plain, then protected in place.
    plain: Vec<u8>,
}

impl SendCore {
    pub(super) fn new(
        start: StreamStart,
        config: &EndpointConfig,
        cname: Vec<u8>,
        now: Instant,
    ) -> Result<Self, MediaError> {
        let clock_rate = config.dtmf.clock_rate;
        Ok(Self {
            generation: 0,
            params: None,
            rewriter: StreamRewriter::new(start, clock_rate, now),
            // Our generated audio keeps its own numbering from zero; the
            // rewriter maps it onto the outgoing stream.
            local: LocalSource {
                ssrc: start.ssrc,
                sequence: 0,
                timestamp: 0,
            },
            srtp: None,
            stats: SenderStats::new(clock_rate),
            dtmf: DtmfSender::new(config.dtmf)?,
            dtmf_config: config.dtmf,
            dtmf_event: None,
            cname,
            plain: Vec::with_capacity(MAX_PAYLOAD + 64),
        })
    }

    /// Takes a new remote description; returns its generation, which
    /// latches must carry to be accepted.
    pub(super) fn apply_remote(&mut self, remote: &RemoteMedia) -> Result<u64, MediaError> {
        self.srtp = match (&remote.srtp, self.srtp.take()) {
            (None, _) => None,
            (Some((ours, _)), Some((key, sender))) if *ours == key => Some((key, sender)),
            (Some((ours, _)), _) => Some((ours.clone(), sdes::sender(ours)?)),
        };
        self.rewriter.set_clock_rate(remote.clock_rate);
        self.stats.set_clock_rate(remote.clock_rate);
        if !remote.send {
            self.dtmf.clear();
        }
        // RFC 4733 §2.1: events count time in the audio's clock. A clock
        // change mid-event waits for the event to end.
        if remote.clock_rate != self.dtmf_config.clock_rate && self.dtmf.is_idle() {
            self.dtmf_config.clock_rate = remote.clock_rate;
            self.dtmf = DtmfSender::new(self.dtmf_config)?;
        }
        self.params = Some(SendParams {
            rtp_to: remote.rtp,
            rtcp_to: remote.rtcp,
            audio_pt: remote.audio_pt,
            dtmf_pt: remote.dtmf_pt,
            send: remote.send,
        });
        self.generation += 1;
        Ok(self.generation)
    }

    /// Symmetric RTP: the receive side found where the peer really sends
    /// from. Ignored (false) when a newer description arrived meanwhile.
    pub(super) fn latch_rtp(&mut self, generation: u64, addr: SocketAddr) -> bool {
        let current = generation == self.generation;
        match self.params.as_mut().filter(|_| current) {
            Some(p) => {
                p.rtp_to = addr;
                true
            }
            None => false,
        }
    }

    pub(super) fn latch_rtcp(&mut self, generation: u64, addr: SocketAddr) {
        if let Some(p) = self
            .params
            .as_mut()
            .filter(|_| generation == self.generation)
        {
            if p.rtcp_to.is_some() {
                p.rtcp_to = Some(addr);
            }
        }
    }

    fn sending(&self) -> Option<SendParams> {
        self.params.filter(|p| p.send)
    }

    /// Our own audio frame: `samples` is its length in clock ticks.
    pub(super) fn prepare_audio(
        &mut self,
        now: Instant,
        payload: &[u8],
        samples: u32,
    ) -> Result<Option<Transmit<'_>>, MediaError> {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            return Err(MediaError::PayloadSize { max: MAX_PAYLOAD });
        }
        let Some(params) = self.sending() else {
            return Ok(None);
        };
        let input = RewriteInput {
            ssrc: self.local.ssrc,
            sequence: self.local.sequence,
            timestamp: self.local.timestamp,
            marker: false,
        };
        self.local.sequence = self.local.sequence.wrapping_add(1);
        self.local.timestamp = self.local.timestamp.wrapping_add(samples);
        let Some(out) = self.rewriter.rewrite(now, input) else {
            return Ok(None);
        };
        out.header(params.audio_pt)
            .write_packet(payload, &mut self.plain)?;
        self.stats.handle_sent(payload.len(), out.timestamp, now);
        self.finish_rtp(params.rtp_to)
    }

    /// A relayed packet: header rewritten in a copy (in place when it is a
    /// bare 12-byte header), payload untouched, payload type set to the
    /// negotiated audio type.
    pub(super) fn prepare_forward(
        &mut self,
        now: Instant,
        packet: &[u8],
    ) -> Result<Option<Transmit<'_>>, MediaError> {
        let parsed = RtpPacket::parse(packet)?;
        let Some(params) = self.sending() else {
            return Ok(None);
        };
        let input = RewriteInput {
            ssrc: parsed.ssrc(),
            sequence: parsed.sequence(),
            timestamp: parsed.timestamp(),
            marker: parsed.marker(),
        };
        let Some(out) = self.rewriter.rewrite(now, input) else {
            return Ok(None);
        };
        if parsed.header_len() == FIXED_HEADER_LEN && parsed.padding_len() == 0 {
            self.plain.clear();
            self.plain.extend_from_slice(packet);
            let mut header = RtpPacketMut::new(&mut self.plain)?;
            header.apply(&out);
            header.set_payload_type(params.audio_pt)?;
        } else {
            // Browser header extensions (audio level, transport-cc, mid)
            // and CSRCs mean nothing to a trunk and would travel in the
            // clear even under SRTP: send the payload under a fresh header.
            out.header(params.audio_pt)
                .write_packet(parsed.payload(), &mut self.plain)?;
        }
        self.stats
            .handle_sent(parsed.payload().len(), out.timestamp, now);
        self.finish_rtp(params.rtp_to)
    }

    fn finish_rtp(&mut self, to: SocketAddr) -> Result<Option<Transmit<'_>>, MediaError> {
        if let Some((_, sender)) = &mut self.srtp {
            sender.protect_rtp(&mut self.plain)?;
        }
        let bytes = &self.plain[..];
        Ok(Some(Transmit {
            to,
            kind: PacketKind::Rtp,
            bytes,
        }))
    }

    /// Queues digits for the driver's timer.
    pub(super) fn queue_dtmf(&mut self, digits: &str, now: Instant) -> Result<(), MediaError> {
        if self.params.and_then(|p| p.dtmf_pt).is_none() {
            return Err(MediaError::DtmfNotNegotiated);
        }
        self.dtmf.handle_digits(digits, now)
    }

    /// When the DTMF schedule next needs the driver.
    pub(super) fn dtmf_timeout(&self) -> Option<Instant> {
        self.dtmf.poll_timeout()
    }

    /// The next DTMF packet due at `now`. Packets due while on hold are
    /// consumed unsent so the schedule still finishes.
    pub(super) fn poll_dtmf(&mut self, now: Instant) -> Result<Option<Transmit<'_>>, MediaError> {
        loop {
            let Some(packet) = self.dtmf.poll_packet(now) else {
                return Ok(None);
            };
            let Some((params, pt)) = self.sending().and_then(|p| p.dtmf_pt.map(|pt| (p, pt)))
            else {
                continue;
            };
            let event = match self.dtmf_event {
                Some(event) if !packet.event_start => event,
                _ => DtmfEvent {
                    timestamp: self.rewriter.next_timestamp(now),
                    started: now,
                },
            };
            self.dtmf_event = Some(event);
            let header = RtpHeader {
                payload_type: pt,
                marker: packet.event_start,
                sequence: self.rewriter.insert(),
                timestamp: event.timestamp,
                ssrc: self.rewriter.ssrc(),
            };
            header.write_packet(&packet.payload, &mut self.plain)?;
            self.stats
                .handle_sent(EVENT_PAYLOAD_LEN, event.timestamp, event.started);
            return self.finish_rtp(params.rtp_to);
        }
    }

    /// The scheduled SR or RR with SDES (RFC 3550 §6.4), `None` before a
    /// remote description exists.
    pub(super) fn prepare_report(
        &mut self,
        now: Instant,
        wallclock: SystemTime,
        block: Option<ReportBlock>,
    ) -> Result<Option<Transmit<'_>>, MediaError> {
        if self.params.is_none() {
            return Ok(None);
        }
        let input = ReportInput {
            ssrc: self.rewriter.ssrc(),
            sender: self.stats.poll_sender_info(now, wallclock),
            blocks: block.as_slice(),
            cname: &self.cname,
        };
        rtcp::write_report(&mut self.plain, &input)?;
        self.finish_rtcp()
    }

    /// RR, SDES and BYE for when the endpoint closes.
    pub(super) fn prepare_goodbye(&mut self) -> Result<Option<Transmit<'_>>, MediaError> {
        if self.params.is_none() {
            return Ok(None);
        }
        rtcp::write_goodbye(&mut self.plain, self.rewriter.ssrc(), &self.cname)?;
        self.finish_rtcp()
    }

    fn finish_rtcp(&mut self) -> Result<Option<Transmit<'_>>, MediaError> {
        let Some(params) = self.params else {
            return Ok(None);
        };
        if let Some((_, sender)) = &mut self.srtp {
            sender.protect_rtcp(&mut self.plain)?;
        }
        let bytes = &self.plain[..];
        let (to, muxed) = match params.rtcp_to {
            Some(to) => (to, false),
            None => (params.rtp_to, true),
        };
        Ok(Some(Transmit {
            to,
            kind: PacketKind::Rtcp { muxed },
            bytes,
        }))
    }

    /// Round-trip time from the far end's report block about our stream.
    pub(super) fn round_trip(
        &self,
        block: &ReportBlock,
        arrival: NtpTime,
    ) -> Option<std::time::Duration> {
        self.stats.round_trip(block, arrival)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;
    use crate::media::dtmf::EventPayload;
    use crate::media::srtp::sdes;
    use crate::media::testing::remote_at;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    fn core(now: Instant) -> SendCore {
        let start = StreamStart {
            ssrc: Ssrc(77),
            sequence: 500,
            timestamp: 9000,
        };
        SendCore::new(start, &EndpointConfig::default(), b"cn".to_vec(), now).unwrap()
    }

    fn parsed(tx: Option<Transmit<'_>>) -> (u8, bool, u16, u32, Vec<u8>) {
        let tx = tx.unwrap();
        let p = RtpPacket::parse(tx.bytes).unwrap();
        (
            p.payload_type(),
            p.marker(),
            p.sequence(),
            p.timestamp(),
            p.payload().to_vec(),
        )
    }

    #[test]
    fn nothing_is_sent_before_a_remote_or_on_hold() {
        let t0 = Instant::now();
        let mut c = core(t0);
        assert!(c.prepare_audio(t0, &[1; 160], 160).unwrap().is_none());
        assert!(
            c.prepare_report(t0, SystemTime::now(), None)
                .unwrap()
                .is_none()
        );
        let mut held = remote_at(addr(4000));
        held.send = false;
        c.apply_remote(&held).unwrap();
        assert!(c.prepare_audio(t0, &[1; 160], 160).unwrap().is_none());
        assert!(
            c.prepare_report(t0, SystemTime::now(), None)
                .unwrap()
                .is_some(),
            "rtcp continues on hold"
        );
    }

    #[test]
    fn audio_then_relay_then_audio_is_one_stream() {
        let t0 = Instant::now();
        let mut c = core(t0);
        c.apply_remote(&remote_at(addr(4000))).unwrap();
        let a = parsed(c.prepare_audio(t0, &[1; 160], 160).unwrap());
        assert_eq!((a.0, a.1, a.2, a.3), (0, true, 500, 9000));
        let b = parsed(
            c.prepare_audio(t0 + Duration::from_millis(20), &[1; 160], 160)
                .unwrap(),
        );
        assert_eq!((b.1, b.2, b.3), (false, 501, 9160));
        let mut relayed = Vec::new();
        RtpHeader {
            payload_type: 111,
            marker: false,
            sequence: 7,
            timestamp: 3,
            ssrc: Ssrc(5),
        }
        .write_packet(&[2; 80], &mut relayed)
        .unwrap();
        let r = parsed(
            c.prepare_forward(t0 + Duration::from_millis(40), &relayed)
                .unwrap(),
        );
        assert_eq!(r, (0, true, 502, 9320, vec![2; 80]));
    }

    #[test]
    fn relayed_browser_extensions_and_csrcs_are_stripped() {
        let t0 = Instant::now();
        let mut c = core(t0);
        c.apply_remote(&remote_at(addr(4000))).unwrap();
        // CC=1, X=1 with a one-word audio-level extension, P=1 with 2 bytes.
        let mut packet = vec![0xb1, 111, 0, 9, 0, 0, 0, 160, 0, 0, 0, 5, 0, 0, 0, 6];
        packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x7f, 0, 0]);
        packet.extend_from_slice(&[4; 40]);
        packet.extend_from_slice(&[0, 2]);
        let tx = c.prepare_forward(t0, &packet).unwrap().unwrap();
        let p = RtpPacket::parse(tx.bytes).unwrap();
        assert_eq!(
            (p.header_len(), p.padding_len(), p.csrc_count()),
            (12, 0, 0)
        );
        assert!(p.extension().is_none());
        assert_eq!((p.payload_type(), p.payload()), (0, &[4; 40][..]));
    }

    #[test]
    fn dtmf_follows_the_negotiated_clock() {
        let t0 = Instant::now();
        let mut c = core(t0);
        c.apply_remote(&RemoteMedia {
            clock_rate: 16_000,
            ..remote_at(addr(4000))
        })
        .unwrap();
        c.queue_dtmf("5", t0).unwrap();
        let tx = c.poll_dtmf(t0).unwrap().unwrap();
        let ev = EventPayload::parse(RtpPacket::parse(tx.bytes).unwrap().payload()).unwrap();
        assert_eq!(ev.duration, 800, "50 ms at 16 kHz");
    }

    #[test]
    fn payload_size_is_checked() {
        let t0 = Instant::now();
        let mut c = core(t0);
        assert!(matches!(
            c.prepare_audio(t0, &[], 0),
            Err(MediaError::PayloadSize { .. })
        ));
        assert!(c.prepare_audio(t0, &vec![0; MAX_PAYLOAD + 1], 0).is_err());
    }

    #[test]
    fn dtmf_shares_the_sequence_and_keeps_one_timestamp_per_event() {
        let t0 = Instant::now();
        let mut c = core(t0);
        assert!(matches!(
            c.queue_dtmf("1", t0),
            Err(MediaError::DtmfNotNegotiated)
        ));
        c.apply_remote(&remote_at(addr(4000))).unwrap();
        let _ = c.prepare_audio(t0, &[1; 160], 160).unwrap();
        c.queue_dtmf("1", t0).unwrap();
        let mut seen = Vec::new();
        let mut now = t0;
        while let Some(at) = c.dtmf_timeout() {
            now = at.max(now);
            while let Some(tx) = c.poll_dtmf(now).unwrap() {
                let p = RtpPacket::parse(tx.bytes).unwrap();
                let ev = EventPayload::parse(p.payload()).unwrap();
                seen.push((
                    p.payload_type(),
                    p.marker(),
                    p.sequence(),
                    p.timestamp(),
                    ev.end,
                ));
            }
        }
        let seqs: Vec<u16> = seen.iter().map(|s| s.2).collect();
        assert_eq!(seqs, vec![501, 502, 503, 504, 505]);
        assert!(seen.iter().all(|s| s.0 == 101 && s.3 == 9001));
        assert_eq!(seen.iter().filter(|s| s.1).count(), 1);
        assert_eq!(seen.iter().filter(|s| s.4).count(), 3);
    }

    #[test]
    fn srtp_sender_survives_a_reinvite_with_the_same_key() {
        let t0 = Instant::now();
        let mut c = core(t0);
        let ours = SrtpKeyMaterial::generate();
        let mut r = remote_at(addr(4000));
        r.srtp = Some((ours.clone(), SrtpKeyMaterial::generate()));
        c.apply_remote(&r).unwrap();
        let mut peer = sdes::receiver(&ours).unwrap();
        let first = c
            .prepare_audio(t0, &[1; 160], 160)
            .unwrap()
            .unwrap()
            .bytes
            .to_vec();
        assert!(sdes::unprotect_rtp(&mut peer, &first).is_ok());
        r.rtp = addr(4002);
        c.apply_remote(&r).unwrap();
        let second = c.prepare_audio(t0, &[1; 160], 160).unwrap().unwrap();
        assert_eq!(second.to.port(), 4002);
        assert!(sdes::unprotect_rtp(&mut peer, second.bytes).is_ok());
    }

    #[test]
    fn stale_latch_is_ignored_and_mux_sends_rtcp_to_the_rtp_address() {
        let t0 = Instant::now();
        let mut c = core(t0);
        let g1 = c.apply_remote(&remote_at(addr(4000))).unwrap();
        let g2 = c.apply_remote(&remote_at(addr(4100))).unwrap();
        c.latch_rtp(g1, addr(5555));
        let tx = c
            .prepare_report(t0, SystemTime::now(), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (tx.to.port(), tx.kind),
            (4100, PacketKind::Rtcp { muxed: true })
        );
        c.latch_rtp(g2, addr(5556));
        let tx = c.prepare_audio(t0, &[1; 10], 10).unwrap().unwrap();
        assert_eq!(tx.to.port(), 5556);
    }
}

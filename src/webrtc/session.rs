//! [`BrowserSession`]: one call's browser leg, sans-IO: ICE-lite, DTLS-SRTP
//! and RTP/RTCP towards the visitor's browser.
//!
//! - ICE-lite (RFC 8445 §2.5): the browser checks, we answer
//!   ([`super::stun`]). Its address is learned only from a check whose
//!   MESSAGE-INTEGRITY verified, at most [`MAX_PEER_ADDRESSES`] per call,
//!   and media goes to the pair it nominated (USE-CANDIDATE).
//! - DTLS-SRTP ([`super::dtls`]): the browser is the DTLS client; its
//!   certificate must match its offer's fingerprint. After the handshake
//!   SRTP runs in [`crate::media::srtp`], in place, with nothing allocated
//!   per packet and no per-stream state for a packet whose tag failed.
//! - RTCP: our SR/RR and SDES every few seconds (RFC 3550 §6.2); the
//!   browser's SRs feed the round-trip figures of our reports.
//!
//! Invariant (str0m style): after every input (`handle_datagram`,
//! `handle_timeout`, `send_rtp`), the owner drains [`BrowserSession::poll_transmit`]
//! and [`BrowserSession::poll_event`] until both return `None`, then sleeps
//! until [`BrowserSession::poll_timeout`]. The browser's audio is the one
//! exception: `handle_datagram` decrypts it in the caller's buffer and
//! returns it borrowed from there, so a packet is never copied. Only authenticated input (a
//! verified check, the DTLS handshake's completion, SRTP/SRTCP whose tag
//! verified) moves [`BrowserSession::last_authenticated`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use rtc::peer_connection::certificate::RTCCertificate;

use super::answer::{AnswerParams, OfferSections, write_answer};
use super::demux::{PacketClass, classify};
use super::dtls::DtlsError;
use super::dtls::{DtlsHandshake, DtlsProgress, fingerprint_of};
use super::error::WebrtcError;
use super::offer::BrowserMedia;
use super::stun::{IceCredentials, StunError, verify_check, write_success};
use crate::media::MediaError;
use crate::media::rtcp::{
    self, NtpTime, ReceiveStats, ReportBlock, ReportInput, RtcpPacket, SenderStats, is_rtcp,
    write_goodbye, write_report,
};
use crate::media::rtp::{RtpHeader, RtpPacket, Ssrc};
use crate::media::srtp::{SrtpError, SrtpReceiver, SrtpSender};

/// Browsers check from a handful of candidate pairs (host, reflexive,
/// relayed, both address families); more than this is not a browser.
pub const MAX_PEER_ADDRESSES: usize = 4;
/// ICE and DTLS must be done this long after the answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 3550 §6.2: reports every few seconds; 5 s is the usual minimum.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
const CNAME: &[u8] = b"callgate";
/// Room for an MTU-sized packet and the SRTP tag.
const PACKET_CAPACITY: usize = 1500;

/// Why a datagram was refused. The session stays usable; the datagram
/// alone is dropped. Typed, so refusing junk in a flood allocates nothing.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("not stun, dtls or rtp")]
    Unclassified,
    #[error(transparent)]
    Check(#[from] StunError),
    #[error("dtls before a verified check")]
    DtlsBeforeCheck,
    #[error(transparent)]
    Dtls(#[from] DtlsError),
    #[error("media from an unchecked address")]
    UncheckedAddress,
    #[error("media before the dtls handshake")]
    BeforeKeys,
    #[error(transparent)]
    Srtp(#[from] SrtpError),
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// What the session hands its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A check from this address verified: the port may route its
    /// datagrams to this call.
    PeerAddress(SocketAddr),
    /// The address made room for a newer one: the port forgets it.
    PeerAddressDropped(SocketAddr),
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The connection failed; `ice` tells whether ICE never completed
    /// (otherwise DTLS failed after ICE).
    Failed { ice: bool },
    /// The browser closed its connection after the handshake (its DTLS
    /// close_notify, which only the peer can send): the visitor left.
    Closed,
}

/// An RTP audio packet from the browser, SRTP-decrypted in the buffer it
/// arrived in; header fields as the browser sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserFrame<'a> {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// One datagram to send, borrowed from the session until the next poll.
#[derive(Debug)]
pub struct Transmit<'a> {
    pub to: SocketAddr,
    pub bytes: &'a [u8],
}

/// What every session of a node shares.
#[derive(Clone)]
pub struct SessionSettings {
    /// The address in our candidate.
    pub candidate: SocketAddr,
    /// One DTLS certificate for all sessions: generating a key pair per call
    /// would cost milliseconds of CPU on the signalling path.
    pub certificate: RTCCertificate,
    /// Its sha-256 fingerprint, as the answer writes it.
    fingerprint: String,
}

impl SessionSettings {
    pub fn new(candidate: SocketAddr, certificate: RTCCertificate) -> Self {
        let fingerprint = fingerprint_of(&certificate.dtls_certificate);
        Self {
            candidate,
            certificate,
            fingerprint,
        }
    }
}

/// Header values of a packet we send to the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingHeader {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
}

/// The browser's addresses whose checks verified, oldest first.
#[derive(Debug, Default)]
struct PeerAddresses {
    checked: Vec<SocketAddr>,
    /// Where media goes: the nominated pair, or the latest checked one.
    selected: Option<SocketAddr>,
    nominated: bool,
}

impl PeerAddresses {
    /// Records a verified check. Returns the events for the port: `from`
    /// when it is new, and the oldest address it displaced.
    fn handle_check(&mut self, from: SocketAddr, nominated: bool) -> [Option<SessionEvent>; 2] {
        let mut events = [None, None];
        if !self.checked.contains(&from) {
            if self.checked.len() == MAX_PEER_ADDRESSES {
                let selected = self.selected;
                if let Some(oldest) = self.checked.iter().position(|a| Some(*a) != selected) {
                    let dropped = self.checked.remove(oldest);
                    events[1] = Some(SessionEvent::PeerAddressDropped(dropped));
                }
            }
            self.checked.push(from);
            events[0] = Some(SessionEvent::PeerAddress(from));
        }
        if nominated || !self.nominated {
            self.selected = Some(from);
            self.nominated |= nominated;
        }
        events
    }

    fn is_checked(&self, from: SocketAddr) -> bool {
        self.checked.contains(&from)
    }
}

/// The keyed halves once DTLS completed.
struct Srtp {
    sender: SrtpSender,
    receiver: SrtpReceiver,
}

/// See the module documentation.
pub struct BrowserSession {
    media: BrowserMedia,
    ssrc: u32,
    credentials: IceCredentials,
    peers: PeerAddresses,
    dtls: DtlsHandshake,
    srtp: Option<Srtp>,
    connect_by: Instant,
    failed: bool,
    last_authenticated: Option<Instant>,
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The datagram last handed out by `poll_transmit`.
    current: Vec<u8>,
    /// Buffers of sent datagrams, reused so sending allocates nothing.
    spare: Vec<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    received: ReceiveStats,
    remote_ssrc: Option<u32>,
    sent: SenderStats,
    /// The browser's last round trip to us, from its report on our stream.
    round_trip: Option<Duration>,
    next_report: Instant,
}

impl BrowserSession {
    /// Answers `offer` (already checked by [`super::offer::inspect`]) with
    /// `media`'s codec, using the ICE credentials the port routes by.
    /// Returns the session and the answer SDP.
    pub fn answer(
        settings: &SessionSettings,
        offer: &str,
        media: BrowserMedia,
        ice_ufrag: &str,
        ice_pwd: &str,
        now: Instant,
    ) -> Result<(Self, String), WebrtcError> {
        let sections =
            OfferSections::parse(offer).map_err(|e| WebrtcError::BadOffer(e.to_string()))?;
        let ssrc = rand::random::<u32>();
        let answer = write_answer(
            &sections,
            &AnswerParams {
                media: &media,
                candidate: settings.candidate,
                ice_ufrag,
                ice_pwd,
                fingerprint: &settings.fingerprint,
                ssrc,
                session_id: rand::random::<u64>() >> 2,
            },
        );
        let dtls = DtlsHandshake::server(
            &settings.certificate.dtls_certificate,
            sections.remote_fingerprint.clone(),
            settings.candidate,
        )
        .map_err(|e| WebrtcError::Negotiation(e.to_string()))?;
        let clock_rate = media.codec.clock_rate();
        let session = Self {
            media,
            ssrc,
            credentials: IceCredentials::new(ice_ufrag, ice_pwd, &sections.remote_ufrag),
            peers: PeerAddresses::default(),
            dtls,
            srtp: None,
            connect_by: now + CONNECT_TIMEOUT,
            failed: false,
            last_authenticated: None,
            queue: VecDeque::new(),
            current: Vec::new(),
            spare: Vec::new(),
            events: VecDeque::new(),
            received: ReceiveStats::new(clock_rate),
            remote_ssrc: None,
            sent: SenderStats::new(clock_rate),
            round_trip: None,
            next_report: now + REPORT_INTERVAL,
        };
        Ok((session, answer))
    }

    /// The codec and payload types in our answer.
    pub fn media(&self) -> &BrowserMedia {
        &self.media
    }

    /// Our SSRC towards the browser.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Reception statistics of the browser's audio (RFC 3550 §6.4.1), for
    /// our reports and the call's record.
    pub fn receive_stats(&self) -> &ReceiveStats {
        &self.received
    }

    /// The round trip to the browser, once its reports have given one.
    pub fn round_trip(&self) -> Option<Duration> {
        self.round_trip
    }

    /// The session as a completed handshake leaves it, without one: `peer`
    /// checked and nominated, SRTP keyed with `local` (what we send) and
    /// `remote` (what the browser sends). The fuzzer's live call starts
    /// here, since no fuzzer completes a DTLS handshake.
    #[cfg(any(feature = "fuzzing", test))]
    pub(crate) fn keyed_for_fuzzing(
        &mut self,
        peer: SocketAddr,
        local: &crate::media::srtp::SrtpMasterKey,
        remote: &crate::media::srtp::SrtpMasterKey,
    ) {
        let _ = self.peers.handle_check(peer, true);
        self.srtp = Some(Srtp {
            sender: SrtpSender::new(local),
            receiver: SrtpReceiver::new(remote),
        });
    }

    /// When authenticated input last arrived; `None` before any did.
    pub fn last_authenticated(&self) -> Option<Instant> {
        self.last_authenticated
    }

    /// A datagram from `from`, decrypted in place when it is SRTP; the
    /// browser's audio comes back borrowed from `datagram`. Errors are the
    /// datagram's (forged, broken, replayed); the session stays usable.
    pub fn handle_datagram<'d>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &'d mut [u8],
    ) -> Result<Option<BrowserFrame<'d>>, PacketError> {
        match classify(datagram) {
            PacketClass::Stun => self.handle_check(now, from, datagram),
            PacketClass::Dtls => self.handle_dtls(now, from, datagram),
            PacketClass::Rtp if is_rtcp(datagram) => self.handle_srtcp(now, from, datagram),
            PacketClass::Rtp => return self.handle_srtp(now, from, datagram),
            PacketClass::Other => Err(PacketError::Unclassified),
        }
        .map(|()| None)
    }

    fn handle_check(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), PacketError> {
        let check = verify_check(datagram, &self.credentials)?;
        self.last_authenticated = Some(now);
        let events = self.peers.handle_check(from, check.nominated);
        self.events.extend(events.into_iter().flatten());
        let mut response = self.take_buffer();
        write_success(&mut response, &check, from, &self.credentials);
        self.queue.push_back((from, response));
        Ok(())
    }

    fn handle_dtls(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), PacketError> {
        if !self.peers.is_checked(from) {
            return Err(PacketError::DtlsBeforeCheck);
        }
        // The DTLS library takes owned records; they are few per call.
        let progress = self.dtls.handle_record(now, BytesMut::from(datagram));
        self.queue_dtls(from);
        match progress? {
            DtlsProgress::Pending => {}
            DtlsProgress::Keys(local, remote) => {
                self.srtp = Some(Srtp {
                    sender: SrtpSender::new(&local),
                    receiver: SrtpReceiver::new(&remote),
                });
                self.events.push_back(SessionEvent::Connected);
                // The handshake proved the browser's certificate.
                self.last_authenticated = Some(now);
            }
            DtlsProgress::Closed if self.srtp.is_some() => {
                self.events.push_back(SessionEvent::Closed)
            }
            DtlsProgress::Closed => self.fail(false),
        }
        // Any other record proves nothing: the DTLS library drops a record
        // that fails to decrypt without a word, so DTLS-shaped junk from the
        // browser's address (forged, over UDP) must not keep a vanished
        // call alive. Until the keys, the connect deadline bounds the wait.
        Ok(())
    }

    fn queue_dtls(&mut self, to: SocketAddr) {
        while let Some(record) = self.dtls.poll_transmit() {
            let mut buffer = self.take_buffer();
            buffer.extend_from_slice(&record);
            self.queue.push_back((to, buffer));
        }
    }

    fn handle_srtp<'d>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &'d mut [u8],
    ) -> Result<Option<BrowserFrame<'d>>, PacketError> {
        let receiver = &mut self.keyed(from)?.receiver;
        let plain_len = receiver.unprotect_rtp(datagram)?;
        self.last_authenticated = Some(now);
        let plain: &'d [u8] = &datagram[..plain_len];
        let packet = RtpPacket::parse(plain)?;
        if packet.payload_type() != self.media.payload_type {
            // telephone-event from the browser is not relayed: the widget
            // sends digits over signalling.
            return Ok(None);
        }
        self.remote_ssrc = Some(packet.ssrc().0);
        self.received
            .handle_packet(packet.sequence(), packet.timestamp(), now);
        Ok(Some(BrowserFrame {
            payload_type: packet.payload_type(),
            sequence: packet.sequence(),
            timestamp: packet.timestamp(),
            ssrc: packet.ssrc().0,
            marker: packet.marker(),
            payload: packet.payload(),
        }))
    }

    fn handle_srtcp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<(), PacketError> {
        let receiver = &mut self.keyed(from)?.receiver;
        let plain_len = receiver.unprotect_rtcp(datagram)?;
        self.last_authenticated = Some(now);
        let packets = rtcp::parse_compound(&datagram[..plain_len])?;
        for packet in packets {
            let blocks = match packet {
                RtcpPacket::SenderReport(report) => {
                    self.received.handle_sender_report(report.info.ntp, now);
                    report.reports
                }
                RtcpPacket::ReceiverReport(report) => report.reports,
                _ => continue,
            };
            self.handle_report_blocks(&blocks);
        }
        Ok(())
    }

    /// The browser's report on our stream gives the round trip (RFC 3550
    /// §6.4.1, from its echo of our last SR).
    fn handle_report_blocks(&mut self, blocks: &[ReportBlock]) {
        let arrival = NtpTime::from_system_time(SystemTime::now());
        for block in blocks.iter().filter(|b| b.ssrc == Ssrc(self.ssrc)) {
            if let Some(rtt) = self.sent.round_trip(block, arrival) {
                self.round_trip = Some(rtt);
            }
        }
    }

    /// The SRTP halves, for a datagram from one of the browser's checked
    /// addresses after the handshake.
    fn keyed(&mut self, from: SocketAddr) -> Result<&mut Srtp, PacketError> {
        if !self.peers.is_checked(from) {
            return Err(PacketError::UncheckedAddress);
        }
        self.srtp.as_mut().ok_or(PacketError::BeforeKeys)
    }

    /// Sends one audio packet to the browser; the header must already be
    /// in our stream's numbering (see `media::rtp::StreamRewriter`).
    /// Before the handshake completes the packet is dropped.
    pub fn send_rtp(
        &mut self,
        now: Instant,
        header: OutgoingHeader,
        payload: &[u8],
    ) -> Result<(), PacketError> {
        let (Some(to), true) = (self.peers.selected, self.srtp.is_some()) else {
            return Ok(());
        };
        let mut buffer = self.take_buffer();
        let written = RtpHeader {
            payload_type: header.payload_type,
            marker: header.marker,
            sequence: header.sequence,
            timestamp: header.timestamp,
            ssrc: Ssrc(self.ssrc),
        }
        .write_packet(payload, &mut buffer);
        let protected = match (written, self.srtp.as_mut()) {
            (Ok(()), Some(srtp)) => srtp.sender.protect_rtp(&mut buffer),
            (Err(e), _) => return Err(e.into()),
            (Ok(()), None) => return Ok(()),
        };
        if let Err(e) = protected {
            self.spare.push(buffer);
            return Err(e.into());
        }
        self.sent.handle_sent(payload.len(), header.timestamp, now);
        self.queue.push_back((to, buffer));
        Ok(())
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let (to, bytes) = self.queue.pop_front()?;
        let done = std::mem::replace(&mut self.current, bytes);
        self.recycle(done);
        Some(Transmit {
            to,
            bytes: &self.current,
        })
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let report = self.srtp.as_ref().map(|_| self.next_report);
        let connect = (self.srtp.is_none() && !self.failed).then_some(self.connect_by);
        [report, connect, self.dtls.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dtls.handle_timeout(now).is_err() && self.srtp.is_none() {
            self.fail(false);
        }
        if let Some(to) = self.peers.selected {
            self.queue_dtls(to);
        }
        if self.srtp.is_none() && !self.failed && now >= self.connect_by {
            let ice = !self.peers.nominated && self.peers.checked.is_empty();
            self.fail(ice);
        }
        if self.srtp.is_some() && now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            self.queue_report(now);
        }
    }

    /// Sends an RTCP BYE and DTLS close_notify, then stops the timers.
    pub fn close(&mut self, now: Instant) {
        if let Some(to) = self.peers.selected {
            let mut buffer = self.take_buffer();
            if write_goodbye(&mut buffer, Ssrc(self.ssrc), CNAME).is_ok() {
                self.queue_rtcp(to, buffer);
            }
            self.dtls.close(now);
            self.queue_dtls(to);
        }
        self.srtp = None;
        self.failed = true;
    }

    fn queue_report(&mut self, now: Instant) {
        let Some(to) = self.peers.selected else {
            return;
        };
        let blocks: Vec<_> = self
            .remote_ssrc
            .and_then(|ssrc| self.received.poll_report_block(Ssrc(ssrc), now))
            .into_iter()
            .collect();
        let input = ReportInput {
            ssrc: Ssrc(self.ssrc),
            sender: self.sent.poll_sender_info(now, SystemTime::now()),
            blocks: &blocks,
            cname: CNAME,
        };
        let mut buffer = self.take_buffer();
        if write_report(&mut buffer, &input).is_ok() {
            self.queue_rtcp(to, buffer);
        }
    }

    fn queue_rtcp(&mut self, to: SocketAddr, mut buffer: Vec<u8>) {
        let Some(srtp) = self.srtp.as_mut() else {
            return self.recycle(buffer);
        };
        match srtp.sender.protect_rtcp(&mut buffer) {
            Ok(()) => self.queue.push_back((to, buffer)),
            Err(_) => self.recycle(buffer),
        }
    }

    fn fail(&mut self, ice: bool) {
        if !self.failed {
            self.failed = true;
            self.events.push_back(SessionEvent::Failed { ice });
        }
    }

    fn take_buffer(&mut self) -> Vec<u8> {
        let mut buffer = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(PACKET_CAPACITY));
        buffer.clear();
        buffer
    }

    fn recycle(&mut self, buffer: Vec<u8>) {
        // A handful covers a burst; more would only hold memory.
        if self.spare.len() < 8 && buffer.capacity() >= PACKET_CAPACITY {
            self.spare.push(buffer);
        }
    }
}

/// Also the in-memory browser of the call media's tests.
#[cfg(test)]
pub(crate) mod tests;

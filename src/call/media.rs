//! [`CallMedia`]: everything one call does to its packets, sans-IO — the
//! browser's [`BrowserSession`], the trunk's [`EndpointCore`], the relay
//! between them and the recording tap.
//!
//! Shape: the host feeds datagrams from the browser port
//! ([`CallMedia::handle_browser`]) and from the trunk leg's RTP and RTCP
//! sockets ([`CallMedia::handle_trunk`]), and calls
//! [`CallMedia::handle_timeout`] once [`CallMedia::poll_timeout`] has
//! passed. Datagrams to send go straight to the host's [`Transmitter`] as
//! they are made, so nothing is copied or queued between the legs; events
//! for the call's control ([`CallMediaEvent`]) are polled. After every
//! input, poll events until `None`.
//!
//! A browser packet, socket to socket: the call's media shard
//! ([`super::shard`]) reads it from its browser port and hands it to
//! [`CallMedia::handle_browser`]; the session authenticates and decrypts it
//! and hands over its audio; the relay converts it if the codecs differ
//! and gives it to the trunk endpoint, which rewrites the header, protects
//! it when the trunk is SRTP, and passes it to the [`Transmitter`]. The
//! trunk direction is the mirror image through [`CallMedia::handle_trunk`].
//!
//! Invariants:
//! - A datagram that does not authenticate changes nothing but counters.
//! - The browser is gone when it closes its connection (DTLS
//!   close_notify), or when nothing authenticated (a consent check, DTLS,
//!   SRTP) arrived for the disconnect timeout.
//! - Audio reaches the recorder only while the control side says the
//!   consent gate is open ([`CallMedia::set_recording`]).
//! - Keypad digits from the trunk, as RFC 4733 events (whatever their
//!   quirks: no marker bit, repeated end packets, a payload type changed by
//!   a re-INVITE) or in SIP INFO ([`CallMedia::play_dtmf_to_browser`]),
//!   reach the browser as clean RFC 4733 events of our own, numbered in its
//!   one stream, when the browser negotiated telephone-event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::observer::RelayObserver;
use super::report::MediaReport;
use crate::domain::{Codec, LegStats};
use crate::media::MediaError;
use crate::media::dtmf::{DtmfConfig, DtmfSender};
use crate::media::endpoint::{
    EndpointCore, MediaEvent, MediaFrame, RemoteMedia, StatsReader, Transmit,
};
use crate::media::quality::{Leg, Warnings};
use crate::media::rtp::{RewriteInput, Ssrc, StreamRewriter, StreamStart};
use crate::media::transcode::{Converted, Transcoder};
use crate::recording::mixer::{Channel, MediaTime, SAMPLE_RATE};
use crate::recording::recorder::{G711Law, RecorderTap};
use crate::webrtc::{BrowserFrame, BrowserSession, OutgoingHeader, SessionEvent};

pub mod offload;
pub mod quality;

use offload::{ConvertedFrame, Toward, TranscodeRequest, Transcoded};
use quality::{CallQuality, LegCounters};

/// Where the host puts the datagrams a call makes.
pub trait Transmitter {
    /// A datagram for the browser, from the browser port. `relayed` is
    /// set when it relays a trunk packet: the host reports the relay
    /// ([`RelayObserver::relayed_to_browser`]) once it has left.
    fn to_browser(&mut self, to: SocketAddr, bytes: &[u8], relayed: Option<Relayed>);
    /// A datagram for the trunk, from the socket `transmit.kind` names;
    /// returns whether the socket took it.
    fn to_trunk(&mut self, transmit: &Transmit<'_>) -> bool;
    /// Audio for the call's transcoder elsewhere (only for media built
    /// with `transcode_elsewhere`); the host feeds the result back through
    /// [`CallMedia::handle_transcoded`]. A request the host has no room
    /// for is dropped, like a lost packet.
    fn transcode(&mut self, request: TranscodeRequest);
}

/// The trunk packet a datagram for the browser relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// When the trunk packet arrived.
    pub arrived: Instant,
    /// Its audio went through a transcoder.
    pub transcoded: bool,
}

/// What the call's control learns from its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMediaEvent {
    /// A check from this address verified: the port routes it to the call.
    PeerAddress(SocketAddr),
    /// The address made room for a newer one: the port forgets it.
    PeerAddressDropped(SocketAddr),
    /// ICE or DTLS failed (`ice` tells which).
    BrowserFailed { ice: bool },
    /// Nothing authenticated arrived from the browser for too long.
    BrowserGone,
    /// The visitor's quality warnings changed: these are active now.
    Quality(Warnings),
}

/// What a call's media is built from.
pub struct CallMediaParts {
    pub session: BrowserSession,
    pub trunk: EndpointCore,
    pub disconnect_timeout: Duration,
    pub observer: Arc<dyn RelayObserver>,
    /// Present when the number records at all.
    pub tap: Option<RecorderTap>,
    /// Opus is converted by the host's transcoder elsewhere
    /// ([`Transmitter::transcode`]), not in the media's own thread.
    pub transcode_elsewhere: bool,
}

/// See the module documentation.
pub struct CallMedia {
    session: BrowserSession,
    trunk: EndpointCore,
    trunk_stats: StatsReader,
    observer: Arc<dyn RelayObserver>,
    disconnect_timeout: Duration,
    last_heard: Instant,
    gone: bool,
    browser_codec: Codec,
    trunk_codec: Option<Codec>,
    transcode_elsewhere: bool,
    /// In-thread converters (passthrough, G.711 laws, and Opus when it is
    /// not transcoded elsewhere).
    to_trunk: Option<Transcoder>,
    to_browser: Option<Transcoder>,
    /// Turns the trunk's sources into one continuous stream to the browser.
    rewriter: StreamRewriter,
    /// Numbering of transcoded packets, the rewriter's input.
    generated_seq: u16,
    generated_ts: u32,
    browser_sent: u64,
    browser_received: u64,
    tap: Option<RecorderTap>,
    recording: bool,
    /// Present when the browser negotiated telephone-event.
    browser_dtmf: Option<BrowserDtmf>,
    quality: CallQuality,
    events: Vec<CallMediaEvent>,
}

/// The trunk's keypad digits on their way to the browser.
struct BrowserDtmf {
    sender: DtmfSender,
    payload_type: u8,
    /// The RTP timestamp of the event being played.
    event_timestamp: u32,
}

fn g711_law(codec: Codec) -> Option<G711Law> {
    match codec {
        Codec::Pcmu => Some(G711Law::Ulaw),
        Codec::Pcma => Some(G711Law::Alaw),
        Codec::Opus => None,
    }
}

fn codec_of_payload_type(pt: u8) -> Option<Codec> {
    match pt {
        0 => Some(Codec::Pcmu),
        8 => Some(Codec::Pcma),
        _ => None,
    }
}

impl CallMedia {
    pub fn new(parts: CallMediaParts, now: Instant) -> Self {
        let browser_codec = parts.session.media().codec;
        let rewriter = StreamRewriter::new(
            StreamStart {
                ssrc: Ssrc(parts.session.ssrc()),
                sequence: rand::random(),
                timestamp: rand::random(),
            },
            browser_codec.clock_rate(),
            now,
        );
        let browser_dtmf = parts.session.media().telephone_event.and_then(|event| {
            // RFC 4733 §2.1: the events' clock is the audio's, which the
            // browser's answer already matched.
            let config = DtmfConfig {
                clock_rate: event.clock_rate,
                ..DtmfConfig::default()
            };
            Some(BrowserDtmf {
                sender: DtmfSender::new(config).ok()?,
                payload_type: event.payload_type,
                event_timestamp: 0,
            })
        });
        Self {
            trunk_stats: parts.trunk.stats_reader(),
            session: parts.session,
            trunk: parts.trunk,
            observer: parts.observer,
            disconnect_timeout: parts.disconnect_timeout,
            last_heard: now,
            gone: false,
            browser_codec,
            trunk_codec: None,
            transcode_elsewhere: parts.transcode_elsewhere,
            to_trunk: None,
            to_browser: None,
            rewriter,
            generated_seq: 0,
            generated_ts: 0,
            browser_sent: 0,
            browser_received: 0,
            tap: parts.tap,
            recording: false,
            browser_dtmf,
            quality: CallQuality::new(now),
            events: Vec::new(),
        }
    }

    /// A datagram from the browser port, received at `received_at` (the
    /// kernel's stamp: the start of its relay latency). SRTP is decrypted
    /// in `datagram` itself.
    pub fn handle_browser(
        &mut self,
        received_at: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        out: &mut impl Transmitter,
    ) {
        // A bad datagram concerns that datagram only; it is counted.
        let srtp = datagram
            .first()
            .is_some_and(|byte| (128..=191).contains(byte));
        let audio = match self.session.handle_datagram(received_at, from, datagram) {
            Ok(audio) => audio,
            Err(_) => {
                self.observer.browser_rejected(srtp);
                None
            }
        };
        // Only what authenticated proves the browser is still there.
        if let Some(heard) = self.session.last_authenticated() {
            self.last_heard = self.last_heard.max(heard);
        }
        if let Some(frame) = audio {
            self.on_browser_audio(received_at, frame, out);
        }
        self.after_session(out);
    }

    /// A datagram from the trunk leg's RTP port (`rtcp_port` false) or RTCP
    /// port.
    pub fn handle_trunk(
        &mut self,
        received_at: Instant,
        from: SocketAddr,
        datagram: &[u8],
        rtcp_port: bool,
        out: &mut impl Transmitter,
    ) {
        match self
            .trunk
            .handle_datagram(received_at, from, datagram, rtcp_port)
        {
            Some(MediaEvent::Frame(frame)) => self.on_trunk_audio(received_at, frame, out),
            Some(MediaEvent::Dtmf { digit, sequence }) => {
                self.skip_trunk_packet(sequence);
                self.play_dtmf_to_browser(received_at, digit);
                self.send_browser_dtmf(received_at);
                self.after_session(out);
            }
            Some(MediaEvent::DtmfContinued { sequence }) => self.skip_trunk_packet(sequence),
            None => {}
        }
    }

    /// Audio converted elsewhere ([`Transmitter::transcode`]), put on its
    /// way at `now`.
    pub fn handle_transcoded(
        &mut self,
        now: Instant,
        done: Transcoded,
        out: &mut impl Transmitter,
    ) {
        match done.toward {
            Toward::Trunk {
                timestamp,
                recorded,
                ..
            } => {
                // A packet that came after its time was made up for.
                if done.frames.is_empty() {
                    return;
                }
                let Some(mut delivery) = self.trunk_delivery(done.received_at, timestamp, recorded)
                else {
                    return;
                };
                for frame in &done.frames {
                    delivery.deliver(frame_of(frame), out);
                }
                self.observer
                    .relayed_to_trunk(done.received_at.elapsed(), true);
            }
            Toward::Browser { marker } => {
                let mut delivery = self.browser_delivery(now);
                for frame in &done.frames {
                    delivery.deliver_generated(frame_of(frame), marker);
                }
                let relayed = Relayed {
                    arrived: done.received_at,
                    transcoded: true,
                };
                while let Some(transmit) = self.session.poll_transmit() {
                    out.to_browser(transmit.to, transmit.bytes, Some(relayed));
                }
            }
        }
    }

    /// When [`CallMedia::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let mut due = self.trunk.poll_timeout();
        if let Some(session) = self.session.poll_timeout() {
            due = due.min(session);
        }
        if !self.gone {
            due = due.min(self.last_heard + self.disconnect_timeout);
        }
        if let Some(dtmf) = self
            .browser_dtmf
            .as_ref()
            .and_then(|d| d.sender.poll_timeout())
        {
            due = due.min(dtmf);
        }
        due.min(self.quality.poll_timeout())
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut impl Transmitter) {
        self.session.handle_timeout(now);
        self.send_browser_dtmf(now);
        self.trunk.handle_timeout(now, |tx| out.to_trunk(tx));
        if now >= self.last_heard + self.disconnect_timeout {
            self.browser_gone();
        }
        self.judge_quality(now);
        self.after_session(out);
    }

    /// Closes the quality window when it is due: both legs' figures go to
    /// the node's metrics, and changed warnings to the call's control.
    fn judge_quality(&mut self, now: Instant) {
        let (session, trunk_stats) = (&self.session, &self.trunk_stats);
        let counters = || {
            let received = session.receive_stats();
            let browser = LegCounters {
                lost: i64::from(received.cumulative_lost()),
                received: u64::from(received.received()),
                jitter_ms: received.jitter_duration().as_secs_f64() * 1000.0,
                rtt_ms: session.round_trip().map(|d| d.as_secs_f64() * 1000.0),
            };
            let trunk = trunk_stats.get();
            let trunk = LegCounters {
                lost: trunk.lost,
                received: trunk.packets_received,
                jitter_ms: trunk.jitter_ms,
                rtt_ms: trunk.round_trip_ms,
            };
            (browser, trunk)
        };
        let Some(closed) = self.quality.handle_timeout(now, counters) else {
            return;
        };
        for (leg, window) in [(Leg::Browser, closed.browser), (Leg::Trunk, closed.trunk)] {
            if let Some(window) = window {
                self.observer.quality_window(leg, &window);
            }
        }
        if let Some(warnings) = closed.warnings {
            self.events.push(CallMediaEvent::Quality(warnings));
        }
    }

    /// The next event for the call's control.
    pub fn poll_event(&mut self) -> Option<CallMediaEvent> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }

    /// The trunk's (re-)negotiated description: address, hold, keys.
    pub fn apply_trunk_remote(
        &mut self,
        now: Instant,
        remote: &RemoteMedia,
    ) -> Result<(), MediaError> {
        self.trunk.apply_remote(now, remote)
    }

    /// The trunk answered with `codec`.
    pub fn handle_trunk_answer(&mut self, codec: Codec) {
        if self.trunk_codec != Some(codec) {
            self.set_trunk_codec(codec);
        }
    }

    /// The trunk moved its media: what the browser hears next starts a new
    /// source in its stream.
    pub fn handle_trunk_source_change(&mut self) {
        self.rewriter.mark_source_change();
    }

    /// Keypad digits for the trunk, as RFC 4733 events.
    pub fn send_dtmf(&mut self, now: Instant, digits: &str) -> Result<(), MediaError> {
        self.trunk.queue_dtmf(now, digits)
    }

    /// A keypad digit from the trunk, played to the browser as RFC 4733
    /// events after any still playing; its packets leave from
    /// [`CallMedia::handle_timeout`], due at once for the first. Ignored
    /// when the browser did not negotiate telephone-event.
    pub fn play_dtmf_to_browser(&mut self, now: Instant, digit: char) {
        if let Some(dtmf) = &mut self.browser_dtmf {
            // Both sources hand over checked digits only.
            let _ = dtmf
                .sender
                .handle_digits(digit.encode_utf8(&mut [0; 4]), now);
        }
    }

    /// Our own events replace the trunk's, so a trunk packet that is not
    /// relayed must leave no gap in the browser's stream. Only relayed
    /// packets keep the trunk's numbering; transcoded ones are numbered
    /// as they are made and have no gap to close.
    fn skip_trunk_packet(&mut self, sequence: u16) {
        let passthrough = !self.converts_elsewhere()
            && self
                .to_browser
                .as_ref()
                .is_some_and(Transcoder::is_passthrough);
        if passthrough {
            self.rewriter.skip(Ssrc(0), sequence);
        }
    }

    /// Puts the browser's DTMF packets due at `now` into its stream: each
    /// takes the next sequence number, and an event's timestamp is where
    /// the stream's clock stands when it starts (RFC 4733 §2.5.1).
    fn send_browser_dtmf(&mut self, now: Instant) {
        let Some(dtmf) = &mut self.browser_dtmf else {
            return;
        };
        while let Some(packet) = dtmf.sender.poll_packet(now) {
            if packet.event_start {
                dtmf.event_timestamp = self.rewriter.next_timestamp(now);
            }
            let header = OutgoingHeader {
                payload_type: dtmf.payload_type,
                sequence: self.rewriter.insert(),
                timestamp: dtmf.event_timestamp,
                marker: packet.event_start,
            };
            if self.session.send_rtp(now, header, &packet.payload).is_ok() {
                self.browser_sent += 1;
            }
        }
    }

    /// Whether the consent gate is open: audio reaches the recorder only
    /// while it is.
    pub fn set_recording(&mut self, open: bool) {
        self.recording = open && self.tap.is_some();
    }

    /// Says goodbye on both legs: RTCP BYE and DTLS close_notify to the
    /// browser, RTCP BYE to the trunk.
    pub fn close(&mut self, now: Instant, out: &mut impl Transmitter) {
        self.session.close(now);
        while let Some(transmit) = self.session.poll_transmit() {
            out.to_browser(transmit.to, transmit.bytes, None);
        }
        self.trunk.goodbye(|tx| out.to_trunk(tx));
    }

    pub fn report(&self) -> MediaReport {
        let trunk = self.trunk_stats.get();
        let received = self.session.receive_stats();
        let (browser_mos, trunk_mos) = self.quality.summaries();
        let browser_jitter_ms = received.jitter_duration().as_secs_f64() * 1000.0;
        MediaReport {
            trunk_codec: self.trunk_codec.map(Codec::name),
            browser: LegStats {
                packets_sent: self.browser_sent,
                packets_received: self.browser_received,
                packets_lost: i64::from(received.cumulative_lost()),
                jitter_us: LegStats::jitter_us_from_ms(browser_jitter_ms),
                mos_worst_x100: browser_mos.worst.and_then(LegStats::mos_x100),
                mos_average_x100: browser_mos.average.and_then(LegStats::mos_x100),
            },
            trunk: LegStats {
                packets_sent: trunk.packets_sent,
                packets_received: trunk.packets_received,
                packets_lost: trunk.lost,
                jitter_us: LegStats::jitter_us_from_ms(trunk.jitter_ms),
                mos_worst_x100: trunk_mos.worst.and_then(LegStats::mos_x100),
                mos_average_x100: trunk_mos.average.and_then(LegStats::mos_x100),
            },
        }
    }

    /// The browser left, by closing its connection or by falling silent:
    /// said once.
    fn browser_gone(&mut self) {
        if !self.gone {
            self.gone = true;
            self.events.push(CallMediaEvent::BrowserGone);
        }
    }

    /// Sends what the session has queued and handles its events.
    fn after_session(&mut self, out: &mut impl Transmitter) {
        while let Some(transmit) = self.session.poll_transmit() {
            out.to_browser(transmit.to, transmit.bytes, None);
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::PeerAddress(address) => {
                    self.events.push(CallMediaEvent::PeerAddress(address));
                }
                SessionEvent::PeerAddressDropped(address) => {
                    self.events
                        .push(CallMediaEvent::PeerAddressDropped(address));
                }
                SessionEvent::Connected => {}
                SessionEvent::Failed { ice } => {
                    self.observer.browser_connect_failed(ice);
                    self.events.push(CallMediaEvent::BrowserFailed { ice });
                }
                SessionEvent::Closed => self.browser_gone(),
            }
        }
    }

    fn on_browser_audio(
        &mut self,
        received_at: Instant,
        frame: BrowserFrame<'_>,
        out: &mut impl Transmitter,
    ) {
        // The session only hands over the negotiated codec's packets, and
        // keeps their reception statistics.
        self.browser_received += 1;
        let Some(trunk_codec) = self.trunk_codec else {
            return;
        };
        if self.converts_elsewhere() {
            out.transcode(TranscodeRequest {
                from: self.browser_codec,
                to: trunk_codec,
                payload: frame.payload.to_vec(),
                toward: Toward::Trunk {
                    timestamp: frame.timestamp,
                    sequence: frame.sequence,
                    recorded: self.recording,
                },
                received_at,
            });
            return;
        }
        let Some(mut transcoder) = self.to_trunk.take() else {
            return;
        };
        if let Some(mut delivery) = self.trunk_delivery(received_at, frame.timestamp, true) {
            transcoder.convert(frame.payload, |converted| delivery.deliver(converted, out));
        }
        let transcoded = !transcoder.is_passthrough();
        self.to_trunk = Some(transcoder);
        self.observer
            .relayed_to_trunk(received_at.elapsed(), transcoded);
    }

    /// Opus goes to the host's transcoder rather than this thread's.
    fn converts_elsewhere(&self) -> bool {
        self.transcode_elsewhere
            && (self.browser_codec == Codec::Opus || self.trunk_codec == Some(Codec::Opus))
    }

    /// Delivery of converted browser audio that arrived at `received_at`
    /// with RTP `timestamp`; it is recorded only if the consent gate is
    /// open now and was (`recorded`) when it arrived. `None` before the
    /// trunk's codec is known.
    fn trunk_delivery(
        &mut self,
        received_at: Instant,
        timestamp: u32,
        recorded: bool,
    ) -> Option<TrunkDelivery<'_>> {
        let trunk_codec = self.trunk_codec?;
        Some(TrunkDelivery {
            trunk: &mut self.trunk,
            tap: self.tap.as_ref().filter(|_| self.recording && recorded),
            law: g711_law(trunk_codec),
            clock_rate: self.browser_codec.clock_rate(),
            timestamp,
            samples_before: 0,
            received_at,
        })
    }

    fn browser_delivery(&mut self, now: Instant) -> BrowserDelivery<'_> {
        BrowserDelivery {
            session: &mut self.session,
            rewriter: &mut self.rewriter,
            generated_seq: &mut self.generated_seq,
            generated_ts: &mut self.generated_ts,
            browser_sent: &mut self.browser_sent,
            now,
        }
    }

    fn on_trunk_audio(&mut self, now: Instant, frame: MediaFrame, out: &mut impl Transmitter) {
        let Some(codec) = codec_of_payload_type(frame.payload_type) else {
            return;
        };
        if self.trunk_codec != Some(codec) {
            self.set_trunk_codec(codec);
        }
        if let (Some(tap), true) = (&self.tap, self.recording) {
            let law = g711_law(codec).unwrap_or(G711Law::Ulaw);
            let time = MediaTime {
                rtp: frame.timestamp,
                clock_rate: codec.clock_rate(),
            };
            tap.frame(
                Channel::Callee,
                frame.received_at,
                time,
                &frame.payload,
                law,
            );
        }
        self.relay_to_browser(now, &frame, out);
        let relayed = Relayed {
            arrived: frame.received_at,
            transcoded: self
                .to_browser
                .as_ref()
                .is_some_and(|t| !t.is_passthrough()),
        };
        while let Some(transmit) = self.session.poll_transmit() {
            out.to_browser(transmit.to, transmit.bytes, Some(relayed));
        }
    }

    fn relay_to_browser(&mut self, now: Instant, frame: &MediaFrame, out: &mut impl Transmitter) {
        let Some(trunk_codec) = self.trunk_codec else {
            return;
        };
        if self.converts_elsewhere() {
            out.transcode(TranscodeRequest {
                from: trunk_codec,
                to: self.browser_codec,
                payload: frame.payload.to_vec(),
                toward: Toward::Browser {
                    marker: frame.marker,
                },
                received_at: frame.received_at,
            });
            return;
        }
        let Some(mut transcoder) = self.to_browser.take() else {
            return;
        };
        let passthrough = transcoder.is_passthrough();
        let mut delivery = self.browser_delivery(now);
        transcoder.convert(&frame.payload, |converted| match passthrough {
            true => delivery.deliver(
                converted.payload,
                RewriteInput {
                    ssrc: Ssrc(0),
                    sequence: frame.seq,
                    timestamp: frame.timestamp,
                    marker: frame.marker,
                },
            ),
            false => delivery.deliver_generated(converted, frame.marker),
        });
        self.to_browser = Some(transcoder);
    }

    /// The trunk's codec became known (answer, early media) or changed
    /// (re-INVITE): rebuild both directions' converters.
    fn set_trunk_codec(&mut self, codec: Codec) {
        self.trunk_codec = Some(codec);
        let here = !self.converts_elsewhere();
        self.to_trunk = here
            .then(|| Transcoder::new(self.browser_codec, codec).ok())
            .flatten();
        self.to_browser = here
            .then(|| Transcoder::new(codec, self.browser_codec).ok())
            .flatten();
        self.rewriter.mark_source_change();
    }
}

fn frame_of(frame: &ConvertedFrame) -> Converted<'_> {
    Converted {
        payload: &frame.payload,
        ticks: frame.ticks,
    }
}

/// Puts converted browser audio on the trunk and, while the consent gate
/// is open, in the recording.
struct TrunkDelivery<'a> {
    trunk: &'a mut EndpointCore,
    tap: Option<&'a RecorderTap>,
    law: Option<G711Law>,
    clock_rate: u32,
    /// The browser packet's RTP timestamp.
    timestamp: u32,
    /// 8 kHz samples delivered before this frame: one packet may decode to
    /// several frames, each stamped with the time of its first sample.
    samples_before: u32,
    received_at: Instant,
}

impl TrunkDelivery<'_> {
    fn deliver(&mut self, converted: Converted<'_>, out: &mut impl Transmitter) {
        let _ = self
            .trunk
            .send_audio(self.received_at, converted.payload, converted.ticks, |tx| {
                out.to_trunk(tx)
            });
        if let (Some(tap), Some(law)) = (self.tap, self.law) {
            let ticks_per_sample = self.clock_rate / SAMPLE_RATE;
            let time = MediaTime {
                rtp: self
                    .timestamp
                    .wrapping_add(self.samples_before.wrapping_mul(ticks_per_sample)),
                clock_rate: self.clock_rate,
            };
            tap.frame(
                Channel::Visitor,
                self.received_at,
                time,
                converted.payload,
                law,
            );
            self.samples_before = self
                .samples_before
                .wrapping_add(converted.payload.len() as u32);
        }
    }
}

/// Puts trunk audio, rewritten into the browser's one continuous stream,
/// into the browser's SRTP session.
struct BrowserDelivery<'a> {
    session: &'a mut BrowserSession,
    rewriter: &'a mut StreamRewriter,
    /// Numbering of transcoded packets, the rewriter's input.
    generated_seq: &'a mut u16,
    generated_ts: &'a mut u32,
    browser_sent: &'a mut u64,
    now: Instant,
}

impl BrowserDelivery<'_> {
    /// A packet numbered by the trunk (passthrough).
    fn deliver(&mut self, payload: &[u8], input: RewriteInput) {
        let Some(rewritten) = self.rewriter.rewrite(self.now, input) else {
            return;
        };
        let header = OutgoingHeader {
            payload_type: self.session.media().payload_type,
            sequence: rewritten.sequence,
            timestamp: rewritten.timestamp,
            marker: rewritten.marker,
        };
        if self.session.send_rtp(self.now, header, payload).is_ok() {
            *self.browser_sent += 1;
        }
    }

    /// A transcoded packet, numbered here.
    fn deliver_generated(&mut self, converted: Converted<'_>, marker: bool) {
        *self.generated_seq = self.generated_seq.wrapping_add(1);
        *self.generated_ts = self.generated_ts.wrapping_add(converted.ticks);
        let input = RewriteInput {
            ssrc: Ssrc(0),
            sequence: *self.generated_seq,
            timestamp: *self.generated_ts,
            marker,
        };
        self.deliver(converted.payload, input);
    }
}

#[cfg(test)]
mod tests;

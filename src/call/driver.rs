//! The per-call driver task: one browser session, one trunk leg, the relay
//! between them, and the [`CallMachine`] that decides the call's life.
//!
//! The task owns everything of its call, so the packet path takes no lock
//! shared with other calls: a browser datagram arrives from the port's
//! bounded inbox, is decrypted by the session, converted, and sent on the
//! trunk endpoint's socket without waiting; trunk frames go the other way
//! through a [`StreamRewriter`] so the browser sees one continuous stream
//! across early media, answer and re-INVITEs.
//!
//! The browser is gone when nothing (no consent check, no media) arrived
//! for `disconnect_timeout`; the call is then hung up towards the trunk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::state::{CallMachine, CallState, LocalHangup, Outcome};
use super::{LegEvent, TrunkLeg};
use crate::media::endpoint::{MediaEvent, MediaFrame};
use crate::media::rtp::{RewriteInput, Ssrc, StreamRewriter, StreamStart};
use crate::media::sdp::Codec;
use crate::media::transcode::Transcoder;
use crate::recording::gate::{Consent, ConsentGate, GateAction};
use crate::recording::mixer::{Channel, MediaTime, SAMPLE_RATE};
use crate::recording::recorder::{G711Law, RecorderHandle};
use crate::sip::{CallEnd, Disposition, EndedBy as TrunkEndedBy};
use crate::webrtc::{
    AudioCodec, BrowserFrame, BrowserSession, Datagram, OutgoingHeader, Registration, SessionEvent,
};

/// What the signalling side asks of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommand {
    Hangup,
    /// Keypad digits, already checked to be 0-9 * # A-D.
    Dtmf(String),
    /// The visitor granted (`Granted`) or revoked (`Declined`) consent to
    /// recording.
    Consent(Consent),
    Shutdown,
}

/// What the widget sees, published on a watch channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    pub state: CallState,
    pub reason: Option<&'static str>,
    pub recording: bool,
}

impl Default for CallView {
    fn default() -> Self {
        Self {
            state: CallState::Setup,
            reason: None,
            recording: false,
        }
    }
}

/// Per-leg quality figures for the CDR.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: i64,
    pub jitter_ms: f64,
}

/// Everything the call leaves behind.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub outcome: Outcome,
    pub browser_codec: &'static str,
    pub trunk_codec: Option<&'static str>,
    pub browser: LegStats,
    pub trunk: LegStats,
    /// A recording of the call was kept.
    pub recorded: bool,
}

/// Hooks for the node's metrics, called on the packet path (atomics only).
pub trait RelayObserver: Send + Sync {
    fn relayed_to_trunk(&self, latency: Duration);
    fn relayed_to_browser(&self, latency: Duration);
    fn browser_connect_failed(&self, ice: bool);
}

/// The parts of a call, assembled by the signalling handler.
pub struct CallParts {
    pub session: BrowserSession,
    pub registration: Registration,
    pub inbox: mpsc::Receiver<Datagram>,
    pub leg: TrunkLeg,
    pub commands: mpsc::Receiver<CallCommand>,
    pub view: watch::Sender<CallView>,
    pub disconnect_timeout: Duration,
    pub observer: Arc<dyn RelayObserver>,
    pub gate: ConsentGate,
    /// Present when the number records at all.
    pub recorder: Option<RecorderHandle>,
}

struct Driver {
    session: BrowserSession,
    registration: Registration,
    leg: TrunkLeg,
    view: watch::Sender<CallView>,
    machine: CallMachine,
    observer: Arc<dyn RelayObserver>,
    disconnect_timeout: Duration,
    last_heard: Instant,
    browser_codec: AudioCodec,
    trunk_codec: Option<AudioCodec>,
    to_trunk: Option<Transcoder>,
    to_browser: Option<Transcoder>,
    rewriter: StreamRewriter,
    /// Numbering of transcoded packets, the rewriter's input.
    generated_seq: u16,
    generated_ts: u32,
    browser_sent: u64,
    browser_received: u64,
    gate: ConsentGate,
    recorder: Option<RecorderHandle>,
    /// When the port received the datagram being handled: the start of its
    /// audio's relay latency, queueing and decryption included.
    arrived: Instant,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the call to its end and returns its report.
pub async fn run(parts: CallParts) -> CallReport {
    let CallParts {
        session,
        registration,
        mut inbox,
        mut leg,
        mut commands,
        view,
        disconnect_timeout,
        observer,
        gate,
        recorder,
    } = parts;
    let mut trunk_media = leg.take_media();
    let start = now();
    let browser_codec = session.media().codec;
    let rewriter = StreamRewriter::new(
        StreamStart {
            ssrc: Ssrc(session.ssrc()),
            sequence: rand::random(),
            timestamp: rand::random(),
        },
        browser_codec.clock_rate(),
        start,
    );
    let mut driver = Driver {
        session,
        registration,
        leg,
        view,
        machine: CallMachine::new(),
        observer,
        disconnect_timeout,
        last_heard: start,
        browser_codec,
        trunk_codec: None,
        to_trunk: None,
        to_browser: None,
        rewriter,
        generated_seq: 0,
        generated_ts: 0,
        browser_sent: 0,
        browser_received: 0,
        gate,
        recorder,
        arrived: start,
    };
    loop {
        let deadline = driver.next_deadline();
        tokio::select! {
            datagram = inbox.recv() => match datagram {
                Some(datagram) => driver.on_datagram(datagram),
                None => driver.hang_up(LocalHangup::Shutdown),
            },
            frame = recv_media(&mut trunk_media) => driver.on_trunk_media(frame),
            event = driver.leg.next_event() => {
                let event = event.unwrap_or_else(lost_leg);
                if driver.on_leg_event(event) {
                    break;
                }
            }
            command = commands.recv() => driver.on_command(command.unwrap_or(CallCommand::Shutdown)),
            () = tokio::time::sleep_until(deadline.into()) => driver.on_timer(),
        }
        driver.flush();
    }
    driver.finish().await
}

async fn recv_media(media: &mut Option<mpsc::Receiver<MediaEvent>>) -> Option<MediaEvent> {
    match media {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The leg's event stream closed without an end: count it as a failure.
fn lost_leg() -> LegEvent {
    LegEvent::Ended(CallEnd {
        disposition: Disposition::Failed,
        sip_code: None,
        ended_by: TrunkEndedBy::Local,
        trunk: None,
    })
}

fn g711_law(codec: AudioCodec) -> Option<G711Law> {
    match codec {
        AudioCodec::Pcmu => Some(G711Law::Ulaw),
        AudioCodec::Pcma => Some(G711Law::Alaw),
        AudioCodec::Opus => None,
    }
}

fn codec_of_payload_type(pt: u8) -> Option<AudioCodec> {
    match pt {
        0 => Some(AudioCodec::Pcmu),
        8 => Some(AudioCodec::Pcma),
        _ => None,
    }
}

impl Driver {
    fn next_deadline(&mut self) -> Instant {
        let gone = self.last_heard + self.disconnect_timeout;
        match self.session.poll_timeout() {
            Some(at) => at.min(gone),
            None => gone,
        }
    }

    fn on_datagram(&mut self, datagram: Datagram) {
        self.arrived = datagram.received_at;
        // A bad datagram concerns that datagram only.
        let _ = self
            .session
            .handle_datagram(datagram.received_at, datagram.from, datagram.bytes);
        // Only what authenticated proves the browser is still there.
        if let Some(heard) = self.session.last_authenticated() {
            self.last_heard = self.last_heard.max(heard);
        }
    }

    fn on_timer(&mut self) {
        let now = now();
        self.session.handle_timeout(now);
        if now >= self.last_heard + self.disconnect_timeout {
            self.hang_up(LocalHangup::BrowserGone);
        }
    }

    /// Sends what the session has queued and handles its events.
    fn flush(&mut self) {
        while let Some(transmit) = self.session.poll_transmit() {
            self.registration.send(transmit.to, transmit.bytes);
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::Audio(frame) => self.on_browser_audio(frame),
                SessionEvent::PeerAddress(address) => self.registration.learn(address),
                SessionEvent::PeerAddressDropped(address) => self.registration.forget(address),
                SessionEvent::Connected => {}
                SessionEvent::Failed { ice } => {
                    self.observer.browser_connect_failed(ice);
                    self.hang_up(LocalHangup::BrowserFailed);
                }
            }
        }
    }

    fn on_browser_audio(&mut self, frame: BrowserFrame) {
        // The session only hands over the negotiated codec's packets, and
        // keeps their reception statistics.
        let arrived = self.arrived;
        self.browser_received += 1;
        let (Some(transcoder), Some(_)) = (self.to_trunk.as_mut(), self.trunk_codec) else {
            return;
        };
        let endpoint = self.leg.endpoint();
        let recorder = self.recorder.as_ref().filter(|_| self.gate.is_open());
        let law = self.trunk_codec.and_then(g711_law);
        let clock_rate = self.session.media().codec.clock_rate();
        // One packet may decode to several 8 kHz frames: each is stamped
        // with the browser's timestamp of its first sample.
        let ticks_per_sample = clock_rate / SAMPLE_RATE;
        let mut samples_before = 0u32;
        transcoder.convert(&frame.payload, |out| {
            let _ = endpoint.send_audio(&out.payload, out.ticks);
            if let (Some(recorder), Some(law)) = (recorder, law) {
                let time = MediaTime {
                    rtp: frame
                        .timestamp
                        .wrapping_add(samples_before.wrapping_mul(ticks_per_sample)),
                    clock_rate,
                };
                recorder.frame(Channel::Visitor, arrived, time, &out.payload, law);
                samples_before = samples_before.wrapping_add(out.payload.len() as u32);
            }
        });
        self.observer.relayed_to_trunk(arrived.elapsed());
    }

    fn on_trunk_media(&mut self, event: Option<MediaEvent>) {
        let Some(MediaEvent::Frame(frame)) = event else {
            return;
        };
        let Some(codec) = codec_of_payload_type(frame.payload_type) else {
            return;
        };
        if self.trunk_codec != Some(codec) {
            self.set_trunk_codec(codec);
        }
        if let (Some(recorder), true) = (&self.recorder, self.gate.is_open()) {
            let law = g711_law(codec).unwrap_or(G711Law::Ulaw);
            let time = MediaTime {
                rtp: frame.timestamp,
                clock_rate: codec.clock_rate(),
            };
            recorder.frame(
                Channel::Callee,
                frame.received_at,
                time,
                &frame.payload,
                law,
            );
        }
        self.relay_to_browser(frame);
    }

    fn relay_to_browser(&mut self, frame: MediaFrame) {
        let Some(transcoder) = self.to_browser.as_mut() else {
            return;
        };
        let mut outputs: Vec<(Bytes, u32)> = Vec::with_capacity(1);
        transcoder.convert(&frame.payload, |out| outputs.push((out.payload, out.ticks)));
        let passthrough = transcoder.is_passthrough();
        let now = now();
        for (payload, ticks) in outputs {
            let input = if passthrough {
                RewriteInput {
                    ssrc: Ssrc(0),
                    sequence: frame.seq,
                    timestamp: frame.timestamp,
                    marker: frame.marker,
                }
            } else {
                self.generated_seq = self.generated_seq.wrapping_add(1);
                self.generated_ts = self.generated_ts.wrapping_add(ticks);
                RewriteInput {
                    ssrc: Ssrc(0),
                    sequence: self.generated_seq,
                    timestamp: self.generated_ts,
                    marker: frame.marker,
                }
            };
            let Some(rewritten) = self.rewriter.rewrite(now, input) else {
                continue;
            };
            let header = OutgoingHeader {
                payload_type: self.session.media().payload_type,
                sequence: rewritten.sequence,
                timestamp: rewritten.timestamp,
                marker: rewritten.marker,
            };
            if self.session.send_rtp(now, header, &payload).is_ok() {
                self.browser_sent += 1;
            }
        }
        self.observer
            .relayed_to_browser(frame.received_at.elapsed());
    }

    /// The trunk's codec became known (answer, early media) or changed
    /// (re-INVITE): rebuild both directions' converters.
    fn set_trunk_codec(&mut self, codec: AudioCodec) {
        self.trunk_codec = Some(codec);
        self.to_trunk = Transcoder::new(self.browser_codec, codec).ok();
        self.to_browser = Transcoder::new(codec, self.browser_codec).ok();
        self.rewriter.mark_source_change();
    }

    /// Returns true when the call is over.
    fn on_leg_event(&mut self, event: LegEvent) -> bool {
        if let LegEvent::Answered { codec } = &event {
            let codec = match codec {
                Codec::Pcmu => AudioCodec::Pcmu,
                Codec::Pcma => AudioCodec::Pcma,
            };
            if self.trunk_codec != Some(codec) {
                self.set_trunk_codec(codec);
            }
        }
        if let LegEvent::MediaUpdated = event {
            self.rewriter.mark_source_change();
        }
        if let Some(update) = self.machine.handle_leg_event(now(), &event) {
            self.view.send_modify(|view| {
                view.state = update.state;
                view.reason = update.reason;
            });
        }
        let gate_action = match (self.machine.state(), &event) {
            (CallState::Ended, _) => self.gate.handle_ended(),
            (_, LegEvent::Hold(on_hold)) => self.gate.handle_hold(*on_hold),
            (CallState::Answered, _) => self.gate.handle_answered(),
            _ => None,
        };
        self.apply_gate(gate_action);
        self.machine.state() == CallState::Ended
    }

    /// Tells the recorder and the widget what the consent gate decided.
    fn apply_gate(&mut self, action: Option<GateAction>) {
        let Some(action) = action else {
            return;
        };
        if let Some(recorder) = &self.recorder {
            match action {
                GateAction::Open { method } => recorder.open(method, Instant::now()),
                GateAction::Close => recorder.close(),
                GateAction::CloseAndDiscard => recorder.discard(),
            }
        }
        let active = self.recorder.is_some() && self.gate.is_open();
        self.view.send_modify(|view| view.recording = active);
    }

    fn on_command(&mut self, command: CallCommand) {
        match command {
            CallCommand::Hangup => self.hang_up(LocalHangup::Visitor),
            CallCommand::Shutdown => self.hang_up(LocalHangup::Shutdown),
            CallCommand::Dtmf(digits) => {
                if self.machine.state() == CallState::Answered {
                    let _ = self.leg.endpoint().send_dtmf(&digits);
                }
            }
            CallCommand::Consent(choice) => {
                let action = self.gate.handle_consent(choice);
                self.apply_gate(action);
            }
        }
    }

    fn hang_up(&mut self, cause: LocalHangup) {
        if self.machine.handle_local_hangup(cause) {
            self.leg.hangup();
        }
    }

    async fn finish(mut self) -> CallReport {
        self.session.close(now());
        while let Some(transmit) = self.session.poll_transmit() {
            self.registration.send(transmit.to, transmit.bytes);
        }
        let trunk_stats = self.leg.endpoint().stats();
        self.leg.close().await;
        let recorded = match self.recorder.take() {
            Some(recorder) => recorder.finish().await,
            None => false,
        };
        let outcome = self.machine.outcome().cloned().unwrap_or(Outcome {
            disposition: Disposition::Failed,
            sip_code: None,
            ended_by: super::state::EndedBy::Node,
            trunk: None,
            answered_at: None,
            ended_at: now(),
        });
        CallReport {
            outcome,
            browser_codec: self.browser_codec.name(),
            trunk_codec: self.trunk_codec.map(AudioCodec::name),
            browser: LegStats {
                packets_sent: self.browser_sent,
                packets_received: self.browser_received,
                packets_lost: i64::from(self.session.receive_stats().cumulative_lost()),
                jitter_ms: self.session.receive_stats().jitter_duration().as_secs_f64() * 1000.0,
            },
            trunk: LegStats {
                packets_sent: trunk_stats.packets_sent,
                packets_received: trunk_stats.packets_received,
                packets_lost: trunk_stats.lost,
                jitter_ms: trunk_stats.jitter_ms,
            },
            recorded,
        }
    }
}

impl RelayObserver for crate::metrics::Metrics {
    fn relayed_to_trunk(&self, latency: Duration) {
        self.relay.browser_in.inc();
        self.relay.trunk_out.inc();
        self.relay.latency_to_trunk.observe(latency.as_secs_f64());
    }

    fn relayed_to_browser(&self, latency: Duration) {
        self.relay.trunk_in.inc();
        self.relay.browser_out.inc();
        self.relay.latency_to_browser.observe(latency.as_secs_f64());
    }

    fn browser_connect_failed(&self, ice: bool) {
        match ice {
            true => self.ice_failures.inc(),
            false => self.dtls_failures.inc(),
        }
    }
}

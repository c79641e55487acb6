//! The browser-side relay path without sockets: what one 20 ms audio
//! packet from the browser, and the packet sent back to it, cost the node.
//!
//! An in-memory `rtc` peer (a full-ICE browser) and a [`BrowserSession`]
//! are handshaken (ICE, DTLS-SRTP) once, and the session goes into a call's
//! [`CallMedia`] with a plain RTP trunk leg. Each iteration then takes one
//! SRTP packet the peer protected (made outside the timing) through
//! [`CallMedia::handle_browser`] (SRTP unprotect, the transcoder towards
//! the trunk, the trunk endpoint's header rewrite) and hands the trunk
//! packet it made straight back through [`CallMedia::handle_trunk`] (the
//! trunk endpoint's checks, the transcoder back, the rewrite into the
//! browser's stream, SRTP protect), as a call does when an echo trunk
//! sends the audio back.
//!
//! - `browser_relay/pcmu_passthrough`: PCMU both ways, no transcoding.
//! - `browser_relay/opus_transcode`: Opus from the browser decoded to PCMU
//!   for the trunk, and PCMU encoded to Opus for the browser.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use callgate::call::media::offload::TranscodeRequest;
use callgate::call::media::{CallMedia, CallMediaParts, Relayed, Transmitter};
use callgate::config::BrowserCodec;
use callgate::domain::Codec;
use callgate::media::endpoint::{EndpointConfig, EndpointCore, RemoteMedia, Transmit};
use callgate::media::transcode::Transcoder;
use callgate::webrtc::offer::inspect;
use callgate::webrtc::peer::offering_peer;
use callgate::webrtc::{BrowserMedia, BrowserSession, SessionEvent, SessionSettings};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

const BROWSER: &str = "192.0.2.10:50000";
const NODE: &str = "192.0.2.1:40000";
const TRUNK: &str = "192.0.2.20:30000";
const PEER_SSRC: u32 = 0x0bad_cafe;
const OPUS_PT: u8 = 111;
const PACKET_INTERVAL: Duration = Duration::from_millis(20);

/// The browser: an in-memory `rtc` peer sending one audio stream.
struct Browser {
    peer: RTCPeerConnection,
    sender: RTCRtpSenderId,
    address: SocketAddr,
    /// What it sends every packet (PCMU or an Opus frame of a tone).
    payload: Bytes,
    payload_type: u8,
    ticks: u32,
    sequence: u16,
    now: Instant,
}

/// The node's side of the call.
struct Node {
    media: CallMedia,
    browser: SocketAddr,
    trunk: SocketAddr,
    out: Wire,
}

/// What the call sent: the last trunk packet, and the bytes to the browser.
#[derive(Default)]
struct Wire {
    trunk_packet: Vec<u8>,
    browser_bytes: usize,
}

impl Transmitter for Wire {
    fn to_browser(&mut self, _to: SocketAddr, bytes: &[u8], _relayed: Option<Relayed>) {
        self.browser_bytes += black_box(bytes).len();
    }

    fn to_trunk(&mut self, transmit: &Transmit<'_>) -> bool {
        self.trunk_packet.clear();
        self.trunk_packet.extend_from_slice(transmit.bytes);
        true
    }

    fn transcode(&mut self, _request: TranscodeRequest) {
        unreachable!("the bench's media transcodes in its own thread");
    }
}

/// A browser and a node's session for `codec`, handshaken.
fn connected(codec: Codec) -> (Browser, Node) {
    let now = Instant::now();
    let address: SocketAddr = BROWSER.parse().expect("address");
    let payload_type = if codec == Codec::Opus { OPUS_PT } else { 0 };
    let media = BrowserMedia {
        codec,
        payload_type,
        telephone_event: None,
    };
    let (mut peer, sender, offer) = offering_peer(now, address, &media, PEER_SSRC).expect("peer");
    let preference = match codec {
        Codec::Opus => BrowserCodec::Opus,
        _ => BrowserCodec::G711,
    };
    let chosen = inspect(&offer)
        .and_then(|offered| offered.choose(preference, &[Codec::Pcmu]))
        .expect("a usable offer");
    assert_eq!(chosen.codec, codec);
    let settings = SessionSettings::new(
        NODE.parse().expect("address"),
        callgate::webrtc::generate_certificate().expect("certificate"),
    );
    let (session, answer) = BrowserSession::answer(
        &settings,
        &offer,
        chosen,
        "benchfrag123",
        "benchpassword0123456789a",
        now,
    )
    .expect("answer");
    let answer = RTCSessionDescription::answer(answer).expect("answer sdp");
    peer.set_remote_description(now, answer)
        .expect("answer applies");
    let mut browser = Browser {
        peer,
        sender,
        address,
        payload: browser_payload(codec),
        payload_type,
        ticks: codec.clock_rate() / 50,
        sequence: 0,
        now,
    };
    let mut session = session;
    handshake(&mut browser, &mut session);
    let trunk: SocketAddr = TRUNK.parse().expect("address");
    let mut endpoint = EndpointCore::new(&EndpointConfig::default(), now).expect("endpoint");
    let remote = RemoteMedia {
        rtp: trunk,
        rtcp: None,
        audio_pt: 0,
        clock_rate: 8000,
        dtmf_pt: None,
        srtp: None,
        send: true,
        recv: true,
    };
    endpoint.apply_remote(now, &remote).expect("remote");
    let mut media = CallMedia::new(
        CallMediaParts {
            session,
            trunk: endpoint,
            disconnect_timeout: Duration::from_secs(3600),
            observer: Arc::new(()),
            tap: None,
            // libopus' cost is what the Opus case measures.
            transcode_elsewhere: false,
        },
        now,
    );
    media.handle_trunk_answer(Codec::Pcmu);
    let node = Node {
        media,
        browser: address,
        trunk,
        out: Wire::default(),
    };
    (browser, node)
}

/// Moves datagrams both ways, 5 ms of simulated time a step, until the
/// peer and the session are both connected.
fn handshake(browser: &mut Browser, session: &mut BrowserSession) {
    let (mut browser_up, mut node_up) = (false, false);
    for _ in 0..1000 {
        while let Some(mut out) = browser.peer.poll_write() {
            let _ = session.handle_datagram(browser.now, browser.address, &mut out.message);
        }
        while let Some(transmit) = session.poll_transmit() {
            let bytes = BytesMut::from(transmit.bytes);
            let _ = browser.peer.handle_read(browser.incoming(bytes));
        }
        while let Some(event) = browser.peer.poll_event() {
            browser_up |= matches!(
                event,
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Connected
                )
            );
        }
        while browser.peer.poll_read().is_some() {}
        while let Some(event) = session.poll_event() {
            node_up |= event == SessionEvent::Connected;
        }
        if browser_up && node_up {
            return;
        }
        browser.now += Duration::from_millis(5);
        let _ = browser.peer.handle_timeout(browser.now);
        session.handle_timeout(browser.now);
    }
    panic!("the in-memory handshake did not complete");
}

impl Browser {
    fn incoming(&self, bytes: BytesMut) -> TaggedBytesMut {
        TaggedBytesMut {
            now: self.now,
            transport: TransportContext {
                local_addr: self.address,
                peer_addr: NODE.parse().expect("address"),
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: bytes,
        }
    }

    /// The next audio packet, SRTP-protected: the timed part's input.
    fn next_datagram(&mut self) -> (BytesMut, Instant) {
        self.sequence = self.sequence.wrapping_add(1);
        self.now += PACKET_INTERVAL;
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: self.payload_type,
                sequence_number: self.sequence,
                timestamp: u32::from(self.sequence).wrapping_mul(self.ticks),
                ssrc: PEER_SSRC,
                ..Default::default()
            },
            payload: self.payload.clone(),
        };
        let mut sender = self.peer.rtp_sender(self.sender).expect("sender");
        sender.write_rtp(self.now, packet).expect("peer sends");
        let out = self.peer.poll_write().expect("a protected packet");
        (out.message, self.now)
    }
}

impl Node {
    /// The timed part: one packet in from the browser, its echo back out.
    /// Returns the bytes sent to the browser.
    fn relay(&mut self, mut datagram: BytesMut, now: Instant) -> usize {
        self.out.browser_bytes = 0;
        self.out.trunk_packet.clear();
        self.media
            .handle_browser(now, self.browser, &mut datagram, &mut self.out);
        let echo = std::mem::take(&mut self.out.trunk_packet);
        self.media
            .handle_trunk(now, self.trunk, &echo, false, &mut self.out);
        self.out.trunk_packet = echo;
        self.out.browser_bytes
    }
}

/// 20 ms of audio as the browser would send it in `codec`: a 400 Hz tone,
/// so Opus has something to code.
fn browser_payload(codec: Codec) -> Bytes {
    let samples: Vec<i16> = (0..160)
        .map(|i| {
            let phase = f64::from(i) * 400.0 / 8000.0 * std::f64::consts::TAU;
            (phase.sin() * 8000.0) as i16
        })
        .collect();
    let mut tone = vec![0u8; samples.len()];
    callgate::media::g711::encode_ulaw_into(&samples, &mut tone);
    let tone = Bytes::from(tone);
    if codec != Codec::Opus {
        return tone;
    }
    let mut encoder = Transcoder::new(Codec::Pcmu, Codec::Opus).expect("encoder");
    let mut frame = None;
    encoder.convert(&tone, |out| {
        frame = Some(Bytes::copy_from_slice(out.payload))
    });
    frame.expect("one 20 ms Opus frame")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("browser_relay");
    for (name, codec) in [
        ("pcmu_passthrough", Codec::Pcmu),
        ("opus_transcode", Codec::Opus),
    ] {
        let (mut browser, mut node) = connected(codec);
        let (datagram, now) = browser.next_datagram();
        assert!(
            node.relay(datagram, now) > 0,
            "{name}: a packet in makes a packet out"
        );
        group.bench_function(name, |b| {
            b.iter_batched(
                || browser.next_datagram(),
                |(datagram, now)| node.relay(datagram, now),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

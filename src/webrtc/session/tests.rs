//! A full-ICE `rtc` peer as the browser, wired to a [`BrowserSession`] in
//! memory: the handshake completes and audio flows both ways. The call
//! media's tests use the same browser ([`connected`], [`browser_audio`],
//! [`FakeBrowser::deliver`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::*;
use crate::config::BrowserCodec;
use crate::domain::{Codec, TelephoneEvent};
use crate::webrtc::offer::inspect;
use crate::webrtc::peer::offering_peer;
use rtc::rtp_transceiver::RTCRtpSenderId;

pub(crate) const BROWSER: &str = "127.0.0.1:50000";
const NODE: &str = "127.0.0.1:40000";
const BROWSER_SSRC: u32 = 4242;
/// The telephone-event payload type the in-memory browser offers.
pub(crate) const BROWSER_TELEPHONE_EVENT: u8 = 126;

pub(crate) struct FakeBrowser {
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    connected: bool,
    pub(crate) received: Vec<rtc::rtp::Packet>,
}

impl FakeBrowser {
    /// A datagram from the node reaches the browser.
    pub(crate) fn deliver(&mut self, now: Instant, bytes: &[u8]) {
        let message = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: BROWSER.parse().unwrap(),
                peer_addr: NODE.parse().unwrap(),
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(bytes),
        };
        self.pc.handle_read(message).ok();
        self.read();
    }

    fn read(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Connected,
            ) = event
            {
                self.connected = true;
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                self.received.push(packet);
            }
        }
    }
}

fn browser_offer(now: Instant) -> (FakeBrowser, String) {
    // Browsers offer telephone-event beside their audio.
    let pcmu = BrowserMedia {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(TelephoneEvent {
            payload_type: BROWSER_TELEPHONE_EVENT,
            clock_rate: 8000,
        }),
    };
    let address: SocketAddr = BROWSER.parse().unwrap();
    let (pc, sender, sdp) = offering_peer(now, address, &pcmu, BROWSER_SSRC).unwrap();
    let browser = FakeBrowser {
        pc,
        sender,
        connected: false,
        received: Vec::new(),
    };
    (browser, sdp)
}

fn settings() -> SessionSettings {
    SessionSettings::new(
        NODE.parse().unwrap(),
        crate::webrtc::generate_certificate().unwrap(),
    )
}

/// Moves datagrams both ways and advances both clocks until `done` or 5 s
/// of simulated time.
fn pump(
    browser: &mut FakeBrowser,
    session: &mut BrowserSession,
    events: &mut Vec<SessionEvent>,
    audio: &mut Vec<Vec<u8>>,
    mut now: Instant,
    done: impl Fn(&FakeBrowser, &[SessionEvent], &[Vec<u8>]) -> bool,
) -> Instant {
    let node: SocketAddr = NODE.parse().unwrap();
    let from: SocketAddr = BROWSER.parse().unwrap();
    let deadline = now + Duration::from_secs(5);
    while now < deadline && !done(browser, events, audio) {
        while let Some(mut out) = browser.pc.poll_write() {
            assert_eq!(out.transport.peer_addr, node);
            if let Ok(Some(frame)) = session.handle_datagram(now, from, &mut out.message) {
                audio.push(frame.payload.to_vec());
            }
        }
        while let Some(transmit) = session.poll_transmit() {
            assert_eq!(transmit.to, from);
            browser.deliver(now, transmit.bytes);
        }
        browser.read();
        while let Some(event) = session.poll_event() {
            events.push(event);
        }
        now += Duration::from_millis(5);
        browser.pc.handle_timeout(now).ok();
        session.handle_timeout(now);
    }
    now
}

/// A browser's offer answered by a new session under `ufrag`.
fn answered(now: Instant, ufrag: &str) -> (FakeBrowser, BrowserSession, String) {
    let (browser, offer) = browser_offer(now);
    let media = inspect(&offer)
        .unwrap()
        .choose(BrowserCodec::G711, &[Codec::Pcmu])
        .unwrap();
    let (session, answer) = BrowserSession::answer(
        &settings(),
        &offer,
        media,
        ufrag,
        "nodepassword0123456789ab",
        now,
    )
    .unwrap();
    (browser, session, answer)
}

#[test]
fn the_answer_is_ice_lite_with_the_chosen_codec_only() {
    let (_, _, answer) = answered(Instant::now(), "nodefrag1234");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=ice-ufrag:nodefrag1234"));
    assert!(answer.contains("PCMU/8000"));
    assert!(
        !answer.contains("opus"),
        "only the chosen codec is answered"
    );
}

#[test]
fn a_full_ice_peer_connects_and_audio_flows_both_ways() {
    let (mut browser, mut session, now) = connected();
    for i in 0..5u16 {
        let header = OutgoingHeader {
            payload_type: session.media().payload_type,
            sequence: 100 + i,
            timestamp: 1000 + u32::from(i) * 160,
            marker: i == 0,
        };
        session.send_rtp(now, header, &[0xd5; 160]).unwrap();
    }
    {
        let mut sender = browser.pc.rtp_sender(browser.sender).unwrap();
        let ssrc = BROWSER_SSRC;
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: 0,
                sequence_number: 7,
                timestamp: 160,
                ssrc,
                ..Default::default()
            },
            payload: Bytes::from(vec![0x7f; 160]),
        };
        sender.write_rtp(now, packet).unwrap();
    }
    let (mut events, mut audio) = (Vec::new(), Vec::new());
    pump(
        &mut browser,
        &mut session,
        &mut events,
        &mut audio,
        now,
        |b, _, a| b.received.len() >= 5 && !a.is_empty(),
    );
    assert_eq!(browser.received.len(), 5, "our packets reached the browser");
    assert_eq!(browser.received[0].header.sequence_number, 100);
    assert_eq!(browser.received[0].payload.as_ref(), &[0xd5; 160][..]);
    assert_eq!(audio, vec![vec![0x7f; 160]]);
}

/// A session and a browser connected to it, and the time after the
/// handshake.
pub(crate) fn connected() -> (FakeBrowser, BrowserSession, Instant) {
    let now = Instant::now();
    let (mut browser, mut session, answer) = answered(now, "fragA");
    browser
        .pc
        .set_remote_description(now, RTCSessionDescription::answer(answer).unwrap())
        .unwrap();
    let (mut events, mut audio) = (Vec::new(), Vec::new());
    let now = pump(
        &mut browser,
        &mut session,
        &mut events,
        &mut audio,
        now,
        |b, e, _| b.connected && e.contains(&SessionEvent::Connected),
    );
    assert!(browser.connected, "browser side connected");
    assert!(events.contains(&SessionEvent::Connected), "{events:?}");
    assert!(events.contains(&SessionEvent::PeerAddress(BROWSER.parse().unwrap())));
    (browser, session, now)
}

#[test]
fn a_browser_that_closes_its_connection_has_left_and_not_failed() {
    let (mut browser, mut session, now) = connected();
    browser.pc.close().unwrap();
    let (mut events, mut audio) = (Vec::new(), Vec::new());
    pump(
        &mut browser,
        &mut session,
        &mut events,
        &mut audio,
        now,
        |_, e, _| !e.is_empty(),
    );
    assert_eq!(events, vec![SessionEvent::Closed]);
}

/// One SRTP datagram as the browser sends it.
pub(crate) fn browser_audio(browser: &mut FakeBrowser, now: Instant, sequence: u16) -> BytesMut {
    let packet = rtc::rtp::Packet {
        header: rtc::rtp::Header {
            version: 2,
            payload_type: 0,
            sequence_number: sequence,
            timestamp: u32::from(sequence) * 160,
            ssrc: BROWSER_SSRC,
            ..Default::default()
        },
        payload: Bytes::from(vec![0x55; 160]),
    };
    let mut sender = browser.pc.rtp_sender(browser.sender).unwrap();
    sender.write_rtp(now, packet).unwrap();
    loop {
        let out = browser
            .pc
            .poll_write()
            .expect("the browser sends the packet");
        if out.message.first().is_some_and(|b| b & 0xc0 == 0x80) && out.message.get(1) == Some(&0) {
            return out.message;
        }
    }
}

/// Whether `datagram` from `from` gave audio; panics if it was refused.
fn hands_over_audio(
    session: &mut BrowserSession,
    now: Instant,
    from: SocketAddr,
    datagram: &mut [u8],
) -> bool {
    session
        .handle_datagram(now, from, datagram)
        .unwrap()
        .is_some()
}

#[test]
fn srtp_replay_attack_is_refused() {
    let (mut browser, mut session, now) = connected();
    let from: SocketAddr = BROWSER.parse().unwrap();
    let datagram = browser_audio(&mut browser, now, 500);
    assert!(hands_over_audio(
        &mut session,
        now,
        from,
        &mut datagram.clone()
    ));
    let mut replayed = datagram.clone();
    assert!(
        session.handle_datagram(now, from, &mut replayed).is_err(),
        "a replayed packet is refused"
    );
}

#[test]
fn random_ssrc_flood_with_bad_tags_leaves_no_trace() {
    let (mut browser, mut session, now) = connected();
    let from: SocketAddr = BROWSER.parse().unwrap();
    let heard = session.last_authenticated();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..5_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut forged = vec![0x80, 0];
        forged.extend_from_slice(&(state as u16).to_be_bytes());
        forged.extend_from_slice(&[0; 4]);
        forged.extend_from_slice(&((state >> 16) as u32).to_be_bytes());
        forged.extend(std::iter::repeat_n(state as u8, 170));
        assert!(session.handle_datagram(now, from, &mut forged).is_err());
    }
    assert_eq!(
        session.last_authenticated(),
        heard,
        "forged media proves nothing"
    );
    assert_eq!(session.srtp.as_ref().unwrap().receiver.stream_count(), 0);
    let mut genuine = browser_audio(&mut browser, now, 900);
    assert!(
        hands_over_audio(&mut session, now, from, &mut genuine),
        "the call's own media still passes"
    );
}

#[test]
fn malformed_stun_and_dtls_reach_a_live_session_and_change_nothing() {
    let (mut browser, mut session, now) = connected();
    let from: SocketAddr = BROWSER.parse().unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..4_000u32 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = 1 + (state as usize) % 300;
        let mut junk: Vec<u8> = (0..len).map(|i| (state >> (i % 56)) as u8).collect();
        // STUN-, then DTLS-looking (a ClientHello record header), in turn.
        junk[0] = if round % 2 == 0 {
            (state % 4) as u8
        } else {
            22
        };
        if round % 2 == 1 && junk.len() > 2 {
            junk[1] = 0xfe;
            junk[2] = 0xfd;
        }
        let _ = session.handle_datagram(now, from, &mut junk);
    }
    let failed = std::iter::from_fn(|| session.poll_event())
        .any(|e| matches!(e, SessionEvent::Failed { .. }));
    assert!(!failed, "junk does not end the call");
    let mut genuine = browser_audio(&mut browser, now, 42);
    assert!(hands_over_audio(&mut session, now, from, &mut genuine));
}

#[test]
fn a_close_notify_in_the_clear_does_not_end_a_live_session() {
    let (mut browser, mut session, now) = connected();
    let from: SocketAddr = BROWSER.parse().unwrap();
    // An alert record of epoch 0, which anyone who knows the browser's
    // address can forge once the association is encrypted.
    for sequence in 0..8u8 {
        let mut alert = vec![
            21,
            0xfe,
            0xfd,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            100 + sequence,
            0,
            2,
            1,
            0,
        ];
        let _ = session.handle_datagram(now, from, &mut alert);
    }
    let ended = std::iter::from_fn(|| session.poll_event())
        .any(|e| matches!(e, SessionEvent::Closed | SessionEvent::Failed { .. }));
    assert!(!ended, "a forged close_notify does not end the call");
    let mut genuine = browser_audio(&mut browser, now, 43);
    assert!(hands_over_audio(&mut session, now, from, &mut genuine));
}

#[test]
fn media_and_checks_from_elsewhere_teach_the_session_nothing() {
    let (mut browser, mut session, now) = connected();
    let stranger: SocketAddr = "127.0.0.1:50001".parse().unwrap();
    let mut datagram = browser_audio(&mut browser, now, 77);
    assert!(
        session
            .handle_datagram(now, stranger, &mut datagram)
            .is_err()
    );
    let mut forged_check = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    forged_check.extend_from_slice(&[1; 12]);
    assert!(
        session
            .handle_datagram(now, stranger, &mut forged_check)
            .is_err()
    );
    let learned = std::iter::from_fn(|| session.poll_event())
        .any(|e| matches!(e, SessionEvent::PeerAddress(_)));
    assert!(!learned);
}

#[test]
fn a_browser_that_never_checks_fails_as_ice() {
    let now = Instant::now();
    let (_browser, mut session, _) = answered(now, "fragB");
    let deadline = session.poll_timeout().expect("a connect deadline");
    assert!(deadline <= now + Duration::from_secs(10));
    session.handle_timeout(deadline);
    assert_eq!(
        session.poll_event(),
        Some(SessionEvent::Failed { ice: true })
    );
}

#[test]
fn a_fifth_verified_address_displaces_the_oldest_but_never_the_one_media_goes_to() {
    let address = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mut peers = PeerAddresses::default();
    // The nominated pair carries the media.
    assert_eq!(
        peers.handle_check(address(1), true),
        [Some(SessionEvent::PeerAddress(address(1))), None]
    );
    for port in 2..=4 {
        peers.handle_check(address(port), false);
    }
    assert_eq!(peers.selected, Some(address(1)));

    // A fifth pushes out the oldest address media does not go to.
    assert_eq!(
        peers.handle_check(address(5), false),
        [
            Some(SessionEvent::PeerAddress(address(5))),
            Some(SessionEvent::PeerAddressDropped(address(2)))
        ]
    );
    assert!(peers.is_checked(address(1)), "the selected one stays");
    assert!(!peers.is_checked(address(2)));
    assert_eq!(peers.checked.len(), MAX_PEER_ADDRESSES);
    assert_eq!(
        peers.selected,
        Some(address(1)),
        "unnominated checks move nothing"
    );
    // A known address teaches nothing new.
    assert_eq!(peers.handle_check(address(5), false), [None, None]);
}

//! A full-ICE `rtc` peer as the browser, wired to a [`BrowserSession`] in
//! memory: the handshake completes and audio flows both ways.

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
use crate::media::sdp::Codec;
use crate::webrtc::offer::{AudioCodec, inspect};

const BROWSER: &str = "127.0.0.1:50000";
const NODE: &str = "127.0.0.1:40000";
const BROWSER_SSRC: u32 = 4242;

struct FakeBrowser {
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    connected: bool,
    received: Vec<rtc::rtp::Packet>,
}

fn browser_offer(now: Instant) -> (FakeBrowser, String) {
    let pcmu = BrowserMedia {
        codec: AudioCodec::Pcmu,
        payload_type: 0,
        telephone_event: None,
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
    SessionSettings {
        candidate: NODE.parse().unwrap(),
        certificate: crate::webrtc::generate_certificate().unwrap(),
    }
}

/// Moves datagrams both ways and advances both clocks until `done` or 5 s
/// of simulated time.
fn pump(
    browser: &mut FakeBrowser,
    session: &mut BrowserSession,
    events: &mut Vec<SessionEvent>,
    mut now: Instant,
    done: impl Fn(&FakeBrowser, &[SessionEvent]) -> bool,
) -> Instant {
    let node: SocketAddr = NODE.parse().unwrap();
    let from: SocketAddr = BROWSER.parse().unwrap();
    let deadline = now + Duration::from_secs(5);
    while now < deadline && !done(browser, events) {
        while let Some(out) = browser.pc.poll_write() {
            assert_eq!(out.transport.peer_addr, node);
            session.handle_datagram(now, from, out.message).ok();
        }
        while let Some((to, bytes)) = session.poll_transmit() {
            assert_eq!(to, from);
            let message = TaggedBytesMut {
                now,
                transport: TransportContext {
                    local_addr: from,
                    peer_addr: node,
                    transport_protocol: TransportProtocol::UDP,
                    ecn: None,
                },
                message: bytes,
            };
            browser.pc.handle_read(message).ok();
        }
        while let Some(event) = browser.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Connected,
            ) = event
            {
                browser.connected = true;
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = browser.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                browser.received.push(packet);
            }
        }
        while let Some(event) = session.poll_event() {
            events.push(event);
        }
        now += Duration::from_millis(5);
        browser.pc.handle_timeout(now).ok();
        session.handle_timeout(now);
    }
    now
}

#[test]
fn a_full_ice_peer_connects_and_audio_flows_both_ways() {
    let now = Instant::now();
    let (mut browser, offer) = browser_offer(now);
    let media = inspect(&offer)
        .unwrap()
        .choose(BrowserCodec::G711, &[Codec::Pcmu])
        .unwrap();
    let (mut session, answer) = BrowserSession::answer(
        &settings(),
        &offer,
        media,
        "nodefrag1234",
        "nodepassword0123456789ab",
        now,
    )
    .unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=ice-ufrag:nodefrag1234"));
    assert!(answer.contains("PCMU/8000"));
    assert!(
        !answer.contains("opus"),
        "only the chosen codec is answered"
    );
    browser
        .pc
        .set_remote_description(now, RTCSessionDescription::answer(answer).unwrap())
        .unwrap();

    let mut events = Vec::new();
    let now = pump(&mut browser, &mut session, &mut events, now, |b, e| {
        b.connected && e.contains(&SessionEvent::Connected)
    });
    assert!(browser.connected, "browser side connected");
    assert!(events.contains(&SessionEvent::Connected), "{events:?}");

    for i in 0..5u16 {
        let header = OutgoingHeader {
            payload_type: session.media().payload_type,
            sequence: 100 + i,
            timestamp: 1000 + u32::from(i) * 160,
            marker: i == 0,
        };
        session
            .send_rtp(now, header, Bytes::from(vec![0xd5; 160]))
            .unwrap();
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
    events.clear();
    pump(&mut browser, &mut session, &mut events, now, |b, e| {
        b.received.len() >= 5 && e.iter().any(|e| matches!(e, SessionEvent::Audio(_)))
    });
    assert_eq!(browser.received.len(), 5, "our packets reached the browser");
    assert_eq!(browser.received[0].header.sequence_number, 100);
    assert_eq!(browser.received[0].payload.as_ref(), &[0xd5; 160][..]);
    let audio: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Audio(frame) => Some(frame),
            _ => None,
        })
        .collect();
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0].payload.as_ref(), &[0x7f; 160][..]);
}

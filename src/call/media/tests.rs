//! A call's media in memory: the session's in-memory browser on one side,
//! a trunk address on the other, and the [`Transmitter`] recording what
//! each side was sent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::media::dtmf::{DtmfReceiver, EventPayload};
use crate::media::endpoint::EndpointConfig;
use crate::media::quality::Warnings;
use crate::media::rtp::RtpPacket;
use crate::media::testing::{remote_at, rtp_packet};
use crate::webrtc::session::tests::{
    BROWSER, BROWSER_TELEPHONE_EVENT, FakeBrowser, browser_audio, connected,
};

const TRUNK: &str = "192.0.2.20:30000";
const DISCONNECT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Wire {
    to_trunk: Vec<Vec<u8>>,
    to_browser: Vec<Vec<u8>>,
    to_transcoder: Vec<offload::TranscodeRequest>,
}

impl Transmitter for Wire {
    fn to_browser(&mut self, to: SocketAddr, bytes: &[u8], _relayed: Option<Relayed>) {
        assert_eq!(to, BROWSER.parse::<SocketAddr>().unwrap());
        self.to_browser.push(bytes.to_vec());
    }

    fn to_trunk(&mut self, transmit: &Transmit<'_>) -> bool {
        assert_eq!(transmit.to, TRUNK.parse::<SocketAddr>().unwrap());
        self.to_trunk.push(transmit.bytes.to_vec());
        true
    }

    fn transcode(&mut self, request: offload::TranscodeRequest) {
        self.to_transcoder.push(request);
    }
}

/// A connected browser and the call's media, the trunk not yet answered.
fn call() -> (FakeBrowser, CallMedia, Instant) {
    let (browser, session, now) = connected();
    let trunk = EndpointCore::new(&EndpointConfig::default(), now).unwrap();
    let media = CallMedia::new(
        CallMediaParts {
            session,
            trunk,
            disconnect_timeout: DISCONNECT,
            observer: Arc::new(()),
            tap: None,
            transcode_elsewhere: false,
        },
        now,
    );
    (browser, media, now)
}

fn answer(media: &mut CallMedia, now: Instant) {
    media
        .apply_trunk_remote(now, &remote_at(TRUNK.parse().unwrap()))
        .unwrap();
    media.handle_trunk_answer(Codec::Pcmu);
}

fn trunk_packet(sequence: u16, payload: &[u8]) -> Vec<u8> {
    rtp_packet(0, sequence, 0x7275_6e6b, payload)
}

fn gone(media: &mut CallMedia) -> bool {
    std::iter::from_fn(|| media.poll_event()).any(|e| e == CallMediaEvent::BrowserGone)
}

#[test]
fn audio_crosses_both_ways_once_the_trunk_has_answered() {
    let (mut browser, mut media, mut now) = call();
    let from: SocketAddr = BROWSER.parse().unwrap();
    let mut wire = Wire::default();

    let mut early = browser_audio(&mut browser, now, 1);
    media.handle_browser(now, from, &mut early, &mut wire);
    assert!(
        wire.to_trunk.is_empty(),
        "nothing to a trunk that has not answered"
    );

    answer(&mut media, now);
    for sequence in 2..5 {
        now += Duration::from_millis(20);
        let mut audio = browser_audio(&mut browser, now, sequence);
        media.handle_browser(now, from, &mut audio, &mut wire);
    }
    assert_eq!(wire.to_trunk.len(), 3);
    let relayed = RtpPacket::parse(&wire.to_trunk[0]).unwrap();
    assert_eq!(relayed.payload_type(), 0);
    assert_eq!(
        relayed.payload(),
        &[0x55; 160][..],
        "the browser's audio, untouched"
    );

    for sequence in 0..3 {
        let packet = trunk_packet(sequence, &[0x2a; 160]);
        media.handle_trunk(now, TRUNK.parse().unwrap(), &packet, false, &mut wire);
    }
    assert_eq!(wire.to_browser.len(), 3);
    for datagram in &wire.to_browser {
        browser.deliver(now, datagram);
    }
    assert_eq!(
        browser.received.len(),
        3,
        "the browser decrypted every packet"
    );
    assert_eq!(browser.received[0].payload.as_ref(), &[0x2a; 160][..]);

    let report = media.report();
    assert_eq!(
        (report.browser.packets_received, report.browser.packets_sent),
        (4, 3)
    );
    assert_eq!(
        (report.trunk.packets_received, report.trunk.packets_sent),
        (3, 3)
    );
}

#[test]
fn a_stranger_on_the_trunk_port_reaches_nobody() {
    let (_browser, mut media, now) = call();
    answer(&mut media, now);
    let mut wire = Wire::default();
    let stranger: SocketAddr = "198.51.100.7:4000".parse().unwrap();
    media.handle_trunk(now, stranger, &trunk_packet(1, &[1; 160]), false, &mut wire);
    assert!(wire.to_browser.is_empty());
    assert_eq!(media.report().trunk.packets_received, 0);
}

#[test]
fn forged_datagrams_do_not_keep_a_silent_browser_alive() {
    let (_browser, mut media, mut now) = call();
    let from: SocketAddr = BROWSER.parse().unwrap();
    let mut wire = Wire::default();
    let until = now + DISCONNECT + Duration::from_secs(1);
    let mut went = false;
    while now < until && !went {
        now += Duration::from_millis(250);
        // RTP-shaped junk, a STUN-shaped request and a DTLS record from the
        // browser's own address: none authenticates.
        let mut junk = trunk_packet(9, &[0; 40]);
        junk[1] = 0;
        media.handle_browser(now, from, &mut junk, &mut wire);
        let mut stun = [
            0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        media.handle_browser(now, from, &mut stun, &mut wire);
        // A DTLS 1.2 application-data record of random bytes: the DTLS
        // library drops it without an error.
        let mut dtls = vec![23u8, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 32];
        dtls.extend((0..32).map(|_| rand::random::<u8>()));
        media.handle_browser(now, from, &mut dtls, &mut wire);
        if now >= media.poll_timeout() {
            media.handle_timeout(now, &mut wire);
        }
        went = gone(&mut media);
    }
    assert!(went, "the browser is gone after the disconnect timeout");
}

#[test]
fn authenticated_audio_keeps_the_browser_present() {
    let (mut browser, mut media, mut now) = call();
    let from: SocketAddr = BROWSER.parse().unwrap();
    let mut wire = Wire::default();
    let until = now + DISCONNECT * 2;
    let mut sequence = 0;
    while now < until {
        now += Duration::from_millis(100);
        sequence += 1;
        let mut audio = browser_audio(&mut browser, now, sequence);
        media.handle_browser(now, from, &mut audio, &mut wire);
        if now >= media.poll_timeout() {
            media.handle_timeout(now, &mut wire);
        }
        assert!(!gone(&mut media), "gone while the browser was talking");
    }
}

/// A telephone-event packet from the trunk, with no marker bit, as some
/// carriers send every packet of an event.
fn trunk_event(
    pt: u8,
    sequence: u16,
    timestamp: u32,
    event: u8,
    end: bool,
    duration: u16,
) -> Vec<u8> {
    let payload = EventPayload {
        event,
        end,
        volume: 10,
        duration,
    }
    .to_bytes();
    let mut packet = trunk_packet(sequence, &payload);
    packet[1] = pt;
    packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
    packet
}

/// Lets `span` of time pass in 5 ms steps, running the media's timers.
fn idle(media: &mut CallMedia, wire: &mut Wire, now: &mut Instant, span: Duration) {
    let until = *now + span;
    while *now < until {
        *now += Duration::from_millis(5);
        if *now >= media.poll_timeout() {
            media.handle_timeout(*now, wire);
        }
    }
}

/// The trunk's media: `sequence` goes on from where it was, and each packet
/// is 20 ms after the last.
struct TrunkPhone {
    sequence: u16,
}

impl TrunkPhone {
    fn talk(&mut self, media: &mut CallMedia, wire: &mut Wire, now: &mut Instant, packets: u16) {
        for _ in 0..packets {
            let packet = trunk_packet(self.sequence, &[0x2a; 160]);
            media.handle_trunk(*now, TRUNK.parse().unwrap(), &packet, false, wire);
            self.sequence += 1;
            idle(media, wire, now, Duration::from_millis(20));
        }
    }

    /// One key press as a carrier sends it: three updates, then the end
    /// packet four times (one more than RFC 4733 asks), none marked.
    fn press(
        &mut self,
        media: &mut CallMedia,
        wire: &mut Wire,
        now: &mut Instant,
        pt: u8,
        event: u8,
    ) {
        let timestamp = u32::from(self.sequence) * 160;
        for (end, duration) in [(false, 160), (false, 320), (false, 480)]
            .into_iter()
            .chain([(true, 640); 4])
        {
            let packet = trunk_event(pt, self.sequence, timestamp, event, end, duration);
            media.handle_trunk(*now, TRUNK.parse().unwrap(), &packet, false, wire);
            self.sequence += 1;
            idle(media, wire, now, Duration::from_millis(20));
        }
    }
}

#[test]
fn the_trunks_keypad_reaches_the_browser_as_clean_rfc4733_events() {
    let (mut browser, mut media, mut now) = call();
    let mut wire = Wire::default();
    answer(&mut media, now);
    let mut phone = TrunkPhone { sequence: 0 };

    phone.talk(&mut media, &mut wire, &mut now, 5);
    phone.press(&mut media, &mut wire, &mut now, 101, 5);
    phone.talk(&mut media, &mut wire, &mut now, 10);
    // A re-INVITE renumbers telephone-event: the new number counts, the
    // old one is a stranger's now.
    let renumbered = RemoteMedia {
        dtmf_pt: Some(96),
        ..remote_at(TRUNK.parse().unwrap())
    };
    media.apply_trunk_remote(now, &renumbered).unwrap();
    phone.press(&mut media, &mut wire, &mut now, 101, 7);
    phone.press(&mut media, &mut wire, &mut now, 96, 11);
    phone.talk(&mut media, &mut wire, &mut now, 10);
    // A digit the trunk sent in a SIP INFO.
    media.play_dtmf_to_browser(now, '9');
    phone.talk(&mut media, &mut wire, &mut now, 15);

    for datagram in &wire.to_browser {
        browser.deliver(now, datagram);
    }
    let received = &browser.received;
    let numbers: Vec<u16> = received.iter().map(|p| p.header.sequence_number).collect();
    let steps: Vec<u16> = numbers
        .windows(2)
        .map(|w| w[1].wrapping_sub(w[0]))
        .collect();
    assert!(
        steps.iter().all(|&step| (1..100).contains(&step)),
        "one stream, never a number twice: {numbers:?}"
    );
    assert_eq!(
        steps.iter().map(|step| step - 1).sum::<u16>(),
        7,
        "no gap where our events replaced the trunk's; only the seven packets \
         under the stale payload type are missing, as lost ones would be: {numbers:?}"
    );
    let events: Vec<_> = received
        .iter()
        .filter(|p| p.header.payload_type == BROWSER_TELEPHONE_EVENT)
        .collect();
    let mut digits = String::new();
    let mut receiver = DtmfReceiver::new();
    for packet in &events {
        if let Some(digit) = receiver
            .handle_payload(packet.header.timestamp, &packet.payload)
            .unwrap()
        {
            digits.push(digit);
        }
    }
    assert_eq!(
        digits, "5#9",
        "each key once, in the browser's payload type"
    );
    for timestamp in events
        .iter()
        .map(|p| p.header.timestamp)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let event: Vec<_> = events
            .iter()
            .filter(|p| p.header.timestamp == timestamp)
            .collect();
        let parsed: Vec<_> = event
            .iter()
            .map(|p| EventPayload::parse(&p.payload).unwrap())
            .collect();
        assert!(event[0].header.marker, "an event starts marked");
        assert!(event[1..].iter().all(|p| !p.header.marker));
        assert_eq!(parsed.iter().filter(|e| e.end).count(), 3, "{parsed:?}");
        assert!(
            parsed
                .iter()
                .all(|e| e.volume == 10 && e.event == parsed[0].event)
        );
    }
}

/// Drives a call for `windows` quality windows from `now`: the browser and
/// the trunk each send a packet every 20 ms, except the trunk packets
/// `drop_trunk` picks. Returns the quality events and where time stands.
fn talk_for(
    browser: &mut FakeBrowser,
    media: &mut CallMedia,
    mut now: Instant,
    sequence: &mut u16,
    windows: u32,
    drop_trunk: impl Fn(u16) -> bool,
) -> (Vec<Warnings>, Instant) {
    let from: SocketAddr = BROWSER.parse().unwrap();
    let mut wire = Wire::default();
    let mut events = Vec::new();
    let end = now + crate::media::quality::WINDOW * windows;
    while now < end {
        now += Duration::from_millis(20);
        *sequence = sequence.wrapping_add(1);
        let mut audio = browser_audio(browser, now, *sequence);
        media.handle_browser(now, from, &mut audio, &mut wire);
        if !drop_trunk(*sequence) {
            let packet = trunk_packet(*sequence, &[0x2a; 160]);
            media.handle_trunk(now, TRUNK.parse().unwrap(), &packet, false, &mut wire);
        }
        if media.poll_timeout() <= now {
            media.handle_timeout(now, &mut wire);
        }
        events.extend(
            std::iter::from_fn(|| media.poll_event()).filter_map(|e| match e {
                CallMediaEvent::Quality(warnings) => Some(warnings),
                _ => None,
            }),
        );
    }
    (events, now)
}

#[test]
fn a_lossy_trunk_raises_the_visitors_warning_and_its_mos_falls_in_the_report() {
    use crate::media::quality::Warning;
    let (mut browser, mut media, now) = call();
    answer(&mut media, now);
    let mut sequence = 0;
    let every_fourth = |s: u16| s % 4 == 0;
    let (events, now) = talk_for(
        &mut browser,
        &mut media,
        now,
        &mut sequence,
        2,
        every_fourth,
    );
    let raised = Warnings::NONE.with(Warning::HighLoss).with(Warning::LowMos);
    assert_eq!(events, [raised], "raised once, by the first window");

    let (events, _) = talk_for(&mut browser, &mut media, now, &mut sequence, 3, |_| false);
    assert_eq!(events, [Warnings::NONE], "cleared after two clean windows");

    let report = media.report();
    let (trunk, browser_leg) = (report.trunk, report.browser);
    assert!(trunk.mos_worst_x100.unwrap() < 300, "{trunk:?}");
    assert!(
        trunk.mos_average_x100.unwrap() > trunk.mos_worst_x100.unwrap(),
        "{trunk:?}"
    );
    assert!(browser_leg.mos_worst_x100.unwrap() > 430, "{browser_leg:?}");
}

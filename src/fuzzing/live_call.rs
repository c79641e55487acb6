//! The fuzzer's live call: one call's media (`CallMedia`) as a media shard
//! hosts it, after the browser's handshake and the trunk's answer, driven
//! by a script the input spells out: datagrams from the browser (raw, or
//! RTP and RTCP the harness protects with the browser's keys so they get
//! past authentication), from the trunk (raw or built RTP, plain or SDES),
//! from a stranger, DTMF to send, the recording gate, and time passing.
//!
//! Besides not panicking, the call must keep one promise: everything it
//! sends the browser as SRTP or SRTCP decrypts with the browser's keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fixtures::{LOCAL_PWD, LOCAL_UFRAG, later, session_settings};
use super::script::Script;
use crate::call::media::offload::TranscodeRequest;
use crate::call::media::{CallMedia, CallMediaParts, Relayed, Transmitter};
use crate::config::BrowserCodec;
use crate::domain::Codec;
use crate::media::endpoint::{EndpointConfig, EndpointCore, RemoteMedia, Transmit};
use crate::media::rtcp::is_rtcp;
use crate::media::rtp::{RtpHeader, Ssrc};
use crate::media::srtp::sdes::SrtpKeyMaterial;
use crate::media::srtp::{SrtpMasterKey, SrtpProfile, SrtpReceiver, SrtpSender};
use crate::webrtc::offer::inspect;
use crate::webrtc::session::BrowserSession;

const BROWSER: &str = "198.51.100.7:50000";
const TRUNK: &str = "192.0.2.20:30000";
const STRANGER: &str = "203.0.113.9:50000";

/// A Chromium audio offer, in the shape the widget's browser sends.
pub(super) const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126\r\n\
c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:fuzzRemote\r\na=ice-pwd:Z9CzWQZ3Ft2hD3J1aU2kSzQm\r\n\
a=fingerprint:sha-256 5B:E6:6E:41:6B:44:2A:2B:1C:44:DE:15:30:0F:3C:7A:35:2D:3E:91:31:D8:6C:E7:6A:D0:E5:C1:D4:0B:1E:54\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:126 telephone-event/8000\r\n";

/// What the call sent, checked as the browser would read it.
struct Wire {
    browser: SrtpReceiver,
    sent: Sent,
}

/// Datagrams the call sent: SRTP/SRTCP to the browser (each decrypted),
/// anything to the trunk.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Sent {
    pub to_browser: usize,
    pub to_trunk: usize,
}

impl Transmitter for Wire {
    fn to_browser(&mut self, _to: SocketAddr, bytes: &[u8], _relayed: Option<Relayed>) {
        if !bytes.first().is_some_and(|b| (128..=191).contains(b)) {
            return; // STUN or DTLS
        }
        let mut copy = bytes.to_vec();
        let opened = match is_rtcp(bytes) {
            true => self.browser.unprotect_rtcp(&mut copy),
            false => self.browser.unprotect_rtp(&mut copy),
        };
        assert!(
            opened.is_ok(),
            "the browser cannot read what the call sent it: {opened:?}, header {:02x?}",
            &bytes[..bytes.len().min(12)]
        );
        self.sent.to_browser += 1;
    }

    fn to_trunk(&mut self, _transmit: &Transmit<'_>) -> bool {
        self.sent.to_trunk += 1;
        true
    }

    fn transcode(&mut self, _request: TranscodeRequest) {}
}

/// See the module documentation.
pub fn live_call(data: &[u8]) {
    play(data);
}

/// Plays the script in `data`: the first byte picks the browser's codec
/// (Opus, transcoded, or PCMU), its SRTP profile and the trunk's SDES.
pub(super) fn play(data: &[u8]) -> Sent {
    let mut input = Script::new(data);
    let setup = input.u8();
    let profile = match setup & 2 {
        0 => SrtpProfile::Aes128CmHmacSha1_80,
        _ => SrtpProfile::AeadAes128Gcm,
    };
    let key = |fill: u8| {
        let salt = vec![fill ^ 0xff; profile.master_salt_len()];
        SrtpMasterKey::new(profile, &[fill; 16], &salt).expect("key lengths of the profile")
    };
    let (ours, theirs) = (key(1), key(2));
    let mut now = Instant::now();
    let preference = match setup & 1 {
        0 => BrowserCodec::G711,
        _ => BrowserCodec::Opus,
    };
    let offered = inspect(OFFER).expect("the offer passes");
    let media = offered.choose(preference, &[Codec::Pcmu]).expect("a codec");
    let browser_codec = media.codec;
    let (mut session, _) = BrowserSession::answer(
        session_settings(),
        OFFER,
        media,
        LOCAL_UFRAG,
        LOCAL_PWD,
        now,
    )
    .expect("the offer is answered");
    let browser: SocketAddr = BROWSER.parse().expect("an address");
    session.keyed_for_fuzzing(browser, &ours, &theirs);
    let trunk = EndpointCore::new(&EndpointConfig::default(), now).expect("an endpoint");
    let mut call = CallMedia::new(
        CallMediaParts {
            session,
            trunk,
            disconnect_timeout: Duration::from_secs(5),
            observer: Arc::new(()),
            tap: None,
            transcode_elsewhere: false,
        },
        now,
    );
    let trunk_keys = (setup & 4 == 4).then(|| {
        let material = |fill| SrtpKeyMaterial::from_bytes(&[fill; 30]).expect("30 bytes");
        (material(5), material(6))
    });
    let trunk_sender = trunk_keys
        .as_ref()
        .map(|(_, theirs)| crate::media::srtp::sdes::sender(theirs).expect("a sender"));
    let remote = RemoteMedia {
        rtp: TRUNK.parse().expect("an address"),
        rtcp: None,
        audio_pt: 0,
        clock_rate: 8000,
        dtmf_pt: Some(101),
        srtp: trunk_keys,
        send: true,
        recv: true,
    };
    call.apply_trunk_remote(now, &remote)
        .expect("the trunk's answer");
    call.handle_trunk_answer(Codec::Pcmu);
    let mut driver = Driver {
        call,
        wire: Wire {
            browser: SrtpReceiver::new(&ours),
            sent: Sent::default(),
        },
        browser_sender: SrtpSender::new(&theirs),
        trunk_sender,
        browser_pt: match browser_codec {
            Codec::Opus => 111,
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        },
    };
    while !input.is_empty() {
        let step = input.u8();
        now = driver.step(&mut input, step, now);
    }
    driver.call.close(now, &mut driver.wire);
    driver.wire.sent
}

struct Driver {
    call: CallMedia,
    wire: Wire,
    /// The browser's SRTP, keyed as the call's receiver.
    browser_sender: SrtpSender,
    /// The trunk's SDES sender, when the trunk leg is SRTP.
    trunk_sender: Option<crate::media::srtp::SrtpSender>,
    browser_pt: u8,
}

impl Driver {
    /// One step: its kind, an RTP header for the kinds that build one,
    /// then a byte string (a datagram, a payload, digits or a duration).
    fn step(&mut self, input: &mut Script<'_>, step: u8, now: Instant) -> Instant {
        let browser: SocketAddr = BROWSER.parse().expect("an address");
        let trunk: SocketAddr = TRUNK.parse().expect("an address");
        let header = matches!(step % 10, 1 | 5).then(|| self.header(input, step));
        let bytes = input.bytes().to_vec();
        match step % 10 {
            0 => {
                let mut datagram = bytes;
                self.call
                    .handle_browser(now, browser, &mut datagram, &mut self.wire);
            }
            1 => {
                let header = header.expect("built for this kind");
                let mut packet = Vec::new();
                if header.write_packet(&bytes, &mut packet).is_ok()
                    && self.browser_sender.protect_rtp(&mut packet).is_ok()
                {
                    self.call
                        .handle_browser(now, browser, &mut packet, &mut self.wire);
                }
            }
            2 => {
                let mut packet = bytes;
                if self.browser_sender.protect_rtcp(&mut packet).is_ok() {
                    self.call
                        .handle_browser(now, browser, &mut packet, &mut self.wire);
                }
            }
            3 | 4 => {
                self.call
                    .handle_trunk(now, trunk, &bytes, step % 10 == 4, &mut self.wire);
            }
            5 => {
                let header = header.expect("built for this kind");
                let mut packet = Vec::new();
                if header.write_packet(&bytes, &mut packet).is_ok() {
                    let protected = match &mut self.trunk_sender {
                        Some(sender) => sender.protect_rtp(&mut packet).is_ok(),
                        None => true,
                    };
                    if protected {
                        self.call
                            .handle_trunk(now, trunk, &packet, false, &mut self.wire);
                    }
                }
            }
            6 => {
                let stranger: SocketAddr = STRANGER.parse().expect("an address");
                let mut datagram = bytes.clone();
                self.call
                    .handle_browser(now, stranger, &mut datagram, &mut self.wire);
                self.call
                    .handle_trunk(now, stranger, &bytes, false, &mut self.wire);
            }
            7 => {
                // Keys from the widget for the trunk, and one from the
                // trunk's SIP INFO for the browser.
                let digits = String::from_utf8_lossy(&bytes);
                let _ = self.call.send_dtmf(now, &digits);
                if let Some(digit) = digits.chars().next() {
                    self.call.play_dtmf_to_browser(now, digit);
                }
            }
            8 => self
                .call
                .set_recording(bytes.first().is_some_and(|b| b % 2 == 1)),
            _ => {
                let now = later(now, bytes.first().copied().unwrap_or(1));
                if now >= self.call.poll_timeout() {
                    self.call.handle_timeout(now, &mut self.wire);
                }
                while self.call.poll_event().is_some() {}
                return now;
            }
        }
        while self.call.poll_event().is_some() {}
        now
    }

    /// An RTP header from the input: a choice byte, sequence, timestamp
    /// and SSRC. The payload type is the leg's audio (the browser's codec
    /// for step 1, PCMU from the trunk) unless the choice says
    /// telephone-event or any other.
    fn header(&self, input: &mut Script<'_>, step: u8) -> RtpHeader {
        let usual = match step % 10 {
            1 => self.browser_pt,
            _ => 0,
        };
        let choice = input.u8();
        RtpHeader {
            payload_type: match choice % 4 {
                0 => 101,
                1 => choice >> 1,
                _ => usual,
            },
            marker: choice & 0x80 != 0,
            sequence: input.u16(),
            timestamp: input.u32(),
            ssrc: Ssrc(input.u32()),
        }
    }
}

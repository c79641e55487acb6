//! The harness's own toolkit, checked without peers (but with espeak-ng and
//! sox for speech): ports, RTP parsing, G.711, the speech similarity and its
//! thresholds, Digest responses against the RFC examples, sipp trace parsing,
//! the malformed-SIP generator, the keypad's phone and tone detector, and
//! the impaired echo.

use std::time::{Duration, Instant};

use crate::support::audio::{self, DIFFERENT_MAX, SAME_SPEECH_MIN};
use crate::support::digest::{Algorithm, DigestCredentials, DigestInput, QopAuth};
use crate::support::impair::{HOLD, ImpairedEcho, Treated};
use crate::support::keypad::{COLUMNS, KEYS, Press, ROWS, keypad_tones, phone_stream};
use crate::support::rtp::{self, RtpPacket};
use crate::support::sip_raw::Malformed;
use crate::support::sip_trace::{self, Direction, SipMessage, sdp_audio_addr, sdp_direction};
use crate::support::{self, ports};

use super::{REALM, SENTENCE_A, SENTENCE_B, SENTENCE_C, alice, assert_alice};

#[test]
fn free_ports_are_distinct_bindable_and_even_where_asked() {
    let pair = ports::free_udp_port_pair();
    assert_eq!(pair % 2, 0);
    let block = ports::free_udp_ports(4, true);
    let single = ports::free_udp_port();
    let tcp = ports::free_tcp_port();
    let mut all = vec![pair, pair + 1, single, tcp];
    all.extend(block..block + 4);
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "a port was handed out twice");
    for port in block..block + 4 {
        std::net::UdpSocket::bind(("127.0.0.1", port)).expect("handed-out port is free");
    }
    std::net::TcpListener::bind(("127.0.0.1", tcp)).expect("handed-out TCP port is free");
}

#[test]
#[should_panic(expected = "scripts/install-test-deps.sh")]
fn a_missing_peer_fails_with_the_install_hint() {
    support::require_program("callgate-no-such-peer");
}

#[test]
fn rtp_parser_reads_csrcs_extension_and_padding() {
    let mut packet = vec![
        0xb2,
        0x80 | 8,
        0x12,
        0x34,
        0,
        0,
        0x01,
        0x40,
        0xde,
        0xad,
        0xbe,
        0xef,
    ];
    packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // two CSRCs
    packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one-word extension
    packet.extend_from_slice(&[7, 7, 7]); // payload
    packet.extend_from_slice(&[0, 0, 3]); // three bytes of padding
    let parsed = RtpPacket::parse(&packet).expect("valid packet");
    assert_eq!(parsed.payload, vec![7, 7, 7]);
    assert_eq!((parsed.payload_type, parsed.marker), (8, true));
    assert_eq!(
        (parsed.sequence, parsed.timestamp, parsed.ssrc),
        (0x1234, 320, 0xdead_beef)
    );
    let plain = RtpPacket {
        payload_type: 0,
        marker: false,
        sequence: 9,
        timestamp: 1440,
        ssrc: 5,
        payload: vec![1; 160],
    };
    assert_eq!(RtpPacket::parse(&plain.to_bytes()), Some(plain));
}

#[test]
fn rtp_parser_malformed_packet_injection_is_refused() {
    let header = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    assert!(RtpPacket::parse(&header[..11]).is_none(), "short header");
    assert!(RtpPacket::parse(&[0x40; 20]).is_none(), "version 1");
    let mut csrcs = header.to_vec();
    csrcs[0] = 0x8f; // claims 15 CSRCs
    assert!(RtpPacket::parse(&csrcs).is_none(), "CSRC list past the end");
    let mut extension = header.to_vec();
    extension[0] = 0x90;
    extension.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff]);
    assert!(
        RtpPacket::parse(&extension).is_none(),
        "extension past the end"
    );
    let mut padding = header.to_vec();
    padding[0] = 0xa0;
    padding.extend_from_slice(&[1, 200]);
    assert!(
        RtpPacket::parse(&padding).is_none(),
        "padding longer than packet"
    );
}

#[test]
fn ulaw_audio_orders_packets_and_fills_lost_ones_with_silence() {
    let packet = |sequence: u16, byte: u8| RtpPacket {
        payload_type: 0,
        marker: false,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc: 1,
        payload: vec![byte; 160],
    };
    let arrived = [packet(2, 3), packet(0, 1), packet(3, 4), packet(0, 1)];
    let audio = rtp::ulaw_audio(&arrived, 0);
    assert_eq!(audio.len(), 4 * 160);
    assert_eq!(
        (audio[0], audio[160], audio[320], audio[480]),
        (1, rtp::ULAW_SILENCE, 3, 4)
    );
    assert!(
        rtp::ulaw_audio(&arrived, 8).is_empty(),
        "other payload types are ignored"
    );
}

#[test]
fn ulaw_matches_g711_reference_values_and_round_trips() {
    assert_eq!(audio::ulaw_to_linear(0xff), 0);
    assert_eq!(audio::ulaw_to_linear(0x7f), 0);
    assert_eq!(audio::ulaw_to_linear(0x80), 32_124);
    assert_eq!(audio::ulaw_to_linear(0x00), -32_124);
    assert_eq!(audio::ulaw_to_linear(0xef), 132);
    assert_eq!(audio::linear_to_ulaw(0), 0xff);
    assert_eq!(audio::linear_to_ulaw(i16::MAX), 0x80);
    assert_eq!(audio::linear_to_ulaw(i16::MIN), 0x00);
    for byte in (0..=255u8).filter(|b| *b != 0x7f) {
        assert_eq!(
            audio::linear_to_ulaw(audio::ulaw_to_linear(byte)),
            byte,
            "byte {byte:#04x}"
        );
    }
}

/// The delay and loss the similarity must tolerate: `delay_ms` of silence
/// in front, then 1 in 20 of the 20 ms frames zeroed.
fn delayed_and_lossy(samples: &[i16], delay_ms: usize) -> Vec<i16> {
    let mut out = vec![0; delay_ms * 8];
    out.extend_from_slice(samples);
    for frame in out.chunks_mut(160).skip(3).step_by(20) {
        frame.fill(0);
    }
    out
}

#[test]
fn similarity_of_the_same_speech_delayed_and_lossy_is_high() {
    for sentence in [SENTENCE_A, SENTENCE_B, SENTENCE_C] {
        let sent = audio::decode_ulaw(&audio::speech_ulaw(sentence));
        let received = delayed_and_lossy(&sent, 300);
        let similarity = audio::similarity(&sent, &received);
        assert!(
            similarity.score > SAME_SPEECH_MIN,
            "{sentence}: {similarity:?}"
        );
        assert!(
            (295..=305).contains(&similarity.lag_ms),
            "{sentence}: {similarity:?}"
        );
        let quiet: Vec<i16> = received.iter().map(|s| s / 4).collect();
        let through_ulaw = audio::decode_ulaw(&audio::encode_ulaw(&quiet));
        let requantised = audio::similarity(&sent, &through_ulaw);
        assert!(
            requantised.score > SAME_SPEECH_MIN,
            "{sentence} quiet: {requantised:?}"
        );
    }
}

/// A recording starts wherever its first packet arrived, so the speech in
/// it is delayed by any number of samples, not by whole envelope frames.
/// The same speech scores the same at every offset within a frame, on both
/// frame sizes, and the lag found is right to the millisecond.
#[test]
fn similarity_does_not_depend_on_where_the_delay_falls_within_a_frame() {
    const DELAY_MS: usize = 300;
    for sentence in [SENTENCE_A, SENTENCE_B, SENTENCE_C] {
        let sent = audio::decode_ulaw(&audio::speech_ulaw(sentence));
        // Offsets of 0 to 10 ms in 1/8 ms steps: every phase of either frame.
        for offset in 0..80 {
            let mut received = vec![0; DELAY_MS * 8 + offset];
            received.extend_from_slice(&sent);
            let expected_lag = i64::try_from((DELAY_MS * 8 + offset + 4) / 8).unwrap();
            for (measure, similarity) in [
                ("5 ms", audio::similarity(&sent, &received)),
                ("10 ms", audio::similarity_coarse(&sent, &received)),
            ] {
                assert!(
                    similarity.score >= 0.97,
                    "{sentence}, {offset} samples later, {measure}: {similarity:?}"
                );
                assert!(
                    (similarity.lag_ms - expected_lag).abs() <= 1,
                    "{sentence}, {offset} samples later, {measure}: {similarity:?}"
                );
            }
        }
    }
}

#[test]
fn similarity_of_different_speech_noise_and_silence_is_low() {
    let sentences =
        [SENTENCE_A, SENTENCE_B, SENTENCE_C].map(|s| audio::decode_ulaw(&audio::speech_ulaw(s)));
    for (i, sent) in sentences.iter().enumerate() {
        for (j, other) in sentences.iter().enumerate().filter(|(j, _)| *j != i) {
            let similarity = audio::similarity(sent, &delayed_and_lossy(other, 300));
            assert!(
                similarity.score < DIFFERENT_MAX,
                "sentence {i} vs {j}: {similarity:?}"
            );
        }
        let silence = vec![0i16; sent.len() + 4000];
        assert_eq!(audio::similarity(sent, &silence).score, 0.0);
        // Deterministic white-ish noise (xorshift), as loud as speech.
        let mut state = 0x2545_f491_u32;
        let noise: Vec<i16> = (0..sent.len() + 4000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                i16::try_from(state % 16_000).unwrap_or(0) - 8000
            })
            .collect();
        let similarity = audio::similarity(sent, &noise);
        assert!(
            similarity.score < DIFFERENT_MAX,
            "sentence {i} vs noise: {similarity:?}"
        );
        let burst = audio::similarity(sent, &sent[..sent.len() / 3]);
        assert_eq!(burst.score, 0.0, "a third of the speech is not the speech");
    }
}

/// What a starved Chromium does to its fake microphone: the time its
/// process did not run is dropped, so the far end hears holes. Here 50 ms
/// of every 500 ms (a tenth of the audio) is silenced, after `delay_ms` of
/// silence.
fn delayed_with_holes(samples: &[i16], delay_ms: usize) -> Vec<i16> {
    const EVERY: usize = 500 * 8;
    const HOLE: usize = 50 * 8;
    let mut out = vec![0; delay_ms * 8];
    out.extend_from_slice(samples);
    for (i, sample) in out.iter_mut().enumerate() {
        if i % EVERY < HOLE {
            *sample = 0;
        }
    }
    out
}

/// A similarity measure: sent, received.
type Measure = fn(&[i16], &[i16]) -> audio::Similarity;

/// Both measures still know the speech through those holes (0.92 to 0.94
/// on 5 ms frames, 0.91 to 0.93 on the 10 ms ones that audio through
/// Chromium is judged by), and still refuse other speech with the same
/// holes (0.17 to 0.35, and 0.16 to 0.41).
#[test]
fn similarity_hears_speech_through_holes_but_not_other_speech() {
    let sentences =
        [SENTENCE_A, SENTENCE_B, SENTENCE_C].map(|s| audio::decode_ulaw(&audio::speech_ulaw(s)));
    let measures: [(&str, Measure); 2] = [
        ("5 ms", audio::similarity),
        ("10 ms", audio::similarity_coarse),
    ];
    for (frames, measure) in measures {
        for (i, sent) in sentences.iter().enumerate() {
            let holed = delayed_with_holes(sent, 300);
            let same = measure(sent, &holed);
            assert!(
                same.score >= SAME_SPEECH_MIN,
                "{frames}, sentence {i}: {same:?}"
            );
            assert!(
                (299..=301).contains(&same.lag_ms),
                "{frames}, sentence {i}: {same:?}"
            );
            for (j, other) in sentences.iter().enumerate().filter(|(j, _)| *j != i) {
                let different = measure(sent, &delayed_with_holes(other, 300));
                assert!(
                    different.score < DIFFERENT_MAX,
                    "{frames}, sentence {i} vs {j}: {different:?}"
                );
            }
        }
    }
}

#[test]
fn speech_wav_48k_is_a_48k_rendering_of_the_same_speech() {
    let (rate, samples) = audio::read_wav(&audio::speech_wav_48k(SENTENCE_C));
    assert_eq!(rate, 48_000);
    let decimated: Vec<i16> = samples.iter().step_by(6).copied().collect();
    let reference = audio::decode_ulaw(&audio::speech_ulaw(SENTENCE_C));
    assert!(audio::similarity(&reference, &decimated).score > SAME_SPEECH_MIN);
}

#[test]
fn digest_matches_rfc2617_and_rfc7616_examples() {
    let rfc2617 = DigestInput {
        algorithm: Algorithm::Md5,
        user: "Mufasa",
        realm: "testrealm@host.com",
        password: "Circle Of Life",
        method: "GET",
        uri: "/dir/index.html",
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    };
    let qop = QopAuth {
        nc: "00000001",
        cnonce: "0a4f113b",
    };
    assert_eq!(
        rfc2617.response(Some(qop)),
        "6629fae49393a05397450978507c4ef1"
    );
    let rfc7616 = DigestInput {
        algorithm: Algorithm::Sha256,
        realm: "http-auth@example.org",
        password: "Circle of Life",
        nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        ..rfc2617
    };
    let qop = QopAuth {
        nc: "00000001",
        cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    };
    assert_eq!(
        rfc7616.response(Some(qop)),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn digest_verify_refuses_wrong_password_user_realm_and_algorithm() {
    let input = alice(Algorithm::Sha256, "n0nce");
    let line = input.header_line("Authorization");
    let value = line.strip_prefix("Authorization:").expect("header name");
    let credentials = DigestCredentials::parse(value).expect("digest credentials");
    assert_eq!(credentials.get("algorithm"), Some("SHA-256"));
    assert_alice(&credentials);
    assert!(
        credentials
            .verify("INVITE", "bob", REALM, "s3cret")
            .is_err()
    );
    assert!(
        credentials
            .verify("INVITE", "alice", "other.realm", "s3cret")
            .is_err()
    );
    assert!(
        credentials.verify("BYE", "alice", REALM, "s3cret").is_err(),
        "method is hashed"
    );
    let md5_claimed = value.replace("algorithm=SHA-256", "algorithm=MD5");
    let md5_claimed = DigestCredentials::parse(&md5_claimed).expect("still digest");
    assert!(
        md5_claimed
            .verify("INVITE", "alice", REALM, "s3cret")
            .is_err()
    );
    assert!(DigestCredentials::parse("Basic YWxpY2U6czNjcmV0").is_none());
}

#[test]
fn sip_trace_parsing_handles_compact_folded_and_unexpected_messages() {
    let trace = "----------------------------------------------- 2026-01-01 00:00:00.000000\n\
        UDP message received [99] bytes :\n\n\
        INVITE sip:a@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:6;branch=z9hG4bK2\r\nSubject: a\r\n b\r\ni: x@y\r\n\
        CSeq: 1 INVITE\r\n\r\nv=0\r\nc=IN IP4 127.0.0.9\r\nm=audio 4000 RTP/AVP 0\r\na=recvonly\r\n\n\
        ----------------------------------------------- 2026-01-01 00:00:00.000001\n\
        Unexpected UDP message received:\n\n\
        SIP/2.0 486 Busy Here\r\nCSeq: 1 INVITE\r\n\r\n\n";
    let messages = sip_trace::parse_trace(trace);
    assert_eq!(messages.len(), 2, "{messages:?}");
    let invite = &messages[0];
    assert!(invite.is_request("INVITE"));
    assert_eq!(invite.header_all("Via").len(), 2);
    assert_eq!(invite.header("call-id"), Some("x@y"));
    assert_eq!(invite.header("Subject"), Some("a b"));
    assert_eq!(
        sdp_audio_addr(&invite.body),
        Some("127.0.0.9:4000".parse().expect("addr"))
    );
    assert_eq!(sdp_direction(&invite.body), "recvonly");
    let busy = &messages[1];
    assert!(busy.unexpected && busy.direction == Direction::Received);
    assert!(busy.is_response(486, "INVITE"));
}

#[test]
fn malformed_datagrams_are_what_they_claim() {
    let from = "127.0.0.1:5060".parse().expect("addr");
    let to = "127.0.0.1:5070".parse().expect("addr");
    for kind in Malformed::ALL {
        let datagram = kind.datagram(from, to);
        assert!(datagram.len() < 65_507, "{kind:?} fits a UDP datagram");
        let text = String::from_utf8_lossy(&datagram);
        let parsed = SipMessage::parse(Direction::Sent, false, &text);
        match kind {
            Malformed::Garbage => assert!(!text.contains("SIP/2.0")),
            Malformed::MissingCallId => {
                let invite = parsed.expect("an INVITE");
                assert!(invite.header("Call-ID").is_none() && invite.body.contains("m=audio"));
            }
            Malformed::HugeContentLength => {
                let invite = parsed.expect("an INVITE");
                assert_eq!(invite.header("Content-Length"), Some("4294967295"));
            }
            Malformed::TruncatedSdp => {
                let invite = parsed.expect("an INVITE");
                let claimed: usize = invite
                    .header("Content-Length")
                    .and_then(|l| l.parse().ok())
                    .expect("length");
                assert!(invite.body.len() < claimed && !invite.body.contains("RTP/AVP"));
            }
            Malformed::OverlongHeaderLine => {
                assert!(
                    text.lines()
                        .any(|line| line.len() > 50_000 && !line.contains(':'))
                );
            }
        }
    }
}

/// Keys as a phone plays them: 100 ms of each tone pair, 50 ms apart.
fn keypad_tone_samples(keys: &str, rate: u32) -> Vec<i16> {
    let mut out = vec![0i16; rate as usize / 10];
    for key in keys.chars() {
        let (row, column) = (0..16)
            .map(|i| (i / 4, i % 4))
            .find(|&(r, c)| KEYS[r][c] == key)
            .unwrap();
        for n in 0..rate as usize / 10 {
            let t = n as f64 / f64::from(rate);
            let tau = 2.0 * std::f64::consts::PI;
            let value =
                4000.0 * (tau * ROWS[row] * t).sin() + 4000.0 * (tau * COLUMNS[column] * t).sin();
            out.push(value as i16);
        }
        out.extend(std::iter::repeat_n(0, rate as usize / 20));
    }
    out
}

#[test]
fn the_detector_hears_generated_keys_and_not_silence() {
    assert_eq!(
        keypad_tones(&keypad_tone_samples("159#0*", 8000), 8000),
        "159#0*"
    );
    assert_eq!(keypad_tones(&vec![0; 8000], 8000), "");
    let noise: Vec<i16> = (0..8000)
        .map(|i| ((i * 7919) % 2001 - 1000) as i16)
        .collect();
    assert_eq!(keypad_tones(&noise, 8000), "");
}

#[test]
fn a_press_is_unmarked_and_ends_four_times_in_place_of_audio() {
    let press = Press {
        at: std::time::Duration::from_millis(100),
        event: 5,
        payload_type: 101,
    };
    let stream = phone_stream(&[press], std::time::Duration::from_secs(1), 7);
    assert_eq!(stream.len(), 50);
    let events: Vec<_> = stream.iter().filter(|p| p.payload_type == 101).collect();
    assert_eq!(events.len(), 9);
    assert!(events.iter().all(|p| !p.marker && p.timestamp == 800));
    assert_eq!(
        events.iter().filter(|p| p.payload[1] & 0x80 != 0).count(),
        4
    );
    assert!(
        stream
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence.wrapping_add(1))
    );
}

#[test]
fn the_impaired_echo_loses_a_quarter_and_holds_half_back_while_bad_then_echoes_cleanly() {
    let echo = ImpairedEcho::start(101, Duration::ZERO..Duration::from_millis(400));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], echo.port()));
    let packet = |sequence: u16| RtpPacket {
        payload_type: 0,
        marker: false,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc: 7,
        payload: vec![0xff; 160],
    };
    let send_and_collect = |sequences: std::ops::Range<u16>| {
        for sequence in sequences {
            socket.send_to(&packet(sequence).to_bytes(), to).unwrap();
        }
        let sent = Instant::now();
        let mut back = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(len) = socket.recv(&mut buf) {
            let sequence = RtpPacket::parse(&buf[..len]).unwrap().sequence;
            back.push((sequence, sent.elapsed()));
        }
        back
    };
    let back = send_and_collect(0..8);
    let quick: Vec<u16> = back
        .iter()
        .filter(|(_, t)| *t < HOLD)
        .map(|b| b.0)
        .collect();
    let late: Vec<u16> = back
        .iter()
        .filter(|(_, t)| *t >= HOLD)
        .map(|b| b.0)
        .collect();
    assert_eq!(quick, [2, 6], "{back:?}");
    assert_eq!(late, [1, 3, 5, 7], "{back:?}");
    // Past its impaired time, everything comes straight back.
    std::thread::sleep(Duration::from_millis(400));
    let back = send_and_collect(8..12);
    assert_eq!(back.iter().map(|b| b.0).collect::<Vec<_>>(), [8, 9, 10, 11]);
    assert!(back.iter().all(|(_, t)| *t < HOLD), "{back:?}");
    let treated = echo.stop();
    assert_eq!(
        treated,
        Treated {
            lost: 2,
            held: 4,
            sent: 6
        }
    );
}

//! The fuzz targets as unit tests: every seed and every input that once
//! crashed runs clean on each build, and the seed corpus is written here.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::script::ScriptWriter;
use super::*;
use crate::media::rtcp::NtpTime;
use crate::media::rtcp::{SenderInfo, write_goodbye, write_sender_report};
use crate::media::rtp::{RtpHeader, Ssrc};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn inputs(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| fs::read(entry.expect("a corpus entry").path()).expect("a corpus file"))
        .collect()
}

#[test]
fn every_seed_and_every_past_crash_runs_clean() {
    for (name, target) in TARGETS {
        let seeds = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(seeds.len() >= 2, "{name}: the seed corpus is missing");
        let past = ["regressions", "upstream"]
            .map(|kind| inputs(&fuzz_dir().join(kind).join(name)))
            .concat();
        for input in seeds.iter().chain(&past) {
            target(input);
        }
    }
}

#[test]
fn every_target_has_its_fuzzer_binary() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = fs::read_to_string(&source).expect("the target's source");
        assert!(
            text.contains(&format!("callgate::fuzzing::{name}(")),
            "{name}"
        );
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
    }
}

#[test]
fn the_live_call_seeds_carry_audio_both_ways() {
    for seed in live_call_seeds() {
        let sent = live_call::play(&seed);
        assert!(sent.to_trunk >= 5, "{sent:?}");
        assert!(sent.to_browser >= 5, "{sent:?}");
    }
}

#[test]
fn the_browser_port_seed_check_verifies() {
    let credentials = IceCredentials::new(LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG);
    let check = &browser_port_seeds()[0][2..];
    assert!(stun::verify_check(check, &credentials).is_ok());
}

/// Writes `fuzz/corpus/` from our own writers and samples. Run by hand
/// after a target's input format changes:
/// `cargo test --lib fuzzing::tests::write_seed_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    for (name, seeds) in seeds() {
        let dir = fuzz_dir().join("corpus").join(name);
        fs::create_dir_all(&dir).expect("the corpus directory");
        for seed in seeds {
            let file = hex::encode(&Sha256::digest(&seed)[..10]);
            fs::write(dir.join(file), &seed).expect("a seed");
        }
    }
}

fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("browser_port", browser_port_seeds()),
        ("browser_offer", vec![OFFER.into(), FIREFOX_OFFER.into()]),
        ("trunk_sdp", trunk_sdp_seeds()),
        (
            "rtp",
            vec![rtp_packet(0, &[0xd5; 160]), rtp_with_everything()],
        ),
        ("rtcp", rtcp_seeds()),
        ("dtmf", dtmf_seeds()),
        ("srtp", srtp_seeds()),
        (
            "sip_message",
            SIP_MESSAGES.iter().map(|m| m.as_bytes().to_vec()).collect(),
        ),
        (
            "sip_digest",
            CHALLENGES.iter().map(|c| c.as_bytes().to_vec()).collect(),
        ),
        ("credentials", credential_seeds()),
        ("signalling_json", signalling_seeds()),
        (
            "admin_json",
            ADMIN_BODIES.iter().map(|b| b.as_bytes().to_vec()).collect(),
        ),
        ("recording", recording_seeds()),
        ("live_call", live_call_seeds()),
    ]
}

const OFFER: &str = live_call::OFFER;

const FIREFOX_OFFER: &str = "v=0\r\n\
o=mozilla...THIS_IS_SDPARTA-99.0 6559528461328151226 0 IN IP4 0.0.0.0\r\n\
s=-\r\nt=0 0\r\n\
a=fingerprint:sha-256 3F:28:1D:EE:10:92:A8:1A:43:63:6C:9B:7C:21:5B:26:2E:8A:53:6C:EF:C1:6F:A5:60:CD:30:16:4F:D4:0C:D7\r\n\
a=group:BUNDLE 0\r\na=ice-options:trickle\r\na=msid-semantic:WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\nc=IN IP4 0.0.0.0\r\n\
a=sendrecv\r\na=ice-pwd:7a1d4a7f0d2c6e1f8b3c9a0e5d2f4b6c\r\na=ice-ufrag:fuzzRemote\r\n\
a=mid:0\r\na=rtcp-mux\r\na=rtpmap:109 opus/48000/2\r\na=rtpmap:9 G722/8000/1\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=setup:actpass\r\n";

fn browser_port_seeds() -> Vec<Vec<u8>> {
    let mut check = Vec::new();
    let username = format!("{LOCAL_UFRAG}:{REMOTE_UFRAG}");
    stun::write_check(&mut check, &[7; 12], &username, LOCAL_PWD, 42, true);
    let mut dtls = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4];
    dtls.extend_from_slice(&[1, 0, 0, 0]);
    vec![
        ScriptWriter::default().u16(1000).raw(&check).0,
        ScriptWriter::default().u16(1001).raw(&dtls).0,
        ScriptWriter::default()
            .u16(1001)
            .raw(&rtp_packet(0, &[1; 20]))
            .0,
    ]
}

fn trunk_sdp_seeds() -> Vec<Vec<u8>> {
    let plain = "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\n\
t=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
a=ptime:20\r\na=sendrecv\r\n";
    let srtp = "v=0\r\no=- 2 2 IN IP4 192.0.2.21\r\ns=-\r\nc=IN IP4 192.0.2.21\r\n\
t=0 0\r\nm=audio 30002 RTP/SAVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n\
a=sendonly\r\n";
    vec![
        [&[0][..], plain.as_bytes()].concat(),
        [&[3][..], srtp.as_bytes()].concat(),
    ]
}

fn rtp_packet(payload_type: u8, payload: &[u8]) -> Vec<u8> {
    let header = RtpHeader {
        payload_type,
        marker: true,
        sequence: 1,
        timestamp: 160,
        ssrc: Ssrc(0x1234),
    };
    let mut packet = Vec::new();
    header.write_packet(payload, &mut packet).expect("a packet");
    packet
}

/// Two CSRCs, a one-byte header extension and padding.
fn rtp_with_everything() -> Vec<u8> {
    let mut packet = vec![0xb2, 0x00, 0x00, 0x02, 0, 0, 1, 64, 0, 0, 0x12, 0x34];
    packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]);
    packet.extend_from_slice(&[0xd5; 40]);
    packet.extend_from_slice(&[0, 0, 0, 4]);
    packet
}

fn rtcp_seeds() -> Vec<Vec<u8>> {
    let mut goodbye = Vec::new();
    write_goodbye(&mut goodbye, Ssrc(7), b"callgate").expect("a goodbye");
    let mut report = Vec::new();
    let info = SenderInfo {
        ntp: NtpTime(0xe000_0000_8000_0000),
        rtp_timestamp: 160,
        packet_count: 10,
        octet_count: 1600,
    };
    write_sender_report(&mut report, Ssrc(7), &info, &[]).expect("a report");
    vec![goodbye, report]
}

fn dtmf_seeds() -> Vec<Vec<u8>> {
    let event = |timestamp: u32, end: bool, duration: u16| {
        let mut chunk = timestamp.to_be_bytes().to_vec();
        chunk.extend_from_slice(&[5, if end { 0x8a } else { 0x0a }]);
        chunk.extend_from_slice(&duration.to_be_bytes());
        chunk
    };
    vec![
        [
            event(160, false, 160),
            event(160, false, 320),
            event(160, true, 480),
        ]
        .concat(),
        [
            event(800, true, 480),
            event(800, true, 480),
            event(1600, false, 160),
        ]
        .concat(),
    ]
}

fn srtp_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (mode, salt_len) in [(0_u8, 14), (1, 12)] {
        let writer = ScriptWriter::default()
            .u8(mode)
            .raw(&[0x11; 16])
            .raw(&vec![0x22; salt_len]);
        seeds.push(writer.raw(&rtp_packet(0, &[0xd5; 160])).0);
    }
    let mut goodbye = Vec::new();
    write_goodbye(&mut goodbye, Ssrc(7), b"callgate").expect("a goodbye");
    seeds.push(
        ScriptWriter::default()
            .u8(0)
            .raw(&[0x11; 30])
            .raw(&goodbye)
            .0,
    );
    seeds
}

const SIP_MESSAGES: [&str; 4] = [
    "INVITE sip:+15550100@gateway.example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\nTo: <sip:+15550100@gateway.example.net>\r\n\
From: \"Caller\" <sip:+15550199@carrier.example>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@carrier.example\r\nCSeq: 314159 INVITE\r\n\
Contact: <sip:carrier@192.0.2.20:5060>\r\nContent-Type: application/sdp\r\n\
Content-Length: 129\r\n\r\n\
v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    "SIP/2.0 401 Unauthorized\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds8;received=192.0.2.1\r\n\
To: <sip:+15550100@carrier.example>;tag=a6c85cf\r\n\
From: <sip:gateway@192.0.2.1>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\n\
CSeq: 1 INVITE\r\nWWW-Authenticate: Digest realm=\"carrier.example\", \
nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", algorithm=SHA-256, qop=\"auth\"\r\n\
Content-Length: 0\r\n\r\n",
    "SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds8\r\n\
To: <sip:+15550100@carrier.example>;tag=a6c85cf\r\n\
From: <sip:gateway@192.0.2.1>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\n\
CSeq: 1 INVITE\r\nReason: Q.850;cause=17;text=\"User busy\"\r\nContent-Length: 0\r\n\r\n",
    "BYE sip:gateway@192.0.2.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bK74bf9\r\nMax-Forwards: 70\r\n\
From: <sip:+15550100@carrier.example>;tag=a6c85cf\r\n\
To: <sip:gateway@192.0.2.1>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\n\
CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
];

const CHALLENGES: [&str; 3] = [
    "Digest realm=\"carrier.example\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
algorithm=MD5, qop=\"auth\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    "Digest realm=\"carrier.example\", nonce=\"abc\", algorithm=\"SHA-256\", qop=\"auth-int\"",
    "Digest realm=carrier.example,nonce=abc,algorithm=SHA-256-sess,stale=true",
];

fn credential_seeds() -> Vec<Vec<u8>> {
    vec![
        b"cg_0123456789abcdef0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_vec(),
        b"v1.0123456789abcdef0123456789abcdef.1900000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.k1"
            .to_vec(),
        b"theme=dark; cg_session=\"v1.abc.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.k1\"".to_vec(),
    ]
}

fn signalling_seeds() -> Vec<Vec<u8>> {
    let call = serde_json::json!({"offer": OFFER, "consent": "granted"});
    vec![
        call.to_string().into_bytes(),
        br#"{"type":"dtmf","digits":"12#"}"#.to_vec(),
        br#"{"type":"consent","value":"revoked"}"#.to_vec(),
    ]
}

const ADMIN_BODIES: [&str; 8] = [
    r#"{"id":"sales","e164":"+15550100","trunk":"demo","recording":"ask","retention_days":30,"limits":{"max_concurrent_calls":2,"minutes_per_day":60}}"#,
    r#"{"e164":"+442079460000","notice_text":null,"limits":{}}"#,
    r#"{"id":"w1","number_id":"sales","allowed_origins":["https://shop.example"],"limits":{"calls_per_minute":3}}"#,
    r#"{"allowed_origins":["https://*.example.com"]}"#,
    r#"{"url":"https://hooks.example.com/callgate"}"#,
    r#"{"routes":["demo"],"prefixes":["+1","+44"]}"#,
    r#"{"key":"cg_0123456789abcdef0123456789abcdef_AAAA"}"#,
    "from=2026-01-01T00%3A00%3A00Z&to=2026-02-01T00%3A00%3A00Z&number_id=sales&format=csv",
];

fn recording_seeds() -> Vec<Vec<u8>> {
    let header = RecordingHeader {
        key_id: "k1".to_owned(),
        recording_id: "rec_seed".into(),
        nonce_prefix: [1; 7],
        consent_hash: [2; 32],
        audio: AudioFormat::two_channel_8k(),
    };
    let (mut encryptor, mut file) = SegmentEncryptor::new(&DataKey::fixed(0x42), &header);
    encryptor.push(&[0x10; 640], &mut file).expect("audio");
    encryptor.finish(&mut file).expect("a file");
    vec![
        [&[0][..], &file].concat(),
        ScriptWriter::default()
            .u8(1)
            .u16(90)
            .u16(70)
            .raw(&[0x20; 320])
            .0,
    ]
}

/// A call's script: the setup byte, then steps (see `live_call.rs`).
fn live_call_seeds() -> Vec<Vec<u8>> {
    let audio = |w: ScriptWriter, step: u8, sequence: u16| {
        w.u8(step)
            .u8(2)
            .u16(sequence)
            .u32(u32::from(sequence) * 160)
            .u32(0x5eed)
            .bytes(&[0x55; 160])
    };
    let mut pcmu = ScriptWriter::default().u8(4);
    let mut opus = ScriptWriter::default().u8(3);
    for sequence in 1..6 {
        pcmu = audio(pcmu, 1, sequence);
        pcmu = audio(pcmu, 5, sequence);
        opus = audio(opus, 1, sequence);
        opus = audio(opus, 5, sequence);
    }
    let pcmu = pcmu
        .u8(7)
        .bytes(b"12#")
        .u8(9)
        .bytes(&[50])
        .u8(9)
        .bytes(&[255]);
    let opus = opus
        .u8(8)
        .bytes(&[1])
        .u8(2)
        .bytes(&rtcp_seeds()[1])
        .u8(9)
        .bytes(&[250]);
    vec![pcmu.0, opus.0]
}

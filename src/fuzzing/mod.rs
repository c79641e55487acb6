//! Entry points for the fuzzer (`fuzz/`): one function for each parser of
//! untrusted input, taking the fuzzer's bytes. Built with the `fuzzing`
//! feature and in this crate's unit tests, which replay the seed corpus and
//! every input that once crashed (`fuzz/corpus/`, `fuzz/regressions/`).
//!
//! A target must not panic, whatever the bytes: a panic is the finding.
//! Where a round trip is defined (SRTP protect then unprotect, a recording
//! written then read, cut or altered), the target asserts it too.

mod fixtures;
mod live_call;
mod script;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::config::BrowserCodec;
use crate::domain::Codec;
use crate::keys::DataKey;
use crate::media::dtmf::{DtmfReceiver, EventPayload};
use crate::media::rtcp::{self, ReceiveStats, RtcpPacket};
use crate::media::rtp::{RtpPacket, RtpPacketMut};
use crate::media::sdp::{LocalMediaConfig, Negotiator, SessionDescription, SrtpKeySalt};
use crate::media::srtp::{self, SrtpMasterKey, SrtpProfile, SrtpReceiver, SrtpSender};
use crate::recording::format::{
    self, AudioFormat, Completeness, RecordingHeader, SEALED_SEGMENT_LEN, SegmentDecryptor,
    SegmentEncryptor,
};
use crate::webrtc::port::{BrowserRoutes, Routed};
use crate::webrtc::session::BrowserSession;
use crate::webrtc::stun::{self, IceCredentials};
use crate::webrtc::{demux, offer};

use fixtures::session_settings;
pub use fixtures::{LOCAL_PWD, LOCAL_UFRAG, REMOTE_UFRAG};
pub use live_call::live_call;
pub use script::Script;

/// A target: the fuzzer's bytes in, a panic out when something is wrong.
pub type Target = fn(&[u8]);

/// Every target by the name of its `fuzz/fuzz_targets/` file and corpus.
pub const TARGETS: [(&str, Target); 14] = [
    ("browser_port", browser_port),
    ("browser_offer", browser_offer),
    ("trunk_sdp", trunk_sdp),
    ("rtp", rtp),
    ("rtcp", rtcp),
    ("dtmf", dtmf),
    ("srtp", srtp),
    ("sip_message", sip_message),
    ("sip_digest", sip_digest),
    ("credentials", credentials),
    ("signalling_json", signalling_json),
    ("admin_json", admin_json),
    ("recording", recording),
    ("live_call", live_call),
];

/// A datagram on the browser port: the demux and the routing table, then
/// the ICE check as the session of the call it names verifies it.
pub fn browser_port(data: &[u8]) {
    let mut input = Script::new(data);
    let port = input.u16();
    let datagram = input.rest();
    let now = Instant::now();
    let from = SocketAddr::from(([198, 51, 100, 7], port));
    let mut routes = BrowserRoutes::default();
    routes.register(LOCAL_UFRAG, 1_u32, now);
    if port % 2 == 1 {
        routes.learn(from, 1);
    }
    let routed = routes.route(from, datagram, now);
    let _ = demux::local_ufrag(datagram);
    if !matches!(routed, Routed::Call(_)) {
        return;
    }
    let credentials = IceCredentials::new(LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG);
    if let Ok(check) = stun::verify_check(datagram, &credentials) {
        let mut response = Vec::new();
        stun::write_success(&mut response, &check, from, &credentials);
        assert!(stun::is_success_for(&response, &check.transaction));
    }
}

/// A browser's offer, as signalling checks it and a session answers it.
pub fn browser_offer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offered) = offer::inspect(text) else {
        return;
    };
    for preference in [BrowserCodec::G711, BrowserCodec::Opus] {
        if let Ok(media) = offered.choose(preference, &[Codec::Pcma, Codec::Pcmu]) {
            let settings = session_settings();
            let now = Instant::now();
            let _ = BrowserSession::answer(settings, text, media, LOCAL_UFRAG, LOCAL_PWD, now);
        }
    }
}

/// A trunk's SDP, as an answer to our offer and as an offer of its own
/// (a re-INVITE); the first byte picks rtcp-mux and SRTP on our side.
pub fn trunk_sdp(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    if let Ok(sdp) = SessionDescription::parse(body) {
        for media in &sdp.media {
            let _ = (media.is_audio(), media.is_rtp());
            let _ = (sdp.connection_for(media), sdp.direction_for(media));
            let _ = sdp.ptime_for(media);
            for &payload_type in &media.payload_types {
                let _ = (media.encoding(payload_type), media.fmtp(payload_type));
            }
        }
    }
    let mut config = LocalMediaConfig::new(IpAddr::from([192, 0, 2, 1]), 30_000);
    config.rtcp_mux = mode & 1 == 1;
    if mode & 2 == 2 {
        config.srtp = Some(SrtpKeySalt::new([0x5a; 30]));
    }
    if let Ok(mut negotiator) = Negotiator::new(config.clone(), 1)
        && negotiator.create_offer().is_ok()
    {
        let _ = negotiator.handle_answer(body);
    }
    if let Ok(mut negotiator) = Negotiator::new(config, 2) {
        let _ = negotiator.handle_offer(body);
    }
}

/// An RTP packet: the parser, every field, and a rewrite in place.
pub fn rtp(data: &[u8]) {
    let Ok(packet) = RtpPacket::parse(data) else {
        return;
    };
    let _ = (packet.marker(), packet.payload_type(), packet.sequence());
    let _ = (packet.timestamp(), packet.ssrc(), packet.csrc_count());
    let _ = packet.csrcs().count();
    let _ = packet.extension().map(|e| e.data.len());
    let _ = (packet.padding_len(), packet.header_len());
    assert!(packet.header_len() + packet.payload().len() <= data.len());
    let mut copy = data.to_vec();
    if let Ok(mut writable) = RtpPacketMut::new(&mut copy) {
        let _ = writable.set_payload_type(0);
        writable.set_marker(true);
        writable.set_sequence(7);
        writable.set_timestamp(160);
    }
}

/// A compound RTCP packet, and what our receive stats take from it.
pub fn rtcp(data: &[u8]) {
    let _ = rtcp::is_rtcp(data);
    let Ok(packets) = rtcp::parse_compound(data) else {
        return;
    };
    let mut stats = ReceiveStats::new(8000);
    for packet in packets {
        if let RtcpPacket::SenderReport(report) = packet {
            stats.handle_sender_report(report.info.ntp, Instant::now());
        }
    }
}

/// RFC 4733 events as they follow one another on a trunk: 8 bytes each,
/// an RTP timestamp then the event payload.
pub fn dtmf(data: &[u8]) {
    let _ = EventPayload::parse(data);
    let mut receiver = DtmfReceiver::new();
    for chunk in data.chunks(8) {
        let Some((timestamp, payload)) = chunk.split_first_chunk::<4>() else {
            break;
        };
        let _ = receiver.handle_payload(u32::from_be_bytes(*timestamp), payload);
    }
}

/// SRTP and SRTCP unprotect on the browser leg (both DTLS-SRTP profiles)
/// and the trunk leg (SDES), with keys from the input; and the round trip:
/// what our sender protects, our receiver gives back unchanged.
pub fn srtp(data: &[u8]) {
    let mut input = Script::new(data);
    let profile = match input.u8() % 2 {
        1 => SrtpProfile::AeadAes128Gcm,
        _ => SrtpProfile::Aes128CmHmacSha1_80,
    };
    let key_len = profile.master_key_len() + profile.master_salt_len();
    let Some(material) = input.take(key_len) else {
        return;
    };
    let (key, salt) = material.split_at(profile.master_key_len());
    let Ok(master) = SrtpMasterKey::new(profile, key, salt) else {
        return;
    };
    let packet = input.rest();
    let mut receiver = SrtpReceiver::new(&master);
    let _ = receiver.unprotect_rtp(&mut packet.to_vec());
    let _ = receiver.unprotect_rtcp(&mut packet.to_vec());
    if let Ok(sdes) =
        srtp::sdes::SrtpKeyMaterial::from_bytes(material.get(..30).unwrap_or(material))
        && let Ok(mut trunk) = srtp::sdes::receiver(&sdes)
    {
        let _ = srtp::sdes::unprotect_rtp(&mut trunk, packet);
        let _ = srtp::sdes::unprotect_rtcp(&mut trunk, packet);
    }
    let mut sender = SrtpSender::new(&master);
    let mut receiver = SrtpReceiver::new(&master);
    if RtpPacket::parse(packet).is_ok() {
        let mut protected = packet.to_vec();
        if sender.protect_rtp(&mut protected).is_ok() {
            let len = receiver
                .unprotect_rtp(&mut protected)
                .expect("our own SRTP unprotects");
            assert_eq!(&protected[..len], packet, "SRTP round trip");
        }
    }
    if rtcp::parse_compound(packet).is_ok() {
        let mut protected = packet.to_vec();
        if sender.protect_rtcp(&mut protected).is_ok() {
            let len = receiver
                .unprotect_rtcp(&mut protected)
                .expect("our own SRTCP unprotects");
            assert_eq!(&protected[..len], packet, "SRTCP round trip");
        }
    }
}

/// A SIP message on the node's SIP port (UDP, and TCP/TLS framing).
pub fn sip_message(data: &[u8]) {
    crate::sip::fuzz::message(data);
}

/// A trunk's digest challenge (the value of WWW- or Proxy-Authenticate).
pub fn sip_digest(data: &[u8]) {
    crate::sip::fuzz::challenge(data);
}

/// A presented API key, session token or Cookie header.
pub fn credentials(data: &[u8]) {
    crate::http::admin::fuzz_credentials(data);
}

/// A call request's body and a message on a call's events socket.
pub fn signalling_json(data: &[u8]) {
    crate::http::signalling::fuzz_request(data);
}

/// Every admin request body and query.
pub fn admin_json(data: &[u8]) {
    crate::http::admin::fuzz_request(data);
}

/// A recording file as read back: the header, the whole-file and the
/// streamed decryption. With the first byte odd, the file is first
/// written by our encryptor from the input's audio, then cut or altered
/// where the input says: an intact file decrypts to the audio, an altered
/// one is refused, and a cut one reads (as interrupted) a prefix of it.
pub fn recording(data: &[u8]) {
    let key = DataKey::fixed(0x42);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        read_recording(&key, rest);
        return;
    }
    let mut input = Script::new(rest);
    let (cut, flip) = (input.u16(), input.u16());
    let audio = input.rest();
    let header = RecordingHeader {
        key_id: "k1".to_owned(),
        recording_id: "rec_fuzz".into(),
        nonce_prefix: [3; 7],
        consent_hash: [9; 32],
        audio: AudioFormat::two_channel_8k(),
    };
    let (mut encryptor, mut file) = SegmentEncryptor::new(&key, &header);
    let (first, second) = audio.split_at(audio.len() / 2);
    encryptor.push(first, &mut file).expect("a short recording");
    encryptor
        .push(second, &mut file)
        .expect("a short recording");
    encryptor.finish(&mut file).expect("a short recording");
    let whole = format::decrypt(&key, &file, Completeness::Complete).expect("our own file");
    assert_eq!(whole.audio, audio, "a recording reads back as written");
    let cut = usize::from(cut);
    if cut < file.len() {
        assert!(format::decrypt(&key, &file[..cut], Completeness::Complete).is_err());
        if let Ok(partial) = format::decrypt(&key, &file[..cut], Completeness::Interrupted) {
            assert!(
                audio.starts_with(&partial.audio),
                "a cut file reads a prefix"
            );
        }
    }
    let flip = usize::from(flip);
    if flip < file.len() {
        file[flip] ^= 0x80;
        assert!(format::decrypt(&key, &file, Completeness::Complete).is_err());
        // Read as interrupted, a damaged last segment is a cut-off tail.
        if let Ok(partial) = format::decrypt(&key, &file, Completeness::Interrupted) {
            assert!(!partial.complete, "an altered file is never complete");
            assert!(
                audio.starts_with(&partial.audio),
                "only intact audio is read"
            );
        }
    }
}

fn read_recording(key: &DataKey, file: &[u8]) {
    let _ = format::read_header(file);
    let _ = format::decrypt(key, file, Completeness::Complete);
    let _ = format::decrypt(key, file, Completeness::Interrupted);
    let Ok((mut decryptor, _, start)) = SegmentDecryptor::start(key, file) else {
        return;
    };
    let _ = format::audio_len(file.len() as u64, start as u64);
    let segments: Vec<&[u8]> = file[start..].chunks(SEALED_SEGMENT_LEN).collect();
    for (index, segment) in segments.iter().enumerate() {
        if decryptor
            .open_next(segment, index + 1 == segments.len())
            .is_err()
        {
            break;
        }
    }
}

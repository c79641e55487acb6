//! Real-world-shaped SDP from carriers and PBXes, offer/answer round trips,
//! and a mutation loop that feeds broken variants of them to every entry point.
//!
//! The samples are written in the style of each device family (line order,
//! attribute habits, odd spacing); addresses are documentation ranges.

use std::net::SocketAddr;

use super::*;
use crate::domain::{Codec, TelephoneEvent};

const CISCO_ANSWER: &str = "v=0\r\n\
o=CiscoSystemsSIP-GW-UserAgent 4143 2367 IN IP4 203.0.113.20\r\n\
s=SIP Call\r\n\
c=IN IP4 203.0.113.20\r\n\
t=0 0\r\n\
m=audio 17528 RTP/AVP 0 101\r\n\
c=IN IP4 203.0.113.20\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n";

const SONUS_ANSWER: &str = "v=0\r\n\
o=Sonus_UAC 533868 81955 IN IP4 198.51.100.7\r\n\
s=SIP Media Capabilities\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 24868 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=maxptime:20\r\n";

const ASTERISK_OFFER: &str = "v=0\r\n\
o=- 1234567890 1234567890 IN IP4 192.0.2.33\r\n\
s=Asterisk\r\n\
c=IN IP4 192.0.2.33\r\n\
t=0 0\r\n\
m=audio 10342 RTP/AVP 8 0 3 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:3 GSM/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// The shape of sipp's built-in uas answer: c= and m= only, no rtpmap.
const SIPP_UAS: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n";

const FREESWITCH_SRTP_OFFER: &str = "v=0\r\n\
o=FreeSWITCH 1700000000 1700000001 IN IP4 192.0.2.44\r\n\
s=FreeSWITCH\r\n\
c=IN IP4 192.0.2.44\r\n\
t=0 0\r\n\
m=audio 16384 RTP/SAVP 9 0 8 101 13\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtpmap:13 CN/8000\r\n\
a=ptime:20\r\n\
a=crypto:1 AEAD_AES_256_GCM_8 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJyg=\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31|1:1\r\n\
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=rtcp:16385 IN IP4 192.0.2.44\r\n";

/// A trunk that writes bare LF, trailing spaces and session-level c= only.
const LF_ONLY_OFFER: &str = "v=0\n\
o=carrier 77 77 IN IP4 198.51.100.50 \n\
s=-\n\
c=IN IP4 198.51.100.50\n\
t=0 0\n\
\n\
m=audio 30000 RTP/AVP 18 0 101   \n\
a=rtpmap:18 G729/8000\n\
a=fmtp:18 annexb=no\n\
a=rtpmap:101 telephone-event/8000\n";

const IPV6_OFFER: &str = "v=0\r\n\
o=- 5 5 IN IP6 2001:db8::20\r\n\
s=-\r\n\
t=0 0\r\n\
m=audio 40100 RTP/AVP 0 101\r\n\
c=IN IP6 2001:db8::20\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// An SBC that offers video and fax too, audio in the middle.
const MULTI_MEDIA_OFFER: &str = "v=0\r\n\
o=sbc 9 9 IN IP4 198.51.100.60\r\n\
s=-\r\n\
c=IN IP4 198.51.100.60\r\n\
t=0 0\r\n\
m=video 50002 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
m=audio 50000 RTP/AVP 0 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
m=image 50004 udptl t38\r\n";

const SAMPLES: [&str; 8] = [
    CISCO_ANSWER,
    SONUS_ANSWER,
    ASTERISK_OFFER,
    SIPP_UAS,
    FREESWITCH_SRTP_OFFER,
    LF_ONLY_OFFER,
    IPV6_OFFER,
    MULTI_MEDIA_OFFER,
];

fn local() -> LocalMediaConfig {
    LocalMediaConfig::new("192.0.2.10".parse().expect("ip"), 40000)
}

fn negotiator(config: LocalMediaConfig) -> Negotiator {
    Negotiator::new(config, 1000).expect("valid config")
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

fn key() -> SrtpKeySalt {
    SrtpKeySalt::new([0x11; 30])
}

fn offered(n: &mut Negotiator, offer: &str) -> Answer {
    n.handle_offer(offer.as_bytes()).expect("answerable offer")
}

fn answered(config: LocalMediaConfig, answer: &str) -> Result<NegotiatedMedia, SdpError> {
    let mut n = negotiator(config);
    n.create_offer().expect("offer");
    n.handle_answer(answer.as_bytes())
}

fn audio_line(sdp: &str) -> &str {
    sdp.lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap_or_default()
}

// ---- samples parse ----

#[test]
fn every_sample_parses() {
    for sample in SAMPLES {
        assert!(sample.parse::<SessionDescription>().is_ok(), "{sample}");
    }
}

#[test]
fn lf_only_sample_reads_like_its_crlf_twin() {
    let lf = LF_ONLY_OFFER.parse::<SessionDescription>().expect("lf");
    let crlf = LF_ONLY_OFFER
        .replace('\n', "\r\n")
        .parse::<SessionDescription>()
        .expect("crlf");
    assert_eq!(lf, crlf);
    let media = lf.media.first().expect("audio");
    assert_eq!(media.payload_types, vec![18, 0, 101]);
    assert_eq!(lf.connection_for(media), "198.51.100.50".parse().ok());
}

#[test]
fn freeswitch_sample_keeps_every_crypto_line() {
    let sdp: SessionDescription = FREESWITCH_SRTP_OFFER.parse().expect("parses");
    let media = sdp.media.first().expect("audio");
    let tags: Vec<u32> = media.crypto.iter().map(|c| c.tag).collect();
    assert_eq!(tags, vec![1, 2, 3, 4]);
    assert_eq!(media.rtcp.map(|r| r.port), Some(16385));
}

// ---- answers to our offers ----

#[test]
fn our_offer_then_cisco_answer() {
    let media = answered(local(), CISCO_ANSWER).expect("negotiates");
    assert_eq!(media.remote_rtp, addr("203.0.113.20:17528"));
    assert_eq!(media.remote_rtcp, Some(addr("203.0.113.20:17529")));
    assert_eq!(
        (media.codec, media.codec_pt, media.dtmf_pt),
        (Codec::Pcmu, 0, Some(101))
    );
    assert_eq!((media.ptime_ms, media.direction), (20, Direction::SendRecv));
    assert!(!media.rtcp_mux && !media.on_hold && media.remote_crypto.is_none());
}

#[test]
fn our_offer_then_sonus_answer_picks_pcma() {
    let media = answered(local(), SONUS_ANSWER).expect("negotiates");
    assert_eq!((media.codec, media.codec_pt), (Codec::Pcma, 8));
    assert_eq!(media.ptime_ms, 20);
}

#[test]
fn sipp_answer_without_rtpmap_uses_the_static_type() {
    let media = answered(local(), SIPP_UAS).expect("negotiates");
    assert_eq!((media.codec, media.dtmf_pt), (Codec::Pcmu, None));
    assert_eq!(media.remote_rtp, addr("127.0.0.1:6000"));
}

#[test]
fn answer_with_no_codec_we_offered() {
    let g729 = CISCO_ANSWER.replace("RTP/AVP 0 101", "RTP/AVP 18 101");
    assert_eq!(answered(local(), &g729), Err(SdpError::NoCommonCodec));
    let mut pcma_only = local();
    pcma_only.codecs = vec![Codec::Pcma];
    assert_eq!(
        answered(pcma_only, CISCO_ANSWER),
        Err(SdpError::NoCommonCodec)
    );
}

#[test]
fn answer_rejecting_audio() {
    let rejected = CISCO_ANSWER.replace("audio 17528", "audio 0");
    assert_eq!(answered(local(), &rejected), Err(SdpError::AudioRejected));
}

#[test]
fn answer_without_offer_and_offer_while_pending() {
    let mut n = negotiator(local());
    assert_eq!(
        n.handle_answer(CISCO_ANSWER.as_bytes()),
        Err(SdpError::NoPendingOffer)
    );
    n.create_offer().expect("offer");
    assert_eq!(n.create_offer(), Err(SdpError::OfferPending));
    assert_eq!(
        n.handle_offer(ASTERISK_OFFER.as_bytes()).err(),
        Some(SdpError::OfferPending)
    );
    n.handle_offer_rejected();
    assert!(n.create_offer().is_ok());
}

#[test]
fn answer_sendonly_puts_us_on_hold() {
    let held = CISCO_ANSWER.replace("a=ptime:20", "a=ptime:20\r\na=sendonly");
    let media = answered(local(), &held).expect("negotiates");
    assert_eq!(media.direction, Direction::RecvOnly);
    assert!(media.on_hold);
}

#[test]
fn answer_rtcp_attribute_and_renumbered_dtmf() {
    let answer = CISCO_ANSWER
        .replace("0 101", "0 96")
        .replace("101 telephone-event", "96 telephone-event")
        .replace(
            "a=ptime:20",
            "a=ptime:30\r\na=rtcp:17600 IN IP4 203.0.113.21",
        );
    let media = answered(local(), &answer).expect("negotiates");
    assert_eq!(media.dtmf_pt, Some(96));
    assert_eq!(media.remote_rtcp, Some(addr("203.0.113.21:17600")));
    assert_eq!(media.ptime_ms, 30);
}

#[test]
fn rtcp_mux_only_when_both_sides_say_so() {
    let mut mux = local();
    mux.rtcp_mux = true;
    let mut n = negotiator(mux.clone());
    let offer = n.create_offer().expect("offer");
    assert!(offer.contains("a=rtcp-mux\r\n") && !offer.contains("a=rtcp:"));
    let with_mux = CISCO_ANSWER.replace("a=ptime:20", "a=ptime:20\r\na=rtcp-mux");
    let media = n.handle_answer(with_mux.as_bytes()).expect("negotiates");
    assert!(media.rtcp_mux && media.remote_rtcp.is_none());
    let media = answered(mux, CISCO_ANSWER).expect("negotiates");
    assert!(!media.rtcp_mux);
    assert_eq!(media.remote_rtcp, Some(addr("203.0.113.20:17529")));
}

fn srtp_answer(crypto_line: &str) -> String {
    CISCO_ANSWER
        .replace("RTP/AVP", "RTP/SAVP")
        .replace("a=ptime:20", &format!("a=ptime:20\r\n{crypto_line}"))
}

#[test]
fn srtp_offer_and_answer() {
    let mut config = local();
    config.srtp = Some(key());
    let mut n = negotiator(config.clone());
    let offer = n.create_offer().expect("offer");
    assert!(audio_line(&offer).contains("RTP/SAVP"));
    assert!(offer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:ERER"));
    let line = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    let media = n
        .handle_answer(srtp_answer(line).as_bytes())
        .expect("negotiates");
    let crypto = media.remote_crypto.expect("remote key");
    assert_eq!((crypto.tag, crypto.key_salt.len()), (1, 30));

    assert_eq!(
        answered(config.clone(), CISCO_ANSWER),
        Err(SdpError::CryptoMissing)
    );
    assert_eq!(
        answered(config.clone(), &srtp_answer("")),
        Err(SdpError::CryptoMissing)
    );
    let wrong = line.replace("_80", "_32");
    assert_eq!(
        answered(config, &srtp_answer(&wrong)),
        Err(SdpError::UnsupportedCryptoSuite)
    );
    assert_eq!(
        answered(local(), &srtp_answer(line)),
        Err(SdpError::UnsupportedProfile)
    );
}

#[test]
fn failed_answer_keeps_the_previous_media() {
    let mut n = negotiator(local());
    n.create_offer().expect("offer");
    let first = n
        .handle_answer(CISCO_ANSWER.as_bytes())
        .expect("negotiates");
    n.create_offer().expect("re-offer");
    let bad = CISCO_ANSWER.replace("RTP/AVP 0 101", "RTP/AVP 18");
    assert_eq!(
        n.handle_answer(bad.as_bytes()),
        Err(SdpError::NoCommonCodec)
    );
    assert_eq!(n.current(), Some(&first));
}

// ---- answering remote offers ----

#[test]
fn asterisk_offer_is_answered_in_the_offerers_codec_order() {
    let mut n = negotiator(local());
    let answer = offered(&mut n, ASTERISK_OFFER);
    assert_eq!(
        (answer.media.codec, answer.media.codec_pt),
        (Codec::Pcma, 8)
    );
    assert_eq!(answer.media.dtmf_pt, Some(101));
    assert_eq!(answer.media.remote_rtp, addr("192.0.2.33:10342"));
    assert_eq!(audio_line(&answer.sdp), "m=audio 40000 RTP/AVP 8 101");
    assert!(answer.sdp.contains("a=rtpmap:8 PCMA/8000\r\n"));
    assert!(answer.sdp.contains("a=sendrecv\r\n") && answer.sdp.contains("a=rtcp:40001\r\n"));
    assert_eq!(n.current(), Some(&answer.media));
}

#[test]
fn offerer_dtmf_payload_type_is_kept() {
    let offer = ASTERISK_OFFER.replace("101", "100");
    let answer = offered(&mut negotiator(local()), &offer);
    assert_eq!(answer.media.dtmf_pt, Some(100));
    assert!(
        answer
            .sdp
            .contains("a=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-16\r\n")
    );
}

#[test]
fn wideband_telephone_event_is_skipped_for_the_8k_one() {
    let offer = ASTERISK_OFFER.replace("3 101", "3 110 101").replace(
        "a=fmtp:101",
        "a=rtpmap:110 telephone-event/48000\r\na=fmtp:101",
    );
    let answer = offered(&mut negotiator(local()), &offer);
    assert_eq!(answer.media.dtmf_pt, Some(101));
}

#[test]
fn no_dtmf_configured_means_none_answered() {
    let mut config = local();
    config.dtmf = None;
    let answer = offered(&mut negotiator(config), ASTERISK_OFFER);
    assert_eq!(answer.media.dtmf_pt, None);
    assert!(!answer.sdp.contains("telephone-event"));
}

#[test]
fn hold_and_unhold_reinvites() {
    let mut n = negotiator(local());
    let initial = offered(&mut n, ASTERISK_OFFER);
    let v1 = n.session_version();
    for (held, ours, answer_attr) in [
        ("a=sendonly", Direction::RecvOnly, "a=recvonly"),
        ("a=inactive", Direction::Inactive, "a=inactive"),
    ] {
        let answer = offered(&mut n, &ASTERISK_OFFER.replace("a=sendrecv", held));
        assert_eq!(answer.media.direction, ours, "{held}");
        assert!(
            answer.media.on_hold && answer.sdp.contains(answer_attr),
            "{held}"
        );
    }
    let unheld = offered(&mut n, ASTERISK_OFFER);
    assert_eq!(unheld.media, initial.media);
    assert!(!unheld.media.on_hold);
    assert_eq!(
        n.session_version(),
        v1 + 3,
        "each changed answer bumps o= version"
    );
}

#[test]
fn recvonly_offer_is_answered_sendonly_and_is_not_hold() {
    let offer = ASTERISK_OFFER.replace("a=sendrecv", "a=recvonly");
    let answer = offered(&mut negotiator(local()), &offer);
    assert_eq!(answer.media.direction, Direction::SendOnly);
    assert!(answer.sdp.contains("a=sendonly\r\n") && !answer.media.on_hold);
}

#[test]
fn old_style_hold_with_zero_address() {
    let offer = ASTERISK_OFFER.replace("c=IN IP4 192.0.2.33", "c=IN IP4 0.0.0.0");
    let answer = offered(&mut negotiator(local()), &offer);
    assert!(answer.media.on_hold);
    assert_eq!(answer.media.direction, Direction::RecvOnly);
    assert!(answer.media.remote_rtp.ip().is_unspecified());
}

#[test]
fn reinvite_with_a_new_address_moves_media_but_not_our_sdp() {
    let mut n = negotiator(local());
    let first = offered(&mut n, ASTERISK_OFFER);
    let moved = ASTERISK_OFFER
        .replace("192.0.2.33", "192.0.2.34")
        .replace("10342", "12000");
    let second = offered(&mut n, &moved);
    assert_eq!(second.media.remote_rtp, addr("192.0.2.34:12000"));
    assert_eq!(second.sdp, first.sdp, "unchanged answer keeps its version");
}

#[test]
fn offer_with_no_common_codec_changes_nothing() {
    let mut n = negotiator(local());
    let first = offered(&mut n, ASTERISK_OFFER);
    let version = n.session_version();
    let g729 = LF_ONLY_OFFER.replace("18 0 101", "18 101");
    assert_eq!(
        n.handle_offer(g729.as_bytes()).err(),
        Some(SdpError::NoCommonCodec)
    );
    assert_eq!(
        (n.current(), n.session_version()),
        (Some(&first.media), version)
    );
}

#[test]
fn lf_only_offer_answers_pcmu_after_skipping_g729() {
    let answer = offered(&mut negotiator(local()), LF_ONLY_OFFER);
    assert_eq!(
        (answer.media.codec, answer.media.codec_pt),
        (Codec::Pcmu, 0)
    );
    assert!(
        !answer.sdp.replace("\r\n", "").contains('\n'),
        "we answer with CRLF"
    );
}

#[test]
fn rtcp_mux_is_answered_only_when_offered_and_enabled() {
    let offer = ASTERISK_OFFER.replace("a=sendrecv", "a=sendrecv\r\na=rtcp-mux");
    let plain = offered(&mut negotiator(local()), &offer);
    assert!(!plain.media.rtcp_mux && !plain.sdp.contains("a=rtcp-mux"));
    let mut mux = local();
    mux.rtcp_mux = true;
    let muxed = offered(&mut negotiator(mux.clone()), &offer);
    assert!(muxed.media.rtcp_mux && muxed.media.remote_rtcp.is_none());
    assert!(muxed.sdp.contains("a=rtcp-mux\r\n") && !muxed.sdp.contains("a=rtcp:"));
    let unasked = offered(&mut negotiator(mux), ASTERISK_OFFER);
    assert!(!unasked.media.rtcp_mux && !unasked.sdp.contains("a=rtcp-mux"));
}

#[test]
fn srtp_offer_is_answered_with_our_key_on_the_usable_tag() {
    let mut config = local();
    config.srtp = Some(key());
    let answer = offered(&mut negotiator(config), FREESWITCH_SRTP_OFFER);
    let remote = answer.media.remote_crypto.expect("their key");
    assert_eq!(
        remote.tag, 3,
        "tag 1 is an unknown suite, tag 2 carries an MKI"
    );
    assert_eq!(answer.media.remote_rtcp, Some(addr("192.0.2.44:16385")));
    assert!(audio_line(&answer.sdp).contains("RTP/SAVP 0 101"));
    let crypto_lines: Vec<&str> = answer
        .sdp
        .lines()
        .filter(|l| l.starts_with("a=crypto"))
        .collect();
    let ours = CryptoAttribute::parse(&crypto_lines.concat()["a=crypto:".len()..]).expect("ours");
    assert_eq!(crypto_lines.len(), 1);
    assert_eq!(
        (ours.tag, ours.key_salt.as_slice()),
        (3, key().as_bytes().as_slice())
    );
}

#[test]
fn srtp_mismatches_in_offers() {
    let err = |config, offer: &str| negotiator(config).handle_offer(offer.as_bytes()).err();
    assert_eq!(
        err(local(), FREESWITCH_SRTP_OFFER),
        Some(SdpError::SrtpNotEnabled)
    );
    let mut srtp = local();
    srtp.srtp = Some(key());
    assert_eq!(
        err(srtp.clone(), ASTERISK_OFFER),
        Some(SdpError::CryptoMissing)
    );
    let only_mki: String = FREESWITCH_SRTP_OFFER
        .lines()
        .filter(|l| !l.starts_with("a=crypto:3"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        err(srtp.clone(), &only_mki),
        Some(SdpError::UnsupportedCryptoSuite)
    );
    let bare: String = only_mki
        .lines()
        .filter(|l| !l.starts_with("a=crypto"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(err(srtp, &bare), Some(SdpError::CryptoMissing));
}

#[test]
fn every_mline_is_mirrored_and_only_audio_accepted() {
    let answer = offered(&mut negotiator(local()), MULTI_MEDIA_OFFER);
    let m_lines: Vec<&str> = answer.sdp.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        vec![
            "m=video 0 RTP/AVP 96",
            "m=audio 40000 RTP/AVP 0 101",
            "m=image 0 udptl t38"
        ]
    );
    assert_eq!(answer.media.remote_rtp, addr("198.51.100.60:50000"));
}

#[test]
fn first_usable_audio_wins_and_others_are_rejected() {
    let offer = ASTERISK_OFFER.replace(
        "m=audio 10342 RTP/AVP 8 0 3 101",
        "m=audio 10340 RTP/AVP 18\r\nm=audio 10342 RTP/AVP 8 0 3 101",
    ) + "m=audio 10344 RTP/AVP 0\r\n";
    let answer = offered(&mut negotiator(local()), &offer);
    let m_lines: Vec<&str> = answer.sdp.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        vec![
            "m=audio 0 RTP/AVP 18",
            "m=audio 40000 RTP/AVP 8 101",
            "m=audio 0 RTP/AVP 0"
        ]
    );
}

#[test]
fn dtls_or_disabled_audio_cannot_be_answered() {
    let dtls = ASTERISK_OFFER.replace("RTP/AVP", "UDP/TLS/RTP/SAVPF");
    let err = negotiator(local()).handle_offer(dtls.as_bytes()).err();
    assert_eq!(err, Some(SdpError::UnsupportedProfile));
    let disabled = ASTERISK_OFFER.replace("audio 10342", "audio 0");
    let err = negotiator(local()).handle_offer(disabled.as_bytes()).err();
    assert_eq!(err, Some(SdpError::AudioRejected));
}

#[test]
fn ipv6_offer_is_answered_with_a_v6_peer() {
    let answer = offered(&mut negotiator(local()), IPV6_OFFER);
    assert_eq!(answer.media.remote_rtp, addr("[2001:db8::20]:40100"));
    assert_eq!(answer.media.dtmf_pt, Some(101));
}

#[test]
fn peer_ptime_and_maxptime_set_our_packetisation() {
    let offer = ASTERISK_OFFER.replace("a=ptime:20", "a=ptime:30");
    assert_eq!(offered(&mut negotiator(local()), &offer).media.ptime_ms, 30);
    let capped = offer.replace("a=maxptime:150", "a=maxptime:10");
    assert_eq!(
        offered(&mut negotiator(local()), &capped).media.ptime_ms,
        10
    );
    let silly = ASTERISK_OFFER.replace("a=ptime:20", "a=ptime:5000");
    assert_eq!(offered(&mut negotiator(local()), &silly).media.ptime_ms, 20);
}

#[test]
fn bad_local_config_is_refused() {
    let mut config = local();
    config.codecs.clear();
    assert!(matches!(
        Negotiator::new(config, 1),
        Err(SdpError::BadLocalConfig { .. })
    ));
    let mut config = local();
    config.dtmf = Some(TelephoneEvent {
        payload_type: 8,
        clock_rate: 8000,
    });
    assert!(matches!(
        Negotiator::new(config, 1),
        Err(SdpError::BadLocalConfig { .. })
    ));
    let mut config = local();
    config.ptime_ms = 0;
    assert!(matches!(
        Negotiator::new(config, 1),
        Err(SdpError::BadLocalConfig { .. })
    ));
}

#[test]
fn key_material_never_shows_in_debug() {
    let mut config = local();
    config.srtp = Some(key());
    let answer = offered(&mut negotiator(config.clone()), FREESWITCH_SRTP_OFFER);
    let debug = format!("{config:?} {answer:?}");
    assert!(
        !debug.contains("17, 17, 17") && !debug.contains("89, 83, 95"),
        "{debug}"
    );
    assert!(
        !debug.contains("ERERER") && !debug.contains("WVNfX19z"),
        "{debug}"
    );
}

// ---- never panic ----

/// xorshift64*: deterministic, so a failure reproduces from its iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

/// Bytes that matter to the grammar, so mutations hit interesting paths.
const SPICE: &[u8] = b"\r\n \t=:/|^;.0123456789amcvo-\x00\xff\xc3";

fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(body.len() + 1);
        match rng.below(5) {
            0 => body.truncate(at),
            1 => body.insert(at.min(body.len()), SPICE[rng.below(SPICE.len())]),
            2 if at < body.len() => body[at] = SPICE[rng.below(SPICE.len())],
            3 if at < body.len() => {
                body.remove(at);
            }
            _ => {
                let from = rng.below(body.len());
                let chunk: Vec<u8> = body
                    .iter()
                    .skip(from)
                    .take(rng.below(40))
                    .copied()
                    .collect();
                body.splice(at.min(body.len())..at.min(body.len()), chunk);
            }
        }
    }
}

#[test]
fn mutated_and_random_sdp_never_panics_and_answers_stay_valid() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut srtp = local();
    srtp.srtp = Some(key());
    srtp.rtcp_mux = true;
    let mut answers = 0;
    for round in 0..6000 {
        let mut body = if round % 10 == 0 {
            (0..rng.below(300))
                .map(|_| rng.next().to_le_bytes()[0])
                .collect()
        } else {
            SAMPLES[rng.below(SAMPLES.len())].as_bytes().to_vec()
        };
        mutate(&mut rng, &mut body);
        let _ = SessionDescription::parse(&body);
        let config = if round % 2 == 0 {
            local()
        } else {
            srtp.clone()
        };
        let mut offerer = negotiator(config.clone());
        offerer.create_offer().expect("offer");
        let _ = offerer.handle_answer(&body);
        if let Ok(answer) = negotiator(config).handle_offer(&body) {
            answers += 1;
            let ours: SessionDescription = answer.sdp.parse().expect("our answer parses");
            let theirs = SessionDescription::parse(&body).expect("the offer parsed");
            assert_eq!(ours.media.len(), theirs.media.len(), "round {round}");
        }
    }
    assert!(
        answers > 300,
        "mutations too destructive to reach offer/answer: {answers}"
    );
}

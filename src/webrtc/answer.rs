//! The browser leg's SDP answer (RFC 8829 §5.3, RFC 8843 BUNDLE), written
//! from what [`OfferSections::parse`] reads of the offer.
//!
//! The answer accepts the offer's first audio section with one codec (plus
//! telephone-event), as an ICE-lite agent (RFC 8445 §2.5) with one host
//! candidate, and DTLS role `passive` (RFC 8842 §5.3): the browser is the
//! DTLS client. Every other section is rejected with port 0 and left out of
//! the BUNDLE group. Pure: the offer has already passed
//! [`super::offer::inspect`]; nothing here does I/O.

use std::fmt::Write;
use std::net::SocketAddr;

use super::offer::BrowserMedia;
use crate::domain::Codec;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("offer has no sha-256 DTLS fingerprint")]
    NoSha256Fingerprint,
    #[error("offer asks this node to be the DTLS client (a=setup:passive)")]
    PassiveOffer,
    #[error("offer has no ICE username fragment")]
    NoRemoteUfrag,
}

/// One m= section of the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    kind: String,
    proto: String,
    formats: String,
    mid: Option<String>,
}

/// What the answer needs from the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferSections {
    sections: Vec<Section>,
    /// The section answered: the first audio one.
    audio: usize,
    bundled: bool,
    pub remote_ufrag: String,
    /// The browser's certificate digest (RFC 8122 §5).
    pub remote_fingerprint: Vec<u8>,
}

impl OfferSections {
    /// Reads sections, BUNDLE, the browser's ICE fragment and sha-256
    /// fingerprint from an offer [`super::offer::inspect`] accepted.
    pub fn parse(offer: &str) -> Result<Self, AnswerError> {
        let mut sections: Vec<Section> = Vec::new();
        let mut bundled = false;
        let mut remote_ufrag = None;
        let mut fingerprint = None;
        let mut passive = false;
        for line in offer.lines().map(str::trim_end) {
            if let Some(media) = line.strip_prefix("m=") {
                sections.push(section_of(media));
                continue;
            }
            let Some(attribute) = line.strip_prefix("a=") else {
                continue;
            };
            let in_first_audio = sections.iter().filter(|s| s.kind == "audio").count() <= 1
                && sections.last().is_none_or(|s| s.kind == "audio");
            if let Some(mid) = attribute.strip_prefix("mid:") {
                if let Some(section) = sections.last_mut() {
                    section.mid = Some(mid.trim().to_owned());
                }
            } else if attribute.starts_with("group:BUNDLE") {
                bundled = true;
            } else if let (Some(ufrag), true) =
                (attribute.strip_prefix("ice-ufrag:"), in_first_audio)
            {
                remote_ufrag.get_or_insert_with(|| ufrag.trim().to_owned());
            } else if let (Some(value), true) =
                (attribute.strip_prefix("fingerprint:"), in_first_audio)
            {
                fingerprint = fingerprint.or_else(|| sha256_fingerprint(value));
            } else if in_first_audio && attribute.trim() == "setup:passive" {
                passive = true;
            }
        }
        let audio = sections
            .iter()
            .position(|s| s.kind == "audio")
            .unwrap_or_default();
        if passive {
            return Err(AnswerError::PassiveOffer);
        }
        Ok(Self {
            sections,
            audio,
            bundled,
            remote_ufrag: remote_ufrag
                .filter(|u| !u.is_empty())
                .ok_or(AnswerError::NoRemoteUfrag)?,
            remote_fingerprint: fingerprint.ok_or(AnswerError::NoSha256Fingerprint)?,
        })
    }
}

fn section_of(media: &str) -> Section {
    let mut fields = media.split_whitespace();
    let kind = fields.next().unwrap_or_default().to_owned();
    let _port = fields.next();
    let proto = fields.next().unwrap_or_default().to_owned();
    let formats = fields.collect::<Vec<_>>().join(" ");
    Section {
        kind,
        proto,
        formats,
        mid: None,
    }
}

/// `sha-256 AB:CD:...` as 32 bytes.
fn sha256_fingerprint(value: &str) -> Option<Vec<u8>> {
    let (algorithm, hex) = value.trim().split_once(' ')?;
    if !algorithm.eq_ignore_ascii_case("sha-256") {
        return None;
    }
    let bytes: Option<Vec<u8>> = hex
        .trim()
        .split(':')
        .map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect();
    bytes.filter(|b| b.len() == 32)
}

/// Our side of the answer.
pub struct AnswerParams<'a> {
    pub media: &'a BrowserMedia,
    pub candidate: SocketAddr,
    pub ice_ufrag: &'a str,
    pub ice_pwd: &'a str,
    /// `AB:CD:...`, the sha-256 digest of our DTLS certificate.
    pub fingerprint: &'a str,
    pub ssrc: u32,
    pub session_id: u64,
}

/// Writes the answer to `offer`.
pub fn write_answer(offer: &OfferSections, params: &AnswerParams<'_>) -> String {
    let mut sdp = String::with_capacity(1024);
    let ip_kind = if params.candidate.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    };
    let ip = params.candidate.ip();
    let _ = write!(
        sdp,
        "v=0\r\no=- {} 2 IN {ip_kind} {ip}\r\ns=-\r\nt=0 0\r\n",
        params.session_id
    );
    let audio_mid = offer
        .sections
        .get(offer.audio)
        .and_then(|s| s.mid.as_deref());
    if let (true, Some(mid)) = (offer.bundled, audio_mid) {
        let _ = write!(sdp, "a=group:BUNDLE {mid}\r\n");
    }
    sdp.push_str("a=ice-lite\r\n");
    for (index, section) in offer.sections.iter().enumerate() {
        if index == offer.audio {
            write_audio_section(&mut sdp, section, params);
        } else {
            write_rejected_section(&mut sdp, section, ip_kind);
        }
    }
    sdp
}

fn write_audio_section(sdp: &mut String, section: &Section, params: &AnswerParams<'_>) {
    let media = params.media;
    let (ip, port) = (params.candidate.ip(), params.candidate.port());
    let ip_kind = if params.candidate.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    };
    let event_pt = media.telephone_event.map(|e| e.payload_type);
    let _ = write!(
        sdp,
        "m=audio {port} {} {}",
        section.proto, media.payload_type
    );
    if let Some(pt) = event_pt {
        let _ = write!(sdp, " {pt}");
    }
    let _ = write!(sdp, "\r\nc=IN {ip_kind} {ip}\r\n");
    if let Some(mid) = &section.mid {
        let _ = write!(sdp, "a=mid:{mid}\r\n");
    }
    let _ = write!(
        sdp,
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:sha-256 {}\r\na=setup:passive\r\n",
        params.ice_ufrag, params.ice_pwd, params.fingerprint
    );
    sdp.push_str("a=sendrecv\r\na=msid:callgate callgate-audio\r\na=rtcp-mux\r\n");
    write_codec(sdp, media);
    let _ = write!(
        sdp,
        "a=ssrc:{} cname:callgate\r\na=candidate:1 1 udp 2130706431 {ip} {port} typ host\r\na=end-of-candidates\r\n",
        params.ssrc
    );
}

fn write_codec(sdp: &mut String, media: &BrowserMedia) {
    let pt = media.payload_type;
    match media.codec {
        Codec::Pcmu => {
            let _ = write!(sdp, "a=rtpmap:{pt} PCMU/8000\r\n");
        }
        Codec::Pcma => {
            let _ = write!(sdp, "a=rtpmap:{pt} PCMA/8000\r\n");
        }
        // Every Opus call is transcoded to a G.711 trunk, which carries
        // nothing above 4 kHz: the browser is told so (RFC 7587 §6.1), and
        // sends narrowband Opus, which the node decodes several times
        // faster than fullband, and the node sends narrowband too.
        Codec::Opus => {
            let _ = write!(
                sdp,
                "a=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} minptime=10;useinbandfec=1;\
maxplaybackrate=8000;sprop-maxcapturerate=8000\r\n"
            );
        }
    }
    if let Some(event) = media.telephone_event {
        let (pt, rate) = (event.payload_type, event.clock_rate);
        let _ = write!(
            sdp,
            "a=rtpmap:{pt} telephone-event/{rate}\r\na=fmtp:{pt} 0-16\r\n"
        );
    }
}

/// RFC 8829 §5.3.1: a rejected section keeps its kind, protocol and
/// formats, with port 0.
fn write_rejected_section(sdp: &mut String, section: &Section, ip_kind: &str) {
    let unspecified = if ip_kind == "IP4" { "0.0.0.0" } else { "::" };
    let _ = write!(
        sdp,
        "m={} 0 {} {}\r\nc=IN {ip_kind} {unspecified}\r\n",
        section.kind, section.proto, section.formats
    );
    if let Some(mid) = &section.mid {
        let _ = write!(sdp, "a=mid:{mid}\r\n");
    }
    sdp.push_str("a=inactive\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TelephoneEvent;

    const FINGERPRINT: &str = "sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

    fn offer(extra_sections: &str, setup: &str) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 126\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:brws\r\n\
a=ice-pwd:browserpassword012345678\r\na=fingerprint:{FINGERPRINT}\r\na=setup:{setup}\r\n\
a=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n\
{extra_sections}"
        )
    }

    fn params<'a>(media: &'a BrowserMedia) -> AnswerParams<'a> {
        AnswerParams {
            media,
            candidate: "192.0.2.1:3478".parse().unwrap(),
            ice_ufrag: "nodefrag",
            ice_pwd: "nodepassword0123456789ab",
            fingerprint: "01:02",
            ssrc: 42,
            session_id: 7,
        }
    }

    const PCMU: BrowserMedia = BrowserMedia {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(TelephoneEvent {
            payload_type: 126,
            clock_rate: 8000,
        }),
    };

    #[test]
    fn the_audio_section_is_answered_with_one_codec_as_ice_lite_and_passive() {
        let sections = OfferSections::parse(&offer("", "actpass")).unwrap();
        assert_eq!(sections.remote_ufrag, "brws");
        assert_eq!(sections.remote_fingerprint[..3], [0xAA, 0xBB, 0xCC]);
        let answer = write_answer(&sections, &params(&PCMU));
        for line in [
            "a=group:BUNDLE 0\r\n",
            "a=ice-lite\r\n",
            "m=audio 3478 UDP/TLS/RTP/SAVPF 0 126\r\n",
            "c=IN IP4 192.0.2.1\r\n",
            "a=mid:0\r\n",
            "a=setup:passive\r\n",
            "a=rtcp-mux\r\n",
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:126 telephone-event/8000\r\n",
            "a=candidate:1 1 udp 2130706431 192.0.2.1 3478 typ host\r\n",
            "a=ice-ufrag:nodefrag\r\n",
            "a=fingerprint:sha-256 01:02\r\n",
        ] {
            assert!(answer.contains(line), "{line:?} missing from\n{answer}");
        }
        assert!(!answer.contains("opus"));
    }

    #[test]
    fn an_opus_answer_asks_for_narrowband() {
        let sections = OfferSections::parse(&offer("", "actpass")).unwrap();
        let opus = BrowserMedia {
            codec: Codec::Opus,
            payload_type: 111,
            telephone_event: None,
        };
        let answer = write_answer(&sections, &params(&opus));
        assert!(
            answer.contains(
                "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1;\
maxplaybackrate=8000;sprop-maxcapturerate=8000\r\n"
            ),
            "{answer}"
        );
    }

    #[test]
    fn other_sections_are_rejected_and_left_out_of_the_bundle() {
        let data =
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n";
        let sections = OfferSections::parse(&offer(data, "actpass")).unwrap();
        let answer = write_answer(&sections, &params(&PCMU));
        assert!(answer.contains("m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
        assert!(answer.contains("a=mid:1\r\na=inactive\r\n"));
        assert!(answer.contains("a=group:BUNDLE 0\r\n"), "{answer}");
        let audio_at = answer.find("m=audio").unwrap();
        assert!(
            audio_at < answer.find("m=application").unwrap(),
            "order kept"
        );
    }

    #[test]
    fn offers_the_leg_cannot_answer_get_a_reason() {
        assert_eq!(
            OfferSections::parse(&offer("", "passive")),
            Err(AnswerError::PassiveOffer)
        );
        let sha1 = offer("", "actpass").replace("sha-256", "sha-1");
        assert_eq!(
            OfferSections::parse(&sha1),
            Err(AnswerError::NoSha256Fingerprint)
        );
    }
}

//! SDP writer: renders what we send on the trunk leg, always with CRLF, and
//! keeps the `o=` session id and version for one dialog (RFC 3264 §8).

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use super::types::{CryptoAttribute, Direction};
use crate::domain::{Codec, TelephoneEvent};

/// A codec and the payload type it goes by in one description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecPayload {
    pub payload_type: u8,
    pub codec: Codec,
}

/// The audio stream we offer or accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDescription {
    pub port: u16,
    /// In preference order; the first is the one we would rather use.
    pub codecs: Vec<CodecPayload>,
    pub dtmf: Option<TelephoneEvent>,
    pub ptime_ms: u32,
    /// Written as `a=rtcp:<port>` when set.
    pub rtcp_port: Option<u16>,
    pub rtcp_mux: bool,
    /// When set the profile is `RTP/SAVP` and `a=crypto` is written.
    pub crypto: Option<CryptoAttribute>,
    pub direction: Direction,
}

/// One `m=` line of a description we write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaLine {
    Audio(AudioDescription),
    /// A stream of the offer we decline: written with port 0 and the offer's
    /// protocol and formats, as RFC 3264 §6 requires.
    Rejected {
        kind: String,
        protocol: String,
        formats: Vec<String>,
    },
}

/// Everything an SDP we send says, apart from the `o=` numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDescription {
    /// Used for `o=` and the session-level `c=`.
    pub address: IpAddr,
    pub media: Vec<MediaLine>,
}

/// The `o=` line's state across one dialog.
///
/// RFC 3264 §8: each new SDP in a dialog carries the version of the previous
/// one plus one when anything changed, and the same version when nothing did
/// (a session refresh must not look like a media change to the peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpSession {
    session_id: u64,
    version: u64,
    last_body: Option<String>,
}

impl SdpSession {
    /// Starts a dialog's SDP history. Many devices read the id and version as
    /// signed 32- or 64-bit numbers, so draw the id below 2^31.
    #[must_use]
    pub fn new(session_id: u64) -> SdpSession {
        SdpSession {
            session_id,
            version: 1,
            last_body: None,
        }
    }

    #[must_use]
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last SDP written (or of the first to come).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Renders a description, bumping the version if it differs from the last
    /// one written in this dialog.
    pub fn write(&mut self, description: &LocalDescription) -> String {
        let body = render_body(description);
        match &self.last_body {
            Some(last) if *last == body => {}
            Some(_) => self.version = self.version.saturating_add(1),
            None => {}
        }
        let mut out = String::with_capacity(body.len() + 64);
        line(&mut out, format_args!("v=0"));
        line(
            &mut out,
            format_args!(
                "o=callgate {} {} IN {}",
                self.session_id,
                self.version,
                AddressText(description.address)
            ),
        );
        out.push_str(&body);
        self.last_body = Some(body);
        out
    }
}

/// `IP4 192.0.2.1` or `IP6 2001:db8::1`, as `o=` and `c=` want it.
struct AddressText(IpAddr);

impl fmt::Display for AddressText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(ip) => write!(f, "IP4 {ip}"),
            IpAddr::V6(ip) => write!(f, "IP6 {ip}"),
        }
    }
}

fn line(out: &mut String, args: fmt::Arguments<'_>) {
    // Writing into a String cannot fail; the Result only exists for io-like sinks.
    let _ = out.write_fmt(args);
    out.push_str("\r\n");
}

/// Everything after `o=`: the part whose change bumps the version.
fn render_body(description: &LocalDescription) -> String {
    let mut out = String::with_capacity(512);
    line(&mut out, format_args!("s=callgate"));
    line(
        &mut out,
        format_args!("c=IN {}", AddressText(description.address)),
    );
    line(&mut out, format_args!("t=0 0"));
    for media in &description.media {
        match media {
            MediaLine::Audio(audio) => render_audio(&mut out, audio),
            MediaLine::Rejected {
                kind,
                protocol,
                formats,
            } => {
                // An m= line needs at least one format; an empty list can only
                // come from a caller, never from a parsed offer.
                let formats = if formats.is_empty() {
                    "0".to_owned()
                } else {
                    formats.join(" ")
                };
                line(&mut out, format_args!("m={kind} 0 {protocol} {formats}"));
            }
        }
    }
    out
}

fn render_audio(out: &mut String, audio: &AudioDescription) {
    let profile = if audio.crypto.is_some() {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    };
    let mut m_line = format!("m=audio {} {profile}", audio.port);
    let payload_types = audio
        .codecs
        .iter()
        .map(|c| c.payload_type)
        .chain(audio.dtmf.map(|dtmf| dtmf.payload_type));
    for pt in payload_types {
        let _ = write!(m_line, " {pt}");
    }
    line(out, format_args!("{m_line}"));
    for codec in &audio.codecs {
        let (name, rate) = (codec.codec.encoding_name(), codec.codec.clock_rate());
        line(
            out,
            format_args!("a=rtpmap:{} {name}/{rate}", codec.payload_type),
        );
    }
    if let Some(dtmf) = audio.dtmf {
        let (pt, rate) = (dtmf.payload_type, dtmf.clock_rate);
        let name = TelephoneEvent::ENCODING_NAME;
        line(out, format_args!("a=rtpmap:{pt} {name}/{rate}"));
        // 0-16: the digits, * and #, A-D and flash (RFC 4733 §3.2).
        line(out, format_args!("a=fmtp:{pt} 0-16"));
    }
    line(out, format_args!("a=ptime:{}", audio.ptime_ms));
    if let Some(port) = audio.rtcp_port {
        line(out, format_args!("a=rtcp:{port}"));
    }
    if audio.rtcp_mux {
        line(out, format_args!("a=rtcp-mux"));
    }
    if let Some(crypto) = &audio.crypto {
        line(out, format_args!("a=crypto:{}", crypto.to_value()));
    }
    line(out, format_args!("a={}", audio.direction.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::sdp::{CryptoSuite, SessionDescription};

    fn audio(port: u16) -> AudioDescription {
        AudioDescription {
            port,
            codecs: vec![
                CodecPayload {
                    payload_type: 0,
                    codec: Codec::Pcmu,
                },
                CodecPayload {
                    payload_type: 8,
                    codec: Codec::Pcma,
                },
            ],
            dtmf: Some(TelephoneEvent::default()),
            ptime_ms: 20,
            rtcp_port: Some(port + 1),
            rtcp_mux: false,
            crypto: None,
            direction: Direction::SendRecv,
        }
    }

    fn description(port: u16) -> LocalDescription {
        LocalDescription {
            address: "192.0.2.10".parse().expect("ip"),
            media: vec![MediaLine::Audio(audio(port))],
        }
    }

    #[test]
    fn writes_the_exact_plain_rtp_offer() {
        let sdp = SdpSession::new(42).write(&description(40000));
        let expected = "v=0\r\no=callgate 42 1 IN IP4 192.0.2.10\r\ns=callgate\r\n\
            c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\n\
            a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
            a=rtcp:40001\r\na=sendrecv\r\n";
        assert_eq!(sdp, expected);
    }

    #[test]
    fn every_line_ends_with_crlf_and_no_bare_lf() {
        let sdp = SdpSession::new(1).write(&description(40000));
        assert!(sdp.ends_with("\r\n"));
        assert_eq!(sdp.matches('\n').count(), sdp.matches("\r\n").count());
    }

    #[test]
    fn version_grows_only_when_the_content_changes() {
        let mut session = SdpSession::new(7);
        let first = session.write(&description(40000));
        assert!(first.contains("o=callgate 7 1 "));
        let refresh = session.write(&description(40000));
        assert_eq!(refresh, first, "a session refresh keeps the version");
        let mut held = description(40000);
        if let Some(MediaLine::Audio(audio)) = held.media.first_mut() {
            audio.direction = Direction::SendOnly;
        }
        let hold = session.write(&held);
        assert!(hold.contains("o=callgate 7 2 ") && hold.contains("a=sendonly\r\n"));
        let moved = session.write(&description(40002));
        assert!(moved.contains("o=callgate 7 3 "));
        assert_eq!(session.version(), 3);
    }

    #[test]
    fn srtp_mux_ipv6_and_rejected_lines_are_written() {
        let mut audio = audio(5004);
        audio.rtcp_port = None;
        audio.rtcp_mux = true;
        audio.crypto = Some(CryptoAttribute {
            tag: 1,
            suite: CryptoSuite::AesCm128HmacSha1_80,
            key_salt: vec![0xAB; 30],
            lifetime: None,
            mki: None,
            session_params: Vec::new(),
        });
        let description = LocalDescription {
            address: "2001:db8::7".parse().expect("ip"),
            media: vec![
                MediaLine::Audio(audio),
                MediaLine::Rejected {
                    kind: "video".into(),
                    protocol: "RTP/AVP".into(),
                    formats: vec!["96".into(), "97".into()],
                },
            ],
        };
        let sdp = SdpSession::new(3).write(&description);
        assert!(sdp.contains("o=callgate 3 1 IN IP6 2001:db8::7\r\n"));
        assert!(sdp.contains("c=IN IP6 2001:db8::7\r\n"));
        assert!(sdp.contains("m=audio 5004 RTP/SAVP 0 8 101\r\n"));
        assert!(sdp.contains("a=rtcp-mux\r\n") && !sdp.contains("a=rtcp:"));
        assert!(sdp.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:q6ur"));
        assert!(sdp.ends_with("m=video 0 RTP/AVP 96 97\r\n"));
    }

    #[test]
    fn written_sdp_parses_back_to_the_same_stream() {
        let sdp = SdpSession::new(9).write(&description(40000));
        let parsed = SessionDescription::parse(sdp.as_bytes()).expect("parses");
        let media = parsed.media.first().expect("audio");
        assert_eq!(media.payload_types, vec![0, 8, 101]);
        assert_eq!(media.port, 40000);
        assert_eq!(media.rtcp.map(|r| r.port), Some(40001));
        assert_eq!(media.fmtp(101), Some("0-16"));
        assert_eq!(parsed.connection, "192.0.2.10".parse().ok());
        let origin = parsed.origin.expect("origin");
        assert_eq!(
            (origin.session_id.as_str(), origin.session_version.as_str()),
            ("9", "1")
        );
    }
}

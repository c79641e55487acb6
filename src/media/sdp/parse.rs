//! Lenient SDP parser (RFC 8866) for what trunks, SBCs and PBXes really send.
//!
//! Accepts CRLF or bare LF, surrounding whitespace, blank lines, trailing NUL
//! padding, unknown line types and attributes, non-UTF-8 bytes (replaced, so
//! they only matter where a number or address was expected). Strict only
//! about the lines that decide where audio goes; see the parent module doc.

use std::net::IpAddr;
use std::str::FromStr;

use super::attribute::{
    Attribute, Fmtp, ParsedAttribute, RtcpAttribute, RtpMap, parse_attribute, parse_ip,
    parse_payload_type,
};
use super::error::{MAX_SDP_BYTES, MAX_SDP_LINES, SdpError};
use super::types::{CryptoAttribute, Direction, static_payload};

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    pub origin: Option<Origin>,
    /// Session-level `c=`; a media-level one overrides it.
    pub connection: Option<IpAddr>,
    /// Session-level direction; a media-level one overrides it.
    pub direction: Option<Direction>,
    /// Session-level `a=ptime`, which some PBXes write instead of per media.
    pub ptime: Option<u32>,
    /// Every `m=` section, in order, so an answer can mirror each one.
    pub media: Vec<MediaDescription>,
}

/// The parts of `o=` that offer/answer needs. The username is not kept: some
/// devices put the caller's number there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// Opaque: some devices exceed 64 bits or write non-digits.
    pub session_id: String,
    /// Compared, never computed with, for the same reason.
    pub session_version: String,
}

/// One `m=` section and the attributes under it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaDescription {
    /// Media type, lowercased: `audio`, `video`, `image`, ...
    pub kind: String,
    /// 0 means the stream is rejected or disabled.
    pub port: u16,
    pub port_count: Option<u16>,
    /// Transport protocol as written, such as `RTP/AVP` or `udptl`.
    pub protocol: String,
    /// Format tokens as written, kept for mirroring a rejected line.
    pub formats: Vec<String>,
    /// The formats as RTP payload types (RTP profiles only), in offer order.
    pub payload_types: Vec<u8>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<Fmtp>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
    pub rtcp: Option<RtcpAttribute>,
    pub rtcp_mux: bool,
    pub crypto: Vec<CryptoAttribute>,
    pub direction: Option<Direction>,
    /// Attributes we do not interpret, or whose value did not parse.
    pub attributes: Vec<Attribute>,
}

/// What a payload type stands for: from `a=rtpmap`, else the static table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding<'a> {
    pub name: &'a str,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl MediaDescription {
    #[must_use]
    pub fn is_audio(&self) -> bool {
        self.kind == "audio"
    }

    /// Whether the transport is an RTP profile (`RTP/AVP`, `RTP/SAVP`, ...),
    /// whose formats are payload type numbers.
    #[must_use]
    pub fn is_rtp(&self) -> bool {
        is_rtp_profile(&self.protocol)
    }

    /// The encoding of a payload type listed in this section.
    #[must_use]
    pub fn encoding(&self, payload_type: u8) -> Option<Encoding<'_>> {
        if let Some(map) = self.rtpmaps.iter().find(|m| m.payload_type == payload_type) {
            return Some(Encoding {
                name: &map.encoding,
                clock_rate: map.clock_rate,
                channels: map.channels,
            });
        }
        static_payload(payload_type).map(|(name, clock_rate, channels)| Encoding {
            name,
            clock_rate,
            channels,
        })
    }

    /// The `a=fmtp` parameters of a payload type.
    #[must_use]
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.payload_type == payload_type)
            .map(|f| f.params.as_str())
    }
}

impl SessionDescription {
    /// Parses an SDP body as it arrived on the wire.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        if body.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge { max: MAX_SDP_BYTES });
        }
        // Non-UTF-8 bytes become U+FFFD: harmless in s= or i=, and a clean
        // error where a number or address was expected.
        let text = String::from_utf8_lossy(body);
        // A byte-order mark and NUL padding come from stacks that treat the
        // body as a file or a fixed-size buffer.
        let text = text
            .trim_start_matches('\u{feff}')
            .trim_end_matches(['\0', ' ', '\t']);
        if text.trim().is_empty() {
            return Err(SdpError::Empty);
        }
        if text.bytes().filter(|&b| b == b'\n').count() >= MAX_SDP_LINES {
            return Err(SdpError::TooManyLines { max: MAX_SDP_LINES });
        }
        let terminated = text.ends_with(['\n', '\r']);
        let mut lines = text
            .split('\n')
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty())
            .peekable();
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(SdpError::NotSdp),
        }
        let mut sdp = SessionDescription::default();
        while let Some((number, line)) = lines.next() {
            let cut_short = !terminated && lines.peek().is_none();
            sdp.handle_line(number, line).map_err(|err| match err {
                SdpError::Malformed { .. } | SdpError::BadAddress { .. } if cut_short => {
                    SdpError::Truncated
                }
                other => other,
            })?;
        }
        sdp.validate()?;
        Ok(sdp)
    }

    /// The connection address that applies to a media section.
    #[must_use]
    pub fn connection_for(&self, media: &MediaDescription) -> Option<IpAddr> {
        media.connection.or(self.connection)
    }

    /// The direction that applies to a media section (default sendrecv).
    #[must_use]
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media.direction.or(self.direction).unwrap_or_default()
    }

    /// The `a=ptime` that applies to a media section.
    #[must_use]
    pub fn ptime_for(&self, media: &MediaDescription) -> Option<u32> {
        media.ptime.or(self.ptime)
    }

    fn handle_line(&mut self, number: usize, line: &str) -> Result<(), SdpError> {
        let malformed = SdpError::Malformed { line: number };
        let (kind, value) = match line.as_bytes() {
            [kind @ b'a'..=b'z', b'=', ..] => (*kind, line.get(2..).ok_or(malformed.clone())?),
            _ => return Err(malformed),
        };
        match kind {
            b'v' => return Err(malformed),
            b'o' if self.origin.is_none() && self.media.is_empty() => {
                self.origin = Some(parse_origin(value).ok_or(malformed)?);
            }
            b'c' => {
                let address = parse_connection(value, number)?;
                match self.media.last_mut() {
                    Some(media) => media.connection = Some(address),
                    None => self.connection = Some(address),
                }
            }
            b'm' => self.media.push(parse_media(value, number)?),
            b'a' => self.handle_attribute(value),
            // s=, t=, b=, i=, u=, e=, p=, z=, k=, r= and unknown types say
            // nothing about where audio goes.
            _ => {}
        }
        Ok(())
    }

    fn handle_attribute(&mut self, text: &str) {
        let attribute = parse_attribute(text);
        let Some(media) = self.media.last_mut() else {
            match attribute {
                ParsedAttribute::Direction(direction) => self.direction = Some(direction),
                ParsedAttribute::Ptime(ptime) => self.ptime = Some(ptime),
                // Other session-level attributes (a=group, a=msid-semantic,
                // a=ice-*) do not concern the trunk leg.
                _ => {}
            }
            return;
        };
        match attribute {
            ParsedAttribute::Direction(direction) => media.direction = Some(direction),
            ParsedAttribute::Ptime(ptime) => media.ptime = Some(ptime),
            ParsedAttribute::MaxPtime(ptime) => media.maxptime = Some(ptime),
            ParsedAttribute::RtpMap(map) => {
                // Two mappings for one type is a sender bug; keeping the
                // first makes the outcome independent of what follows.
                if media.encoding_is_mapped(map.payload_type) {
                    return;
                }
                media.rtpmaps.push(map);
            }
            ParsedAttribute::Fmtp(fmtp) => media.fmtps.push(fmtp),
            ParsedAttribute::Rtcp(rtcp) => media.rtcp = Some(rtcp),
            ParsedAttribute::RtcpMux => media.rtcp_mux = true,
            ParsedAttribute::Crypto(crypto) => media.crypto.push(crypto),
            ParsedAttribute::Other(other) => media.attributes.push(other),
        }
    }

    fn validate(&self) -> Result<(), SdpError> {
        if !self.media.iter().any(MediaDescription::is_audio) {
            return Err(SdpError::NoAudio);
        }
        let unreachable = self
            .media
            .iter()
            .filter(|m| m.is_audio() && m.port != 0)
            .any(|m| self.connection_for(m).is_none());
        if unreachable {
            return Err(SdpError::NoConnection);
        }
        Ok(())
    }
}

impl MediaDescription {
    fn encoding_is_mapped(&self, payload_type: u8) -> bool {
        self.rtpmaps.iter().any(|m| m.payload_type == payload_type)
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SessionDescription::parse(text.as_bytes())
    }
}

pub(super) fn is_rtp_profile(protocol: &str) -> bool {
    protocol
        .split('/')
        .any(|part| part.eq_ignore_ascii_case("RTP"))
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut tokens = value.split_ascii_whitespace();
    let _username = tokens.next()?;
    Some(Origin {
        session_id: tokens.next()?.to_owned(),
        session_version: tokens.next()?.to_owned(),
    })
}

/// `c=IN IP4 <addr>[/ttl[/count]]` or `c=IN IP6 <addr>[/count]`.
fn parse_connection(value: &str, line: usize) -> Result<IpAddr, SdpError> {
    let mut tokens = value.split_ascii_whitespace();
    let (Some(net_type), Some(addr_type), Some(address)) =
        (tokens.next(), tokens.next(), tokens.next())
    else {
        return Err(SdpError::Malformed { line });
    };
    let known_type = addr_type.eq_ignore_ascii_case("IP4") || addr_type.eq_ignore_ascii_case("IP6");
    if !net_type.eq_ignore_ascii_case("IN") || !known_type {
        return Err(SdpError::BadAddress { line });
    }
    parse_ip(address.split('/').next().unwrap_or_default()).ok_or(SdpError::BadAddress { line })
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`
fn parse_media(value: &str, line: usize) -> Result<MediaDescription, SdpError> {
    let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
    let [kind, port, protocol, formats @ ..] = tokens.as_slice() else {
        return Err(SdpError::Malformed { line });
    };
    if formats.is_empty() {
        return Err(SdpError::Malformed { line });
    }
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => (port, Some(count)),
        None => (*port, None),
    };
    let bad_port = SdpError::BadPort { line };
    let port = port.parse::<u16>().map_err(|_| bad_port.clone())?;
    let port_count = port_count
        .map(|count| count.parse::<u16>().map_err(|_| bad_port))
        .transpose()?;
    let kind = kind.to_ascii_lowercase();
    let payload_types = if kind == "audio" && is_rtp_profile(protocol) {
        formats
            .iter()
            .map(|fmt| parse_payload_type(fmt).ok_or(SdpError::BadPayloadType { line }))
            .collect::<Result<_, _>>()?
    } else if is_rtp_profile(protocol) {
        // Only audio is ever used; other streams are mirrored as written.
        formats
            .iter()
            .filter_map(|fmt| parse_payload_type(fmt))
            .collect()
    } else {
        Vec::new()
    };
    Ok(MediaDescription {
        kind,
        port,
        port_count,
        protocol: (*protocol).to_owned(),
        formats: formats.iter().map(|fmt| (*fmt).to_owned()).collect(),
        payload_types,
        ..MediaDescription::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        SessionDescription::parse(text.as_bytes())
    }

    const MINIMAL: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\n\
        t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    #[test]
    fn minimal_sdp_parses() {
        let sdp = parse(MINIMAL).expect("parses");
        let media = sdp.media.first().expect("one section");
        assert_eq!((media.kind.as_str(), media.port), ("audio", 4000));
        assert_eq!(media.payload_types, vec![0]);
        assert_eq!(sdp.connection_for(media), "198.51.100.1".parse().ok());
        assert_eq!(sdp.direction_for(media), Direction::SendRecv);
    }

    #[test]
    fn empty_and_blank_bodies_are_empty() {
        assert_eq!(parse(""), Err(SdpError::Empty));
        assert_eq!(parse("\r\n \r\n\t"), Err(SdpError::Empty));
        assert_eq!(SessionDescription::parse(&[0, 0, 0]), Err(SdpError::Empty));
    }

    #[test]
    fn garbage_is_not_sdp() {
        assert_eq!(parse("hello world"), Err(SdpError::NotSdp));
        assert_eq!(
            parse("<html><body>502</body></html>"),
            Err(SdpError::NotSdp)
        );
        assert_eq!(
            parse("v=1\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(SdpError::NotSdp)
        );
        assert_eq!(
            parse("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"),
            Err(SdpError::NotSdp)
        );
    }

    #[test]
    fn a_line_without_type_and_equals_is_malformed() {
        let text = MINIMAL.replace("t=0 0", "this is not sdp");
        assert_eq!(parse(&text), Err(SdpError::Malformed { line: 5 }));
        let text = MINIMAL.replace("t=0 0", "T=0 0");
        assert_eq!(parse(&text), Err(SdpError::Malformed { line: 5 }));
    }

    #[test]
    fn a_second_v_line_is_malformed() {
        let text = format!("{MINIMAL}v=0\r\n");
        assert_eq!(parse(&text), Err(SdpError::Malformed { line: 7 }));
    }

    #[test]
    fn oversized_body_is_refused_before_parsing() {
        let body = vec![b'a'; MAX_SDP_BYTES + 1];
        assert_eq!(
            SessionDescription::parse(&body),
            Err(SdpError::TooLarge { max: MAX_SDP_BYTES })
        );
    }

    #[test]
    fn no_audio_section_is_an_error() {
        let text = MINIMAL.replace("m=audio 4000 RTP/AVP 0", "m=video 4002 RTP/AVP 96");
        assert_eq!(parse(&text), Err(SdpError::NoAudio));
        let session_only = "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nt=0 0\r\n";
        assert_eq!(parse(session_only), Err(SdpError::NoAudio));
    }

    #[test]
    fn audio_without_any_connection_line_is_an_error() {
        let text = MINIMAL.replace("c=IN IP4 198.51.100.1\r\n", "");
        assert_eq!(parse(&text), Err(SdpError::NoConnection));
    }

    #[test]
    fn rejected_audio_needs_no_connection_line() {
        let text = MINIMAL
            .replace("c=IN IP4 198.51.100.1\r\n", "")
            .replace("audio 4000", "audio 0");
        let sdp = parse(&text).expect("parses");
        assert_eq!(sdp.media.first().map(|m| m.port), Some(0));
    }

    #[test]
    fn bad_ports_are_errors() {
        for port in ["65536", "-1", "abc", "4000/x", "4000/70000"] {
            let text = MINIMAL.replace("audio 4000", &format!("audio {port}"));
            assert_eq!(parse(&text), Err(SdpError::BadPort { line: 6 }), "{port}");
        }
        let missing = MINIMAL.replace("audio 4000", "audio");
        assert_eq!(parse(&missing), Err(SdpError::Malformed { line: 6 }));
    }

    #[test]
    fn port_count_is_kept() {
        let text = MINIMAL.replace("audio 4000", "audio 4000/2");
        let sdp = parse(&text).expect("parses");
        assert_eq!(sdp.media.first().and_then(|m| m.port_count), Some(2));
    }

    #[test]
    fn bad_audio_payload_types_are_errors() {
        for fmt in ["128", "256", "-1", "PCMU", "0x08"] {
            let text = MINIMAL.replace("RTP/AVP 0", &format!("RTP/AVP 0 {fmt}"));
            assert_eq!(
                parse(&text),
                Err(SdpError::BadPayloadType { line: 6 }),
                "{fmt}"
            );
        }
    }

    #[test]
    fn non_rtp_and_non_audio_formats_are_kept_as_written() {
        let text = format!("{MINIMAL}m=image 4002 udptl t38\r\nm=video 0 RTP/AVP 96 abc\r\n");
        let sdp = parse(&text).expect("parses");
        let image = sdp.media.get(1).expect("image");
        assert_eq!(
            (image.formats.clone(), image.payload_types.clone()),
            (vec!["t38".into()], vec![])
        );
        let video = sdp.media.get(2).expect("video");
        assert_eq!(video.formats, vec!["96".to_owned(), "abc".to_owned()]);
        assert_eq!(video.payload_types, vec![96]);
    }

    #[test]
    fn bad_connection_addresses_are_errors() {
        for c in [
            "IN IP4 999.1.1.1",
            "IN IP4 pbx.example.com",
            "ATM NSAP 47.0005",
            "IN IP4 ::g",
        ] {
            let text = MINIMAL.replace("IN IP4 198.51.100.1\r\nt=", &format!("{c}\r\nt="));
            assert_eq!(parse(&text), Err(SdpError::BadAddress { line: 4 }), "{c}");
        }
        let text = MINIMAL.replace("c=IN IP4 198.51.100.1", "c=IN IP4");
        assert_eq!(parse(&text), Err(SdpError::Malformed { line: 4 }));
    }

    #[test]
    fn multicast_ttl_and_bracketed_ipv6_are_accepted() {
        let text = MINIMAL.replace("c=IN IP4 198.51.100.1", "c=IN IP4 233.252.0.1/127/2");
        assert_eq!(
            parse(&text).expect("parses").connection,
            "233.252.0.1".parse().ok()
        );
        let text = MINIMAL.replace("c=IN IP4 198.51.100.1", "c=IN IP6 [2001:db8::5]");
        assert_eq!(
            parse(&text).expect("parses").connection,
            "2001:db8::5".parse().ok()
        );
    }

    #[test]
    fn sdp_truncated_mline() {
        for cut in [
            "m=audio 4000 RTP/AVP",
            "m=audio 4000",
            "m=aud",
            "m",
            "c=IN IP4 198.5",
        ] {
            let text = MINIMAL.replace("m=audio 4000 RTP/AVP 0\r\n", cut);
            assert_eq!(parse(&text), Err(SdpError::Truncated), "{cut:?}");
        }
    }

    #[test]
    fn a_short_mline_followed_by_more_lines_is_malformed_not_truncated() {
        let text = MINIMAL.replace("RTP/AVP 0", "RTP/AVP") + "a=sendrecv\r\n";
        assert_eq!(parse(&text), Err(SdpError::Malformed { line: 6 }));
        let text = MINIMAL.replace("RTP/AVP 0", "RTP/AVP");
        assert_eq!(parse(&text), Err(SdpError::Malformed { line: 6 }));
    }

    #[test]
    fn unterminated_but_complete_last_line_is_fine() {
        let sdp = parse(MINIMAL.trim_end()).expect("parses");
        assert_eq!(sdp.media.len(), 1);
    }

    #[test]
    fn sdp_huge_line_count() {
        let mut text = MINIMAL.to_owned();
        text.push_str(&"a=x\n".repeat(MAX_SDP_LINES));
        assert!(text.len() <= MAX_SDP_BYTES);
        assert_eq!(
            parse(&text),
            Err(SdpError::TooManyLines { max: MAX_SDP_LINES })
        );
        let blank = format!("{MINIMAL}{}", "\n".repeat(MAX_SDP_LINES));
        assert_eq!(
            parse(&blank),
            Err(SdpError::TooManyLines { max: MAX_SDP_LINES })
        );
    }

    #[test]
    fn malformed_sdp_1mb_garbage() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let garbage: Vec<u8> = (0..1 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        assert_eq!(
            SessionDescription::parse(&garbage),
            Err(SdpError::TooLarge { max: MAX_SDP_BYTES })
        );
        let small = garbage.get(..MAX_SDP_BYTES).unwrap_or_default();
        assert!(SessionDescription::parse(small).is_err());
    }

    #[test]
    fn non_utf8_bytes_in_free_text_are_tolerated() {
        let mut body = MINIMAL.replace("s=-", "s=Caf\u{e9}").into_bytes();
        // Latin-1 é instead of UTF-8.
        let pos = body
            .iter()
            .position(|&b| b == 0xC3)
            .expect("utf-8 lead byte");
        body.splice(pos..pos + 2, [0xE9]);
        assert!(SessionDescription::parse(&body).is_ok());
    }

    #[test]
    fn non_utf8_bytes_in_a_port_are_a_port_error() {
        let mut body = MINIMAL.as_bytes().to_vec();
        let pos = body.windows(4).position(|w| w == b"4000").expect("port");
        body.splice(pos..pos + 1, [0xFF]);
        assert_eq!(
            SessionDescription::parse(&body),
            Err(SdpError::BadPort { line: 6 })
        );
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        let body = format!("\u{feff}{MINIMAL}");
        assert!(parse(&body).is_ok());
    }

    #[test]
    fn trailing_nul_padding_and_whitespace_are_ignored() {
        let mut body = MINIMAL.replace("\r\n", "  \r\n").into_bytes();
        body.extend_from_slice(&[0, 0, 0, 0]);
        let sdp = SessionDescription::parse(&body).expect("parses");
        assert_eq!(sdp.media.first().map(|m| m.port), Some(4000));
    }

    #[test]
    fn media_attributes_override_session_ones() {
        let text = MINIMAL.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\na=ptime:30\r\n")
            + "c=IN IP4 203.0.113.9\r\na=recvonly\r\na=ptime:20\r\n";
        let sdp = parse(&text).expect("parses");
        let media = sdp.media.first().expect("audio");
        assert_eq!(sdp.direction, Some(Direction::SendOnly));
        assert_eq!(sdp.direction_for(media), Direction::RecvOnly);
        assert_eq!(sdp.ptime_for(media), Some(20));
        assert_eq!(sdp.connection_for(media), "203.0.113.9".parse().ok());
    }

    #[test]
    fn session_attributes_apply_when_media_is_silent() {
        let text = MINIMAL.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\na=ptime:30\r\n");
        let sdp = parse(&text).expect("parses");
        let media = sdp.media.first().expect("audio");
        assert_eq!(sdp.direction_for(media), Direction::Inactive);
        assert_eq!(sdp.ptime_for(media), Some(30));
    }

    #[test]
    fn odd_attributes_never_fail_the_body_and_first_rtpmap_wins() {
        let text = MINIMAL.to_owned()
            + "a=rtpmap:0 PCMU/8000\r\na=rtpmap:0 PCMA/8000\r\na=ptime:abc\r\n\
               a=crypto:garbage\r\na=rtcp-mux\r\n";
        let sdp = parse(&text).expect("odd attributes must not fail the call");
        let media = sdp.media.first().expect("audio");
        assert_eq!(media.encoding(0).map(|e| e.name), Some("PCMU"));
        assert!(media.rtcp_mux && media.ptime.is_none() && media.crypto.is_empty());
        let unknown: Vec<&str> = media.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(unknown, vec!["ptime", "crypto"]);
    }

    #[test]
    fn static_payload_types_resolve_without_rtpmap() {
        let text = MINIMAL.replace("RTP/AVP 0", "RTP/AVP 18 8 0 96");
        let sdp = parse(&text).expect("parses");
        let media = sdp.media.first().expect("audio");
        assert_eq!(media.encoding(18).map(|e| e.name), Some("G729"));
        assert_eq!(media.encoding(8).map(|e| e.name), Some("PCMA"));
        assert_eq!(media.encoding(96), None, "dynamic type without rtpmap");
    }

    #[test]
    fn origin_is_read_without_the_username() {
        let text = MINIMAL.replace("o=- 1 1", "o=+15551230000 3890227631 3890227632");
        let origin = parse(&text).expect("parses").origin.expect("origin");
        assert_eq!(origin.session_id, "3890227631");
        assert_eq!(origin.session_version, "3890227632");
        let text = MINIMAL.replace("o=- 1 1 IN IP4 198.51.100.1", "o=-");
        assert_eq!(parse(&text), Err(SdpError::Malformed { line: 2 }));
    }

    #[test]
    fn from_str_matches_parse() {
        assert_eq!(MINIMAL.parse::<SessionDescription>(), parse(MINIMAL));
    }
}

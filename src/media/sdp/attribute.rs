//! Values of the `a=` lines the trunk leg reads: `rtpmap`, `fmtp`, `ptime`,
//! `maxptime` (RFC 8866 §6), `rtcp` (RFC 3605), `rtcp-mux` (RFC 5761),
//! `crypto` (RFC 4568) and the direction attributes (RFC 3264 §5.1).
//!
//! A value that does not parse yields [`ParsedAttribute::Other`], so the
//! caller keeps it as an unknown attribute instead of failing the body.

use std::net::IpAddr;

use super::types::{CryptoAttribute, Direction};

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// `a=fmtp:<pt> <parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub payload_type: u8,
    pub params: String,
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpAttribute {
    pub port: u16,
    pub address: Option<IpAddr>,
}

/// Any attribute kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum ParsedAttribute {
    Direction(Direction),
    RtpMap(RtpMap),
    Fmtp(Fmtp),
    Ptime(u32),
    MaxPtime(u32),
    Rtcp(RtcpAttribute),
    RtcpMux,
    Crypto(CryptoAttribute),
    Other(Attribute),
}

pub(super) fn parse_attribute(text: &str) -> ParsedAttribute {
    let (name, value) = match text.split_once(':') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (text.trim(), None),
    };
    let known = match (name.to_ascii_lowercase().as_str(), value) {
        (_, None) if Direction::from_attribute(name).is_some() => {
            Direction::from_attribute(name).map(ParsedAttribute::Direction)
        }
        ("rtcp-mux", None) => Some(ParsedAttribute::RtcpMux),
        ("rtpmap", Some(value)) => parse_rtpmap(value).map(ParsedAttribute::RtpMap),
        ("fmtp", Some(value)) => parse_fmtp(value).map(ParsedAttribute::Fmtp),
        ("ptime", Some(value)) => parse_ptime(value).map(ParsedAttribute::Ptime),
        ("maxptime", Some(value)) => parse_ptime(value).map(ParsedAttribute::MaxPtime),
        ("rtcp", Some(value)) => parse_rtcp(value).map(ParsedAttribute::Rtcp),
        ("crypto", Some(value)) => CryptoAttribute::parse(value).map(ParsedAttribute::Crypto),
        _ => None,
    };
    known.unwrap_or_else(|| {
        ParsedAttribute::Other(Attribute {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        })
    })
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.split_once(char::is_whitespace)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|name| !name.is_empty())?;
    let clock_rate = parts.next()?.parse().ok().filter(|rate| *rate > 0)?;
    let channels = parts.next().map(str::parse).transpose().ok()?;
    Some(RtpMap {
        payload_type: parse_payload_type(pt)?,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

fn parse_fmtp(value: &str) -> Option<Fmtp> {
    let (pt, params) = value.split_once(char::is_whitespace)?;
    Some(Fmtp {
        payload_type: parse_payload_type(pt)?,
        params: params.trim().to_owned(),
    })
}

/// Milliseconds; some devices write `20.0`.
fn parse_ptime(value: &str) -> Option<u32> {
    let whole = value.split('.').next()?;
    whole.parse().ok().filter(|ms| *ms > 0)
}

fn parse_rtcp(value: &str) -> Option<RtcpAttribute> {
    let mut tokens = value.split_ascii_whitespace();
    let port = tokens.next()?.parse().ok().filter(|port| *port > 0)?;
    let address = match (tokens.next(), tokens.next(), tokens.next()) {
        (None, _, _) => None,
        (Some(net), Some(_), Some(address)) if net.eq_ignore_ascii_case("IN") => {
            Some(parse_ip(address)?)
        }
        _ => return None,
    };
    Some(RtcpAttribute { port, address })
}

pub(super) fn parse_ip(text: &str) -> Option<IpAddr> {
    // Some stacks bracket IPv6 literals the way URIs do.
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

pub(super) fn parse_payload_type(text: &str) -> Option<u8> {
    text.parse::<u8>().ok().filter(|pt| *pt <= 127)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(name: &str, value: Option<&str>) -> ParsedAttribute {
        ParsedAttribute::Other(Attribute {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        })
    }

    #[test]
    fn rtpmap_reads_names_rates_and_channels_in_any_case() {
        let opus = RtpMap {
            payload_type: 96,
            encoding: "opus".into(),
            clock_rate: 48000,
            channels: Some(2),
        };
        assert_eq!(
            parse_attribute("rtpmap:96 opus/48000/2"),
            ParsedAttribute::RtpMap(opus)
        );
        let event = RtpMap {
            payload_type: 101,
            encoding: "Telephone-Event".into(),
            clock_rate: 8000,
            channels: None,
        };
        let parsed = parse_attribute("RTPMAP:101  Telephone-Event/8000");
        assert_eq!(parsed, ParsedAttribute::RtpMap(event));
    }

    #[test]
    fn numeric_attributes_tolerate_decimals() {
        assert_eq!(parse_attribute("ptime:20.0"), ParsedAttribute::Ptime(20));
        assert_eq!(
            parse_attribute("maxptime:40"),
            ParsedAttribute::MaxPtime(40)
        );
        let fmtp = Fmtp {
            payload_type: 101,
            params: "0-15".into(),
        };
        assert_eq!(
            parse_attribute("fmtp:101 0-15"),
            ParsedAttribute::Fmtp(fmtp)
        );
    }

    #[test]
    fn rtcp_port_with_and_without_address() {
        let bare = RtcpAttribute {
            port: 4001,
            address: None,
        };
        assert_eq!(parse_attribute("rtcp:4001"), ParsedAttribute::Rtcp(bare));
        let v6 = RtcpAttribute {
            port: 4001,
            address: "2001:db8::1".parse().ok(),
        };
        let parsed = parse_attribute("rtcp:4001 IN IP6 2001:db8::1");
        assert_eq!(parsed, ParsedAttribute::Rtcp(v6));
    }

    #[test]
    fn flags_and_directions() {
        assert_eq!(parse_attribute("rtcp-mux"), ParsedAttribute::RtcpMux);
        let send_only = ParsedAttribute::Direction(Direction::SendOnly);
        assert_eq!(parse_attribute("SendOnly"), send_only);
        assert_eq!(
            parse_attribute("sendonly:now"),
            other("sendonly", Some("now"))
        );
    }

    #[test]
    fn unknown_attributes_keep_name_and_value() {
        let parsed = parse_attribute("silenceSupp:off - - - -");
        assert_eq!(parsed, other("silenceSupp", Some("off - - - -")));
        assert_eq!(parse_attribute("X-custom"), other("X-custom", None));
    }

    #[test]
    fn malformed_values_become_unknown_attributes() {
        for text in [
            "rtpmap:96",
            "rtpmap:200 foo/8000",
            "rtpmap:97 foo/0",
            "rtpmap:97 /8000",
            "rtpmap:97 foo/8000/x",
            "ptime:abc",
            "ptime:0",
            "rtcp:0",
            "rtcp:70000",
            "rtcp:4001 IN IP4 bad",
            "rtcp:4001 IN",
            "crypto:garbage",
            "fmtp:abc x",
            "fmtp:101",
        ] {
            let parsed = parse_attribute(text);
            assert!(
                matches!(parsed, ParsedAttribute::Other(_)),
                "{text}: {parsed:?}"
            );
        }
    }
}

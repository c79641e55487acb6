//! `host[:port]` addresses of SIP trunks and proxies, as written in the config.

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

/// A host name or IP literal with an optional port. The port stays optional
/// here because its default depends on the trunk's transport (5060, or 5061
/// for TLS); [`crate::config::TrunkConfig::port`] applies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPort {
    pub host: String,
    pub port: Option<u16>,
}

impl HostPort {
    /// The host as it goes into a URI or a socket lookup: IPv6 in brackets.
    pub fn host_for_uri(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host_for_uri()),
            None => f.write_str(&self.host_for_uri()),
        }
    }
}

impl From<HostPort> for String {
    fn from(value: HostPort) -> Self {
        value.to_string()
    }
}

impl TryFrom<String> for HostPort {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        parse(&text).ok_or_else(|| {
            format!("{text:?} is not \"host\" or \"host:port\" (IPv6 hosts go in brackets)")
        })
    }
}

/// Accepts `host`, `host:port`, `[v6]`, `[v6]:port` and a bare IPv6 literal
/// (no port, since its colons would be ambiguous).
fn parse(text: &str) -> Option<HostPort> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(parse_port(after.strip_prefix(':')?)?),
        };
        return Some(HostPort {
            host: host.to_owned(),
            port,
        });
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Some(HostPort {
            host: text.to_owned(),
            port: None,
        });
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (text, None),
    };
    is_host_name(host).then(|| HostPort {
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn parse_port(text: &str) -> Option<u16> {
    let port: u16 = text.parse().ok()?;
    (port != 0 && text.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

/// A DNS name or dotted IPv4 (RFC 1123 labels: letters, digits, hyphens, not
/// at either end of a label; at most 253 characters).
pub fn is_host_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<(String, Option<u16>)> {
        HostPort::try_from(text.to_owned())
            .ok()
            .map(|hp| (hp.host, hp.port))
    }

    #[test]
    fn accepts_the_usual_forms() {
        assert_eq!(
            parsed("sip.Example.net"),
            Some(("sip.example.net".into(), None))
        );
        assert_eq!(
            parsed("sip.example.net:5080"),
            Some(("sip.example.net".into(), Some(5080)))
        );
        assert_eq!(
            parsed("192.0.2.1:5060"),
            Some(("192.0.2.1".into(), Some(5060)))
        );
        assert_eq!(
            parsed("[2001:db8::1]:5061"),
            Some(("2001:db8::1".into(), Some(5061)))
        );
        assert_eq!(parsed("[2001:db8::1]"), Some(("2001:db8::1".into(), None)));
        assert_eq!(parsed("2001:db8::1"), Some(("2001:db8::1".into(), None)));
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            ":5060",
            "host:",
            "host:0",
            "host:65536",
            "host:+5060",
            "host:5060:1",
            "-bad.example",
            "bad_host.example",
            "sip:host.example",
            "host example",
            "[2001:db8::1",
            "[not-v6]:5060",
            "[2001:db8::1]5060",
        ] {
            assert_eq!(parsed(bad), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn header_injection_through_a_host_is_rejected() {
        assert_eq!(parsed("example.net\r\nVia: evil"), None);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "sip.example.net",
            "sip.example.net:5080",
            "[2001:db8::1]:5061",
        ] {
            let hp = HostPort::try_from(text.to_owned()).unwrap();
            assert_eq!(hp.to_string(), text);
        }
    }
}

//! Privacy: the types that keep personal data and secrets out of logs.
//!
//! Owns [`Pii`], the wrapper every log line puts around a phone number, an IP
//! address, a SIP URI or an SDP body, and [`Secret`], the holder of credentials
//! loaded from the environment or a file.
//!
//! Invariants:
//! - `Display` and `Debug` of a [`Pii`] never print the value in full: phone
//!   numbers keep the country code and the last two digits, IPv4 addresses are
//!   cut to their /24 and IPv6 addresses to their /48, SIP URIs keep only the
//!   scheme and the (truncated) host, SDP prints only its length. Text that is
//!   none of these is redacted whole: an unrecognised value fails closed.
//! - `Display` and `Debug` of a [`Secret`] print `[redacted]`.
//! - The raw value is reachable only through an explicit `expose()` call, so a
//!   reviewer can find every place that handles it.
//!
//! [`redact_endpoints`] takes the host out of every URL in a library's error
//! text (an object store's, say), which names the server it talked to.
//!
//! [`truncate_ip`] gives the network form (`192.0.2.0/24`) that call detail
//! records keep instead of the visitor's address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A value that identifies a person, printed redacted.
///
/// Wrap the value at the log call: `info!(callee = %Pii::new(&uri), "dialing")`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The raw value, for code that must act on it (never for a log line).
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: Redact> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_redacted(f)
    }
}

impl<T: Redact> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_redacted(f)
    }
}

/// How a kind of value prints inside a [`Pii`].
pub trait Redact {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<T: Redact + ?Sized> Redact for &T {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt_redacted(f)
    }
}

impl Redact for str {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_text(self))
    }
}

impl Redact for String {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt_redacted(f)
    }
}

/// Bytes print as text when they are UTF-8 (an SDP body usually arrives as
/// bytes) and as a length otherwise.
impl Redact for [u8] {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self) {
            Ok(text) => text.fmt_redacted(f),
            Err(_) => write!(f, "[{} bytes]", self.len()),
        }
    }
}

impl Redact for Vec<u8> {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt_redacted(f)
    }
}

impl Redact for bytes::Bytes {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt_redacted(f)
    }
}

impl Redact for IpAddr {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_ip(*self))
    }
}

impl Redact for Ipv4Addr {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        IpAddr::V4(*self).fmt_redacted(f)
    }
}

impl Redact for Ipv6Addr {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        IpAddr::V6(*self).fmt_redacted(f)
    }
}

/// The port stays: on its own it names a service, not a person.
impl Redact for SocketAddr {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match redact_ip(self.ip()) {
            host if host.contains(':') => write!(f, "[{host}]:{}", self.port()),
            host => write!(f, "{host}:{}", self.port()),
        }
    }
}

/// A credential (trunk password, key) loaded from the environment or a file.
/// Never printed, and wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw secret, for the code that must use it (digest auth, key unwrap).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The network a visitor's address belongs to, as kept in call detail
/// records: IPv4 cut to /24 (`192.0.2.0/24`), IPv6 to /48
/// (`2001:db8:1::/48`). An IPv4-mapped IPv6 address counts as IPv4, so the
/// mapping cannot smuggle a full IPv4 address past the /48 cut.
pub fn truncate_ip(ip: IpAddr) -> String {
    match mask_ip(ip) {
        IpAddr::V4(net) => format!("{net}/24"),
        IpAddr::V6(net) => format!("{net}/48"),
    }
}

/// The address with its host part zeroed (see [`truncate_ip`] for the cut).
pub fn mask_ip(ip: IpAddr) -> IpAddr {
    match unmap(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The log form: `192.0.2.x` for IPv4, the /48 network for IPv6.
fn redact_ip(ip: IpAddr) -> String {
    match mask_ip(ip) {
        IpAddr::V4(net) => {
            let [a, b, c, _] = net.octets();
            format!("{a}.{b}.{c}.x")
        }
        IpAddr::V6(net) => format!("{net}/48"),
    }
}

/// Recognises what a piece of text is and redacts it accordingly.
fn redact_text(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.starts_with("v=") || trimmed.contains('\n') {
        return format!("[sdp, {} bytes]", text.len());
    }
    if let Some(uri) = find_uri(trimmed) {
        return redact_uri(uri);
    }
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return redact_ip(ip);
    }
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        return Pii::new(addr).to_string();
    }
    if let Some(phone) = redact_phone(trimmed) {
        return phone;
    }
    format!("[redacted, {} chars]", text.chars().count())
}

/// The URI inside `sip:…`, `"Name" <sips:…>;tag=…` or `tel:…`, from its scheme on.
fn find_uri(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    ["sips:", "sip:", "tel:"]
        .iter()
        .filter_map(|scheme| lower.find(scheme))
        .min()
        .and_then(|start| text.get(start..))
}

/// `sip:alice@host:5060;transport=tcp` becomes `sip:***@host`; an IP host is
/// truncated; display names, ports, parameters and headers are dropped.
fn redact_uri(uri: &str) -> String {
    let (scheme, rest) = uri.split_once(':').unwrap_or((uri, ""));
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.split(['>', ';', '?']).next().unwrap_or_default();
    if scheme == "tel" {
        let number = redact_phone(rest).unwrap_or_else(|| "***".to_owned());
        return format!("tel:{number}");
    }
    match rest.rsplit_once('@') {
        Some((_, hostport)) => format!("{scheme}:***@{}", redact_host(hostport)),
        None => format!("{scheme}:{}", redact_host(rest)),
    }
}

fn redact_host(hostport: &str) -> String {
    let host = match hostport.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => hostport.split(':').next().unwrap_or_default(),
    };
    match host.parse::<IpAddr>() {
        Ok(ip) => redact_ip(ip),
        Err(_) if is_hostname(host) => host.to_ascii_lowercase(),
        Err(_) => "***".to_owned(),
    }
}

fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// `+4930123456` becomes `+49******56`. Visual separators are allowed in the
/// input and dropped from the output. A national number keeps only its last
/// two digits, and a short number (an extension, an emergency code) keeps none.
fn redact_phone(text: &str) -> Option<String> {
    let (international, body) = match text.strip_prefix('+') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let looks_like_number = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    if !looks_like_number || digits.len() < 3 {
        return None;
    }
    let kept_prefix = if international {
        country_code_len(&digits)
    } else {
        0
    };
    let national = digits.len() - kept_prefix;
    let kept_suffix = if national >= 6 { 2 } else { 0 };
    let plus = if international { "+" } else { "" };
    let prefix = digits.get(..kept_prefix).unwrap_or_default();
    let suffix = digits.get(digits.len() - kept_suffix..).unwrap_or_default();
    let stars = "*".repeat(national - kept_suffix);
    Some(format!("{plus}{prefix}{stars}{suffix}"))
}

/// Length of the E.164 country code at the start of `digits` (ITU-T E.164
/// assignments: zones 1 and 7 are one digit, the listed codes two, the rest
/// three).
fn country_code_len(digits: &str) -> usize {
    const TWO_DIGIT: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    let len = if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT.iter().any(|cc| digits.starts_with(cc)) {
        2
    } else {
        3
    };
    len.min(digits.len())
}

/// Whether two secrets (tokens, tags) are equal, in time that depends on
/// their length only, not on where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `text` with the host and port of every `scheme://host:port/...` replaced
/// by `<endpoint>`: error texts of HTTP libraries name the server (often an
/// address) they failed to reach; the path and the rest stay.
pub fn redact_endpoints(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | ')' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str("<endpoint>");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogConfig, LogFormat};
    use crate::telemetry::{self, CapturedLogs};

    fn shown<T: Redact>(value: T) -> String {
        let display = Pii::new(&value).to_string();
        assert_eq!(display, format!("{:?}", Pii::new(&value)));
        display
    }

    #[test]
    fn phone_numbers_keep_country_code_and_last_two_digits() {
        assert_eq!(shown("+4930123456"), "+49******56");
        assert_eq!(shown("+1 (202) 555-0123"), "+1********23");
        assert_eq!(shown("+420123456789"), "+420*******89");
        assert_eq!(shown("+79161234567"), "+7********67");
        assert_eq!(shown("030123456"), "*******56");
    }

    #[test]
    fn short_numbers_are_masked_whole() {
        assert_eq!(shown("+4912"), "+49**");
        assert_eq!(shown("112"), "***");
        assert_eq!(shown("+44123"), "+44***");
    }

    #[test]
    fn ipv4_is_cut_to_its_24() {
        assert_eq!(shown("192.0.2.77"), "192.0.2.x");
        assert_eq!(shown(IpAddr::from([198, 51, 100, 9])), "198.51.100.x");
        let addr: SocketAddr = "203.0.113.5:49152".parse().unwrap();
        assert_eq!(shown(addr), "203.0.113.x:49152");
    }

    #[test]
    fn ipv6_is_cut_to_its_48() {
        assert_eq!(shown("2001:db8:1:2:3:4:5:6"), "2001:db8:1::/48");
        let addr: SocketAddr = "[2001:db8:aa:bb::1]:5060".parse().unwrap();
        assert_eq!(shown(addr), "[2001:db8:aa::/48]:5060");
    }

    #[test]
    fn ipv4_mapped_ipv6_cannot_smuggle_a_full_ipv4_address() {
        let mapped: IpAddr = "::ffff:192.0.2.77".parse().unwrap();
        assert_eq!(shown(mapped), "192.0.2.x");
        assert_eq!(truncate_ip(mapped), "192.0.2.0/24");
    }

    #[test]
    fn truncate_ip_gives_the_network() {
        assert_eq!(truncate_ip("192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            truncate_ip("2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1::/48"
        );
        assert_eq!(
            mask_ip("10.1.2.3".parse().unwrap()),
            IpAddr::from([10, 1, 2, 0])
        );
    }

    #[test]
    fn sip_uris_keep_scheme_and_host_only() {
        assert_eq!(
            shown("sip:alice@example.com:5060;transport=tcp"),
            "sip:***@example.com"
        );
        assert_eq!(shown("sip:+4930123456@192.0.2.10"), "sip:***@192.0.2.x");
        assert_eq!(
            shown("\"Alice Smith\" <SIPS:alice@[2001:db8:5:6::1]:5061>;tag=a1"),
            "sips:***@2001:db8:5::/48"
        );
        assert_eq!(shown("sip:trunk.example.net"), "sip:trunk.example.net");
        assert_eq!(shown("tel:+4930123456"), "tel:+49******56");
    }

    #[test]
    fn uri_with_a_hostile_host_is_not_echoed() {
        assert_eq!(shown("sip:bob@<script>x"), "sip:***@***");
        assert_eq!(shown("sip:bob@"), "sip:***@***");
        assert_eq!(shown("sip:"), "sip:***");
    }

    #[test]
    fn sdp_prints_only_its_length() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\nc=IN IP4 192.0.2.10\r\n";
        assert_eq!(shown(sdp), format!("[sdp, {} bytes]", sdp.len()));
        assert_eq!(
            shown(bytes::Bytes::from_static(sdp.as_bytes())),
            format!("[sdp, {} bytes]", sdp.len())
        );
        assert_eq!(shown(vec![0xff_u8, 0xfe]), "[2 bytes]");
    }

    #[test]
    fn unrecognised_text_fails_closed() {
        assert_eq!(shown("alice smith"), "[redacted, 11 chars]");
        assert_eq!(shown(""), "[redacted, 0 chars]");
    }

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), "hunter2");
    }

    /// Logs `emit` through the node's own subscriber setup.
    fn capture(format: LogFormat, emit: impl FnOnce()) -> String {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let log = LogConfig {
            format,
            level: "info".to_owned(),
        };
        let subscriber = telemetry::subscriber(&log, None, false, move || writer.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, emit);
        logs.text()
    }

    /// Every kind of personal data goes through a real subscriber, as a field
    /// and inside the message, in both log formats.
    #[test]
    fn log_lines_never_contain_the_secret_part() {
        let phone = "+4930123456";
        let ip: IpAddr = "198.51.100.23".parse().unwrap();
        let uri = "sip:+4930123456@198.51.100.23:5060";
        let sdp = "v=0\r\no=alice 7 7 IN IP4 198.51.100.23\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2VjcmV0a2V5\r\n";
        let password = Secret::new("hunter2-trunk");
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = capture(format, || {
                tracing::info!(
                    callee = %Pii::new(phone),
                    visitor = %Pii::new(ip),
                    uri = ?Pii::new(uri),
                    offer = %Pii::new(sdp),
                    password = %password,
                    "call from {} to {}",
                    Pii::new(ip),
                    Pii::new(phone)
                );
            });
            for raw in [
                "4930123456",
                "0123456",
                "198.51.100.23",
                "alice",
                "c2VjcmV0a2V5",
                "a=crypto",
                "hunter2",
            ] {
                assert!(!out.contains(raw), "{raw:?} leaked into {out:?}");
            }
            assert!(out.contains("+49******56"), "{out}");
            assert!(out.contains("198.51.100.x"), "{out}");
            assert!(out.contains("[sdp, "), "{out}");
        }
    }

    #[test]
    fn endpoints_leave_error_texts_and_the_rest_stays() {
        let error = "Error performing POST http://127.0.0.1:20985/recordings/a.cgrec?uploads= \
                     in 389ms; then https://[2001:db8::1]:9000 and https://s3.example.com";
        assert_eq!(
            redact_endpoints(error),
            "Error performing POST http://<endpoint>/recordings/a.cgrec?uploads= \
             in 389ms; then https://<endpoint> and https://<endpoint>"
        );
        assert_eq!(redact_endpoints("no url here"), "no url here");
    }
}

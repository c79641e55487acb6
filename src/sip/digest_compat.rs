//! Digest algorithm names as trunks write them (RFC 7616 §6.1, RFC 8760).
//!
//! The registered token for SHA-256 digests is `SHA-256` (and
//! `SHA-256-sess`); rsipstack 0.7.14 only reads and writes `SHA256`, so a
//! standard SHA-256 challenge failed to parse and the call was lost. This
//! inspector sits at the endpoint's edge: challenges are read with the
//! spelling rsipstack knows, credentials leave with the registered one. The
//! token is not part of the digest computation, so responses stay valid.

use rsipstack::sip::{Header, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

/// Rewrites the SHA-256 algorithm token between the wire and rsipstack.
#[derive(Debug, Default)]
pub struct DigestAlgorithmSpelling;

impl MessageInspector for DigestAlgorithmSpelling {
    fn before_send(&self, mut msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Request(request) = &mut msg {
            for header in request.headers.iter_mut() {
                match header {
                    Header::Authorization(h) => h.replace(to_wire(h.value())),
                    Header::ProxyAuthorization(h) => h.replace(to_wire(h.value())),
                    _ => {}
                }
            }
        }
        msg
    }

    fn after_received(&self, mut msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Response(response) = &mut msg {
            for header in response.headers.iter_mut() {
                match header {
                    Header::WwwAuthenticate(h) => h.replace(from_wire(h.value())),
                    Header::ProxyAuthenticate(h) => h.replace(from_wire(h.value())),
                    _ => {}
                }
            }
        }
        msg
    }
}

/// `algorithm=SHA-256[-sess]` (any case, quoted or not) → `algorithm=SHA256[-sess]`.
pub(super) fn from_wire(value: &str) -> String {
    rewrite_algorithm(value, |token| {
        let lower = token.to_ascii_lowercase();
        match lower.as_str() {
            "sha-256" => Some("SHA256"),
            "sha-256-sess" => Some("SHA256-sess"),
            _ => None,
        }
    })
}

/// `algorithm=SHA256[-sess]` → the registered `algorithm=SHA-256[-sess]`.
pub(super) fn to_wire(value: &str) -> String {
    rewrite_algorithm(value, |token| match token {
        "SHA256" => Some("SHA-256"),
        "SHA256-sess" => Some("SHA-256-sess"),
        _ => None,
    })
}

/// Replaces the value of the `algorithm` parameter when `map` says so.
fn rewrite_algorithm(value: &str, map: impl Fn(&str) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = find_param(rest, "algorithm") {
        let (before, from_param) = rest.split_at(at);
        out.push_str(before);
        let eq = from_param.find('=').map_or(from_param.len(), |i| i + 1);
        out.push_str(&from_param[..eq]);
        let after_eq = &from_param[eq..];
        let end = after_eq.find([',', ' ', '\t']).unwrap_or(after_eq.len());
        let token = after_eq[..end].trim_matches('"');
        match map(token) {
            Some(new) if after_eq.starts_with('"') => out.push_str(&format!("\"{new}\"")),
            Some(new) => out.push_str(new),
            None => out.push_str(&after_eq[..end]),
        }
        rest = &after_eq[end..];
    }
    out.push_str(rest);
    out
}

/// Byte offset of `name=` as a parameter name (not inside another word).
fn find_param(haystack: &str, name: &str) -> Option<usize> {
    let lower = haystack.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let at = from + found;
        let preceded_ok = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b',' | b'\t');
        let followed = lower[at + name.len()..].trim_start();
        if preceded_ok && followed.starts_with('=') {
            return Some(at);
        }
        from = at + name.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_sha256_token_is_read_as_rsipstack_spells_it() {
        let challenge = r#"Digest realm="x", nonce="n", qop="auth", algorithm=SHA-256"#;
        assert_eq!(
            from_wire(challenge),
            r#"Digest realm="x", nonce="n", qop="auth", algorithm=SHA256"#
        );
        assert_eq!(
            from_wire(r#"Digest algorithm="sha-256-sess", realm="x""#),
            r#"Digest algorithm="SHA256-sess", realm="x""#
        );
    }

    #[test]
    fn credentials_leave_with_the_registered_token() {
        let creds = r#"Digest username="a", response="f00", algorithm=SHA256, qop=auth"#;
        assert_eq!(
            to_wire(creds),
            r#"Digest username="a", response="f00", algorithm=SHA-256, qop=auth"#
        );
    }

    #[test]
    fn other_algorithms_and_lookalike_params_are_untouched() {
        let md5 = r#"Digest realm="algorithm=SHA-256", algorithm=MD5"#;
        assert_eq!(from_wire(md5), md5);
        assert_eq!(from_wire("Digest realm=\"x\""), "Digest realm=\"x\"");
    }
}

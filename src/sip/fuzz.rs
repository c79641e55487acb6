//! The SIP leg's untrusted input as the fuzzer drives it: a message as the
//! UDP transport and the TCP/TLS stream framing read it, through our
//! digest spelling fix and what the trunk leg reads of it, and a digest
//! challenge answered as the stack answers it. None of this may panic,
//! whatever the bytes; only the fuzzer and its corpus test build it.

use std::net::SocketAddr;

use bytes::BytesMut;
use rsipstack::sip::headers::auth::{Algorithm, AuthQop, Qop};
use rsipstack::sip::typed::{Authorization, WwwAuthenticate};
use rsipstack::sip::{DigestGenerator, Header, Method, SipMessage, Transport, Uri};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transport::SipConnection;
use rsipstack::transport::stream::SipCodec;
use tokio_util::codec::Decoder;

use super::digest_compat::DigestAlgorithmSpelling;
use super::disposition::for_final_response;
use crate::media::sdp::SessionDescription;

const TRUNK: &str = "192.0.2.10:5060";

/// One datagram on the SIP port, then the same bytes as a TCP stream cut
/// where its first byte says.
pub(crate) fn message(data: &[u8]) {
    if let Ok(message) = SipMessage::try_from(data) {
        read_message(message);
    }
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    if overflows_upstream_framing(stream) {
        return;
    }
    let cut = usize::from(cut).min(stream.len());
    let mut codec = SipCodec::new();
    let mut buffer = BytesMut::new();
    for piece in [&stream[..cut], &stream[cut..]] {
        buffer.extend_from_slice(piece);
        while let Ok(Some(_)) = codec.decode(&mut buffer) {}
    }
}

/// Whether `stream` holds a `Content-Length` that rsipstack 0.7.14's TCP
/// framing adds to its header length without a check
/// (`fuzz/upstream/sip_message/`): under the fuzzer's overflow checks the
/// sum panics, in the node's release build it wraps and the frame is read
/// as a malformed message. Such input skips the framing only, so the
/// fuzzer can go on finding what else is there; the datagram path still
/// reads it. Any value of half the address space or more counts, whatever
/// the header's spelling or position, a superset of what overflows.
fn overflows_upstream_framing(stream: &[u8]) -> bool {
    stream.split(|&b| b == b'\n').any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let is_length =
            name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l");
        is_length
            && std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.trim().parse::<usize>().ok())
                .is_some_and(|length| length >= usize::MAX / 2)
    })
}

/// What the node does with a parsed message before and around the
/// transaction layer.
fn read_message(message: SipMessage) {
    let from: SocketAddr = TRUNK.parse().expect("a literal address");
    let Ok(message) = SipConnection::update_msg_received(message, from, Transport::Udp) else {
        return;
    };
    let message = DigestAlgorithmSpelling.after_received(message, None);
    match &message {
        SipMessage::Request(request) => {
            let _ = TransactionKey::from_request(request, TransactionRole::Server);
            let _ = SessionDescription::parse(&request.body);
        }
        SipMessage::Response(response) => {
            let code = response.status_code.code();
            let _ = for_final_response(code, None, true);
            let _ = SessionDescription::parse(&response.body);
            for header in response.headers.iter() {
                let challenge = match header {
                    Header::WwwAuthenticate(h) => h.value(),
                    Header::ProxyAuthenticate(h) => h.value(),
                    _ => continue,
                };
                let _ = answer(challenge);
            }
        }
    }
    let _ = message.to_string();
}

/// A challenge's value, as a trunk writes it, answered as rsipstack
/// answers it and sent with the registered algorithm spelling.
pub(crate) fn challenge(data: &[u8]) {
    if let Ok(value) = std::str::from_utf8(data) {
        let _ = answer(&super::digest_compat::from_wire(value));
    }
}

fn answer(value: &str) -> Option<String> {
    let challenge = WwwAuthenticate::parse(value).ok()?;
    let uri = Uri::try_from("sip:+15550100@trunk.example.net").ok()?;
    let qop = match challenge.qop {
        Some(Qop::Auth) => Some(AuthQop::Auth {
            cnonce: "0a4f113b".to_owned(),
            nc: 1,
        }),
        Some(Qop::AuthInt) => Some(AuthQop::AuthInt {
            cnonce: "0a4f113b".to_owned(),
            nc: 1,
        }),
        _ => None,
    };
    let algorithm = challenge.algorithm.unwrap_or(Algorithm::Md5);
    let response = DigestGenerator {
        username: "gateway",
        password: "secret",
        algorithm,
        nonce: &challenge.nonce,
        method: &Method::Invite,
        qop: qop.as_ref(),
        uri: &uri,
        realm: &challenge.realm,
    }
    .compute();
    let authorization = Authorization {
        scheme: challenge.scheme,
        username: "gateway".to_owned(),
        realm: challenge.realm,
        nonce: challenge.nonce,
        uri,
        response,
        algorithm: Some(algorithm),
        opaque: challenge.opaque,
        qop,
    };
    Some(super::digest_compat::to_wire(&authorization.to_string()))
}

#[cfg(test)]
mod tests {
    use super::overflows_upstream_framing;

    #[test]
    fn only_a_length_near_the_address_space_skips_the_framing() {
        let upstream =
            include_bytes!("../../fuzz/upstream/sip_message/rsipstack-content-length-overflow");
        assert!(overflows_upstream_framing(upstream));
        assert!(overflows_upstream_framing(
            b"BYE sip:a@b SIP/2.0\r\nl: 18446744073709551615\r\n\r\n"
        ));
        assert!(!overflows_upstream_framing(
            b"BYE sip:a@b SIP/2.0\r\nContent-Length: 129\r\n\r\n"
        ));
        assert!(!overflows_upstream_framing(
            b"BYE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n"
        ));
    }
}

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
    let cut = usize::from(cut).min(stream.len());
    let mut codec = SipCodec::new();
    let mut buffer = BytesMut::new();
    for piece in [&stream[..cut], &stream[cut..]] {
        buffer.extend_from_slice(piece);
        while let Ok(Some(_)) = codec.decode(&mut buffer) {}
    }
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

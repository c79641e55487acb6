//! The browser leg: WebRTC towards the visitor's browser.
//!
//! - [`offer`] checks a browser's offer and picks the leg's codec;
//! - [`answer`] writes the SDP answer;
//! - [`port`] binds a UDP port many calls share and routes its datagrams
//!   to calls (ICE-lite: the browser checks, we answer); its host reads it
//!   in [`batch`]es with kernel receive timestamps;
//! - [`session`] is one call's browser leg, sans-IO: ICE-lite ([`stun`]),
//!   DTLS-SRTP with the browser's fingerprint checked ([`dtls`], on the
//!   webrtc-rs project's sans-IO DTLS), then SRTP in place
//!   ([`crate::media::srtp`]) and RTCP reports;
//! - [`demux`] classifies datagrams (RFC 7983) and reads STUN usernames;
//!   [`kernel_filter`] has the kernel drop the rest before we see it;
//! - [`peer`] is a full-ICE `rtc` peer that plays the browser in tools and
//!   tests;
//! - [`turn_rest`] makes the short-lived TURN credentials browsers get.
//!
//! Only the handshake runs through a WebRTC library; every packet after it
//! is ours: one socket serves all the calls of a media shard
//! ([`crate::call::shard`]), which reads it and runs each call's session
//! in the same thread.

pub mod answer;
pub mod batch;
pub mod demux;
pub mod dtls;
mod error;
pub mod kernel_filter;
pub mod offer;
pub mod peer;
pub mod port;
pub mod session;
pub mod stun;
pub mod turn_rest;

pub use error::WebrtcError;
pub use offer::{BrowserMedia, OfferError};
pub use port::{BrowserRoutes, PortCounters, Routed};
pub use session::{
    BrowserFrame, BrowserSession, OutgoingHeader, PacketError, SessionEvent, SessionSettings,
    Transmit,
};

use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};

/// The node's DTLS certificate (ECDSA P-256, self-signed: browsers check
/// it against the fingerprint in our answer, not against a CA).
pub fn generate_certificate() -> Result<RTCCertificate, WebrtcError> {
    let provider =
        rtc::crypto::default_provider().map_err(|e| WebrtcError::Certificate(e.to_string()))?;
    let params = CertificateParams::new(vec!["callgate".to_owned()])
        .map_err(|e| WebrtcError::Certificate(e.to_string()))?;
    RTCCertificate::generate(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        params,
    )
    .map_err(|e| WebrtcError::Certificate(e.to_string()))
}

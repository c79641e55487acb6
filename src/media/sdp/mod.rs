//! Trunk-side SDP: a lenient parser, a writer, and offer/answer for our side.
//!
//! Owns everything the trunk leg says and hears about media in SDP
//! (RFC 8866, which replaced RFC 4566), and the offer/answer rules of
//! RFC 3264 that turn two descriptions into one [`NegotiatedMedia`]. Pure: no
//! sockets, no clock, no logging. Also implemented: static payload types
//! (RFC 3551), `a=rtcp` (RFC 3605), `a=rtcp-mux` (RFC 5761), SDES `a=crypto`
//! (RFC 4568) and `telephone-event` (RFC 4733).
//!
//! Invariants:
//! - Parsing never panics and never allocates more than a bounded multiple of
//!   [`MAX_SDP_BYTES`]; input past [`MAX_SDP_BYTES`] or [`MAX_SDP_LINES`] is
//!   refused before any line is read.
//! - Lines that decide where audio goes (`v=`, `o=`, `c=`, `m=`) are strict;
//!   an attribute whose value does not parse is ignored as if unknown, because
//!   carriers send all sorts of attributes and one odd line must not fail a call.
//! - Every SDP we write uses CRLF, and its `o=` version grows by one whenever
//!   its content changes within a dialog, and only then (RFC 3264 §8).
//! - An answer lists every `m=` line of the offer in order; streams we do not
//!   take are rejected with port 0 (RFC 3264 §6).
//! - Parsed descriptions hold addresses and keys: wrap them in `Pii` before
//!   they go near a log line. [`CryptoAttribute`] and [`SrtpKeySalt`] redact
//!   their key bytes in `Debug`.
//!
//! Public API:
//! - [`SessionDescription::parse`] (`&[u8]`, as bodies arrive) and its
//!   [`str::parse`] form: a lenient parse into [`SessionDescription`] /
//!   [`MediaDescription`], with [`MediaDescription::encoding`] resolving static
//!   payload types when `a=rtpmap` is missing.
//! - [`SdpSession::write`] renders a [`LocalDescription`] and keeps the `o=`
//!   session id and version for one dialog.
//! - [`Negotiator`]: [`Negotiator::create_offer`], [`Negotiator::handle_answer`],
//!   [`Negotiator::handle_offer`] (returns an [`Answer`]: text plus
//!   [`NegotiatedMedia`]) and [`Negotiator::handle_offer_rejected`].
//! - Shared vocabulary: [`Direction`], [`CryptoAttribute`],
//!   [`CryptoSuite`], [`SdpError`]; codecs and telephone-event are
//!   [`crate::domain`]'s.

mod attribute;
mod error;
mod offer_answer;
mod parse;
mod types;
mod write;

#[cfg(test)]
mod samples;

pub use attribute::{Attribute, Fmtp, RtcpAttribute, RtpMap};
pub use error::{MAX_SDP_BYTES, MAX_SDP_LINES, SdpError};
pub use offer_answer::{Answer, LocalMediaConfig, NegotiatedMedia, Negotiator, SrtpKeySalt};
pub use parse::{Encoding, MediaDescription, Origin, SessionDescription};
pub use types::{CryptoAttribute, CryptoSuite, Direction, Mki};
pub use write::{AudioDescription, CodecPayload, LocalDescription, MediaLine, SdpSession};

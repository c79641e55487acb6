//! Media: the trunk-side RTP leg and the pure packet logic under it.
//!
//! - [`error`]: [`MediaError`], the one error type of this module.
//! - [`rtp`]: RTP header view, in-place rewrite, builder and the stream rewriter (RFC 3550).
//! - [`rtcp`]: compound RTCP parse/build, reception and sender statistics (RFC 3550 §6).
//! - [`dtmf`]: telephone-events, a DTMF sender schedule and receiver (RFC 4733).
//! - [`srtp`]: SDES-SRTP, AES_CM_128_HMAC_SHA1_80 (RFC 3711, RFC 4568).
//! - [`ports`]: the RTP/RTCP port pair allocator.
//! - [`endpoint`]: the trunk leg's sockets: symmetric RTP, SRTP, RTCP, DTMF, counters.
//! - [`g711`]: G.711 µ-law and A-law encode, decode and transcoding.
//! - [`sdp`]: trunk-side SDP parsing and writing, and RFC 3264 offer/answer.
//! - [`quality`]: per-window loss, jitter, round trip, E-model MOS and the visitor's warnings.
pub mod dtmf;
pub mod endpoint;
pub mod error;
pub mod g711;
pub mod ports;
pub mod quality;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;
#[cfg(test)]
pub(crate) mod testing;
pub mod transcode;

pub use error::MediaError;

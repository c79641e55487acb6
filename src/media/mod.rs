//! media: the trunk-side RTP endpoint and the pure packet logic under it.
//!
//! - [`g711`]: G.711 µ-law and A-law encode, decode and transcoding.
//! - [`sdp`]: trunk-side SDP parsing and writing, and RFC 3264 offer/answer.

pub mod g711;
pub mod sdp;

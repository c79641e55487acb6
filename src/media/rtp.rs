//! RTP packets (RFC 3550 §5.1): a validated zero-copy view, in-place header
//! rewrites and a builder into a reusable buffer. The source-switching
//! rewriter lives in [`rewriter`] and is re-exported here.
//!
//! Invariants:
//! - [`RtpPacket::parse`] accepts only version 2 packets whose CSRC list,
//!   header extension and padding all lie inside the datagram, so every
//!   accessor afterwards is infallible and no index can panic.
//! - Rewrites touch only the 12-byte fixed header; the payload, CSRCs and
//!   extensions are never copied or moved.
//! - Payload types are 7 bits; a wider value is an error, never truncated.

mod packet;
mod rewriter;

pub use packet::{
    FIXED_HEADER_LEN, RTP_VERSION, RtpExtension, RtpHeader, RtpPacket, RtpPacketMut, Ssrc,
};
pub use rewriter::{RewriteInput, Rewritten, StreamRewriter, StreamStart};

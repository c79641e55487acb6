//! SRTP and SRTCP (RFC 3711, RFC 7714) for both legs: keyed by DTLS-SRTP
//! on the browser leg (RFC 5764, [`keys_from_dtls`]) and by SDES on the
//! trunk leg ([`sdes`]).
//!
//! # What this module owns
//! - [`SrtpMasterKey`]: one direction's master key and salt, as exported by DTLS
//!   ([`keys_from_dtls`]).
//! - [`SrtpSender`]: session keys derived from our master key, the rollover counter of each
//!   SSRC we send (at most [`MAX_STREAMS`]) and the SRTCP index.
//! - [`SrtpReceiver`]: session keys derived from the peer's master key and, for at most
//!   [`MAX_STREAMS`] SSRCs, the rollover counter plus one 128-packet replay window for SRTP
//!   and one for SRTCP.
//!
//! Profiles: `AES_CM_128_HMAC_SHA1_80` (RFC 3711 §4, RFC 5764 §4.1.2) and
//! `AEAD_AES_128_GCM` (RFC 7714). Session keys come from the AES-CM PRF with
//! key_derivation_rate 0 for both (RFC 3711 §4.3, RFC 7714 §11). No MKI.
//!
//! # Invariants
//! - **Safe before authentication.** Nothing a packet says is believed until its tag has
//!   verified: replay windows, rollover counters and the per-SSRC table itself are only
//!   written after verification, so forged or corrupted packets, whatever their SSRC, leave
//!   the receiver exactly as it was. Before that, only read-only look-ups happen.
//! - **No allocation per packet.** Key schedules (AES, GHASH, HMAC pads) are computed once
//!   in `new`; stream tables are fixed arrays. `protect_*` only grows the caller's `Vec` by
//!   the trailer, which reuses spare capacity; `unprotect_*` works on a slice.
//! - **Never panics on input.** RTP/RTCP headers are parsed with bounds checks; every
//!   length is validated before slicing.
//! - **Key hygiene.** Master keys, session salts, AES key schedules and transient session
//!   key bytes are zeroized on drop. ring's HMAC and AES-GCM key objects cannot be wiped
//!   from outside; they are freed with the context.
//! - Tags are compared in constant time (AES-CM) or by ring (GCM).
//! - Sender state is never evicted (a forgotten ROC would repeat keystream); the receiver
//!   evicts its least recently used authenticated SSRC when a ninth one authenticates.

mod cipher;
mod context;
mod error;
mod key;
mod replay;
pub mod sdes;
#[cfg(test)]
mod tests;

pub use context::{SrtpReceiver, SrtpSender};
pub use error::SrtpError;
pub use key::{SrtpMasterKey, SrtpProfile, keys_from_dtls};
pub use replay::MAX_STREAMS;
pub use sdes::SrtpKeyMaterial;

//! Recording: encrypted from the first byte, with a key per recording.
//!
//! - [`format`]: the file format, AES-256-GCM segments in the STREAM
//!   construction under an authenticated header, written as audio arrives.
//! - [`keys`]: per-recording data keys wrapped under key-encryption keys
//!   (KEKs) named by key id, for rotation and crypto-shredding.
//!
//! - [`gate`]: the consent gate, open only while the call is answered, the
//!   number's policy allows recording and the visitor consents.
//! - [`mixer`]: the two channels (visitor, callee) aligned in time.
//!
//! These are pure: no I/O, no clock. The recorder task and the storage
//! backends build on them.

pub mod format;
pub mod gate;
pub mod keys;
pub mod mixer;

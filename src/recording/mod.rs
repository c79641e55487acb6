//! Recording: encrypted from the first byte, with a key per recording.
//!
//! - [`format`]: the file format, AES-256-GCM segments in the STREAM
//!   construction under an authenticated header, written as audio arrives.
//!   Each recording's data key is wrapped under the node's key-encryption
//!   keys ([`crate::keys`]), for rotation and crypto-shredding.
//! - [`gate`]: the consent gate, open only while the call is answered and
//!   not on hold, the number's policy allows recording and the visitor
//!   consents.
//! - [`mixer`]: the two channels (visitor, callee) aligned in time.
//! - [`receipt`]: signed consent receipts, whose hash each recording carries.
//!
//! These are pure: no I/O, no clock. On them:
//! - [`recorder`]: the per-call task that writes a recording as the gate
//!   lets audio through, never holding up the relay.
//! - [`storage`]: the object store (a local directory by default, or
//!   S3-compatible) and the spool of recordings in progress.
//! - [`uploader`]: retries storing finished recordings the store did not
//!   take, with capped exponential backoff.
//! - [`retention`]: the sweeper that deletes recordings past retention.
//! - [`access`]: opening a stored recording (audited) and its WAV form;
//!   [`stream`]: the same streamed, one segment at a time.
//! - [`setup`]: the key ring and storage a node builds from its config.

pub mod access;
pub mod format;
pub mod gate;
pub mod mixer;
pub mod receipt;
pub mod recorder;
pub mod retention;
pub mod setup;
pub mod storage;
pub mod stream;
pub mod uploader;

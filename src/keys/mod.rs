//! The node's keys. Key-encryption keys (KEKs) come from files or the
//! environment, never from the config text, as one line of standard base64
//! (32 bytes), the form `callgate keys generate` prints. Several can be
//! loaded at once: what is made new uses the current one, what was made
//! before still opens with its own (rotation).
//!
//! Under a KEK the node:
//! - wraps each recording's data key ([`data_key`]);
//! - signs consent receipts, hashes API keys and tags dashboard sessions
//!   ([`KeyRing`]);
//! - seals the secrets it must read back, such as webhook signing secrets
//!   ([`sealed`]).

mod data_key;
mod error;
mod kek;
mod ring;
mod sealed;
#[cfg(test)]
mod tests;

pub use self::data_key::{DataKey, WrappedKey};
pub use self::error::KeyError;
pub use self::kek::{Kek, KeyId, generate_kek_text};
pub use self::ring::KeyRing;
pub use self::sealed::SEALED_PREFIX;

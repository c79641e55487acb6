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
mod kek;
mod ring;
mod sealed;
#[cfg(test)]
mod tests;

pub use self::data_key::{DataKey, WrappedKey};
pub use self::kek::{Kek, KeyId, generate_kek_text};
pub use self::ring::KeyRing;
pub use self::sealed::SEALED_PREFIX;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key {id}: not base64 of 32 bytes")]
    BadKeyText { id: String },
    #[error("key id {0:?} is not valid: use 1 to 64 of a-z, A-Z, 0-9, '-', '_', '.'")]
    BadKeyId(String),
    #[error("no key-encryption key with id {0} is loaded")]
    UnknownKeyId(String),
    #[error(
        "key {key_id} does not open this recording's data key: wrong key, or the wrapped key was altered"
    )]
    Unwrap { key_id: String },
    #[error("key {key_id} does not open this sealed secret: wrong key, or it was altered")]
    Unseal { key_id: String },
    #[error("not a sealed secret")]
    NotSealed,
    #[error("no key-encryption key is loaded")]
    Empty,
    #[error("key id {0} is loaded twice")]
    Duplicate(String),
}

//! [`KeyError`]: why a key could not be loaded, found or opened.

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

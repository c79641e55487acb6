//! Key-encryption keys (KEKs): loaded from their text form, named by a key
//! id, and the two things done under one: AES-256-GCM sealing with
//! associated data, and HMAC-SHA256 with a label per purpose.
//!
//! Invariants: key bytes are zeroed when dropped and never printed (`Debug`
//! shows the key id only).

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngExt as _;
use zeroize::Zeroizing;

use super::error::KeyError;

pub(super) const KEY_LEN: usize = 32;
pub(super) const NONCE_LEN: usize = 12;

/// A key id: which KEK wraps a recording's data key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key-encryption key.
pub struct Kek {
    pub(super) id: KeyId,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({}, [redacted])", self.id)
    }
}

impl Kek {
    /// A KEK from its text form (one base64 line; surrounding whitespace
    /// ignored).
    pub fn from_text(id: &str, text: &str) -> Result<Self, KeyError> {
        let id = parse_key_id(id)?;
        let bad = || KeyError::BadKeyText { id: id.0.clone() };
        let bytes = Zeroizing::new(BASE64.decode(text.trim()).map_err(|_| bad())?);
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| bad())?;
        Ok(Self {
            id,
            key: Zeroizing::new(key),
        })
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

fn parse_key_id(id: &str) -> Result<KeyId, KeyError> {
    let valid = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    match valid {
        true => Ok(KeyId(id.to_owned())),
        false => Err(KeyError::BadKeyId(id.to_owned())),
    }
}

/// A new random KEK in its text form, for `callgate keys generate`.
pub fn generate_kek_text() -> Zeroizing<String> {
    let key = Zeroizing::new(rand::rng().random::<[u8; KEY_LEN]>());
    Zeroizing::new(BASE64.encode(key.as_slice()))
}

/// What a KEK's HMAC is for; each purpose has its own label.
#[derive(Clone, Copy)]
pub(super) enum MacPurpose {
    ConsentReceipt,
    ApiKey,
    Session,
}

/// Domain separation keeps a signature from ever equalling a wrap, a data
/// key or a tag of another purpose made with the same KEK.
pub(super) fn mac(kek: &Kek, purpose: MacPurpose, message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(kek.key.as_slice())
        .expect("HMAC takes keys of any length");
    mac.update(match purpose {
        MacPurpose::ConsentReceipt => b"callgate consent receipt v1\n".as_slice(),
        MacPurpose::ApiKey => b"callgate api key v1\n".as_slice(),
        MacPurpose::Session => b"callgate session v1\n".as_slice(),
    });
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// AES-256-GCM of `msg` under `kek` with a random nonce: nonce, then
/// ciphertext and tag.
pub(super) fn seal(kek: &Kek, aad: &[u8], msg: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = rand::rng().random();
    let cipher = Aes256Gcm::new(&(*kek.key).into());
    // Keys and secrets are far below AES-GCM's limits.
    let sealed = cipher
        .encrypt(&nonce.into(), Payload { msg, aad })
        .unwrap_or_default();
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    bytes
}

/// Opens what [`seal`] made; `None` when the key, the associated data or
/// the bytes do not match.
pub(super) fn open(kek: &Kek, aad: &[u8], bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if bytes.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let cipher = Aes256Gcm::new(&(*kek.key).into());
    let payload = Payload { msg: sealed, aad };
    cipher
        .decrypt(&nonce.into(), payload)
        .ok()
        .map(Zeroizing::new)
}

/// `label`, then the key id and `context`, each prefixed by its length.
pub(super) fn labelled_aad(label: &[u8], key_id: &KeyId, context: &str) -> Vec<u8> {
    let mut aad = label.to_vec();
    for part in [key_id.0.as_bytes(), context.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

//! [`KeyRing`]: the loaded KEKs, the current one for what is made new, and
//! the keyed hashes the node keeps: consent receipts' signatures, API
//! keys' hashes and dashboard sessions' tags, each under its own label.

use super::error::KeyError;
use super::kek::{Kek, KeyId, MacPurpose, mac};

/// The loaded KEKs; the current one wraps new recordings' keys.
#[derive(Debug)]
pub struct KeyRing {
    keks: Vec<Kek>,
    current: usize,
}

impl KeyRing {
    /// `keks` with `current` (a key id among them) for new recordings.
    pub fn new(keks: Vec<Kek>, current: &str) -> Result<Self, KeyError> {
        if keks.is_empty() {
            return Err(KeyError::Empty);
        }
        for (i, kek) in keks.iter().enumerate() {
            if keks[..i].iter().any(|other| other.id == kek.id) {
                return Err(KeyError::Duplicate(kek.id.0.clone()));
            }
        }
        let current = keks
            .iter()
            .position(|k| k.id.0 == current)
            .ok_or_else(|| KeyError::UnknownKeyId(current.to_owned()))?;
        Ok(Self { keks, current })
    }

    pub fn current_id(&self) -> &KeyId {
        &self.current().id
    }

    /// HMAC-SHA256 of `message` under the current KEK (for consent
    /// receipts): the key id and the tag.
    pub fn sign(&self, message: &[u8]) -> (KeyId, [u8; 32]) {
        self.tag(MacPurpose::ConsentReceipt, message)
    }

    /// Checks a tag made by [`KeyRing::sign`] with the KEK `key_id` names.
    pub fn verify(&self, key_id: &str, message: &[u8], tag: &[u8]) -> Result<bool, KeyError> {
        self.check(MacPurpose::ConsentReceipt, key_id, message, tag)
    }

    /// The keyed hash an API key is stored as, under the current KEK.
    pub fn hash_api_key(&self, key: &[u8]) -> (KeyId, [u8; 32]) {
        self.tag(MacPurpose::ApiKey, key)
    }

    /// Checks an API key against a hash made by [`KeyRing::hash_api_key`].
    pub fn check_api_key(&self, key_id: &str, key: &[u8], hash: &[u8]) -> Result<bool, KeyError> {
        self.check(MacPurpose::ApiKey, key_id, key, hash)
    }

    /// HMAC-SHA256 of a dashboard session's text under the current KEK.
    pub fn sign_session(&self, message: &[u8]) -> (KeyId, [u8; 32]) {
        self.tag(MacPurpose::Session, message)
    }

    /// Checks a tag made by [`KeyRing::sign_session`].
    pub fn check_session(
        &self,
        key_id: &str,
        message: &[u8],
        tag: &[u8],
    ) -> Result<bool, KeyError> {
        self.check(MacPurpose::Session, key_id, message, tag)
    }

    /// The loaded KEK `key_id` names.
    pub(super) fn kek(&self, key_id: &str) -> Result<&Kek, KeyError> {
        self.keks
            .iter()
            .find(|k| k.id.0 == key_id)
            .ok_or_else(|| KeyError::UnknownKeyId(key_id.to_owned()))
    }

    /// The KEK new keys, tags and seals are made under.
    pub(super) fn current(&self) -> &Kek {
        &self.keks[self.current]
    }

    fn tag(&self, purpose: MacPurpose, message: &[u8]) -> (KeyId, [u8; 32]) {
        let kek = self.current();
        (kek.id.clone(), mac(kek, purpose, message))
    }

    fn check(
        &self,
        purpose: MacPurpose,
        key_id: &str,
        message: &[u8],
        tag: &[u8],
    ) -> Result<bool, KeyError> {
        let kek = self.kek(key_id)?;
        Ok(crate::privacy::constant_time_eq(
            &mac(kek, purpose, message),
            tag,
        ))
    }
}

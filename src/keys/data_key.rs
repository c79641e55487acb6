//! Recording keys: a fresh random 256-bit data key per recording, wrapped
//! under the current KEK.
//!
//! The wrapped data key is what the database keeps (never the blob's
//! neighbour): deleting it makes every copy of the recording unreadable.
//! Wrapping is AES-256-GCM under the KEK with a random 96-bit nonce and the
//! key id and recording id as associated data, so a wrapped key moved to
//! another recording or relabelled with another key id does not open.

use std::fmt;

use rand::RngExt as _;
use zeroize::Zeroize;

use super::error::KeyError;
use super::kek::{KEY_LEN, KeyId, NONCE_LEN, labelled_aad, open, seal};
use super::ring::KeyRing;

/// Domain separation for the wrap's associated data.
const WRAP_CONTEXT: &[u8] = b"callgate recording data key v1";

/// A recording's own key.
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    pub fn generate() -> Self {
        Self(rand::rng().random())
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A key of `byte` repeated: reproducible recordings for the fuzzer.
    #[cfg(any(feature = "fuzzing", test))]
    pub(crate) fn fixed(byte: u8) -> Self {
        Self([byte; KEY_LEN])
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// A data key wrapped under a KEK: what the database stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub key_id: KeyId,
    /// Nonce, then the encrypted key and its tag.
    pub bytes: Vec<u8>,
}

impl KeyRing {
    /// Wraps `data_key` of `recording_id` under the current KEK.
    pub fn wrap(&self, data_key: &DataKey, recording_id: &str) -> WrappedKey {
        let kek = self.current();
        let aad = wrap_aad(&kek.id, recording_id);
        WrappedKey {
            key_id: kek.id.clone(),
            bytes: seal(kek, &aad, data_key.expose()),
        }
    }

    /// Opens a wrapped key with the KEK its key id names.
    pub fn unwrap(&self, wrapped: &WrappedKey, recording_id: &str) -> Result<DataKey, KeyError> {
        let kek = self.kek(&wrapped.key_id.0)?;
        let failed = || KeyError::Unwrap {
            key_id: kek.id.0.clone(),
        };
        if wrapped.bytes.len() != NONCE_LEN + KEY_LEN + 16 {
            return Err(failed());
        }
        let aad = wrap_aad(&kek.id, recording_id);
        let plain = open(kek, &aad, &wrapped.bytes).ok_or_else(failed)?;
        let key: [u8; KEY_LEN] = plain.as_slice().try_into().map_err(|_| failed())?;
        Ok(DataKey(key))
    }
}

fn wrap_aad(key_id: &KeyId, recording_id: &str) -> Vec<u8> {
    labelled_aad(WRAP_CONTEXT, key_id, recording_id)
}

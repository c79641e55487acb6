//! Sealed secrets: a secret the node must read back (a webhook's signing
//! secret) kept only as `sealed:v1:<key id>:<base64>`, opened with the KEK
//! it names.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use super::error::KeyError;
use super::kek::{KeyId, labelled_aad, open, seal};
use super::ring::KeyRing;

/// Domain separation for a sealed secret's associated data.
const SEAL_CONTEXT: &[u8] = b"callgate sealed secret v1";
/// How a sealed secret's text starts: `sealed:v1:<key id>:<base64>`.
pub const SEALED_PREFIX: &str = "sealed:v1:";

impl KeyRing {
    /// Seals `secret`, one the node must read back (a webhook's signing
    /// secret), for `context` (whose it is) under the current KEK:
    /// AES-256-GCM with a random nonce, the key id and `context` as
    /// associated data, as the text `sealed:v1:<key id>:<base64>`. A sealed
    /// secret copied to another context, or relabelled, does not open.
    pub fn seal_secret(&self, secret: &str, context: &str) -> String {
        let kek = self.current();
        let aad = seal_aad(&kek.id, context);
        let bytes = seal(kek, &aad, secret.as_bytes());
        format!("{SEALED_PREFIX}{}:{}", kek.id.0, BASE64.encode(bytes))
    }

    /// Opens a secret sealed by [`KeyRing::seal_secret`] for `context`,
    /// with the KEK its text names.
    pub fn open_secret(&self, sealed: &str, context: &str) -> Result<Zeroizing<String>, KeyError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(KeyError::NotSealed)?;
        let (key_id, text) = rest.split_once(':').ok_or(KeyError::NotSealed)?;
        let kek = self.kek(key_id)?;
        let failed = || KeyError::Unseal {
            key_id: kek.id.0.clone(),
        };
        let bytes = BASE64.decode(text).map_err(|_| failed())?;
        let aad = seal_aad(&kek.id, context);
        let plain = open(kek, &aad, &bytes).ok_or_else(failed)?;
        let text = std::str::from_utf8(&plain).map_err(|_| failed())?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

fn seal_aad(key_id: &KeyId, context: &str) -> Vec<u8> {
    labelled_aad(SEAL_CONTEXT, key_id, context)
}

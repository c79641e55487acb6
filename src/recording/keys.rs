//! Recording keys: a fresh random 256-bit data key per recording, wrapped
//! under a key-encryption key (KEK) named by a key id.
//!
//! The wrapped data key is what the database keeps (never the blob's
//! neighbour): deleting it makes every copy of the recording unreadable.
//! Wrapping is AES-256-GCM under the KEK with a random 96-bit nonce and the
//! key id and recording id as associated data, so a wrapped key moved to
//! another recording or relabelled with another key id does not open.
//!
//! KEKs come from files or the environment, never from the config text,
//! as one line of standard base64 (32 bytes), the form `callgate keys
//! generate` prints. Several can be loaded at once: new recordings use the
//! current one, older recordings still open with theirs (rotation).
//!
//! Invariants: key bytes are zeroed when dropped and never printed (`Debug`
//! shows the key id only).

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngExt as _;
use zeroize::{Zeroize, Zeroizing};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// Domain separation for the wrap's associated data.
const WRAP_CONTEXT: &[u8] = b"callgate recording data key v1";
/// Domain separation for a sealed secret's associated data.
const SEAL_CONTEXT: &[u8] = b"callgate sealed secret v1";
/// How a sealed secret's text starts: `sealed:v1:<key id>:<base64>`.
pub const SEALED_PREFIX: &str = "sealed:v1:";

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
    id: KeyId,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({}, [redacted])", self.id)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key {id}: not base64 of {KEY_LEN} bytes")]
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

/// A data key wrapped under a KEK: what the database stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub key_id: KeyId,
    /// Nonce, then the encrypted key and its tag.
    pub bytes: Vec<u8>,
}

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
        &self.keks[self.current].id
    }

    /// Wraps `data_key` of `recording_id` under the current KEK.
    pub fn wrap(&self, data_key: &DataKey, recording_id: &str) -> WrappedKey {
        let kek = &self.keks[self.current];
        let aad = wrap_aad(&kek.id, recording_id);
        WrappedKey {
            key_id: kek.id.clone(),
            bytes: seal(kek, &aad, data_key.expose()),
        }
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

    fn tag(&self, purpose: MacPurpose, message: &[u8]) -> (KeyId, [u8; 32]) {
        let kek = &self.keks[self.current];
        (kek.id.clone(), mac(kek, purpose, message))
    }

    fn check(
        &self,
        purpose: MacPurpose,
        key_id: &str,
        message: &[u8],
        tag: &[u8],
    ) -> Result<bool, KeyError> {
        let kek = self
            .keks
            .iter()
            .find(|k| k.id.0 == key_id)
            .ok_or_else(|| KeyError::UnknownKeyId(key_id.to_owned()))?;
        Ok(crate::privacy::constant_time_eq(
            &mac(kek, purpose, message),
            tag,
        ))
    }

    /// Opens a wrapped key with the KEK its key id names.
    pub fn unwrap(&self, wrapped: &WrappedKey, recording_id: &str) -> Result<DataKey, KeyError> {
        let kek = self
            .keks
            .iter()
            .find(|k| k.id == wrapped.key_id)
            .ok_or_else(|| KeyError::UnknownKeyId(wrapped.key_id.0.clone()))?;
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

impl KeyRing {
    /// Seals `secret`, one the node must read back (a webhook's signing
    /// secret), for `context` (whose it is) under the current KEK:
    /// AES-256-GCM with a random nonce, the key id and `context` as
    /// associated data, as the text `sealed:v1:<key id>:<base64>`. A sealed
    /// secret copied to another context, or relabelled, does not open.
    pub fn seal_secret(&self, secret: &str, context: &str) -> String {
        let kek = &self.keks[self.current];
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
        let kek = self
            .keks
            .iter()
            .find(|k| k.id.0 == key_id)
            .ok_or_else(|| KeyError::UnknownKeyId(key_id.to_owned()))?;
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

/// What a KEK's HMAC is for; each purpose has its own label.
#[derive(Clone, Copy)]
enum MacPurpose {
    ConsentReceipt,
    ApiKey,
    Session,
}

/// Domain separation keeps a signature from ever equalling a wrap, a data
/// key or a tag of another purpose made with the same KEK.
fn mac(kek: &Kek, purpose: MacPurpose, message: &[u8]) -> [u8; 32] {
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
fn seal(kek: &Kek, aad: &[u8], msg: &[u8]) -> Vec<u8> {
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
fn open(kek: &Kek, aad: &[u8], bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
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

fn wrap_aad(key_id: &KeyId, recording_id: &str) -> Vec<u8> {
    labelled_aad(WRAP_CONTEXT, key_id, recording_id)
}

fn seal_aad(key_id: &KeyId, context: &str) -> Vec<u8> {
    labelled_aad(SEAL_CONTEXT, key_id, context)
}

/// `label`, then the key id and `context`, each prefixed by its length.
fn labelled_aad(label: &[u8], key_id: &KeyId, context: &str) -> Vec<u8> {
    let mut aad = label.to_vec();
    for part in [key_id.0.as_bytes(), context.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(id: &str) -> Kek {
        Kek::from_text(id, &generate_kek_text()).unwrap()
    }

    #[test]
    fn a_wrapped_key_opens_only_with_its_kek_and_recording() {
        let ring = KeyRing::new(vec![kek("k1")], "k1").unwrap();
        let key = DataKey::generate();
        let wrapped = ring.wrap(&key, "rec-1");
        assert_eq!(wrapped.key_id.0, "k1");
        let opened = ring.unwrap(&wrapped, "rec-1").unwrap();
        assert_eq!(opened.expose(), key.expose());
        assert_eq!(
            ring.unwrap(&wrapped, "rec-2").unwrap_err(),
            KeyError::Unwrap {
                key_id: "k1".into()
            }
        );
        let other = KeyRing::new(vec![kek("k1")], "k1").unwrap();
        assert!(matches!(
            other.unwrap(&wrapped, "rec-1"),
            Err(KeyError::Unwrap { .. })
        ));
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_kek_and_context() {
        let ring = KeyRing::new(vec![kek("k1")], "k1").unwrap();
        let sealed = ring.seal_secret("webhook secret", "tenant-a");
        assert!(sealed.starts_with("sealed:v1:k1:"), "{sealed}");
        assert!(!sealed.contains("webhook secret"));
        assert_ne!(ring.seal_secret("webhook secret", "tenant-a"), sealed);
        assert_eq!(
            ring.open_secret(&sealed, "tenant-a").unwrap().as_str(),
            "webhook secret"
        );
        assert!(matches!(
            ring.open_secret(&sealed, "tenant-b"),
            Err(KeyError::Unseal { .. })
        ));
        let other = KeyRing::new(vec![kek("k1")], "k1").unwrap();
        assert!(matches!(
            other.open_secret(&sealed, "tenant-a"),
            Err(KeyError::Unseal { .. })
        ));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(ring.open_secret(&tampered, "tenant-a").is_err());
        let relabelled = sealed.replacen(":k1:", ":k2:", 1);
        assert!(matches!(
            ring.open_secret(&relabelled, "tenant-a"),
            Err(KeyError::UnknownKeyId(_))
        ));
        for not_sealed in ["plain", "sealed:v1:", "sealed:v1:k1", "sealed:v1:k1:%%"] {
            assert!(
                ring.open_secret(not_sealed, "tenant-a").is_err(),
                "{not_sealed}"
            );
        }
    }

    #[test]
    fn rotation_wraps_with_the_new_key_and_still_opens_old_ones() {
        let old_text = generate_kek_text();
        let old_ring =
            KeyRing::new(vec![Kek::from_text("old", &old_text).unwrap()], "old").unwrap();
        let key = DataKey::generate();
        let old_wrapped = old_ring.wrap(&key, "rec-1");

        let ring = KeyRing::new(
            vec![Kek::from_text("old", &old_text).unwrap(), kek("new")],
            "new",
        )
        .unwrap();
        assert_eq!(ring.current_id().0, "new");
        assert_eq!(ring.wrap(&key, "rec-2").key_id.0, "new");
        assert_eq!(
            ring.unwrap(&old_wrapped, "rec-1").unwrap().expose(),
            key.expose()
        );
        let retired = KeyRing::new(vec![kek("new")], "new").unwrap();
        assert_eq!(
            retired.unwrap(&old_wrapped, "rec-1").unwrap_err(),
            KeyError::UnknownKeyId("old".into())
        );
    }

    #[test]
    fn bad_key_text_ids_and_rings_are_refused() {
        assert!(matches!(
            Kek::from_text("k", "not base64!"),
            Err(KeyError::BadKeyText { .. })
        ));
        assert!(matches!(
            Kek::from_text("k", &BASE64.encode([0u8; 16])),
            Err(KeyError::BadKeyText { .. })
        ));
        assert!(matches!(
            Kek::from_text("has space", &generate_kek_text()),
            Err(KeyError::BadKeyId(_))
        ));
        assert_eq!(KeyRing::new(vec![], "x").unwrap_err(), KeyError::Empty);
        assert_eq!(
            KeyRing::new(vec![kek("a"), kek("a")], "a").unwrap_err(),
            KeyError::Duplicate("a".into())
        );
        assert_eq!(
            KeyRing::new(vec![kek("a")], "b").unwrap_err(),
            KeyError::UnknownKeyId("b".into())
        );
    }

    #[test]
    fn keys_never_print() {
        let text = generate_kek_text();
        let kek = Kek::from_text("k1", &text).unwrap();
        let shown = format!("{kek:?} {:?}", DataKey::generate());
        assert!(!shown.contains(text.as_str()), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn each_purpose_tags_the_same_text_differently() {
        let ring = KeyRing::new(vec![kek("k1")], "k1").unwrap();
        let text = b"cg_0123456789abcdef_secret";
        let (_, receipt) = ring.sign(text);
        let (_, api_key) = ring.hash_api_key(text);
        let (id, session) = ring.sign_session(text);
        assert!(receipt != api_key && api_key != session && session != receipt);
        assert!(ring.check_session(&id.0, text, &session).unwrap());
        assert!(!ring.check_session(&id.0, text, &api_key).unwrap());
        assert!(!ring.check_api_key(&id.0, text, &session).unwrap());
    }
}

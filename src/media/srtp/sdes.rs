//! SDES-keyed SRTP for the trunk leg: AES_CM_128_HMAC_SHA1_80 with keys
//! exchanged in `a=crypto` lines (RFC 4568), on this node's SRTP
//! ([`super`]).
//!
//! Invariants:
//! - Key material is 16 key + 14 salt bytes, generated from the operating
//!   system's CSPRNG via the thread RNG, and never printed: `Debug` is
//!   redacted; it is wiped when dropped.
//! - Inbound packets pass the 80-bit tag and a replay window (RFC 3711
//!   §3.3.2) before a single payload byte is used, and only then create
//!   per-stream state.

use bytes::{Bytes, BytesMut};
use rand::Rng;
use zeroize::Zeroize;

use super::context::{SrtpReceiver, SrtpSender};
use super::error::SrtpError;
use super::key::{SrtpMasterKey, SrtpProfile};

const KEY_LEN: usize = 16;
const SALT_LEN: usize = 14;
const PROFILE: SrtpProfile = SrtpProfile::Aes128CmHmacSha1_80;

/// A master key and salt for one direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeyMaterial {
    key: [u8; KEY_LEN],
    salt: [u8; SALT_LEN],
}

impl std::fmt::Debug for SrtpKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrtpKeyMaterial(<redacted>)")
    }
}

impl SrtpKeyMaterial {
    /// Length of the decoded `inline:` key parameter.
    pub const LEN: usize = KEY_LEN + SALT_LEN;

    /// Fresh random material for our side of a call.
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self::from_array(&bytes)
    }

    /// From the 30 bytes of a base64-decoded `a=crypto` inline key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SrtpError> {
        let array: &[u8; Self::LEN] = bytes.try_into().map_err(|_| SrtpError::BadKeyLength)?;
        Ok(Self::from_array(array))
    }

    fn from_array(bytes: &[u8; Self::LEN]) -> Self {
        let (key, salt) = bytes.split_at(KEY_LEN);
        let mut material = Self {
            key: [0; KEY_LEN],
            salt: [0; SALT_LEN],
        };
        material.key.copy_from_slice(key);
        material.salt.copy_from_slice(salt);
        material
    }

    /// Key then salt, as the `inline:` parameter encodes them.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..KEY_LEN].copy_from_slice(&self.key);
        out[KEY_LEN..].copy_from_slice(&self.salt);
        out
    }

    /// The master key this material keys, for a sender or a receiver.
    pub fn master_key(&self) -> Result<SrtpMasterKey, SrtpError> {
        SrtpMasterKey::new(PROFILE, &self.key, &self.salt)
    }
}

impl Drop for SrtpKeyMaterial {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

/// Our outbound transform keyed with `ours`.
pub fn sender(ours: &SrtpKeyMaterial) -> Result<SrtpSender, SrtpError> {
    Ok(SrtpSender::new(&ours.master_key()?))
}

/// The inbound transform keyed with the peer's `theirs`.
pub fn receiver(theirs: &SrtpKeyMaterial) -> Result<SrtpReceiver, SrtpError> {
    Ok(SrtpReceiver::new(&theirs.master_key()?))
}

/// Verifies and decrypts one SRTP datagram into a plain RTP packet.
pub fn unprotect_rtp(receiver: &mut SrtpReceiver, datagram: &[u8]) -> Result<Bytes, SrtpError> {
    let mut buffer = BytesMut::from(datagram);
    let len = receiver.unprotect_rtp(&mut buffer)?;
    buffer.truncate(len);
    Ok(buffer.freeze())
}

/// Verifies and decrypts one SRTCP datagram into a plain RTCP compound.
pub fn unprotect_rtcp(receiver: &mut SrtpReceiver, datagram: &[u8]) -> Result<Bytes, SrtpError> {
    let mut buffer = BytesMut::from(datagram);
    let len = receiver.unprotect_rtcp(&mut buffer)?;
    buffer.truncate(len);
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_round_trips_and_checks_length() {
        let key = SrtpKeyMaterial::generate();
        let again = SrtpKeyMaterial::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(key, again);
        assert!(matches!(
            SrtpKeyMaterial::from_bytes(&[0; 29]),
            Err(SrtpError::BadKeyLength)
        ));
    }

    #[test]
    fn key_material_never_prints() {
        let key = SrtpKeyMaterial::from_bytes(&[0x41; 30]).unwrap();
        assert_eq!(format!("{key:?}"), "SrtpKeyMaterial(<redacted>)");
    }

    #[test]
    fn sdes_keys_protect_and_unprotect_across_the_two_ends() {
        let ours = SrtpKeyMaterial::generate();
        let mut out = sender(&ours).unwrap();
        let mut peer = receiver(&ours).unwrap();
        let mut packet = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        packet.extend_from_slice(&[0x55; 160]);
        let plain = packet.clone();
        out.protect_rtp(&mut packet).unwrap();
        assert_ne!(packet[12..172], plain[12..]);
        assert_eq!(
            unprotect_rtp(&mut peer, &packet).unwrap().as_ref(),
            &plain[..]
        );
        assert!(matches!(
            unprotect_rtp(&mut peer, &packet),
            Err(SrtpError::ReplayedPacket)
        ));
        let mut tampered = plain.clone();
        tampered[3] = 2;
        out.protect_rtp(&mut tampered).unwrap();
        tampered[20] ^= 1;
        assert!(matches!(
            unprotect_rtp(&mut peer, &tampered),
            Err(SrtpError::AuthenticationFailed)
        ));
    }
}

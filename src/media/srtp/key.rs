//! Keys: the [`SrtpProfile`]s we negotiate, one direction's
//! [`SrtpMasterKey`], and [`keys_from_dtls`], which splits what DTLS
//! exports into ours and the peer's.

use std::fmt;

use zeroize::Zeroize;

use super::error::SrtpError;

/// Master key length of both profiles (AES-128).
pub(crate) const KEY_LEN: usize = 16;
/// HMAC-SHA1-80 tag.
pub(crate) const CM_TAG_LEN: usize = 10;
/// AES-GCM tag.
pub(crate) const GCM_TAG_LEN: usize = 16;
/// The E flag and 31-bit SRTCP index after an SRTCP packet.
pub(crate) const SRTCP_TRAILER_LEN: usize = 4;

/// The DTLS-SRTP protection profiles we negotiate (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    Aes128CmHmacSha1_80,
    AeadAes128Gcm,
}

impl SrtpProfile {
    pub fn master_key_len(self) -> usize {
        KEY_LEN
    }

    pub fn master_salt_len(self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => 14,
            SrtpProfile::AeadAes128Gcm => 12,
        }
    }

    /// Tag bytes appended to an SRTP packet.
    pub fn rtp_overhead(self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => CM_TAG_LEN,
            SrtpProfile::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// Tag plus the 4-byte E|SRTCP-index word appended to an SRTCP packet.
    pub fn rtcp_overhead(self) -> usize {
        self.rtp_overhead() + SRTCP_TRAILER_LEN
    }

    /// Length of the DTLS-SRTP exported keying material (RFC 5764 §4.2): 2*(key+salt)
    pub fn keying_material_len(self) -> usize {
        2 * (self.master_key_len() + self.master_salt_len())
    }
}

/// A master key + salt for one direction; Debug prints "<redacted>", zeroized on drop.
pub struct SrtpMasterKey {
    pub(super) profile: SrtpProfile,
    pub(super) key: [u8; KEY_LEN],
    /// Sized for the longer (AES-CM) salt; only `profile.master_salt_len()` bytes are used.
    salt: [u8; 14],
}

impl SrtpMasterKey {
    pub fn new(profile: SrtpProfile, key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> {
        if key.len() != profile.master_key_len() || salt.len() != profile.master_salt_len() {
            return Err(SrtpError::BadKeyLength);
        }
        let mut master = SrtpMasterKey {
            profile,
            key: [0; KEY_LEN],
            salt: [0; 14],
        };
        master.key.copy_from_slice(key);
        master.salt[..salt.len()].copy_from_slice(salt);
        Ok(master)
    }

    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    pub(super) fn salt(&self) -> &[u8] {
        &self.salt[..self.profile.master_salt_len()]
    }
}

impl fmt::Debug for SrtpMasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SrtpMasterKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

/// Splits DTLS-exported keying material (client_key | server_key | client_salt | server_salt, RFC 5764 §4.2)
/// into (local, remote) for our role.
pub fn keys_from_dtls(
    profile: SrtpProfile,
    material: &[u8],
    we_are_dtls_client: bool,
) -> Result<(SrtpMasterKey, SrtpMasterKey), SrtpError> {
    if material.len() != profile.keying_material_len() {
        return Err(SrtpError::BadKeyLength);
    }
    let (keys, salts) = material.split_at(2 * profile.master_key_len());
    let (client_key, server_key) = keys.split_at(profile.master_key_len());
    let (client_salt, server_salt) = salts.split_at(profile.master_salt_len());
    let client = SrtpMasterKey::new(profile, client_key, client_salt)?;
    let server = SrtpMasterKey::new(profile, server_key, server_salt)?;
    Ok(if we_are_dtls_client {
        (client, server)
    } else {
        (server, client)
    })
}

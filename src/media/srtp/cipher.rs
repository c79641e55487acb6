//! Session-key derivation (the AES-CM PRF of RFC 3711 §4.3) and the two packet transforms:
//! AES_CM_128_HMAC_SHA1_80 (RFC 3711) and AEAD_AES_128_GCM (RFC 7714).
//!
//! Everything here works on a caller-supplied `&mut [u8]` that already has room for the
//! trailer, so nothing is allocated per packet. Key schedules are computed once, in
//! [`SessionCipher::new`]; raw derived key bytes only ever live in [`Zeroizing`] buffers.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use hmac012::{Hmac, Mac};
use ring::aead;
use sha1::Sha1;
use zeroize::{Zeroize, Zeroizing};

use super::error::SrtpError;
use super::key::{CM_TAG_LEN, GCM_TAG_LEN, KEY_LEN, SRTCP_TRAILER_LEN, SrtpMasterKey, SrtpProfile};

/// RFC 3711 §4.2: HMAC-SHA1 session authentication key.
const CM_AUTH_KEY_LEN: usize = 20;
/// RFC 3711 §4.3.1: the AES-CM session salt (112 bits).
const CM_SALT_LEN: usize = 14;
/// RFC 7714 §8.1: the GCM session salt (96 bits), also the nonce length.
const GCM_SALT_LEN: usize = 12;
const SRTCP_E_FLAG: u32 = 0x8000_0000;
/// Fixed RTCP header (first word + sender SSRC), used as GCM associated data.
pub(crate) const RTCP_HEADER_LEN: usize = 8;

/// RFC 3711 §4.3.1 key derivation labels.
mod label {
    pub const SRTP_ENCRYPTION: u8 = 0x00;
    pub const SRTP_AUTH: u8 = 0x01;
    pub const SRTP_SALT: u8 = 0x02;
    pub const SRTCP_ENCRYPTION: u8 = 0x03;
    pub const SRTCP_AUTH: u8 = 0x04;
    pub const SRTCP_SALT: u8 = 0x05;
}

/// The AES-CM PRF with key_derivation_rate 0 (RFC 3711 §4.3.1, §4.3.3): the keystream of
/// AES-CM under the master key, with IV = (master_salt XOR label·2^48)·2^16.
///
/// A 12-byte GCM master salt occupies the same leading octets of the 14-byte salt field
/// and is padded with zeros, which is what libsrtp and webrtc-srtp do for RFC 7714 §11.
pub(crate) fn aes_cm_prf(
    master_key: &[u8; KEY_LEN],
    master_salt: &[u8],
    label: u8,
    out: &mut [u8],
) {
    let prf = Aes128::new(master_key.into());
    let mut input = [0u8; 16];
    input[..master_salt.len()].copy_from_slice(master_salt);
    // The label sits just above the 48-bit "index DIV kdr" field, which is zero here.
    input[7] ^= label;
    for (counter, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = input;
        block[14..].copy_from_slice(&(counter as u16).to_be_bytes());
        prf.encrypt_block((&mut block).into());
        chunk.copy_from_slice(&block[..chunk.len()]);
        block.zeroize();
    }
    input.zeroize();
}

/// Keys of one AES-CM/HMAC-SHA1 direction half (SRTP or SRTCP).
pub(crate) struct CmKeys {
    /// Expanded key schedule; the `aes` crate's `zeroize` feature wipes it on drop.
    aes: Aes128,
    /// HMAC-SHA1 keyed once: each tag clones this state (the inner and
    /// outer pads already absorbed). RustCrypto's SHA-1 uses the CPU's SHA
    /// instructions where present, which ring's does not: HMAC is most of
    /// this profile's cost. The hash state cannot be zeroized from outside;
    /// it is freed with the context.
    mac: Hmac<Sha1>,
    salt: [u8; CM_SALT_LEN],
}

impl CmKeys {
    fn derive(master: &SrtpMasterKey, enc: u8, auth: u8, salt: u8) -> Self {
        let mut enc_key = Zeroizing::new([0u8; KEY_LEN]);
        let mut auth_key = Zeroizing::new([0u8; CM_AUTH_KEY_LEN]);
        let mut session_salt = [0u8; CM_SALT_LEN];
        aes_cm_prf(&master.key, master.salt(), enc, &mut enc_key[..]);
        aes_cm_prf(&master.key, master.salt(), auth, &mut auth_key[..]);
        aes_cm_prf(&master.key, master.salt(), salt, &mut session_salt);
        let keys = CmKeys {
            aes: Aes128::new((&*enc_key).into()),
            mac: keyed_mac(&auth_key[..]),
            salt: session_salt,
        };
        // Arrays are Copy: the struct got a copy, so wipe the original on the stack too.
        session_salt.zeroize();
        keys
    }

    /// RFC 3711 §4.1.1: IV = (k_s·2^16) XOR (SSRC·2^64) XOR (index·2^16).
    fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
        iv[8..14].copy_from_slice(&index.to_be_bytes()[2..]);
        for (byte, salt) in iv.iter_mut().zip(self.salt) {
            *byte ^= salt;
        }
        iv
    }

    /// AES-CM is its own inverse: XORs the keystream for (ssrc, index) into `data`.
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let iv = self.iv(ssrc, index);
        // Borrowing the precomputed schedule: no key expansion, no copy, no allocation.
        let core =
            ctr::CtrCore::<&Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(&self.aes, (&iv).into());
        let mut ctr = aes::cipher::StreamCipherCoreWrapper::from_core(core);
        ctr.apply_keystream(data);
    }

    /// HMAC-SHA1 over `authenticated || suffix`, truncated to 80 bits (RFC 3711 §4.2.1).
    fn tag(&self, authenticated: &[u8], suffix: &[u8]) -> [u8; CM_TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(authenticated);
        mac.update(suffix);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; CM_TAG_LEN];
        tag.copy_from_slice(&full[..CM_TAG_LEN]);
        tag
    }
}

/// HMAC accepts a key of any length, so this cannot fail.
fn keyed_mac(key: &[u8]) -> Hmac<Sha1> {
    match <Hmac<Sha1> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac takes keys of any length"),
    }
}

/// Keys of one AEAD_AES_128_GCM direction half (SRTP or SRTCP).
pub(crate) struct GcmKeys {
    /// ring's expanded key; like `hmac::Key` it cannot be zeroized from outside.
    aead: aead::LessSafeKey,
    salt: [u8; GCM_SALT_LEN],
}

impl GcmKeys {
    fn derive(master: &SrtpMasterKey, enc: u8, salt: u8) -> Self {
        let mut enc_key = Zeroizing::new([0u8; KEY_LEN]);
        let mut session_salt = [0u8; GCM_SALT_LEN];
        aes_cm_prf(&master.key, master.salt(), enc, &mut enc_key[..]);
        aes_cm_prf(&master.key, master.salt(), salt, &mut session_salt);
        let keys = Self::from_session_keys(&enc_key, session_salt);
        session_salt.zeroize();
        keys
    }

    fn from_session_keys(key: &[u8; KEY_LEN], salt: [u8; GCM_SALT_LEN]) -> Self {
        let unbound = aead::UnboundKey::new(&aead::AES_128_GCM, key)
            .expect("a 16-byte key is always valid for AES-128-GCM");
        GcmKeys {
            aead: aead::LessSafeKey::new(unbound),
            salt,
        }
    }

    /// RFC 7714 §8.1 / §9.1: salt XOR (00 00 || SSRC || `tail`), `tail` being ROC || SEQ
    /// for SRTP and 00 00 || index for SRTCP (both 48 bits, big endian).
    fn nonce(&self, ssrc: u32, tail: u64) -> aead::Nonce {
        let mut iv = [0u8; GCM_SALT_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..].copy_from_slice(&tail.to_be_bytes()[2..]);
        for (byte, salt) in iv.iter_mut().zip(self.salt) {
            *byte ^= salt;
        }
        aead::Nonce::assume_unique_for_key(iv)
    }
}

impl Drop for CmKeys {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl Drop for GcmKeys {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

/// The session keys of one direction, for both SRTP and SRTCP.
#[allow(
    clippy::large_enum_variant,
    reason = "one per sender/receiver, built once; boxing would add a pointer chase per packet"
)]
pub(crate) enum SessionCipher {
    Cm { rtp: CmKeys, rtcp: CmKeys },
    Gcm { rtp: GcmKeys, rtcp: GcmKeys },
}

impl SessionCipher {
    pub(crate) fn new(master: &SrtpMasterKey) -> Self {
        use label::*;
        match master.profile {
            SrtpProfile::Aes128CmHmacSha1_80 => SessionCipher::Cm {
                rtp: CmKeys::derive(master, SRTP_ENCRYPTION, SRTP_AUTH, SRTP_SALT),
                rtcp: CmKeys::derive(master, SRTCP_ENCRYPTION, SRTCP_AUTH, SRTCP_SALT),
            },
            SrtpProfile::AeadAes128Gcm => SessionCipher::Gcm {
                rtp: GcmKeys::derive(master, SRTP_ENCRYPTION, SRTP_SALT),
                rtcp: GcmKeys::derive(master, SRTCP_ENCRYPTION, SRTCP_SALT),
            },
        }
    }

    /// RFC 7714 §16/§17 vectors are given as session keys, below the KDF.
    #[cfg(test)]
    pub(crate) fn gcm_from_session_keys(key: &[u8; KEY_LEN], salt: [u8; GCM_SALT_LEN]) -> Self {
        SessionCipher::Gcm {
            rtp: GcmKeys::from_session_keys(key, salt),
            rtcp: GcmKeys::from_session_keys(key, salt),
        }
    }

    /// `buf` is header | payload | room for the tag. Encrypts the payload, writes the tag.
    pub(crate) fn seal_rtp(&self, buf: &mut [u8], header_len: usize, ssrc: u32, index: u64) {
        match self {
            SessionCipher::Cm { rtp, .. } => {
                let (body, tag) = buf.split_at_mut(buf.len() - CM_TAG_LEN);
                rtp.apply_keystream(ssrc, index, &mut body[header_len..]);
                let roc = ((index >> 16) as u32).to_be_bytes();
                tag.copy_from_slice(&rtp.tag(body, &roc));
            }
            SessionCipher::Gcm { rtp, .. } => {
                let (header, rest) = buf.split_at_mut(header_len);
                let (payload, tag) = rest.split_at_mut(rest.len() - GCM_TAG_LEN);
                let sealed = rtp
                    .aead
                    .seal_in_place_separate_tag(
                        rtp.nonce(ssrc, index),
                        aead::Aad::from(&*header),
                        payload,
                    )
                    .expect("an RTP payload is far below the GCM length limit");
                tag.copy_from_slice(sealed.as_ref());
            }
        }
    }

    /// `buf` is header | ciphertext | tag. Verifies the tag, then decrypts the payload.
    pub(crate) fn open_rtp(
        &self,
        buf: &mut [u8],
        header_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<(), SrtpError> {
        match self {
            SessionCipher::Cm { rtp, .. } => {
                let (body, tag) = buf.split_at_mut(buf.len() - CM_TAG_LEN);
                let roc = ((index >> 16) as u32).to_be_bytes();
                if !ct_eq(&rtp.tag(body, &roc), tag) {
                    return Err(SrtpError::AuthenticationFailed);
                }
                rtp.apply_keystream(ssrc, index, &mut body[header_len..]);
                Ok(())
            }
            SessionCipher::Gcm { rtp, .. } => {
                let (header, rest) = buf.split_at_mut(header_len);
                rtp.aead
                    .open_in_place(rtp.nonce(ssrc, index), aead::Aad::from(&*header), rest)
                    .map(|_| ())
                    .map_err(|_| SrtpError::AuthenticationFailed)
            }
        }
    }

    /// Reads the (unauthenticated) E flag and SRTCP index of a protected packet whose
    /// length is already known to cover the trailer.
    pub(crate) fn srtcp_trailer(&self, buf: &[u8]) -> (bool, u32) {
        // RFC 3711 §3.4 puts the index before the tag; RFC 7714 §9 puts the whole AEAD
        // output (ciphertext and tag) first and the index last.
        let at = match self {
            SessionCipher::Cm { .. } => buf.len() - CM_TAG_LEN - SRTCP_TRAILER_LEN,
            SessionCipher::Gcm { .. } => buf.len() - SRTCP_TRAILER_LEN,
        };
        let word = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        (word & SRTCP_E_FLAG != 0, word & !SRTCP_E_FLAG)
    }

    /// `buf` is a plain RTCP compound followed by room for the trailer; always encrypts (E=1).
    pub(crate) fn seal_rtcp(&self, buf: &mut [u8], rtcp_len: usize, ssrc: u32, index: u32) {
        let word = (SRTCP_E_FLAG | index).to_be_bytes();
        match self {
            SessionCipher::Cm { rtcp, .. } => {
                let (body, tag) = buf.split_at_mut(buf.len() - CM_TAG_LEN);
                rtcp.apply_keystream(ssrc, u64::from(index), &mut body[RTCP_HEADER_LEN..rtcp_len]);
                body[rtcp_len..].copy_from_slice(&word);
                tag.copy_from_slice(&rtcp.tag(body, &[]));
            }
            SessionCipher::Gcm { rtcp, .. } => {
                let aad = gcm_rtcp_aad(buf, word);
                let (payload, trailer) =
                    buf[RTCP_HEADER_LEN..].split_at_mut(rtcp_len - RTCP_HEADER_LEN);
                let sealed = rtcp
                    .aead
                    .seal_in_place_separate_tag(
                        rtcp.nonce(ssrc, u64::from(index)),
                        aead::Aad::from(aad),
                        payload,
                    )
                    .expect("an RTCP compound is far below the GCM length limit");
                trailer[..GCM_TAG_LEN].copy_from_slice(sealed.as_ref());
                trailer[GCM_TAG_LEN..].copy_from_slice(&word);
            }
        }
    }

    /// Verifies (and, when `encrypted`, decrypts) a protected SRTCP packet in place.
    /// Returns the plain RTCP length.
    pub(crate) fn open_rtcp(
        &self,
        buf: &mut [u8],
        ssrc: u32,
        encrypted: bool,
        index: u32,
    ) -> Result<usize, SrtpError> {
        match self {
            SessionCipher::Cm { rtcp, .. } => {
                let (body, tag) = buf.split_at_mut(buf.len() - CM_TAG_LEN);
                if !ct_eq(&rtcp.tag(body, &[]), tag) {
                    return Err(SrtpError::AuthenticationFailed);
                }
                let rtcp_len = body.len() - SRTCP_TRAILER_LEN;
                if encrypted {
                    rtcp.apply_keystream(
                        ssrc,
                        u64::from(index),
                        &mut body[RTCP_HEADER_LEN..rtcp_len],
                    );
                }
                Ok(rtcp_len)
            }
            SessionCipher::Gcm { rtcp, .. } if encrypted => {
                let word = (SRTCP_E_FLAG | index).to_be_bytes();
                let aad = gcm_rtcp_aad(buf, word);
                let end = buf.len() - SRTCP_TRAILER_LEN;
                rtcp.aead
                    .open_in_place(
                        rtcp.nonce(ssrc, u64::from(index)),
                        aead::Aad::from(aad),
                        &mut buf[RTCP_HEADER_LEN..end],
                    )
                    .map_err(|_| SrtpError::AuthenticationFailed)?;
                Ok(end - GCM_TAG_LEN)
            }
            SessionCipher::Gcm { rtcp, .. } => open_gcm_rtcp_unencrypted(rtcp, buf, ssrc, index),
        }
    }
}

/// RFC 7714 §9.1: the AAD of an encrypted SRTCP packet is its first 8 octets || E|index.
fn gcm_rtcp_aad(buf: &[u8], word: [u8; 4]) -> [u8; RTCP_HEADER_LEN + SRTCP_TRAILER_LEN] {
    let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_TRAILER_LEN];
    aad[..RTCP_HEADER_LEN].copy_from_slice(&buf[..RTCP_HEADER_LEN]);
    aad[RTCP_HEADER_LEN..].copy_from_slice(&word);
    aad
}

/// RFC 7714 §9.2: with E=0 the whole RTCP compound || E|index is AAD and the plaintext is
/// empty. On the wire the tag sits between the two, so the trailer word is rotated in
/// front of the tag to make the AAD contiguous without copying it elsewhere.
fn open_gcm_rtcp_unencrypted(
    keys: &GcmKeys,
    buf: &mut [u8],
    ssrc: u32,
    index: u32,
) -> Result<usize, SrtpError> {
    let rtcp_len = buf.len() - GCM_TAG_LEN - SRTCP_TRAILER_LEN;
    buf[rtcp_len..].rotate_right(SRTCP_TRAILER_LEN);
    let (aad, tag) = buf.split_at_mut(rtcp_len + SRTCP_TRAILER_LEN);
    let verified = keys
        .aead
        .open_in_place(
            keys.nonce(ssrc, u64::from(index)),
            aead::Aad::from(&*aad),
            tag,
        )
        .is_ok();
    if verified {
        Ok(rtcp_len)
    } else {
        // Put the trailer word back where it arrived, so a rejected packet keeps its layout.
        buf[rtcp_len..].rotate_left(SRTCP_TRAILER_LEN);
        Err(SrtpError::AuthenticationFailed)
    }
}

/// Constant-time equality: the time taken depends on the lengths only.
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let digits: String = s.split_whitespace().collect();
        hex::decode(digits).expect("test hex")
    }

    /// RFC 3711 Appendix B.3 (key derivation, kdr 0).
    #[test]
    fn rfc3711_b3_key_derivation() {
        let key: [u8; 16] = unhex("E1F97A0D3E018BE0D64FA32C06DE4139")
            .try_into()
            .unwrap();
        let salt = unhex("0EC675AD498AFEEBB6960B3AABE6");
        let mut cipher_key = [0u8; 16];
        let mut cipher_salt = [0u8; 14];
        let mut auth_key = [0u8; 20];
        aes_cm_prf(&key, &salt, label::SRTP_ENCRYPTION, &mut cipher_key);
        aes_cm_prf(&key, &salt, label::SRTP_SALT, &mut cipher_salt);
        aes_cm_prf(&key, &salt, label::SRTP_AUTH, &mut auth_key);
        assert_eq!(
            cipher_key[..],
            unhex("C61E7A93744F39EE10734AFE3FF7A087")[..]
        );
        assert_eq!(cipher_salt[..], unhex("30CBBC08863D8C85D49DB34A9AE1")[..]);
        assert_eq!(
            auth_key[..],
            unhex("CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA4")[..]
        );
    }

    /// RFC 3711 Appendix B.2 (AES-CM keystream), through the SRTP IV construction with
    /// SSRC 0 and index 0, including the tail of the 65282-block segment.
    #[test]
    fn rfc3711_b2_keystream() {
        let session_key: [u8; 16] = unhex("2B7E151628AED2A6ABF7158809CF4F3C")
            .try_into()
            .unwrap();
        let keys = CmKeys {
            aes: Aes128::new((&session_key).into()),
            mac: keyed_mac(&[0; 20]),
            salt: unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(),
        };
        assert_eq!(
            keys.iv(0, 0)[..],
            unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")[..]
        );
        let mut segment = vec![0u8; 65282 * 16];
        keys.apply_keystream(0, 0, &mut segment);
        let head = "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                    41E95B3BB0A2E8DD477901E4FCA894C0";
        let tail = "EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE
                    6A2CC3787889374FBEB4C81B17BA6C44";
        assert_eq!(segment[..48], unhex(head)[..]);
        assert_eq!(segment[segment.len() - 48..], unhex(tail)[..]);
    }

    #[test]
    fn iv_layouts() {
        let keys = GcmKeys::from_session_keys(&[0; 16], *b"Quid pro quo");
        // The IVs printed in RFC 7714 §16.1.1 (SRTP) and §17.1 (SRTCP).
        let nonce = keys.nonce(0x5501_a0b2, 0xf17b);
        assert_eq!(nonce.as_ref()[..], unhex("51753c6580c2726f20718414")[..]);
        let nonce = keys.nonce(0x4d61_7273, 0x5d4);
        assert_eq!(nonce.as_ref()[..], unhex("517524055203726f207170bb")[..]);
    }
}

//! SRTP and SRTCP (RFC 3711, RFC 7714) for both legs: keyed by DTLS-SRTP
//! on the browser leg (RFC 5764, [`keys_from_dtls`]) and by SDES on the
//! trunk leg ([`sdes`]).
//!
//! # What this module owns
//! - [`SrtpMasterKey`]: one direction's master key and salt, as exported by DTLS
//!   ([`keys_from_dtls`]).
//! - [`SrtpSender`]: session keys derived from our master key, the rollover counter of each
//!   SSRC we send (at most [`MAX_STREAMS`]) and the SRTCP index.
//! - [`SrtpReceiver`]: session keys derived from the peer's master key and, for at most
//!   [`MAX_STREAMS`] SSRCs, the rollover counter plus one 128-packet replay window for SRTP
//!   and one for SRTCP.
//!
//! Profiles: `AES_CM_128_HMAC_SHA1_80` (RFC 3711 §4, RFC 5764 §4.1.2) and
//! `AEAD_AES_128_GCM` (RFC 7714). Session keys come from the AES-CM PRF with
//! key_derivation_rate 0 for both (RFC 3711 §4.3, RFC 7714 §11). No MKI.
//!
//! # Invariants
//! - **Safe before authentication.** Nothing a packet says is believed until its tag has
//!   verified: replay windows, rollover counters and the per-SSRC table itself are only
//!   written after verification, so forged or corrupted packets, whatever their SSRC, leave
//!   the receiver exactly as it was. Before that, only read-only look-ups happen.
//! - **No allocation per packet.** Key schedules (AES, GHASH, HMAC pads) are computed once
//!   in `new`; stream tables are fixed arrays. `protect_*` only grows the caller's `Vec` by
//!   the trailer, which reuses spare capacity; `unprotect_*` works on a slice.
//! - **Never panics on input.** RTP/RTCP headers are parsed with bounds checks; every
//!   length is validated before slicing.
//! - **Key hygiene.** Master keys, session salts, AES key schedules and transient session
//!   key bytes are zeroized on drop. ring's HMAC and AES-GCM key objects cannot be wiped
//!   from outside; they are freed with the context.
//! - Tags are compared in constant time (AES-CM) or by ring (GCM).
//! - Sender state is never evicted (a forgotten ROC would repeat keystream); the receiver
//!   evicts its least recently used authenticated SSRC when a ninth one authenticates.

mod cipher;
mod replay;
pub mod sdes;
#[cfg(test)]
mod tests;

pub use sdes::SrtpKeyMaterial;

use std::fmt;

use zeroize::Zeroize;

use cipher::{CM_TAG_LEN, GCM_TAG_LEN, KEY_LEN, RTCP_HEADER_LEN, SRTCP_TRAILER_LEN, SessionCipher};
pub use replay::MAX_STREAMS;
use replay::{ReceiverStreams, SenderStreams, estimate_srtp_index};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("packet too short")]
    PacketTooShort,
    #[error("not an rtp packet")]
    NotRtp,
    #[error("not an rtcp packet")]
    NotRtcp,
    #[error("authentication failed")]
    AuthenticationFailed,
    #[error("replayed packet")]
    ReplayedPacket,
    /// The sequence number maps to no valid 48-bit index (before the stream's first packet).
    #[error("packet index out of range")]
    IndexOutOfRange,
    #[error("srtcp index exhausted")]
    SrtcpIndexExhausted,
    #[error("bad key length")]
    BadKeyLength,
    #[error("too many streams")]
    TooManyStreams,
}

/// A master key + salt for one direction; Debug prints "<redacted>", zeroized on drop.
pub struct SrtpMasterKey {
    profile: SrtpProfile,
    key: [u8; KEY_LEN],
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

    fn salt(&self) -> &[u8] {
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

/// The fields of an RTP header that SRTP needs.
struct RtpHeader {
    /// Fixed header + CSRCs + extension: the authenticated-only part (and the GCM AAD).
    len: usize,
    seq: u16,
    ssrc: u32,
}

/// Parses an RTP header (RFC 3550 §5.1, §5.3.1). Padding is not interpreted: it belongs to
/// the payload and is encrypted with it.
fn parse_rtp_header(packet: &[u8]) -> Result<RtpHeader, SrtpError> {
    const FIXED_LEN: usize = 12;
    let fixed = packet.get(..FIXED_LEN).ok_or(SrtpError::PacketTooShort)?;
    if fixed[0] >> 6 != 2 {
        return Err(SrtpError::NotRtp);
    }
    let csrc_count = usize::from(fixed[0] & 0x0f);
    let mut len = FIXED_LEN + 4 * csrc_count;
    if fixed[0] & 0x10 != 0 {
        // 16-bit profile, 16-bit length in 32-bit words, then the words.
        let ext = packet.get(len..len + 4).ok_or(SrtpError::PacketTooShort)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if packet.len() < len {
        return Err(SrtpError::PacketTooShort);
    }
    Ok(RtpHeader {
        len,
        seq: u16::from_be_bytes([fixed[2], fixed[3]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    })
}

/// Checks the RTCP version and returns the sender SSRC (RFC 3550 §6.4); the SSRC keys the
/// SRTCP IV and replay state.
fn parse_rtcp_ssrc(packet: &[u8]) -> Result<u32, SrtpError> {
    let header = packet
        .get(..RTCP_HEADER_LEN)
        .ok_or(SrtpError::PacketTooShort)?;
    if header[0] >> 6 != 2 {
        return Err(SrtpError::NotRtcp);
    }
    Ok(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ]))
}

/// Constant-time equality: the time taken depends on the lengths only.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// The SRTCP index is 31 bits (RFC 3711 §3.4).
const SRTCP_INDEX_LIMIT: u32 = 1 << 31;

/// Protects what we send (one master key; per-SSRC rollover state kept for the few SSRCs we send).
pub struct SrtpSender {
    profile: SrtpProfile,
    cipher: SessionCipher,
    streams: SenderStreams,
    next_srtcp_index: u32,
}

impl SrtpSender {
    pub fn new(key: &SrtpMasterKey) -> Self {
        SrtpSender {
            profile: key.profile,
            cipher: SessionCipher::new(key),
            streams: SenderStreams::default(),
            next_srtcp_index: 0,
        }
    }

    #[cfg(test)]
    fn with_cipher(profile: SrtpProfile, cipher: SessionCipher, next_srtcp_index: u32) -> Self {
        SrtpSender {
            profile,
            cipher,
            streams: SenderStreams::default(),
            next_srtcp_index,
        }
    }

    /// `packet` holds one plain RTP packet (header + payload) and must have spare capacity;
    /// encrypts the payload in place and appends the tag. No allocation when capacity suffices.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let header = parse_rtp_header(packet)?;
        let index = self.streams.next_index(header.ssrc, header.seq)?;
        packet.resize(packet.len() + self.profile.rtp_overhead(), 0);
        self.cipher.seal_rtp(packet, header.len, header.ssrc, index);
        Ok(())
    }

    /// Plain RTCP compound in, SRTCP out (encrypted, E=1, 31-bit index, tag), in place.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let ssrc = parse_rtcp_ssrc(packet)?;
        let index = self.next_srtcp_index;
        if index >= SRTCP_INDEX_LIMIT {
            // RFC 3711 §9.2: the key must be replaced; never reuse an index.
            return Err(SrtpError::SrtcpIndexExhausted);
        }
        let rtcp_len = packet.len();
        packet.resize(rtcp_len + self.profile.rtcp_overhead(), 0);
        self.cipher.seal_rtcp(packet, rtcp_len, ssrc, index);
        self.next_srtcp_index = index + 1;
        Ok(())
    }
}

/// Verifies and decrypts what we receive.
pub struct SrtpReceiver {
    profile: SrtpProfile,
    cipher: SessionCipher,
    streams: ReceiverStreams,
}

impl SrtpReceiver {
    pub fn new(key: &SrtpMasterKey) -> Self {
        Self::with_cipher(key.profile, SessionCipher::new(key))
    }

    fn with_cipher(profile: SrtpProfile, cipher: SessionCipher) -> Self {
        SrtpReceiver {
            profile,
            cipher,
            streams: ReceiverStreams::default(),
        }
    }

    /// Verifies the tag, checks replay, decrypts the payload in place. Returns the length of the
    /// plain RTP packet (header + payload) at the start of `packet`.
    ///
    /// On error the receiver state is unchanged; the buffer contents are unspecified.
    pub fn unprotect_rtp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let header = parse_rtp_header(packet)?;
        let plain_len = packet
            .len()
            .checked_sub(self.profile.rtp_overhead())
            .filter(|&len| len >= header.len)
            .ok_or(SrtpError::PacketTooShort)?;
        let index = match self.streams.rtp_window(header.ssrc) {
            Some(window) => {
                let index = estimate_srtp_index(window.highest(), header.seq)
                    .ok_or(SrtpError::IndexOutOfRange)?;
                window.check(index)?;
                index
            }
            // First packet of the stream: ROC 0 (RFC 3711 §3.3.1).
            None => u64::from(header.seq),
        };
        self.cipher
            .open_rtp(packet, header.len, header.ssrc, index)?;
        self.streams.accept_rtp(header.ssrc, index);
        Ok(plain_len)
    }

    /// Same for SRTCP; returns the plain RTCP length. E=0 packets: tag still verified, replay checked, payload left as is.
    ///
    /// On error the receiver state is unchanged; the buffer contents are unspecified.
    pub fn unprotect_rtcp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let ssrc = parse_rtcp_ssrc(packet)?;
        if packet.len() < RTCP_HEADER_LEN + self.profile.rtcp_overhead() {
            return Err(SrtpError::PacketTooShort);
        }
        let (encrypted, index) = self.cipher.srtcp_trailer(packet);
        if let Some(window) = self.streams.rtcp_window(ssrc) {
            window.check(u64::from(index))?;
        }
        let plain_len = self.cipher.open_rtcp(packet, ssrc, encrypted, index)?;
        self.streams.accept_rtcp(ssrc, index);
        Ok(plain_len)
    }

    #[cfg(test)]
    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }
}

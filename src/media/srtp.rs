//! SDES-keyed SRTP for the trunk leg: AES_CM_128_HMAC_SHA1_80 (RFC 3711,
//! keys exchanged in `a=crypto` lines per RFC 4568), over the `webrtc-srtp`
//! crate's transforms.
//!
//! Invariants:
//! - Key material is 16 key + 14 salt bytes, generated from the operating
//!   system's CSPRNG via the thread RNG, and never printed: `Debug` is redacted.
//! - Inbound packets pass a replay window (RFC 3711 §3.3.2) and the 80-bit
//!   authentication tag before a single payload byte is used.
//! - We validate the RTP header ourselves ([`RtpPacket::parse`]) and hand the
//!   crate a header we built, because the crate's own header parser can be
//!   driven out of bounds by a crafted one-byte extension before the tag is
//!   checked.
//! - SRTCP without the E flag is refused: the crate would return such a
//!   packet without verifying its tag, and we never offer unencrypted SRTCP.
//!
//! The crate returns every transformed packet in a freshly allocated
//! `Bytes`; there is no API that writes into a caller's buffer.

use bytes::Bytes;
use rand::Rng;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use super::MediaError;
use super::rtp::RtpPacket;

const KEY_LEN: usize = 16;
const SALT_LEN: usize = 14;
/// RFC 3711 §3.3.2 asks for at least 64; libsrtp uses 128.
const REPLAY_WINDOW: usize = 128;
const PROFILE: ProtectionProfile = ProtectionProfile::Aes128CmHmacSha1_80;
/// Auth tag of the _80 profile, for both SRTP and SRTCP.
pub const AUTH_TAG_LEN: usize = 10;
/// The E flag and 31-bit index that SRTCP appends before the tag.
const SRTCP_INDEX_LEN: usize = 4;
/// RTCP header and sender SSRC: the part SRTCP leaves in the clear.
const RTCP_CLEAR_LEN: usize = 8;

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
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MediaError> {
        let array: &[u8; Self::LEN] = bytes.try_into().map_err(|_| MediaError::SrtpKeyLength {
            expected: Self::LEN,
            got: bytes.len(),
        })?;
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

    fn context(&self) -> Result<Context, MediaError> {
        Context::new(
            &self.key,
            &self.salt,
            PROFILE,
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
        )
        .map_err(MediaError::Srtp)
    }
}

/// Outbound half: protects what we send with our key. Keep one per key
/// for the life of the call: a fresh one would restart the rollover
/// counter and could reuse keystream.
pub struct SrtpSender {
    context: Context,
}

/// Inbound half: authenticates and decrypts what the peer sends. Keep one
/// per key for the life of the call: a fresh one forgets the replay window.
pub struct SrtpReceiver {
    context: Context,
}

/// Both directions of one call leg.
pub struct SrtpSession {
    sender: SrtpSender,
    receiver: SrtpReceiver,
}

impl SrtpSession {
    /// `local` protects what we send; `remote` is the key the peer offered.
    pub fn new(local: &SrtpKeyMaterial, remote: &SrtpKeyMaterial) -> Result<Self, MediaError> {
        Ok(Self {
            sender: SrtpSender::new(local)?,
            receiver: SrtpReceiver::new(remote)?,
        })
    }

    /// Separates the halves so sending and receiving can live in
    /// different tasks without a shared lock.
    pub fn into_split(self) -> (SrtpSender, SrtpReceiver) {
        (self.sender, self.receiver)
    }

    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Bytes, MediaError> {
        self.sender.protect_rtp(packet)
    }

    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Bytes, MediaError> {
        self.sender.protect_rtcp(packet)
    }

    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Bytes, MediaError> {
        self.receiver.unprotect_rtp(packet)
    }

    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Bytes, MediaError> {
        self.receiver.unprotect_rtcp(packet)
    }
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrtpSession(<redacted>)")
    }
}

impl SrtpSender {
    /// The outbound transform keyed with our material.
    pub fn new(local: &SrtpKeyMaterial) -> Result<Self, MediaError> {
        Ok(Self {
            context: local.context()?,
        })
    }

    /// Encrypts the payload and appends the tag; the header stays clear.
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Bytes, MediaError> {
        let header = crate_header(&RtpPacket::parse(packet)?);
        self.context
            .encrypt_rtp_with_header(packet, &header)
            .map_err(map_error)
    }

    /// Encrypts everything after the sender SSRC, appends E|index and tag.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Bytes, MediaError> {
        if packet.len() < RTCP_CLEAR_LEN {
            return Err(MediaError::RtcpTooShort { len: packet.len() });
        }
        self.context.encrypt_rtcp(packet).map_err(map_error)
    }
}

impl SrtpReceiver {
    /// The inbound transform keyed with the peer's material.
    pub fn new(remote: &SrtpKeyMaterial) -> Result<Self, MediaError> {
        Ok(Self {
            context: remote.context()?,
        })
    }

    /// Checks replay and tag, then decrypts; returns the plain RTP packet.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Bytes, MediaError> {
        let parsed = RtpPacket::parse(packet)?;
        if packet.len() < parsed.header_len() + AUTH_TAG_LEN {
            return Err(MediaError::SrtpTooShort);
        }
        self.context
            .decrypt_rtp_with_header(packet, &crate_header(&parsed))
            .map_err(map_error)
    }

    /// Checks the E flag, replay and tag, then decrypts the compound.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Bytes, MediaError> {
        // Below this length the crate would index out of bounds.
        let flag_at = packet
            .len()
            .checked_sub(AUTH_TAG_LEN + SRTCP_INDEX_LEN)
            .filter(|&at| at >= RTCP_CLEAR_LEN)
            .ok_or(MediaError::SrtpTooShort)?;
        if packet.get(flag_at).is_none_or(|b| b & 0x80 == 0) {
            return Err(MediaError::SrtcpUnencrypted);
        }
        if packet.first().is_none_or(|b| b >> 6 != 2) {
            return Err(MediaError::RtcpVersion(
                packet.first().map_or(0, |b| b >> 6),
            ));
        }
        self.context.decrypt_rtcp(packet).map_err(map_error)
    }
}

/// The crate needs its own header type only for the fields that enter the
/// transform: SSRC and sequence number (IV, ROC) and the header length
/// (where the keystream starts). Describing any extension as opaque
/// padding of the right length gives that length without reparsing it.
fn crate_header(packet: &RtpPacket<'_>) -> rtp::header::Header {
    let extension = packet.extension();
    rtp::header::Header {
        version: 2,
        padding: packet.padding_len() > 0,
        extension: extension.is_some(),
        marker: packet.marker(),
        payload_type: packet.payload_type(),
        sequence_number: packet.sequence(),
        timestamp: packet.timestamp(),
        ssrc: packet.ssrc().0,
        csrc: packet.csrcs().map(|s| s.0).collect(),
        extension_profile: extension.map_or(0, |e| e.profile),
        extensions: Vec::new(),
        extensions_padding: extension.map_or(0, |e| e.data.len()),
    }
}

fn map_error(err: webrtc_srtp::Error) -> MediaError {
    use webrtc_srtp::Error as E;
    match err {
        E::RtpFailedToVerifyAuthTag
        | E::RtcpFailedToVerifyAuthTag
        | E::ErrFailedToVerifyAuthTag => MediaError::SrtpAuth,
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) | E::ErrDuplicated => {
            MediaError::SrtpReplay
        }
        E::ErrTooShortRtp | E::ErrTooShortRtcp | E::SrtpTooSmall(..) | E::SrtcpTooSmall(..) => {
            MediaError::SrtpTooShort
        }
        other => MediaError::Srtp(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtcp;
    use crate::media::rtp::Ssrc;
    use crate::media::testing::rtp_packet;

    /// Alice and Bob with each other's keys, as after an SDES exchange.
    fn pair() -> (SrtpSession, SrtpSession) {
        let a = SrtpKeyMaterial::generate();
        let b = SrtpKeyMaterial::generate();
        (
            SrtpSession::new(&a, &b).unwrap(),
            SrtpSession::new(&b, &a).unwrap(),
        )
    }

    #[test]
    fn key_material_round_trips_and_checks_length() {
        let k = SrtpKeyMaterial::generate();
        assert_eq!(SrtpKeyMaterial::from_bytes(&k.to_bytes()).unwrap(), k);
        assert_ne!(SrtpKeyMaterial::generate(), k);
        assert!(matches!(
            SrtpKeyMaterial::from_bytes(&[0; 29]),
            Err(MediaError::SrtpKeyLength {
                expected: 30,
                got: 29
            })
        ));
    }

    #[test]
    fn key_material_never_prints() {
        let k = SrtpKeyMaterial::from_bytes(&[0xab; 30]).unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }

    #[test]
    fn rtp_round_trips_both_ways_and_hides_the_payload() {
        let (mut alice, mut bob) = pair();
        let plain = rtp_packet(0, 1, 0x1234, &[0x55; 160]);
        let wire = alice.protect_rtp(&plain).unwrap();
        assert_eq!(wire.len(), plain.len() + AUTH_TAG_LEN);
        assert_eq!(&wire[..12], &plain[..12]);
        assert_ne!(&wire[12..172], &plain[12..]);
        assert_eq!(bob.unprotect_rtp(&wire).unwrap(), plain);
        let back = rtp_packet(0, 9, 0x1234, &[0x11; 160]);
        assert_eq!(
            alice
                .unprotect_rtp(&bob.protect_rtp(&back).unwrap())
                .unwrap(),
            back
        );
    }

    #[test]
    fn rtp_with_csrcs_and_extension_round_trips() {
        let (mut alice, mut bob) = pair();
        let mut plain = vec![0x91, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0x12, 0x34, 0, 0, 0, 9];
        // A one-byte-header extension whose last element would overrun if
        // parsed the crate's way; we treat it as opaque.
        plain.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0x00, 0x1f]);
        plain.extend_from_slice(&[7; 20]);
        let wire = alice.protect_rtp(&plain).unwrap();
        assert_eq!(bob.unprotect_rtp(&wire).unwrap(), plain);
    }

    #[test]
    fn srtp_replay_attack() {
        let (mut alice, mut bob) = pair();
        let first = alice
            .protect_rtp(&rtp_packet(0, 100, 0x1234, &[1; 160]))
            .unwrap();
        let second = alice
            .protect_rtp(&rtp_packet(0, 101, 0x1234, &[2; 160]))
            .unwrap();
        assert!(bob.unprotect_rtp(&first).is_ok());
        assert!(bob.unprotect_rtp(&second).is_ok());
        assert!(matches!(
            bob.unprotect_rtp(&first),
            Err(MediaError::SrtpReplay)
        ));
        assert!(matches!(
            bob.unprotect_rtp(&second),
            Err(MediaError::SrtpReplay)
        ));
        // Reordering inside the window is not a replay.
        let late = alice
            .protect_rtp(&rtp_packet(0, 99, 0x1234, &[3; 160]))
            .unwrap();
        assert!(bob.unprotect_rtp(&late).is_ok());
    }

    #[test]
    fn srtp_tampered_auth_tag() {
        let (mut alice, mut bob) = pair();
        let wire = alice
            .protect_rtp(&rtp_packet(0, 7, 0x1234, &[1; 160]))
            .unwrap();
        let mut tag_flip = wire.to_vec();
        *tag_flip.last_mut().unwrap() ^= 1;
        let mut payload_flip = wire.to_vec();
        payload_flip[20] ^= 0x80;
        let mut header_flip = wire.to_vec();
        header_flip[1] = 8; // payload type changed in transit
        for forged in [tag_flip, payload_flip, header_flip] {
            assert!(matches!(
                bob.unprotect_rtp(&forged),
                Err(MediaError::SrtpAuth)
            ));
        }
        // The genuine packet still passes: a forgery does not poison the window.
        assert!(bob.unprotect_rtp(&wire).is_ok());
    }

    #[test]
    fn wrong_key_fails_authentication() {
        let (mut alice, _) = pair();
        let (_, mut eve) = pair();
        let wire = alice
            .protect_rtp(&rtp_packet(0, 1, 0x1234, &[1; 160]))
            .unwrap();
        assert!(matches!(
            eve.unprotect_rtp(&wire),
            Err(MediaError::SrtpAuth)
        ));
    }

    #[test]
    fn malformed_packet_injection_is_rejected_without_panic() {
        let (_, mut bob) = pair();
        let cases: [&[u8]; 6] = [
            &[],
            &[0x80, 0, 0, 1],
            &[0x80; 12],
            &[0x80; 21],
            &[
                0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x1f,
            ],
            &[0x8f; 40],
        ];
        for bytes in cases {
            assert!(bob.unprotect_rtp(bytes).is_err(), "accepted {bytes:?}");
            assert!(bob.unprotect_rtcp(bytes).is_err(), "accepted {bytes:?}");
        }
    }

    #[test]
    fn crafted_extension_is_refused_by_the_tag_not_a_panic() {
        // A one-byte-header extension element claiming 16 bytes where only
        // 13 remain: the crate's own header parser would read past the end
        // before checking the tag. Ours treats the extension as opaque.
        let (_, mut bob) = pair();
        let mut forged = vec![0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        forged.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x1f, 0, 0, 0]);
        forged.extend_from_slice(&[0; AUTH_TAG_LEN]);
        assert!(RtpPacket::parse(&forged).is_ok());
        assert!(matches!(
            bob.unprotect_rtp(&forged),
            Err(MediaError::SrtpAuth)
        ));
    }

    #[test]
    fn rtcp_round_trips_and_replay_is_refused() {
        let (mut alice, mut bob) = pair();
        let mut report = Vec::new();
        rtcp::write_goodbye(&mut report, Ssrc(5), b"cname").unwrap();
        let wire = alice.protect_rtcp(&report).unwrap();
        assert_eq!(wire.len(), report.len() + SRTCP_INDEX_LEN + AUTH_TAG_LEN);
        assert_eq!(bob.unprotect_rtcp(&wire).unwrap(), report);
        assert!(matches!(
            bob.unprotect_rtcp(&wire),
            Err(MediaError::SrtpReplay)
        ));
    }

    #[test]
    fn unencrypted_srtcp_is_refused_even_with_a_forged_tag() {
        let (mut alice, mut bob) = pair();
        let mut report = Vec::new();
        rtcp::write_goodbye(&mut report, Ssrc(5), b"cname").unwrap();
        let mut wire = alice.protect_rtcp(&report).unwrap().to_vec();
        let flag_at = wire.len() - AUTH_TAG_LEN - SRTCP_INDEX_LEN;
        wire[flag_at] &= 0x7f;
        assert!(matches!(
            bob.unprotect_rtcp(&wire),
            Err(MediaError::SrtcpUnencrypted)
        ));
    }

    #[test]
    fn tampered_srtcp_fails_authentication() {
        let (mut alice, mut bob) = pair();
        let mut report = Vec::new();
        rtcp::write_goodbye(&mut report, Ssrc(5), b"cname").unwrap();
        let mut wire = alice.protect_rtcp(&report).unwrap().to_vec();
        wire[10] ^= 1;
        assert!(matches!(
            bob.unprotect_rtcp(&wire),
            Err(MediaError::SrtpAuth)
        ));
    }
}

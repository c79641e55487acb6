//! The per-session transforms: [`SrtpSender`] protects what we send,
//! [`SrtpReceiver`] verifies, replay-checks and decrypts what arrives.

use super::cipher::{RTCP_HEADER_LEN, SessionCipher};
use super::error::SrtpError;
use super::key::{SrtpMasterKey, SrtpProfile};
use super::replay::{ReceiverStreams, SenderStreams, estimate_srtp_index};

/// The fields of an RTP header that SRTP needs.
pub(super) struct RtpHeader {
    /// Fixed header + CSRCs + extension: the authenticated-only part (and the GCM AAD).
    pub(super) len: usize,
    pub(super) seq: u16,
    pub(super) ssrc: u32,
}

/// Parses an RTP header (RFC 3550 §5.1, §5.3.1). Padding is not interpreted: it belongs to
/// the payload and is encrypted with it.
pub(super) fn parse_rtp_header(packet: &[u8]) -> Result<RtpHeader, SrtpError> {
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
pub(super) fn parse_rtcp_ssrc(packet: &[u8]) -> Result<u32, SrtpError> {
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

/// The SRTCP index is 31 bits (RFC 3711 §3.4).
pub(super) const SRTCP_INDEX_LIMIT: u32 = 1 << 31;

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
    pub(super) fn with_cipher(
        profile: SrtpProfile,
        cipher: SessionCipher,
        next_srtcp_index: u32,
    ) -> Self {
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

    pub(super) fn with_cipher(profile: SrtpProfile, cipher: SessionCipher) -> Self {
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

//! The packet itself: a validated zero-copy view ([`RtpPacket`]), in-place
//! header rewrites ([`RtpPacketMut`]) and the header we originate
//! ([`RtpHeader`]).

use crate::media::MediaError;

/// The only RTP version in use (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed header that precedes CSRCs and extensions.
pub const FIXED_HEADER_LEN: usize = 12;

const VERSION_SHIFT: u8 = 6;
const PADDING_BIT: u8 = 0x20;
const EXTENSION_BIT: u8 = 0x10;
const CC_MASK: u8 = 0x0f;
const MARKER_BIT: u8 = 0x80;
const PT_MASK: u8 = 0x7f;

/// A synchronisation source identifier (RFC 3550 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// A header extension (RFC 3550 §5.3.1): the profile word and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// A validated, borrowed RTP packet.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    payload_end: usize,
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: Ssrc,
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates `buf`; the packet borrows it.
    pub fn parse(buf: &'a [u8]) -> Result<Self, MediaError> {
        let fixed: &[u8; FIXED_HEADER_LEN] = buf
            .first_chunk()
            .ok_or(MediaError::RtpTooShort { len: buf.len() })?;
        let version = fixed[0] >> VERSION_SHIFT;
        if version != RTP_VERSION {
            return Err(MediaError::RtpVersion(version));
        }
        let mut header_len = FIXED_HEADER_LEN + 4 * usize::from(fixed[0] & CC_MASK);
        if buf.len() < header_len {
            return Err(MediaError::RtpCsrcOverrun);
        }
        if fixed[0] & EXTENSION_BIT != 0 {
            header_len += 4 + extension_body_len(buf, header_len)?;
            if buf.len() < header_len {
                return Err(MediaError::RtpExtensionOverrun);
            }
        }
        let payload_end = if fixed[0] & PADDING_BIT != 0 {
            buf.len() - padding_len(buf, header_len)?
        } else {
            buf.len()
        };
        Ok(Self {
            buf,
            header_len,
            payload_end,
            marker: fixed[1] & MARKER_BIT != 0,
            payload_type: fixed[1] & PT_MASK,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: Ssrc(u32::from_be_bytes([
                fixed[8], fixed[9], fixed[10], fixed[11],
            ])),
        })
    }

    pub fn marker(&self) -> bool {
        self.marker
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// Contributing sources, in packet order.
    pub fn csrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        let end = FIXED_HEADER_LEN + 4 * self.csrc_count();
        self.buf
            .get(FIXED_HEADER_LEN..end)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    pub fn csrc_count(&self) -> usize {
        self.buf.first().map_or(0, |b| usize::from(b & CC_MASK))
    }

    /// The header extension, when the X bit is set.
    pub fn extension(&self) -> Option<RtpExtension<'a>> {
        let first = *self.buf.first()?;
        if first & EXTENSION_BIT == 0 {
            return None;
        }
        let start = FIXED_HEADER_LEN + 4 * usize::from(first & CC_MASK);
        let word: &[u8; 4] = self.buf.get(start..)?.first_chunk()?;
        Some(RtpExtension {
            profile: u16::from_be_bytes([word[0], word[1]]),
            data: self.buf.get(start + 4..self.header_len)?,
        })
    }

    /// Bytes of padding at the end (0 when the P bit is clear).
    pub fn padding_len(&self) -> usize {
        self.buf.len() - self.payload_end
    }

    /// Length of the header including CSRCs and extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    pub fn payload(&self) -> &'a [u8] {
        self.buf
            .get(self.header_len..self.payload_end)
            .unwrap_or_default()
    }

    /// The whole datagram this packet was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

/// Length in bytes of the extension body whose profile word sits at `at`.
fn extension_body_len(buf: &[u8], at: usize) -> Result<usize, MediaError> {
    let word: &[u8; 4] = buf
        .get(at..)
        .and_then(|rest| rest.first_chunk())
        .ok_or(MediaError::RtpExtensionOverrun)?;
    Ok(4 * usize::from(u16::from_be_bytes([word[2], word[3]])))
}

/// The padding count from the last byte, checked against what follows the
/// header (RFC 3550 §5.1: the count includes itself, so zero is invalid).
fn padding_len(buf: &[u8], header_len: usize) -> Result<usize, MediaError> {
    let padding = buf.last().copied().unwrap_or(0);
    let available = buf.len() - header_len;
    if padding == 0 || usize::from(padding) > available {
        return Err(MediaError::RtpPadding { padding, available });
    }
    Ok(usize::from(padding))
}

/// Mutable access to the fixed header of an RTP packet, for relaying
/// without copying the payload.
#[derive(Debug)]
pub struct RtpPacketMut<'a> {
    fixed: &'a mut [u8; FIXED_HEADER_LEN],
}

impl<'a> RtpPacketMut<'a> {
    /// Wraps `buf` after checking the length and version. Callers on the
    /// receive path parse with [`RtpPacket::parse`] first; this check only
    /// keeps the setters from writing into something that is not RTP.
    pub fn new(buf: &'a mut [u8]) -> Result<Self, MediaError> {
        let len = buf.len();
        let fixed: &mut [u8; FIXED_HEADER_LEN] = buf
            .first_chunk_mut()
            .ok_or(MediaError::RtpTooShort { len })?;
        let version = fixed[0] >> VERSION_SHIFT;
        if version != RTP_VERSION {
            return Err(MediaError::RtpVersion(version));
        }
        Ok(Self { fixed })
    }

    pub fn set_payload_type(&mut self, payload_type: u8) -> Result<(), MediaError> {
        if payload_type > PT_MASK {
            return Err(MediaError::PayloadTypeRange(payload_type));
        }
        self.fixed[1] = (self.fixed[1] & MARKER_BIT) | payload_type;
        Ok(())
    }

    pub fn set_marker(&mut self, marker: bool) {
        if marker {
            self.fixed[1] |= MARKER_BIT;
        } else {
            self.fixed[1] &= PT_MASK;
        }
    }

    pub fn set_sequence(&mut self, sequence: u16) {
        let [a, b] = sequence.to_be_bytes();
        self.fixed[2] = a;
        self.fixed[3] = b;
    }

    pub fn set_timestamp(&mut self, timestamp: u32) {
        let [a, b, c, d] = timestamp.to_be_bytes();
        self.fixed[4..8].copy_from_slice(&[a, b, c, d]);
    }

    pub fn set_ssrc(&mut self, ssrc: Ssrc) {
        self.fixed[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
    }
}

/// The fields of a fixed header we originate (no CSRCs, no extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
}

impl RtpHeader {
    /// The header as it goes on the wire.
    pub fn to_bytes(&self) -> Result<[u8; FIXED_HEADER_LEN], MediaError> {
        if self.payload_type > PT_MASK {
            return Err(MediaError::PayloadTypeRange(self.payload_type));
        }
        let mut out = [0u8; FIXED_HEADER_LEN];
        out[0] = RTP_VERSION << VERSION_SHIFT;
        out[1] = self.payload_type | if self.marker { MARKER_BIT } else { 0 };
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        Ok(out)
    }

    /// Replaces the contents of `out` with this header and `payload`.
    /// `out` keeps its capacity, so one buffer serves a whole call without
    /// allocating per packet.
    pub fn write_packet(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), MediaError> {
        let header = self.to_bytes()?;
        out.clear();
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::Rewritten;

    fn header(pt: u8, seq: u16) -> RtpHeader {
        RtpHeader {
            payload_type: pt,
            marker: true,
            sequence: seq,
            timestamp: 0xdead_beef,
            ssrc: Ssrc(0x0102_0304),
        }
    }

    #[test]
    fn built_packet_parses_back_to_the_same_fields() {
        let mut buf = Vec::new();
        header(0, 65535)
            .write_packet(&[0xff; 160], &mut buf)
            .unwrap();
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(buf.len(), 172);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.sequence(), 65535);
        assert_eq!(p.timestamp(), 0xdead_beef);
        assert_eq!(p.ssrc(), Ssrc(0x0102_0304));
        assert_eq!(p.payload(), &[0xff; 160][..]);
        assert_eq!(p.header_len(), 12);
        assert!(p.extension().is_none());
    }

    #[test]
    fn builder_reuses_its_buffer() {
        let mut buf = Vec::with_capacity(256);
        let before = buf.as_ptr();
        header(8, 1).write_packet(&[1; 160], &mut buf).unwrap();
        header(8, 2).write_packet(&[2; 80], &mut buf).unwrap();
        assert_eq!(buf.as_ptr(), before);
        assert_eq!(buf.len(), 92);
    }

    #[test]
    fn payload_type_wider_than_seven_bits_is_refused() {
        let mut buf = Vec::new();
        assert!(matches!(
            header(128, 1).write_packet(&[], &mut buf),
            Err(MediaError::PayloadTypeRange(128))
        ));
        let mut pkt = [0x80u8; 12];
        let mut m = RtpPacketMut::new(&mut pkt).unwrap();
        assert!(m.set_payload_type(200).is_err());
    }

    #[test]
    fn csrcs_extension_and_padding_are_located() {
        // V=2 P=1 X=1 CC=2, two CSRCs, a one-word extension, 2 payload bytes, 3 padding bytes.
        let mut buf = vec![0xb2, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        buf.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 11]);
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
        buf.extend_from_slice(&[7, 8, 0, 0, 3]);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![Ssrc(10), Ssrc(11)]);
        let ext = p.extension().unwrap();
        assert_eq!(ext.profile, 0xbede);
        assert_eq!(ext.data, &[0x10, 0xaa, 0, 0]);
        assert_eq!(p.payload(), &[7, 8]);
        assert_eq!(p.padding_len(), 3);
        assert_eq!(p.header_len(), 28);
    }

    #[test]
    fn malformed_packet_injection_is_rejected_without_panic() {
        type Expect = fn(&MediaError) -> bool;
        let cases: [(&[u8], Expect); 7] = [
            (&[], |e| matches!(e, MediaError::RtpTooShort { len: 0 })),
            (&[0x80; 11], |e| {
                matches!(e, MediaError::RtpTooShort { len: 11 })
            }),
            (&[0x40; 12], |e| matches!(e, MediaError::RtpVersion(1))),
            // CC=15 promises 60 bytes of CSRCs that are not there.
            (&[0x8f; 20], |e| matches!(e, MediaError::RtpCsrcOverrun)),
            // X set but no room for the extension word.
            (&[0x90; 12], |e| {
                matches!(e, MediaError::RtpExtensionOverrun)
            }),
            // Padding count 0 is invalid.
            (&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], |e| {
                matches!(e, MediaError::RtpPadding { padding: 0, .. })
            }),
            // Padding count larger than what follows the header.
            (&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9], |e| {
                matches!(
                    e,
                    MediaError::RtpPadding {
                        padding: 9,
                        available: 2
                    }
                )
            }),
        ];
        for (bytes, expected) in cases {
            let err = RtpPacket::parse(bytes).unwrap_err();
            assert!(expected(&err), "{bytes:?} gave {err:?}");
        }
    }

    #[test]
    fn extension_length_overrun_is_rejected() {
        // Extension claims 0xffff words.
        let mut buf = vec![0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        buf.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(matches!(
            RtpPacket::parse(&buf),
            Err(MediaError::RtpExtensionOverrun)
        ));
    }

    #[test]
    fn padding_may_consume_the_whole_body() {
        let buf = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4];
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.payload().is_empty());
        assert_eq!(p.padding_len(), 4);
    }

    #[test]
    fn random_bytes_never_panic_the_parser() {
        let mut noise = crate::media::testing::Noise::new(0x1234_5678);
        for len in 0..400usize {
            let bytes = noise.bytes(len % 97);
            if let Ok(p) = RtpPacket::parse(&bytes) {
                assert!(p.header_len() + p.payload().len() + p.padding_len() == bytes.len());
                let _ = p.extension();
                assert_eq!(p.csrcs().count(), p.csrc_count());
            }
        }
    }

    #[test]
    fn in_place_rewrite_keeps_payload_and_other_bits() {
        let mut buf = Vec::new();
        header(0, 7).write_packet(&[9; 160], &mut buf).unwrap();
        buf[0] |= PADDING_BIT; // pretend: must survive the rewrite
        let mut m = RtpPacketMut::new(&mut buf).unwrap();
        m.set_payload_type(8).unwrap();
        m.apply(&Rewritten {
            sequence: 1000,
            timestamp: 42,
            ssrc: Ssrc(99),
            marker: false,
        });
        assert_eq!(buf[0] & PADDING_BIT, PADDING_BIT);
        buf[0] &= !PADDING_BIT;
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(
            (
                p.payload_type(),
                p.sequence(),
                p.timestamp(),
                p.ssrc(),
                p.marker()
            ),
            (8, 1000, 42, Ssrc(99), false)
        );
        assert_eq!(p.payload(), &[9; 160][..]);
    }

    #[test]
    fn marker_and_payload_type_setters_are_independent() {
        let mut buf = [0x80, 0x80 | 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut m = RtpPacketMut::new(&mut buf).unwrap();
        m.set_payload_type(0).unwrap();
        assert_eq!(buf[1], 0x80);
        let mut m = RtpPacketMut::new(&mut buf).unwrap();
        m.set_marker(false);
        m.set_payload_type(101).unwrap();
        assert_eq!(buf[1], 101);
    }

    #[test]
    fn mutable_view_refuses_non_rtp() {
        assert!(RtpPacketMut::new(&mut [0u8; 4]).is_err());
        assert!(matches!(
            RtpPacketMut::new(&mut [0u8; 12]),
            Err(MediaError::RtpVersion(0))
        ));
    }
}

//! Compound RTCP packets (RFC 3550 §6): parsing every packet of a
//! datagram and building SR/RR + SDES (+ BYE) compounds, and the NTP
//! timestamp a sender report carries.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::media::MediaError;
use crate::media::rtp::Ssrc;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub(super) const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// A 64-bit NTP timestamp: seconds since 1900 in the top half, fraction below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// Converts a wall-clock time; the seconds wrap in 2036 as NTP era 1
    /// begins, which the middle-32-bit arithmetic of RTCP tolerates.
    pub fn from_system_time(time: SystemTime) -> Self {
        let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
        let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
        Self((seconds << 32) | fraction)
    }

    /// The middle 32 bits, as carried in LSR (RFC 3550 §6.4.1).
    pub fn middle_32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;

const VERSION: u8 = 2;
const PADDING_BIT: u8 = 0x20;
const COUNT_MASK: u8 = 0x1f;
const SDES_END: u8 = 0;
const SDES_CNAME: u8 = 1;
const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;
/// The 5-bit count field bounds report blocks, SDES chunks and BYE sources.
pub const MAX_COUNT: usize = 31;

/// RFC 5761 §4: with rtcp-mux, RTCP is told from RTP by the second byte
/// (packet types 192..=223 collide with no dynamic RTP payload type).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(192..=223))
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: Ssrc,
    pub fraction_lost: u8,
    /// 24-bit signed on the wire; negative when duplicates outnumber losses.
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received, 0 if none.
    pub last_sr: u32,
    /// Delay since that SR in units of 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// The sender information section of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp: NtpTime,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: Ssrc,
    pub info: SenderInfo,
    pub reports: Vec<ReportBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport {
    pub ssrc: Ssrc,
    pub reports: Vec<ReportBlock>,
}

/// One SDES item: its type and raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    pub kind: u8,
    pub value: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    pub ssrc: Ssrc,
    pub items: Vec<SdesItem<'a>>,
}

impl<'a> SdesChunk<'a> {
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items
            .iter()
            .find(|item| item.kind == SDES_CNAME)
            .map(|item| item.value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye<'a> {
    pub sources: Vec<Ssrc>,
    pub reason: Option<&'a [u8]>,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    SourceDescription(Vec<SdesChunk<'a>>),
    Bye(Bye<'a>),
    /// A type we do not interpret (APP, feedback, XR, ...), kept whole.
    Other {
        packet_type: u8,
        count: u8,
        body: &'a [u8],
    },
}

/// Parses a compound RTCP datagram (already decrypted if SRTCP is in use).
pub fn parse_compound(datagram: &[u8]) -> Result<Vec<RtcpPacket<'_>>, MediaError> {
    if datagram.len() < 4 {
        return Err(MediaError::RtcpTooShort {
            len: datagram.len(),
        });
    }
    let mut packets = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let (packet, tail) = split_packet(rest)?;
        rest = tail;
        packets.push(parse_packet(packet, rest.is_empty())?);
    }
    Ok(packets)
}

/// Splits the first packet off `rest`, checking version and length.
fn split_packet(rest: &[u8]) -> Result<(&[u8], &[u8]), MediaError> {
    let head: &[u8; 4] = rest
        .first_chunk()
        .ok_or(MediaError::RtcpTooShort { len: rest.len() })?;
    let version = head[0] >> 6;
    if version != VERSION {
        return Err(MediaError::RtcpVersion(version));
    }
    let len = 4 * (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1);
    rest.split_at_checked(len)
        .ok_or(MediaError::RtcpLengthOverrun)
}

fn parse_packet(packet: &[u8], is_last: bool) -> Result<RtcpPacket<'_>, MediaError> {
    let (head, body) = packet
        .split_first_chunk::<4>()
        .ok_or(MediaError::RtcpTooShort { len: packet.len() })?;
    let body = strip_padding(head, body, is_last)?;
    let count = head[0] & COUNT_MASK;
    match head[1] {
        PT_SR => parse_sender_report(count, body).map(RtcpPacket::SenderReport),
        PT_RR => parse_receiver_report(count, body).map(RtcpPacket::ReceiverReport),
        PT_SDES => parse_sdes(count, body).map(RtcpPacket::SourceDescription),
        PT_BYE => parse_bye(count, body).map(RtcpPacket::Bye),
        packet_type => Ok(RtcpPacket::Other {
            packet_type,
            count,
            body,
        }),
    }
}

fn strip_padding<'a>(
    head: &[u8; 4],
    body: &'a [u8],
    is_last: bool,
) -> Result<&'a [u8], MediaError> {
    if head[0] & PADDING_BIT == 0 {
        return Ok(body);
    }
    if !is_last {
        return Err(MediaError::RtcpPadding);
    }
    let padding = usize::from(body.last().copied().unwrap_or(0));
    if padding == 0 || padding > body.len() {
        return Err(MediaError::RtcpMalformed { kind: "padding" });
    }
    Ok(body.get(..body.len() - padding).unwrap_or_default())
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word: &[u8; 4] = bytes.get(at..)?.first_chunk()?;
    Some(u32::from_be_bytes(*word))
}

fn parse_sender_report(count: u8, body: &[u8]) -> Result<SenderReport, MediaError> {
    let word = |i: usize| be32(body, 4 * i).ok_or(MediaError::RtcpMalformed { kind: "sr" });
    let (ssrc, ntp_hi, ntp_lo) = (word(0)?, word(1)?, word(2)?);
    let (rtp_timestamp, packet_count, octet_count) = (word(3)?, word(4)?, word(5)?);
    let blocks = body.get(4 + SENDER_INFO_LEN..).unwrap_or_default();
    Ok(SenderReport {
        ssrc: Ssrc(ssrc),
        info: SenderInfo {
            ntp: NtpTime((u64::from(ntp_hi) << 32) | u64::from(ntp_lo)),
            rtp_timestamp,
            packet_count,
            octet_count,
        },
        reports: parse_report_blocks(count, blocks, "sr")?,
    })
}

fn parse_receiver_report(count: u8, body: &[u8]) -> Result<ReceiverReport, MediaError> {
    let ssrc = be32(body, 0).ok_or(MediaError::RtcpMalformed { kind: "rr" })?;
    Ok(ReceiverReport {
        ssrc: Ssrc(ssrc),
        reports: parse_report_blocks(count, body.get(4..).unwrap_or_default(), "rr")?,
    })
}

/// Blocks may be followed by profile-specific extensions, which we skip.
fn parse_report_blocks(
    count: u8,
    bytes: &[u8],
    kind: &'static str,
) -> Result<Vec<ReportBlock>, MediaError> {
    let needed = usize::from(count) * REPORT_BLOCK_LEN;
    let blocks = bytes
        .get(..needed)
        .ok_or(MediaError::RtcpMalformed { kind })?;
    Ok(blocks
        .chunks_exact(REPORT_BLOCK_LEN)
        .filter_map(parse_report_block)
        .collect())
}

fn parse_report_block(b: &[u8]) -> Option<ReportBlock> {
    let loss = be32(b, 4)?;
    Some(ReportBlock {
        ssrc: Ssrc(be32(b, 0)?),
        fraction_lost: (loss >> 24) as u8,
        // Shift the 24-bit field to the top and back to sign-extend it.
        cumulative_lost: ((loss << 8) as i32) >> 8,
        extended_highest_seq: be32(b, 8)?,
        jitter: be32(b, 12)?,
        last_sr: be32(b, 16)?,
        delay_since_last_sr: be32(b, 20)?,
    })
}

fn parse_sdes(count: u8, body: &[u8]) -> Result<Vec<SdesChunk<'_>>, MediaError> {
    let mut chunks = Vec::with_capacity(usize::from(count));
    let mut at = 0;
    for _ in 0..count {
        let (chunk, next) = parse_sdes_chunk(body, at)?;
        chunks.push(chunk);
        at = next;
    }
    Ok(chunks)
}

/// One chunk starting at `at`; returns it and the aligned offset after it.
fn parse_sdes_chunk(body: &[u8], mut at: usize) -> Result<(SdesChunk<'_>, usize), MediaError> {
    let malformed = MediaError::RtcpMalformed { kind: "sdes" };
    let ssrc = be32(body, at).ok_or(malformed)?;
    at += 4;
    let mut items = Vec::new();
    loop {
        let kind = *body
            .get(at)
            .ok_or(MediaError::RtcpMalformed { kind: "sdes" })?;
        if kind == SDES_END {
            // The END byte plus null padding reaches the next 32-bit boundary.
            let next = (at + 4) & !3;
            if next > body.len() {
                return Err(MediaError::RtcpMalformed { kind: "sdes" });
            }
            return Ok((
                SdesChunk {
                    ssrc: Ssrc(ssrc),
                    items,
                },
                next,
            ));
        }
        let len = usize::from(
            *body
                .get(at + 1)
                .ok_or(MediaError::RtcpMalformed { kind: "sdes" })?,
        );
        let value = body
            .get(at + 2..at + 2 + len)
            .ok_or(MediaError::RtcpMalformed { kind: "sdes" })?;
        items.push(SdesItem { kind, value });
        at += 2 + len;
    }
}

fn parse_bye(count: u8, body: &[u8]) -> Result<Bye<'_>, MediaError> {
    let malformed = || MediaError::RtcpMalformed { kind: "bye" };
    let sources_len = 4 * usize::from(count);
    let sources = body
        .get(..sources_len)
        .ok_or_else(malformed)?
        .chunks_exact(4)
        .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let reason = match body.get(sources_len) {
        None => None,
        Some(&len) => {
            let start = sources_len + 1;
            Some(
                body.get(start..start + usize::from(len))
                    .ok_or_else(malformed)?,
            )
        }
    };
    Ok(Bye { sources, reason })
}

/// What goes into one scheduled report (RFC 3550 §6.4).
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    pub ssrc: Ssrc,
    /// `Some` when we sent media since the last report: SR instead of RR.
    pub sender: Option<SenderInfo>,
    pub blocks: &'a [ReportBlock],
    pub cname: &'a [u8],
}

/// Replaces `out` with an SR or RR followed by an SDES CNAME.
pub fn write_report(out: &mut Vec<u8>, input: &ReportInput<'_>) -> Result<(), MediaError> {
    out.clear();
    match input.sender {
        Some(info) => write_sender_report(out, input.ssrc, &info, input.blocks)?,
        None => write_receiver_report(out, input.ssrc, input.blocks)?,
    }
    write_sdes_cname(out, input.ssrc, input.cname)
}

/// Replaces `out` with an RR, an SDES CNAME and a BYE (RFC 3550 §6.6).
pub fn write_goodbye(out: &mut Vec<u8>, ssrc: Ssrc, cname: &[u8]) -> Result<(), MediaError> {
    out.clear();
    write_receiver_report(out, ssrc, &[])?;
    write_sdes_cname(out, ssrc, cname)?;
    write_bye(out, &[ssrc], None)
}

/// Appends an SR.
pub fn write_sender_report(
    out: &mut Vec<u8>,
    ssrc: Ssrc,
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<(), MediaError> {
    let count = checked_count(blocks.len())?;
    let words = 1 + SENDER_INFO_LEN / 4 + blocks.len() * REPORT_BLOCK_LEN / 4;
    write_head(out, count, PT_SR, words);
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    out.extend_from_slice(&info.ntp.0.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    blocks.iter().for_each(|b| write_report_block(out, b));
    Ok(())
}

/// Appends an RR.
pub fn write_receiver_report(
    out: &mut Vec<u8>,
    ssrc: Ssrc,
    blocks: &[ReportBlock],
) -> Result<(), MediaError> {
    let count = checked_count(blocks.len())?;
    write_head(out, count, PT_RR, 1 + blocks.len() * REPORT_BLOCK_LEN / 4);
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    blocks.iter().for_each(|b| write_report_block(out, b));
    Ok(())
}

/// Appends an SDES packet with one chunk holding only a CNAME.
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: Ssrc, cname: &[u8]) -> Result<(), MediaError> {
    let len = u8::try_from(cname.len()).map_err(|_| MediaError::RtcpItemTooLong)?;
    // ssrc + type + len + value + END, padded to a word.
    let chunk_len = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    write_head(out, 1, PT_SDES, chunk_len / 4);
    let start = out.len();
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    out.extend_from_slice(&[SDES_CNAME, len]);
    out.extend_from_slice(cname);
    out.resize(start + chunk_len, SDES_END);
    Ok(())
}

/// Appends a BYE for `sources` with an optional reason.
pub fn write_bye(
    out: &mut Vec<u8>,
    sources: &[Ssrc],
    reason: Option<&[u8]>,
) -> Result<(), MediaError> {
    let count = checked_count(sources.len())?;
    let reason_len = match reason {
        Some(r) => u8::try_from(r.len()).map_err(|_| MediaError::RtcpItemTooLong)?,
        None => 0,
    };
    let reason_bytes = reason.map_or(0, |r| (1 + r.len()).div_ceil(4) * 4);
    write_head(out, count, PT_BYE, sources.len() + reason_bytes / 4);
    sources
        .iter()
        .for_each(|s| out.extend_from_slice(&s.0.to_be_bytes()));
    if let Some(r) = reason {
        let start = out.len();
        out.push(reason_len);
        out.extend_from_slice(r);
        out.resize(start + reason_bytes, 0);
    }
    Ok(())
}

fn checked_count(n: usize) -> Result<u8, MediaError> {
    u8::try_from(n)
        .ok()
        .filter(|&c| usize::from(c) <= MAX_COUNT)
        .ok_or(MediaError::RtcpMalformed { kind: "count" })
}

/// `body_words` is the length after the 4-byte header, in 32-bit words.
fn write_head(out: &mut Vec<u8>, count: u8, packet_type: u8, body_words: usize) {
    out.push((VERSION << 6) | (count & COUNT_MASK));
    out.push(packet_type);
    // Bodies we build are far below 2^16 words; the cast cannot truncate.
    out.extend_from_slice(&(body_words as u16).to_be_bytes());
}

fn write_report_block(out: &mut Vec<u8>, b: &ReportBlock) {
    let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
    out.extend_from_slice(&b.ssrc.0.to_be_bytes());
    out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.last_sr.to_be_bytes());
    out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc: Ssrc(0xabcd),
            fraction_lost: 25,
            cumulative_lost: lost,
            extended_highest_seq: 0x0001_0005,
            jitter: 37,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    fn info() -> SenderInfo {
        SenderInfo {
            ntp: NtpTime(0xe000_0000_8000_0000),
            rtp_timestamp: 160_000,
            packet_count: 1000,
            octet_count: 160_000,
        }
    }

    #[test]
    fn sender_report_compound_round_trips() {
        let mut out = Vec::new();
        let blocks = [block(-3)];
        let input = ReportInput {
            ssrc: Ssrc(9),
            sender: Some(info()),
            blocks: &blocks,
            cname: b"x7Qa",
        };
        write_report(&mut out, &input).unwrap();
        assert_eq!(out.len() % 4, 0);
        assert!(is_rtcp(&out));
        let packets = parse_compound(&out).unwrap();
        assert_eq!(packets.len(), 2);
        let RtcpPacket::SenderReport(sr) = &packets[0] else {
            panic!("{packets:?}")
        };
        assert_eq!(
            (sr.ssrc, sr.info, sr.reports.as_slice()),
            (Ssrc(9), info(), &blocks[..])
        );
        let RtcpPacket::SourceDescription(chunks) = &packets[1] else {
            panic!("{packets:?}")
        };
        assert_eq!(chunks[0].ssrc, Ssrc(9));
        assert_eq!(chunks[0].cname(), Some(&b"x7Qa"[..]));
    }

    #[test]
    fn receiver_report_and_bye_round_trip() {
        let mut out = Vec::new();
        let blocks = [block(0x7f_ffff), block(-0x80_0000)];
        let input = ReportInput {
            ssrc: Ssrc(1),
            sender: None,
            blocks: &blocks,
            cname: b"",
        };
        write_report(&mut out, &input).unwrap();
        write_bye(&mut out, &[Ssrc(1), Ssrc(2)], Some(b"hangup")).unwrap();
        let packets = parse_compound(&out).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
            panic!()
        };
        assert_eq!(rr.reports, blocks);
        let RtcpPacket::Bye(bye) = &packets[2] else {
            panic!()
        };
        assert_eq!(bye.sources, vec![Ssrc(1), Ssrc(2)]);
        assert_eq!(bye.reason, Some(&b"hangup"[..]));
    }

    #[test]
    fn goodbye_is_rr_sdes_bye() {
        let mut out = Vec::new();
        write_goodbye(&mut out, Ssrc(5), b"abc").unwrap();
        let packets = parse_compound(&out).unwrap();
        assert!(
            matches!(
                packets.as_slice(),
                [
                    RtcpPacket::ReceiverReport(_),
                    RtcpPacket::SourceDescription(_),
                    RtcpPacket::Bye(bye),
                ] if bye.sources == [Ssrc(5)] && bye.reason.is_none()
            ),
            "{packets:?}"
        );
    }

    #[test]
    fn cumulative_loss_is_clamped_to_24_bits_signed() {
        let mut out = Vec::new();
        write_receiver_report(&mut out, Ssrc(1), &[block(10_000_000), block(-10_000_000)]).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &parse_compound(&out).unwrap()[0] else {
            panic!()
        };
        assert_eq!(rr.reports[0].cumulative_lost, 0x7f_ffff);
        assert_eq!(rr.reports[1].cumulative_lost, -0x80_0000);
    }

    #[test]
    fn unknown_packet_types_are_skipped_whole() {
        // An APP packet (204) of 3 words between an RR and an SDES.
        let mut out = Vec::new();
        write_receiver_report(&mut out, Ssrc(1), &[]).unwrap();
        out.extend_from_slice(&[0x80, 204, 0, 2, 0, 0, 0, 1, b'n', b'a', b'm', b'e']);
        write_sdes_cname(&mut out, Ssrc(1), b"c").unwrap();
        let packets = parse_compound(&out).unwrap();
        assert!(
            matches!(packets[1], RtcpPacket::Other { packet_type: 204, body, .. } if body.len() == 8)
        );
        assert!(matches!(packets[2], RtcpPacket::SourceDescription(_)));
    }

    #[test]
    fn padding_is_allowed_only_on_the_last_packet() {
        let mut last = Vec::new();
        write_receiver_report(&mut last, Ssrc(1), &[]).unwrap();
        last[0] |= PADDING_BIT;
        last[3] = 2;
        last.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(parse_compound(&last).unwrap().len(), 1);
        let mut not_last = last.clone();
        write_sdes_cname(&mut not_last, Ssrc(1), b"c").unwrap();
        assert!(matches!(
            parse_compound(&not_last),
            Err(MediaError::RtcpPadding)
        ));
    }

    #[test]
    fn malformed_packet_injection_is_rejected_without_panic() {
        let mut rr = Vec::new();
        write_receiver_report(&mut rr, Ssrc(1), &[block(0)]).unwrap();
        let mut count_lie = rr.clone();
        count_lie[0] = 0x80 | 5; // five blocks promised, one present
        let mut length_lie = rr.clone();
        length_lie[3] = 200;
        let mut trailing = rr.clone();
        trailing.extend_from_slice(&[0x80, 201]); // half a header
        let sdes_no_end = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b'];
        let sdes_item_overrun = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 200, b'a', b'b'];
        let bye_reason_overrun = [0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'a', b'b', b'c'];
        let bad: [&[u8]; 9] = [
            &[],
            &[0x80, 201],
            &[0x40, 201, 0, 0],
            &count_lie,
            &length_lie,
            &trailing,
            &sdes_no_end,
            &sdes_item_overrun,
            &bye_reason_overrun,
        ];
        for bytes in bad {
            assert!(parse_compound(bytes).is_err(), "accepted {bytes:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic_the_parser() {
        let mut noise = crate::media::testing::Noise::new(0x9e37_79b9);
        for len in 0..2000usize {
            let mut bytes = noise.bytes(len % 120);
            if let Some(b) = bytes.first_mut() {
                *b = 0x80 | (*b & 0x3f); // version 2 so parsing goes deep
            }
            let _ = parse_compound(&bytes);
        }
    }

    #[test]
    fn rtp_and_rtcp_are_told_apart() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(!is_rtcp(&[0x80, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 101, 0, 1]));
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn oversized_items_and_counts_are_refused_when_building() {
        let mut out = Vec::new();
        assert!(write_sdes_cname(&mut out, Ssrc(1), &[b'a'; 256]).is_err());
        assert!(write_receiver_report(&mut out, Ssrc(1), &[block(0); 32]).is_err());
    }
}

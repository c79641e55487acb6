//! RTCP (RFC 3550 §6): compound packet parsing and building. Reception and
//! sending statistics, NTP time and the report interval live in [`stats`]
//! and are re-exported here.
//!
//! Invariants:
//! - [`parse_compound`] checks the version and length of every packet, that
//!   the lengths add up to the datagram exactly, and that only the last
//!   packet is padded (RFC 3550 Appendix A.2); a lie in any length field is
//!   an error, never a panic or an out-of-bounds read.
//! - Packet types we do not use are returned as [`RtcpPacket::Other`] with
//!   their body, so one unknown packet never spoils a compound.
//! - Built packets are always valid compound RTCP: SR or RR first, then an
//!   SDES with a CNAME (RFC 3550 §6.1).

mod compound;
mod stats;

pub use compound::{
    Bye, MAX_COUNT, NtpTime, PT_BYE, PT_RR, PT_SDES, PT_SR, ReceiverReport, ReportBlock,
    ReportInput, RtcpPacket, SdesChunk, SdesItem, SenderInfo, SenderReport, is_rtcp,
    parse_compound, write_bye, write_goodbye, write_receiver_report, write_report,
    write_sdes_cname, write_sender_report,
};
pub use stats::{MIN_REPORT_INTERVAL, ReceiveStats, SenderStats, report_interval};

//! Endpoint counters: atomics written by the packet path and read by
//! [`super::RtpEndpoint::stats`] without any lock, and the reasons a
//! datagram can be dropped.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::media::rtcp::ReportBlock;

/// Why an incoming datagram (or an outgoing packet) went nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not RTP version 2.
    NotRtp,
    /// Version 2 but lengths do not add up, or a bad telephone-event.
    Malformed,
    /// A payload type that was not negotiated.
    UnknownPayloadType,
    /// SRTP/SRTCP tag did not verify, or unencrypted SRTCP.
    SrtpAuth,
    /// SRTP/SRTCP index already seen.
    SrtpReplay,
    /// RTCP arrived on the RTP port but rtcp-mux was not negotiated.
    RtcpOnRtpPort,
    /// RTCP that failed to parse.
    MalformedRtcp,
    /// From an address other than the latched (or signalled) one.
    UnexpectedSource,
    /// Media arrived while the stream is not receiving (hold).
    NotReceiving,
    /// Anything before the remote description is known.
    NotNegotiated,
    /// The owner's event channel was full.
    ConsumerLagging,
    /// The socket refused an outgoing packet.
    SendFailed,
}

impl DropReason {
    const ALL: [DropReason; 12] = [
        DropReason::NotRtp,
        DropReason::Malformed,
        DropReason::UnknownPayloadType,
        DropReason::SrtpAuth,
        DropReason::SrtpReplay,
        DropReason::RtcpOnRtpPort,
        DropReason::MalformedRtcp,
        DropReason::UnexpectedSource,
        DropReason::NotReceiving,
        DropReason::NotNegotiated,
        DropReason::ConsumerLagging,
        DropReason::SendFailed,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Drops by reason, as counted since the endpoint was bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub not_rtp: u64,
    pub malformed: u64,
    pub unknown_payload_type: u64,
    pub srtp_auth: u64,
    pub srtp_replay: u64,
    pub rtcp_on_rtp_port: u64,
    pub malformed_rtcp: u64,
    pub unexpected_source: u64,
    pub not_receiving: u64,
    pub not_negotiated: u64,
    pub consumer_lagging: u64,
    pub send_failed: u64,
}

impl DropCounts {
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::NotRtp => self.not_rtp,
            DropReason::Malformed => self.malformed,
            DropReason::UnknownPayloadType => self.unknown_payload_type,
            DropReason::SrtpAuth => self.srtp_auth,
            DropReason::SrtpReplay => self.srtp_replay,
            DropReason::RtcpOnRtpPort => self.rtcp_on_rtp_port,
            DropReason::MalformedRtcp => self.malformed_rtcp,
            DropReason::UnexpectedSource => self.unexpected_source,
            DropReason::NotReceiving => self.not_receiving,
            DropReason::NotNegotiated => self.not_negotiated,
            DropReason::ConsumerLagging => self.consumer_lagging,
            DropReason::SendFailed => self.send_failed,
        }
    }

    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// A snapshot of one endpoint's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EndpointStats {
    /// RTP datagrams and their bytes on the wire (SRTP tag included).
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Accepted RTP datagrams and their bytes on the wire.
    pub packets_received: u64,
    pub bytes_received: u64,
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    /// Cumulative loss of what we received (RFC 3550 A.3), all sources.
    pub lost: i64,
    /// Interarrival jitter of what we received.
    pub jitter_ms: f64,
    /// The far end's view of our stream, from its last report block.
    pub remote_fraction_lost: f64,
    pub remote_lost: i64,
    pub remote_jitter_ms: f64,
    /// From the far end's LSR/DLSR echo of our last SR.
    pub round_trip_ms: Option<f64>,
    /// Whether symmetric RTP has latched onto an address.
    pub latched: bool,
    pub dropped: DropCounts,
}

const NO_RTT: u64 = u64::MAX;

/// The live counters. All relaxed: each is independent and only ever
/// read for reporting.
#[derive(Debug)]
pub(super) struct StatsCells {
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    packets_received: AtomicU64,
    bytes_received: AtomicU64,
    rtcp_sent: AtomicU64,
    rtcp_received: AtomicU64,
    lost: AtomicI64,
    jitter_us: AtomicU64,
    remote_fraction: AtomicU32,
    remote_lost: AtomicI64,
    remote_jitter_us: AtomicU64,
    rtt_us: AtomicU64,
    latched: AtomicBool,
    drops: [AtomicU64; DropReason::ALL.len()],
}

impl Default for StatsCells {
    fn default() -> Self {
        Self {
            packets_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            rtcp_sent: AtomicU64::new(0),
            rtcp_received: AtomicU64::new(0),
            lost: AtomicI64::new(0),
            jitter_us: AtomicU64::new(0),
            remote_fraction: AtomicU32::new(0),
            remote_lost: AtomicI64::new(0),
            remote_jitter_us: AtomicU64::new(0),
            rtt_us: AtomicU64::new(NO_RTT),
            latched: AtomicBool::new(false),
            drops: Default::default(),
        }
    }
}

impl StatsCells {
    pub(super) fn on_drop(&self, reason: DropReason) {
        if let Some(cell) = self.drops.get(reason.index()) {
            cell.fetch_add(1, Relaxed);
        }
    }

    pub(super) fn on_rtp_sent(&self, bytes: usize) {
        self.packets_sent.fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Relaxed);
    }

    pub(super) fn on_rtp_received(&self, bytes: usize) {
        self.packets_received.fetch_add(1, Relaxed);
        self.bytes_received.fetch_add(bytes as u64, Relaxed);
    }

    pub(super) fn on_rtcp_sent(&self) {
        self.rtcp_sent.fetch_add(1, Relaxed);
    }

    pub(super) fn on_rtcp_received(&self) {
        self.rtcp_received.fetch_add(1, Relaxed);
    }

    pub(super) fn set_reception(&self, lost: i64, jitter: Duration) {
        self.lost.store(lost, Relaxed);
        self.jitter_us.store(jitter.as_micros() as u64, Relaxed);
    }

    pub(super) fn set_remote_report(&self, block: &ReportBlock, clock_rate: u32) {
        let jitter_us = u64::from(block.jitter) * 1_000_000 / u64::from(clock_rate.max(1));
        self.remote_fraction
            .store(u32::from(block.fraction_lost), Relaxed);
        self.remote_lost
            .store(i64::from(block.cumulative_lost), Relaxed);
        self.remote_jitter_us.store(jitter_us, Relaxed);
    }

    pub(super) fn set_round_trip(&self, rtt: Duration) {
        self.rtt_us.store(rtt.as_micros() as u64, Relaxed);
    }

    pub(super) fn set_latched(&self, latched: bool) {
        self.latched.store(latched, Relaxed);
    }

    pub(super) fn snapshot(&self) -> EndpointStats {
        let drop = |r: DropReason| self.drops.get(r.index()).map_or(0, |c| c.load(Relaxed));
        let rtt = self.rtt_us.load(Relaxed);
        EndpointStats {
            packets_sent: self.packets_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            packets_received: self.packets_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            rtcp_sent: self.rtcp_sent.load(Relaxed),
            rtcp_received: self.rtcp_received.load(Relaxed),
            lost: self.lost.load(Relaxed),
            jitter_ms: self.jitter_us.load(Relaxed) as f64 / 1000.0,
            remote_fraction_lost: f64::from(self.remote_fraction.load(Relaxed)) / 256.0,
            remote_lost: self.remote_lost.load(Relaxed),
            remote_jitter_ms: self.remote_jitter_us.load(Relaxed) as f64 / 1000.0,
            round_trip_ms: (rtt != NO_RTT).then(|| rtt as f64 / 1000.0),
            latched: self.latched.load(Relaxed),
            dropped: DropCounts {
                not_rtp: drop(DropReason::NotRtp),
                malformed: drop(DropReason::Malformed),
                unknown_payload_type: drop(DropReason::UnknownPayloadType),
                srtp_auth: drop(DropReason::SrtpAuth),
                srtp_replay: drop(DropReason::SrtpReplay),
                rtcp_on_rtp_port: drop(DropReason::RtcpOnRtpPort),
                malformed_rtcp: drop(DropReason::MalformedRtcp),
                unexpected_source: drop(DropReason::UnexpectedSource),
                not_receiving: drop(DropReason::NotReceiving),
                not_negotiated: drop(DropReason::NotNegotiated),
                consumer_lagging: drop(DropReason::ConsumerLagging),
                send_failed: drop(DropReason::SendFailed),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_lands_in_its_own_counter() {
        let cells = StatsCells::default();
        for (i, &reason) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                cells.on_drop(reason);
            }
        }
        let snap = cells.snapshot();
        for (i, &reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(snap.dropped.get(reason), i as u64 + 1, "{reason:?}");
        }
        assert_eq!(snap.dropped.total(), (1..=12).sum::<u64>());
    }

    #[test]
    fn remote_report_is_converted_to_wall_units() {
        let cells = StatsCells::default();
        assert_eq!(cells.snapshot().round_trip_ms, None);
        let block = ReportBlock {
            ssrc: crate::media::rtp::Ssrc(1),
            fraction_lost: 64,
            cumulative_lost: -2,
            extended_highest_seq: 0,
            jitter: 160,
            last_sr: 0,
            delay_since_last_sr: 0,
        };
        cells.set_remote_report(&block, 8000);
        cells.set_round_trip(Duration::from_millis(42));
        let snap = cells.snapshot();
        assert_eq!((snap.remote_fraction_lost, snap.remote_lost), (0.25, -2));
        assert_eq!(snap.remote_jitter_ms, 20.0);
        assert_eq!(snap.round_trip_ms, Some(42.0));
    }
}

//! RTCP statistics: per-source reception statistics (RFC 3550 Appendix A.1
//! sequence validation, A.3 loss, A.8 jitter), sender statistics for SRs and
//! round-trip time (§6.4.1), NTP timestamps, and the report interval (§6.2).
//!
//! Invariants: pure arithmetic on values the caller passes in (`now`,
//! arrival times, wall clock); nothing here reads a clock itself.

use std::time::{Duration, Instant, SystemTime};

use super::compound::{NtpTime, ReportBlock, SenderInfo};
use crate::media::rtp::Ssrc;

const SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// Packets in sequence before a new source is believed (A.1).
const MIN_SEQUENTIAL: u8 = 2;
/// RFC 3550 §6.2: the minimum interval between reports.
pub const MIN_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 3550 §6.3.1: e - 3/2 compensates for timer reconsideration.
const RECONSIDERATION_COMPENSATION: f64 = 1.218_281_828_459_045;

/// Duration in the 1/65536 s units of DLSR and round-trip arithmetic.
fn to_short_units(d: Duration) -> u32 {
    (d.as_nanos() * 65_536 / 1_000_000_000).min(u128::from(u32::MAX)) as u32
}

fn from_short_units(units: u32) -> Duration {
    Duration::from_nanos(u64::from(units) * 1_000_000_000 / 65_536)
}

/// The randomised time until the next report (RFC 3550 §6.2, §6.3.1) for a
/// two-party call, where the minimum (normally [`MIN_REPORT_INTERVAL`])
/// always dominates the bandwidth term. `random` should be uniform in
/// [0, 1); the caller owns the RNG so this stays deterministic under test.
/// The first report waits half as long.
pub fn report_interval(minimum: Duration, initial: bool, random: f64) -> Duration {
    let base = if initial { minimum / 2 } else { minimum };
    let factor = 0.5 + random.clamp(0.0, 1.0);
    base.mul_f64(factor / RECONSIDERATION_COMPENSATION)
}

/// Reception statistics for one remote source.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u8,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    started: bool,
    epoch: Option<Instant>,
    last_transit: Option<u32>,
    /// Jitter scaled by 16, the integer form of A.8.
    jitter_q4: u64,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            started: false,
            epoch: None,
            last_transit: None,
            jitter_q4: 0,
            last_sr: None,
        }
    }

    /// Feeds one packet of this source. Returns `false` while the source is
    /// on probation or when the packet looks like a restart not yet
    /// confirmed (A.1); such packets count for nothing.
    pub fn handle_packet(&mut self, seq: u16, rtp_timestamp: u32, arrival: Instant) -> bool {
        if !self.started {
            self.started = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        if !self.update_seq(seq) {
            return false;
        }
        self.update_jitter(rtp_timestamp, arrival);
        true
    }

    /// Remembers an SR from this source for LSR/DLSR in our next report.
    pub fn handle_sender_report(&mut self, ntp: NtpTime, arrival: Instant) {
        self.last_sr = Some((ntp.middle_32(), arrival));
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// RFC 3550 Appendix A.1 `update_seq`.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            return self.update_probation(seq);
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) != self.bad_seq {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
            // Two sequential packets after a jump: the sender restarted.
            self.init_seq(seq);
        }
        self.received = self.received.wrapping_add(1);
        true
    }

    fn update_probation(&mut self, seq: u16) -> bool {
        if seq != self.max_seq.wrapping_add(1) {
            self.probation = MIN_SEQUENTIAL - 1;
            self.max_seq = seq;
            return false;
        }
        self.probation -= 1;
        self.max_seq = seq;
        if self.probation > 0 {
            return false;
        }
        self.init_seq(seq);
        self.received = 1;
        true
    }

    /// RFC 3550 Appendix A.8, in wrapping 32-bit timestamp arithmetic.
    fn update_jitter(&mut self, rtp_timestamp: u32, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let elapsed = arrival.saturating_duration_since(epoch).as_nanos();
        let arrival_ts = (elapsed * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival_ts.wrapping_sub(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let d = u64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.jitter_q4 = (self.jitter_q4 + d).saturating_sub((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Highest sequence number seen, extended with the wrap count.
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected since the source was validated (A.3).
    pub fn expected(&self) -> u32 {
        if self.received == 0 {
            return 0;
        }
        self.extended_highest_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Packets counted, duplicates included (as A.3 defines it).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Expected minus received, clamped to the 24-bit signed wire field.
    pub fn cumulative_lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4).min(u64::from(u32::MAX)) as u32
    }

    /// Interarrival jitter as wall time.
    pub fn jitter_duration(&self) -> Duration {
        if self.clock_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(f64::from(self.jitter()) / f64::from(self.clock_rate))
    }

    /// The report block for our next SR/RR, or `None` before the source is
    /// validated. Advances the "since last report" window for fraction lost.
    #[must_use]
    pub fn poll_report_block(&mut self, ssrc: Ssrc, now: Instant) -> Option<ReportBlock> {
        if self.received == 0 {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = self.last_sr.map_or((0, 0), |(lsr, at)| {
            (lsr, to_short_units(now.saturating_duration_since(at)))
        });
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            extended_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

/// What we sent, for the sender information of our SRs.
#[derive(Debug, Clone)]
pub struct SenderStats {
    clock_rate: u32,
    packets: u32,
    octets: u32,
    last_rtp: Option<(u32, Instant)>,
    sent_since_report: bool,
    last_sr: Option<u32>,
}

impl SenderStats {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            packets: 0,
            octets: 0,
            last_rtp: None,
            sent_since_report: false,
            last_sr: None,
        }
    }

    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = clock_rate;
    }

    /// Counts one sent RTP packet (payload octets, as §6.4.1 defines them).
    pub fn handle_sent(&mut self, payload_len: usize, rtp_timestamp: u32, now: Instant) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        self.last_rtp = Some((rtp_timestamp, now));
        self.sent_since_report = true;
    }

    pub fn packet_count(&self) -> u32 {
        self.packets
    }

    pub fn octet_count(&self) -> u32 {
        self.octets
    }

    /// Sender info for an SR when we sent media since the previous report,
    /// `None` when an RR is due instead (RFC 3550 §6.4). The RTP timestamp
    /// is the last one sent, advanced to `now` so receivers can map it to
    /// the NTP time for lip sync and RTT.
    #[must_use]
    pub fn poll_sender_info(&mut self, now: Instant, wallclock: SystemTime) -> Option<SenderInfo> {
        if !std::mem::take(&mut self.sent_since_report) {
            return None;
        }
        let (last_ts, at) = self.last_rtp?;
        let elapsed = now.saturating_duration_since(at).as_nanos();
        let advance = (elapsed * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let ntp = NtpTime::from_system_time(wallclock);
        self.last_sr = Some(ntp.middle_32());
        Some(SenderInfo {
            ntp,
            rtp_timestamp: last_ts.wrapping_add(advance),
            packet_count: self.packets,
            octet_count: self.octets,
        })
    }

    /// Round-trip time from a report block about our stream (§6.4.1):
    /// arrival − LSR − DLSR. `None` before we sent an SR, when the block
    /// echoes none, or when the result would be negative.
    pub fn round_trip(&self, block: &ReportBlock, arrival: NtpTime) -> Option<Duration> {
        if block.last_sr == 0 || self.last_sr.is_none() {
            return None;
        }
        let rtt = arrival
            .middle_32()
            .wrapping_sub(block.last_sr)
            .wrapping_sub(block.delay_since_last_sr);
        // A negative result wraps to a huge value: clock trouble, not an RTT.
        (rtt < 0x8000_0000).then(|| from_short_units(rtt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    use crate::media::rtcp::compound::NTP_UNIX_OFFSET;

    const MS20: Duration = Duration::from_millis(20);

    /// Feeds `seqs` at 20 ms spacing with matching timestamps (no jitter).
    fn feed(stats: &mut ReceiveStats, t0: Instant, seqs: &[u16]) {
        for (i, &seq) in seqs.iter().enumerate() {
            let ts = u32::from(seq.wrapping_sub(seqs[0])) * 160;
            let _ = stats.handle_packet(seq, ts, t0 + MS20 * i as u32);
        }
    }

    #[test]
    fn ntp_time_of_unix_epoch_and_a_half_second() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        let ntp = NtpTime::from_system_time(t);
        assert_eq!(ntp.0 >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(ntp.0 & 0xffff_ffff, 0x8000_0000);
        assert_eq!(
            ntp.middle_32(),
            (((NTP_UNIX_OFFSET + 1) as u32) << 16) | 0x8000
        );
    }

    #[test]
    fn new_source_needs_two_sequential_packets() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        assert!(!s.handle_packet(100, 0, t0));
        assert!(s.handle_packet(101, 160, t0 + MS20));
        assert_eq!((s.received(), s.expected(), s.cumulative_lost()), (1, 1, 0));
    }

    #[test]
    fn loss_and_fraction_lost_per_report_interval() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        // 10..=29 with 15, 16, 17 and 20 missing: 16 of 20 after probation.
        let seqs: Vec<u16> = (10..30).filter(|q| ![15, 16, 17, 20].contains(q)).collect();
        feed(&mut s, t0, &seqs);
        assert_eq!(s.expected(), 19);
        assert_eq!(s.cumulative_lost(), 4);
        let block = s.poll_report_block(Ssrc(1), t0).unwrap();
        assert_eq!(block.fraction_lost, (4 * 256 / 19) as u8);
        assert_eq!(block.extended_highest_seq, 29);
        feed(&mut s, t0, &[30, 31, 32, 33]);
        let block = s.poll_report_block(Ssrc(1), t0).unwrap();
        assert_eq!((block.fraction_lost, block.cumulative_lost), (0, 4));
    }

    #[test]
    fn duplicates_make_loss_negative_and_fraction_zero() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[1, 2, 3, 3, 3, 4]);
        assert_eq!(s.cumulative_lost(), -2);
        assert_eq!(s.poll_report_block(Ssrc(1), t0).unwrap().fraction_lost, 0);
    }

    #[test]
    fn sequence_wrap_is_extended() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[65533, 65534, 65535, 0, 1]);
        assert_eq!(s.extended_highest_seq(), 65536 + 1);
        assert_eq!((s.expected(), s.cumulative_lost()), (4, 0));
    }

    #[test]
    fn restart_is_believed_after_two_sequential_packets() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[1, 2, 3]);
        assert!(!s.handle_packet(40_000, 0, t0));
        assert!(s.handle_packet(40_001, 160, t0 + MS20));
        assert_eq!(
            (s.expected(), s.received(), s.extended_highest_seq()),
            (1, 1, 40_001)
        );
    }

    #[test]
    fn jitter_follows_appendix_a8() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        assert_eq!(s.jitter(), 0);
        // Every other packet arrives 10 ms (80 ticks) late.
        for i in 0..400u32 {
            let late = if i % 2 == 1 {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            let _ = s.handle_packet(i as u16, i * 160, t0 + MS20 * i + late);
        }
        // |D| is 80 every packet, so J converges to 80 ticks = 10 ms.
        assert!((78..=80).contains(&s.jitter()), "jitter {}", s.jitter());
        assert!((9..=10).contains(&s.jitter_duration().as_millis()));
    }

    #[test]
    fn steady_stream_has_no_jitter() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &(0..100).collect::<Vec<u16>>());
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn report_block_echoes_their_sr_with_delay() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[1, 2]);
        s.handle_sender_report(NtpTime(0x0000_1234_5678_0000), t0);
        let block = s
            .poll_report_block(Ssrc(1), t0 + Duration::from_millis(500))
            .unwrap();
        assert_eq!(block.last_sr, 0x1234_5678);
        assert_eq!(block.delay_since_last_sr, 32_768);
    }

    #[test]
    fn no_report_block_before_validation() {
        let mut s = ReceiveStats::new(8000);
        assert!(s.poll_report_block(Ssrc(1), Instant::now()).is_none());
    }

    #[test]
    fn sender_info_only_after_sending_and_extrapolates_the_timestamp() {
        let t0 = Instant::now();
        let mut s = SenderStats::new(8000);
        assert!(s.poll_sender_info(t0, SystemTime::now()).is_none());
        s.handle_sent(160, 1000, t0);
        s.handle_sent(160, 1160, t0 + MS20);
        let info = s
            .poll_sender_info(t0 + Duration::from_millis(120), UNIX_EPOCH)
            .unwrap();
        assert_eq!(
            (info.packet_count, info.octet_count, info.rtp_timestamp),
            (2, 320, 1960)
        );
        assert!(
            s.poll_sender_info(t0, UNIX_EPOCH).is_none(),
            "no media since: RR"
        );
    }

    #[test]
    fn round_trip_from_their_report_block() {
        let t0 = Instant::now();
        let mut s = SenderStats::new(8000);
        s.handle_sent(160, 0, t0);
        let sent_at = UNIX_EPOCH + Duration::from_secs(100);
        let info = s.poll_sender_info(t0, sent_at).unwrap();
        let block = ReportBlock {
            ssrc: Ssrc(1),
            fraction_lost: 0,
            cumulative_lost: 0,
            extended_highest_seq: 0,
            jitter: 0,
            last_sr: info.ntp.middle_32(),
            delay_since_last_sr: 65_536, // they held it 1 s
        };
        let arrival = NtpTime::from_system_time(sent_at + Duration::from_millis(1080));
        let rtt = s.round_trip(&block, arrival).unwrap();
        assert!((79..=81).contains(&rtt.as_millis()), "{rtt:?}");
        // An LSR from the future (clock trouble or forgery) gives no RTT.
        let future = ReportBlock {
            last_sr: info.ntp.middle_32().wrapping_add(65_536 * 10),
            ..block
        };
        assert!(s.round_trip(&future, arrival).is_none());
        assert!(
            SenderStats::new(8000).round_trip(&block, arrival).is_none(),
            "no SR sent yet"
        );
    }

    #[test]
    fn report_interval_is_randomised_around_five_seconds() {
        let low = report_interval(MIN_REPORT_INTERVAL, false, 0.0);
        let high = report_interval(MIN_REPORT_INTERVAL, false, 1.0);
        assert!((2.0..2.1).contains(&low.as_secs_f64()), "{low:?}");
        assert!((6.1..6.2).contains(&high.as_secs_f64()), "{high:?}");
        let first = report_interval(MIN_REPORT_INTERVAL, true, 0.5).as_secs_f64();
        let later = report_interval(MIN_REPORT_INTERVAL, false, 0.5).as_secs_f64();
        assert!((first - later / 2.0).abs() < 1e-6);
    }
}

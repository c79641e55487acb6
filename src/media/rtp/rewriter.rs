//! [`StreamRewriter`]: presents one continuous outgoing RTP stream (one SSRC,
//! sequence numbers +1 per packet, timestamps following the wall clock)
//! while the incoming source changes underneath: early media from a 183 then
//! the answered stream from the 200, a new SSRC after a re-INVITE, our own
//! generated audio, inserted DTMF packets.
//!
//! Invariants:
//! - Pure: takes `now` and header values, returns header values; no I/O.
//! - The first packet after a source switch continues at the highest sequence
//!   number sent + 1, at the timestamp the wall clock has reached since the
//!   last packet, and carries the marker bit (RFC 3550 §5.1: a new talkspurt).
//! - Within one source, every packet keeps its offset, so reordering and
//!   loss stay visible to the far end exactly as they happened.
//! - A late straggler from the source we just switched away from is dropped
//!   rather than forcing a switch back and forth.
//! - No outgoing sequence number is handed out twice: a duplicate, or a late
//!   packet whose number an inserted packet took, is dropped, as is one
//!   further behind than [`SENT_WINDOW`]. Under SRTP the sequence number
//!   is the packet's index, and two packets encrypted under one index would
//!   share their keystream (and the receiver drops the second as a replay).

use std::time::{Duration, Instant};

use super::packet::{RtpHeader, RtpPacketMut, Ssrc};

/// RFC 3550 Appendix A.1 bounds, used to tell loss and reordering apart from
/// a sender that restarted its sequence numbers.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// How far behind the highest number sent a late packet may still go out
/// (the bits of [`StreamRewriter`]'s record); receivers' replay windows
/// are 64 to 128 packets.
pub const SENT_WINDOW: u16 = 128;
// A late packet the rewriter accepts is never refused for its age.
const _: () = assert!(MAX_MISORDER < SENT_WINDOW);

/// Our outgoing stream's identity and first values (random per RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStart {
    pub ssrc: Ssrc,
    pub sequence: u16,
    pub timestamp: u32,
}

/// Header values of an incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteInput {
    pub ssrc: Ssrc,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
}

/// Header values to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
    pub marker: bool,
}

impl Rewritten {
    /// A fresh fixed header carrying these values.
    pub fn header(&self, payload_type: u8) -> RtpHeader {
        RtpHeader {
            payload_type,
            marker: self.marker,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct SourceMap {
    ssrc: Ssrc,
    seq_offset: u16,
    ts_offset: u32,
    highest_in: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Ahead,
    /// A duplicate or a packet at most `MAX_MISORDER` behind.
    Late,
    /// Too far either way to be reordering: the sender restarted.
    Jump,
}

fn position(seq: u16, highest: u16) -> Position {
    let delta = seq.wrapping_sub(highest);
    if delta == 0 || delta > u16::MAX - MAX_MISORDER {
        Position::Late
    } else if delta < MAX_DROPOUT {
        Position::Ahead
    } else {
        Position::Jump
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    ssrc: Ssrc,
    clock_rate: u32,
    highest_seq: u16,
    anchor_ts: u32,
    anchor_at: Instant,
    sent_any: bool,
    current: Option<SourceMap>,
    previous: Option<(Ssrc, u16)>,
    force_switch: bool,
    /// Bit `i` set: `highest_seq - i` went out.
    sent: u128,
}

impl StreamRewriter {
    /// `clock_rate` is the RTP clock of the outgoing payload (8000 for G.711).
    pub fn new(start: StreamStart, clock_rate: u32, now: Instant) -> Self {
        Self {
            ssrc: start.ssrc,
            clock_rate,
            highest_seq: start.sequence.wrapping_sub(1),
            anchor_ts: start.timestamp,
            anchor_at: now,
            sent_any: false,
            current: None,
            previous: None,
            force_switch: false,
            sent: 0,
        }
    }

    /// Our outgoing SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The highest sequence number handed out so far.
    pub fn last_sequence(&self) -> u16 {
        self.highest_seq
    }

    /// A renegotiation changed the clock; later switches count time in it.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = clock_rate;
    }

    /// Makes the next packet start a new mapping even if its SSRC is the one
    /// already seen: a re-INVITE may reuse an SSRC with fresh numbering.
    pub fn mark_source_change(&mut self) {
        self.force_switch = true;
        self.previous = None;
    }

    /// Maps an incoming packet to outgoing header values, or `None` for a
    /// late packet from the source we already switched away from, or one
    /// whose outgoing number was already used or is too old.
    #[must_use]
    pub fn rewrite(&mut self, now: Instant, input: RewriteInput) -> Option<Rewritten> {
        match self.current {
            Some(map) if map.ssrc == input.ssrc && !self.force_switch => {
                self.rewrite_current(now, input, map)
            }
            _ if self.is_stale_previous(&input) => None,
            _ => Some(self.switch_to(now, input)),
        }
    }

    /// Accounts for a packet of the current source that is not relayed (a
    /// trunk's telephone-event, which we replace with our own): when it is
    /// ahead of the source's highest, the source's later packets close up
    /// behind it, so the far end sees no gap where it was (a gap before it
    /// stays, as loss). A late one changes nothing. The caller feeds the
    /// source under one SSRC, as [`StreamRewriter::rewrite`]'s inputs
    /// carry it.
    pub fn skip(&mut self, ssrc: Ssrc, sequence: u16) {
        if self.force_switch {
            return;
        }
        if let Some(map) = self
            .current
            .as_mut()
            .filter(|m| m.ssrc == ssrc && position(sequence, m.highest_in) == Position::Ahead)
        {
            map.highest_in = sequence;
            map.seq_offset = map.seq_offset.wrapping_sub(1);
        }
    }

    /// Reserves the next sequence number for a packet we originate inside
    /// the stream (a DTMF event packet). The current source's numbering is
    /// shifted by one so its next packet does not reuse the number.
    pub fn insert(&mut self) -> u16 {
        self.mark_sent(self.highest_seq.wrapping_add(1));
        if let Some(map) = &mut self.current {
            map.seq_offset = map.seq_offset.wrapping_add(1);
        }
        self.sent_any = true;
        self.highest_seq
    }

    /// The outgoing timestamp that corresponds to `now`, at least one tick
    /// past the last packet so a new source or event never repeats it.
    pub fn next_timestamp(&self, now: Instant) -> u32 {
        let elapsed = samples(
            now.saturating_duration_since(self.anchor_at),
            self.clock_rate,
        );
        let advance = if self.sent_any {
            elapsed.max(1)
        } else {
            elapsed
        };
        self.anchor_ts.wrapping_add(advance)
    }

    fn rewrite_current(
        &mut self,
        now: Instant,
        input: RewriteInput,
        map: SourceMap,
    ) -> Option<Rewritten> {
        match position(input.sequence, map.highest_in) {
            Position::Jump => Some(self.switch_to(now, input)),
            Position::Late => {
                let out = self.map_packet(&map, &input);
                self.mark_late_sent(out.sequence).then_some(out)
            }
            Position::Ahead => {
                let out = self.map_packet(&map, &input);
                self.current = Some(SourceMap {
                    highest_in: input.sequence,
                    ..map
                });
                self.advance(now, &out);
                Some(out)
            }
        }
    }

    /// Records `sequence`, at or past the highest sent, as sent.
    fn mark_sent(&mut self, sequence: u16) {
        let ahead = sequence.wrapping_sub(self.highest_seq);
        self.sent = match ahead {
            0 => self.sent,
            n if n >= SENT_WINDOW => 0,
            n => self.sent << n,
        } | 1;
        self.highest_seq = sequence;
    }

    /// Records a late packet's `sequence` as sent; false when it already
    /// went out or is further behind than the window.
    fn mark_late_sent(&mut self, sequence: u16) -> bool {
        let behind = self.highest_seq.wrapping_sub(sequence);
        if behind >= SENT_WINDOW {
            return false;
        }
        let bit = 1u128 << behind;
        let fresh = self.sent & bit == 0;
        self.sent |= bit;
        fresh
    }

    fn is_stale_previous(&self, input: &RewriteInput) -> bool {
        self.previous.is_some_and(|(ssrc, highest)| {
            ssrc == input.ssrc && position(input.sequence, highest) == Position::Late
        })
    }

    fn switch_to(&mut self, now: Instant, input: RewriteInput) -> Rewritten {
        let sequence = self.highest_seq.wrapping_add(1);
        let timestamp = self.next_timestamp(now);
        if let Some(old) = self.current.filter(|m| m.ssrc != input.ssrc) {
            self.previous = Some((old.ssrc, old.highest_in));
        }
        self.current = Some(SourceMap {
            ssrc: input.ssrc,
            seq_offset: sequence.wrapping_sub(input.sequence),
            ts_offset: timestamp.wrapping_sub(input.timestamp),
            highest_in: input.sequence,
        });
        self.force_switch = false;
        let out = Rewritten {
            sequence,
            timestamp,
            ssrc: self.ssrc,
            marker: true,
        };
        self.advance(now, &out);
        out
    }

    fn map_packet(&self, map: &SourceMap, input: &RewriteInput) -> Rewritten {
        Rewritten {
            sequence: input.sequence.wrapping_add(map.seq_offset),
            timestamp: input.timestamp.wrapping_add(map.ts_offset),
            ssrc: self.ssrc,
            marker: input.marker,
        }
    }

    fn advance(&mut self, now: Instant, out: &Rewritten) {
        self.mark_sent(out.sequence);
        self.anchor_ts = out.timestamp;
        self.anchor_at = now;
        self.sent_any = true;
    }
}

/// Whole clock ticks in `elapsed`; wraps like RTP timestamps do.
fn samples(elapsed: Duration, clock_rate: u32) -> u32 {
    (elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u32
}

impl RtpPacketMut<'_> {
    /// Writes a [`StreamRewriter`] result into the header.
    pub fn apply(&mut self, rewritten: &Rewritten) {
        self.set_sequence(rewritten.sequence);
        self.set_timestamp(rewritten.timestamp);
        self.set_ssrc(rewritten.ssrc);
        self.set_marker(rewritten.marker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Ssrc = Ssrc(0xcafe);

    fn rewriter(now: Instant) -> StreamRewriter {
        let start = StreamStart {
            ssrc: OURS,
            sequence: 1000,
            timestamp: 50_000,
        };
        StreamRewriter::new(start, 8000, now)
    }

    fn input(ssrc: u32, sequence: u16, timestamp: u32) -> RewriteInput {
        RewriteInput {
            ssrc: Ssrc(ssrc),
            sequence,
            timestamp,
            marker: false,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_packet_starts_at_our_base_with_marker() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let out = rw.rewrite(t0, input(7, 30_000, 123)).unwrap();
        assert_eq!(
            out,
            Rewritten {
                sequence: 1000,
                timestamp: 50_000,
                ssrc: OURS,
                marker: true
            }
        );
    }

    #[test]
    fn one_source_keeps_its_spacing_and_marker_bits() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(7, 10, 160));
        let out = rw.rewrite(t0 + ms(20), input(7, 11, 320)).unwrap();
        assert_eq!(
            (out.sequence, out.timestamp, out.marker),
            (1001, 50_160, false)
        );
        let mut talkspurt = input(7, 12, 8000);
        talkspurt.marker = true;
        let out = rw.rewrite(t0 + ms(40), talkspurt).unwrap();
        assert_eq!(
            (out.sequence, out.timestamp, out.marker),
            (1002, 50_000 + 7840, true)
        );
    }

    #[test]
    fn source_switch_continues_sequence_and_wall_clock_timestamps() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        for i in 0..5u16 {
            let _ = rw.rewrite(
                t0 + ms(20 * u64::from(i)),
                input(1, 500 + i, 160 * u32::from(i)),
            );
        }
        // Last out: seq 1004, ts 50_640 at t0+80ms. New source 100 ms later.
        let out = rw.rewrite(t0 + ms(180), input(2, 9, 777_777)).unwrap();
        assert_eq!(
            out,
            Rewritten {
                sequence: 1005,
                timestamp: 50_640 + 800,
                ssrc: OURS,
                marker: true
            }
        );
        let next = rw.rewrite(t0 + ms(200), input(2, 10, 777_937)).unwrap();
        assert_eq!(
            (next.sequence, next.timestamp, next.marker),
            (1006, 51_600, false)
        );
    }

    #[test]
    fn sequence_wraps_on_both_sides() {
        let t0 = Instant::now();
        let start = StreamStart {
            ssrc: OURS,
            sequence: 65534,
            timestamp: u32::MAX - 100,
        };
        let mut rw = StreamRewriter::new(start, 8000, t0);
        let seqs: Vec<(u16, u32)> = [65535u16, 0, 1, 2]
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let out = rw.rewrite(t0, input(3, s, 160 * i as u32)).unwrap();
                (out.sequence, out.timestamp)
            })
            .collect();
        assert_eq!(
            seqs,
            vec![(65534, u32::MAX - 100), (65535, 59), (0, 219), (1, 379)]
        );
    }

    #[test]
    fn reordered_packet_keeps_its_relative_offset() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(4, 100, 0));
        let _ = rw.rewrite(t0 + ms(40), input(4, 102, 320));
        let late = rw.rewrite(t0 + ms(45), input(4, 101, 160)).unwrap();
        assert_eq!(
            (late.sequence, late.timestamp, late.marker),
            (1001, 50_160, false)
        );
        let next = rw.rewrite(t0 + ms(60), input(4, 103, 480)).unwrap();
        assert_eq!(
            next.sequence, 1003,
            "the late packet must not move the stream"
        );
    }

    #[test]
    fn straggler_from_previous_source_is_dropped_but_a_resumed_one_switches_back() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(1, 10, 0));
        let _ = rw.rewrite(t0 + ms(20), input(1, 11, 160));
        let _ = rw.rewrite(t0 + ms(40), input(2, 500, 0));
        assert_eq!(rw.rewrite(t0 + ms(41), input(1, 11, 160)), None);
        assert_eq!(rw.rewrite(t0 + ms(42), input(1, 9, 0)), None);
        let back = rw.rewrite(t0 + ms(60), input(1, 40, 4800)).unwrap();
        assert!(back.marker);
        assert_eq!(back.sequence, 1003);
    }

    #[test]
    fn no_outgoing_number_goes_out_twice() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        for i in 0..5u16 {
            let _ = rw.rewrite(
                t0 + ms(20 * u64::from(i)),
                input(1, 10 + i, 160 * u32::from(i)),
            );
        }
        // Out: 1000..=1004 for 10..=14.
        assert_eq!(
            rw.rewrite(t0 + ms(90), input(1, 14, 640)),
            None,
            "a duplicate"
        );
        let late = rw.rewrite(t0 + ms(91), input(1, 12, 320));
        assert_eq!(late, None, "a late packet already sent");

        // 16 is lost, then a DTMF packet takes 1005 and shifts the offset.
        let _ = rw.rewrite(t0 + ms(100), input(1, 15, 800));
        assert_eq!(rw.insert(), 1006);
        let next = rw.rewrite(t0 + ms(140), input(1, 17, 1120)).unwrap();
        assert_eq!(next.sequence, 1008);
        let straggler = rw.rewrite(t0 + ms(141), input(1, 16, 960)).unwrap();
        assert_eq!(straggler.sequence, 1007, "its own slot, still free");
        assert_eq!(rw.rewrite(t0 + ms(142), input(1, 16, 960)), None);
        let before_insert = rw.rewrite(t0 + ms(143), input(1, 15, 800));
        assert_eq!(before_insert, None, "1006 went to the DTMF packet");
    }

    #[test]
    fn the_latest_late_packet_still_goes_out_once() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(1, 1000, 0));
        let _ = rw.rewrite(t0 + ms(20), input(1, 1000 + MAX_MISORDER + 10, 160));
        let late = input(1, 1000 + 11, 0);
        assert!(rw.rewrite(t0 + ms(21), late).is_some());
        assert_eq!(rw.rewrite(t0 + ms(22), late), None);
    }

    #[test]
    fn same_ssrc_restarting_its_numbering_is_rebased() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(5, 20_000, 0));
        let out = rw.rewrite(t0 + ms(20), input(5, 3, 99)).unwrap();
        assert_eq!(
            (out.sequence, out.timestamp, out.marker),
            (1001, 50_160, true)
        );
    }

    #[test]
    fn marked_source_change_rebases_even_with_the_same_ssrc() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(5, 10, 0));
        rw.mark_source_change();
        let out = rw.rewrite(t0 + ms(20), input(5, 11, 90_000)).unwrap();
        assert_eq!(
            (out.sequence, out.timestamp, out.marker),
            (1001, 50_160, true)
        );
    }

    #[test]
    fn inserted_packets_share_the_sequence_space_and_keep_loss_visible() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(6, 10, 0));
        assert_eq!(rw.insert(), 1001);
        assert_eq!(rw.insert(), 1002);
        // 11 was lost; 12 must land two past the inserted packets.
        let out = rw.rewrite(t0 + ms(40), input(6, 12, 320)).unwrap();
        assert_eq!(
            (out.sequence, out.timestamp, out.marker),
            (1004, 50_320, false)
        );
    }

    #[test]
    fn skipped_packets_leave_no_gap_and_never_free_a_number_twice() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(6, 10, 0));
        // 11 to 14 are the trunk's telephone-events, replaced by two of ours.
        rw.skip(Ssrc(6), 11);
        assert_eq!(rw.insert(), 1001);
        rw.skip(Ssrc(6), 12);
        rw.skip(Ssrc(6), 13);
        assert_eq!(rw.insert(), 1002);
        rw.skip(Ssrc(6), 14);
        let out = rw.rewrite(t0 + ms(100), input(6, 15, 800)).unwrap();
        assert_eq!(out.sequence, 1003, "no gap where the events were");
        // After a loss (16 and 17 lost), the gap stays and the skipped
        // packet's slot closes.
        rw.skip(Ssrc(6), 18);
        let out = rw.rewrite(t0 + ms(180), input(6, 19, 1520)).unwrap();
        assert_eq!(out.sequence, 1006);
        // Late, another source's, or after a marked change: the numbering
        // stays as it is.
        let sequence_of = |rw: &mut StreamRewriter, at, sequence: u16| {
            let timestamp = u32::from(sequence) * 80;
            rw.rewrite(t0 + ms(at), input(6, sequence, timestamp))
                .map(|out| out.sequence)
        };
        rw.skip(Ssrc(6), 17);
        rw.skip(Ssrc(7), 20);
        assert_eq!(sequence_of(&mut rw, 200, 20), Some(1007));
        rw.mark_source_change();
        rw.skip(Ssrc(6), 21);
        assert_eq!(sequence_of(&mut rw, 220, 21), Some(1008));
        // A late packet from before the skips never takes a number again.
        assert_eq!(sequence_of(&mut rw, 230, 16), None);
    }

    #[test]
    fn timestamps_never_repeat_across_a_switch_at_the_same_instant() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let a = rw.rewrite(t0, input(1, 1, 0)).unwrap();
        let b = rw.rewrite(t0, input(2, 1, 0)).unwrap();
        assert_eq!(b.timestamp, a.timestamp + 1);
        assert_eq!(rw.next_timestamp(t0 + ms(10)), a.timestamp + 1 + 80);
    }

    #[test]
    fn clock_rate_change_applies_to_elapsed_time() {
        let t0 = Instant::now();
        let mut rw = rewriter(t0);
        let _ = rw.rewrite(t0, input(1, 1, 0));
        rw.set_clock_rate(48_000);
        let out = rw.rewrite(t0 + ms(20), input(2, 1, 0)).unwrap();
        assert_eq!(out.timestamp, 50_000 + 960);
    }
}

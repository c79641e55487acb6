//! DTMF over RTP as telephone-events (RFC 4733): the 4-byte payload, the
//! digit ↔ event mapping, a pure [`DtmfSender`] that schedules the packets
//! of a digit string, and a pure [`DtmfReceiver`] that turns incoming events
//! into digits exactly once.
//!
//! Invariants:
//! - Sender: every event starts with one marker packet, repeats its growing
//!   duration every update interval over the same RTP timestamp, and ends
//!   with three packets carrying the E bit and the same final duration
//!   (RFC 4733 §2.5.1.2–§2.5.1.4). An event that has started always ends,
//!   even when the queue is cleared.
//! - Receiver: one digit per event, keyed by RTP timestamp; redundant end
//!   packets, retransmitted starts and late packets of an older event add
//!   nothing; a new timestamp is a new event unless it continues a long
//!   event in segments (§2.5.1.3).
//! - Digits never appear in logs or error messages: they may be PINs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::MediaError;

/// Telephone-event payload length (RFC 4733 §2.3).
pub const EVENT_PAYLOAD_LEN: usize = 4;
const END_BIT: u8 = 0x80;
const VOLUME_MASK: u8 = 0x3f;
/// RFC 4733 §2.5.1.4: the final packet is sent three times.
const END_REPEATS: u8 = 3;

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// Parses the first four bytes; the reserved bit is ignored (§2.3).
    pub fn parse(payload: &[u8]) -> Result<Self, MediaError> {
        let bytes: &[u8; EVENT_PAYLOAD_LEN] = payload
            .first_chunk()
            .ok_or(MediaError::DtmfTooShort { len: payload.len() })?;
        Ok(Self {
            event: bytes[0],
            end: bytes[1] & END_BIT != 0,
            volume: bytes[1] & VOLUME_MASK,
            duration: u16::from_be_bytes([bytes[2], bytes[3]]),
        })
    }

    pub fn to_bytes(&self) -> [u8; EVENT_PAYLOAD_LEN] {
        let [d0, d1] = self.duration.to_be_bytes();
        let end = if self.end { END_BIT } else { 0 };
        [self.event, end | (self.volume & VOLUME_MASK), d0, d1]
    }
}

/// The DTMF event code of a digit (RFC 4733 §3.2): 0-9, `*`, `#`, A-D.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// The digit of a DTMF event code, `None` for non-DTMF events.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Timing of sent events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfConfig {
    /// How long each tone lasts.
    pub tone: Duration,
    /// Silence between tones.
    pub gap: Duration,
    /// RFC 4733 §2.5.1.2 suggests 50 ms between updates of a long event.
    pub update_interval: Duration,
    /// -dBm0; 10 is the customary level for generated tones.
    pub volume: u8,
    /// RTP clock of the telephone-event format (8000 almost everywhere).
    pub clock_rate: u32,
}

impl Default for DtmfConfig {
    fn default() -> Self {
        Self {
            tone: Duration::from_millis(100),
            gap: Duration::from_millis(50),
            update_interval: Duration::from_millis(50),
            volume: 10,
            clock_rate: 8000,
        }
    }
}

fn samples(d: Duration, clock_rate: u32) -> u64 {
    (d.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u64
}

/// One packet to send: the caller gives it the next sequence number and
/// the event's timestamp (a fresh one when `event_start` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// First packet of an event: set the marker bit, take a new timestamp.
    pub event_start: bool,
    pub payload: [u8; EVENT_PAYLOAD_LEN],
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Idle,
    Tone {
        event: u8,
        started: Instant,
        updates: u32,
    },
    Ending {
        event: u8,
        left: u8,
        due: Instant,
        gap_until: Instant,
    },
    Gap {
        until: Instant,
    },
}

/// Schedules the telephone-event packets of queued digits. After any
/// input, call [`DtmfSender::poll_packet`] until it returns `None`, then
/// wake again at [`DtmfSender::poll_timeout`].
#[derive(Debug, Clone)]
pub struct DtmfSender {
    config: DtmfConfig,
    tone_samples: u16,
    update_samples: u64,
    queue: VecDeque<u8>,
    queued_at: Option<Instant>,
    phase: Phase,
}

impl DtmfSender {
    pub fn new(config: DtmfConfig) -> Result<Self, MediaError> {
        let tone_samples = u16::try_from(samples(config.tone, config.clock_rate))
            .ok()
            .filter(|&s| s > 0)
            .ok_or(MediaError::DtmfToneTooLong {
                ms: config.tone.as_millis(),
            })?;
        Ok(Self {
            config: DtmfConfig {
                volume: config.volume.min(VOLUME_MASK),
                ..config
            },
            tone_samples,
            update_samples: samples(config.update_interval, config.clock_rate).max(1),
            queue: VecDeque::new(),
            queued_at: None,
            phase: Phase::Idle,
        })
    }

    /// Queues `digits` after any already queued. The whole string is
    /// checked first, so a bad character queues nothing.
    pub fn handle_digits(&mut self, digits: &str, now: Instant) -> Result<(), MediaError> {
        let events = digits
            .chars()
            .map(|c| digit_to_event(c).ok_or(MediaError::DtmfDigit(c)))
            .collect::<Result<Vec<u8>, _>>()?;
        if !events.is_empty() && self.queue.is_empty() {
            self.queued_at = Some(now);
        }
        self.queue.extend(events);
        Ok(())
    }

    /// Drops queued digits; a tone already playing still ends properly.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.queued_at = None;
    }

    /// True when nothing is playing or queued.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle) && self.queue.is_empty()
    }

    /// The next packet due at `now`, if any.
    #[must_use]
    pub fn poll_packet(&mut self, now: Instant) -> Option<DtmfPacket> {
        match self.phase {
            Phase::Idle => self.start_next(now),
            Phase::Tone {
                event,
                started,
                updates,
            } => self.continue_tone(now, event, started, updates),
            Phase::Ending {
                event,
                left,
                due,
                gap_until,
            } => (now >= due).then(|| self.send_end(event, left, due, gap_until)),
            Phase::Gap { until } if now >= until => {
                self.phase = Phase::Idle;
                self.start_next(now)
            }
            Phase::Gap { .. } => None,
        }
    }

    /// When [`DtmfSender::poll_packet`] next has something, `None` when idle.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => self.queued_at,
            Phase::Tone {
                started, updates, ..
            } => Some(
                self.next_update(started, updates)
                    .min(started + self.config.tone),
            ),
            Phase::Ending { due, .. } => Some(due),
            Phase::Gap { until } => Some(until),
        }
    }

    fn next_update(&self, started: Instant, updates: u32) -> Instant {
        started + self.config.update_interval * (updates + 1)
    }

    fn start_next(&mut self, now: Instant) -> Option<DtmfPacket> {
        let event = self.queue.pop_front()?;
        if self.queue.is_empty() {
            self.queued_at = None;
        }
        self.phase = Phase::Tone {
            event,
            started: now,
            updates: 0,
        };
        Some(self.packet(event, true, false, self.duration_after(0)))
    }

    fn continue_tone(
        &mut self,
        now: Instant,
        event: u8,
        started: Instant,
        updates: u32,
    ) -> Option<DtmfPacket> {
        let tone_end = started + self.config.tone;
        if now >= tone_end {
            let gap_until = tone_end + self.config.gap;
            return Some(self.send_end(event, END_REPEATS, tone_end, gap_until));
        }
        if now < self.next_update(started, updates) {
            return None;
        }
        let updates = updates + 1;
        self.phase = Phase::Tone {
            event,
            started,
            updates,
        };
        Some(self.packet(event, false, false, self.duration_after(updates)))
    }

    fn send_end(&mut self, event: u8, left: u8, due: Instant, gap_until: Instant) -> DtmfPacket {
        let left = left.saturating_sub(1);
        self.phase = if left == 0 {
            Phase::Gap { until: gap_until }
        } else {
            Phase::Ending {
                event,
                left,
                due,
                gap_until,
            }
        };
        self.packet(event, false, true, self.tone_samples)
    }

    /// Each packet covers the time up to the next one, so a lost update
    /// never leaves the far end short of tone; capped at the tone length.
    fn duration_after(&self, updates: u32) -> u16 {
        let covered = self.update_samples * (u64::from(updates) + 1);
        covered.min(u64::from(self.tone_samples)) as u16
    }

    fn packet(&self, event: u8, event_start: bool, end: bool, duration: u16) -> DtmfPacket {
        let payload = EventPayload {
            event,
            end,
            volume: self.config.volume,
            duration,
        }
        .to_bytes();
        DtmfPacket {
            event_start,
            payload,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct LastEvent {
    timestamp: u32,
    event: u8,
    ended: bool,
    duration: u16,
}

/// Turns incoming telephone-event payloads into digits, once per event.
/// Reset it when the remote source changes: timestamps restart then.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    last: Option<LastEvent>,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Returns the digit when this payload begins a new DTMF event.
    pub fn handle_payload(
        &mut self,
        rtp_timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<char>, MediaError> {
        let ev = EventPayload::parse(payload)?;
        if let Some(last) = &mut self.last {
            if last.timestamp == rtp_timestamp {
                last.ended |= ev.end;
                last.duration = last.duration.max(ev.duration);
                return Ok(None);
            }
            if (rtp_timestamp.wrapping_sub(last.timestamp) as i32) < 0 {
                return Ok(None);
            }
        }
        let continues = self.last.is_some_and(|last| {
            !last.ended
                && last.event == ev.event
                && rtp_timestamp == last.timestamp.wrapping_add(u32::from(last.duration))
        });
        self.last = Some(LastEvent {
            timestamp: rtp_timestamp,
            event: ev.event,
            ended: ev.end,
            duration: ev.duration,
        });
        Ok(if continues {
            None
        } else {
            event_to_digit(ev.event)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Runs the sender on its own timer; returns (ms since t0, packet).
    fn drive(sender: &mut DtmfSender, t0: Instant) -> Vec<(u128, EventPayload, bool)> {
        let mut out = Vec::new();
        let mut now = t0;
        loop {
            while let Some(p) = sender.poll_packet(now) {
                let ev = EventPayload::parse(&p.payload).unwrap();
                out.push(((now - t0).as_millis(), ev, p.event_start));
            }
            match sender.poll_timeout() {
                Some(at) => now = at.max(now),
                None => return out,
            }
        }
    }

    #[test]
    fn payload_round_trips_and_ignores_the_reserved_bit() {
        let ev = EventPayload {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(ev.to_bytes(), [11, 0x8a, 0x03, 0x20]);
        assert_eq!(EventPayload::parse(&ev.to_bytes()).unwrap(), ev);
        assert_eq!(EventPayload::parse(&[11, 0xca, 0x03, 0x20]).unwrap(), ev);
        assert!(matches!(
            EventPayload::parse(&[1, 2, 3]),
            Err(MediaError::DtmfTooShort { len: 3 })
        ));
    }

    #[test]
    fn every_digit_maps_both_ways() {
        for (i, d) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(digit_to_event(d), Some(i as u8));
            assert_eq!(event_to_digit(i as u8), Some(d));
        }
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(digit_to_event('E'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn one_digit_is_start_update_and_three_ends() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(DtmfConfig::default()).unwrap();
        s.handle_digits("5", t0).unwrap();
        let packets = drive(&mut s, t0);
        let summary: Vec<(u128, u16, bool, bool)> = packets
            .iter()
            .map(|(t, ev, start)| (*t, ev.duration, ev.end, *start))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, 400, false, true),
                (50, 800, false, false),
                (100, 800, true, false),
                (100, 800, true, false),
                (100, 800, true, false),
            ]
        );
        assert!(
            packets
                .iter()
                .all(|(_, ev, _)| ev.event == 5 && ev.volume == 10)
        );
        assert!(s.is_idle());
    }

    #[test]
    fn digits_are_spaced_by_the_gap_and_long_tones_keep_updating() {
        let t0 = Instant::now();
        let config = DtmfConfig {
            tone: 160 * MS,
            gap: 70 * MS,
            ..DtmfConfig::default()
        };
        let mut s = DtmfSender::new(config).unwrap();
        s.handle_digits("1#", t0).unwrap();
        let packets = drive(&mut s, t0);
        let starts: Vec<u128> = packets.iter().filter(|p| p.2).map(|p| p.0).collect();
        assert_eq!(starts, vec![0, 230]);
        let first: Vec<u16> = packets
            .iter()
            .take_while(|p| p.1.event == 1)
            .map(|p| p.1.duration)
            .collect();
        assert_eq!(first, vec![400, 800, 1200, 1280, 1280, 1280, 1280]);
        assert_eq!(
            packets.last().unwrap().1,
            EventPayload {
                event: 11,
                end: true,
                volume: 10,
                duration: 1280
            }
        );
    }

    #[test]
    fn a_late_timer_still_ends_with_the_exact_duration() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(DtmfConfig::default()).unwrap();
        s.handle_digits("9", t0).unwrap();
        let _ = s.poll_packet(t0);
        let end = s.poll_packet(t0 + 180 * MS).unwrap();
        assert_eq!(EventPayload::parse(&end.payload).unwrap().duration, 800);
        assert!(EventPayload::parse(&end.payload).unwrap().end);
    }

    #[test]
    fn bad_digit_queues_nothing_and_clear_lets_the_tone_end() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(DtmfConfig::default()).unwrap();
        assert!(matches!(
            s.handle_digits("12x", t0),
            Err(MediaError::DtmfDigit('x'))
        ));
        assert!(s.is_idle());
        assert_eq!(s.poll_timeout(), None);
        s.handle_digits("123", t0).unwrap();
        let _ = s.poll_packet(t0);
        s.clear();
        let packets = drive(&mut s, t0);
        assert_eq!(packets.iter().filter(|p| p.1.end).count(), 3);
        assert!(packets.iter().all(|p| p.1.event == 1));
    }

    #[test]
    fn tone_that_overflows_the_duration_field_is_refused() {
        let config = DtmfConfig {
            tone: Duration::from_secs(9),
            ..DtmfConfig::default()
        };
        assert!(matches!(
            DtmfSender::new(config),
            Err(MediaError::DtmfToneTooLong { ms: 9000 })
        ));
    }

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        EventPayload {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    #[test]
    fn receiver_counts_an_event_once_despite_redundancy() {
        let mut r = DtmfReceiver::new();
        let seen: Vec<Option<char>> = [
            (1000, payload(4, false, 400)),
            (1000, payload(4, false, 400)), // retransmitted start
            (1000, payload(4, false, 800)),
            (1000, payload(4, true, 800)),
            (1000, payload(4, true, 800)),
            (1000, payload(4, true, 800)),
            (2200, payload(4, false, 400)), // same digit again: new timestamp
            (2200, payload(4, true, 800)),
            (1000, payload(4, true, 800)), // late end of the first event
        ]
        .iter()
        .map(|(ts, p)| r.handle_payload(*ts, p).unwrap())
        .collect();
        assert_eq!(seen.iter().flatten().collect::<String>(), "44");
        assert_eq!(seen[0], Some('4'));
        assert_eq!(seen[6], Some('4'));
    }

    #[test]
    fn receiver_sees_an_event_whose_start_was_lost() {
        let mut r = DtmfReceiver::new();
        assert_eq!(
            r.handle_payload(500, &payload(14, true, 800)).unwrap(),
            Some('C')
        );
        assert_eq!(
            r.handle_payload(500, &payload(14, true, 800)).unwrap(),
            None
        );
    }

    #[test]
    fn long_event_segments_are_one_digit() {
        let mut r = DtmfReceiver::new();
        assert_eq!(
            r.handle_payload(0, &payload(0, false, 65535)).unwrap(),
            Some('0')
        );
        assert_eq!(
            r.handle_payload(65535, &payload(0, false, 400)).unwrap(),
            None
        );
        assert_eq!(
            r.handle_payload(65535, &payload(0, true, 800)).unwrap(),
            None
        );
    }

    #[test]
    fn receiver_handles_timestamp_wrap_and_non_dtmf_events() {
        let mut r = DtmfReceiver::new();
        assert_eq!(
            r.handle_payload(u32::MAX - 10, &payload(1, true, 800))
                .unwrap(),
            Some('1')
        );
        assert_eq!(
            r.handle_payload(5000, &payload(2, false, 400)).unwrap(),
            Some('2')
        );
        assert_eq!(
            r.handle_payload(9000, &payload(16, false, 400)).unwrap(),
            None
        );
        assert!(r.handle_payload(9000, &[1]).is_err());
    }

    #[test]
    fn sender_output_feeds_the_receiver_to_the_same_digits() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(DtmfConfig::default()).unwrap();
        s.handle_digits("*0#9", t0).unwrap();
        let mut r = DtmfReceiver::new();
        let mut ts = 0u32;
        let mut digits = String::new();
        for (at, ev, start) in drive(&mut s, t0) {
            if start {
                ts = (at * 8) as u32;
            }
            digits.extend(r.handle_payload(ts, &ev.to_bytes()).unwrap());
        }
        assert_eq!(digits, "*0#9");
    }
}

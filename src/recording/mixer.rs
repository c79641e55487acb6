//! Two recording channels (visitor, callee) kept aligned in time.
//!
//! A frame's place on its channel comes from its RTP timestamp, the sender's
//! own media clock: a gap in the timestamps (lost packets, silence
//! suppression) becomes silence of exactly that length, and frames that
//! arrive in a burst after a stall (a busy sender, a busy node) land where
//! they belong instead of after silence the stall would otherwise have
//! added. Arrival time only anchors each channel: its first frame is placed
//! where it arrived since the gate opened, and so is any frame whose
//! timestamp strays more than [`MAX_AHEAD`] or [`MAX_BEHIND`] from its
//! arrival (a new stream, a timestamp jump). A repeated or overlapping frame
//! adds only what is new. A channel that sends nothing is filled with
//! silence once the other is [`MAX_LAG`] ahead, so the recording never
//! waits for it. Output is interleaved 16-bit little-endian PCM, visitor
//! first. No I/O, no clock: times are inputs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const SAMPLE_RATE: u32 = 8_000;
/// How far one channel may run ahead of a silent (or stalled) other.
const MAX_LAG: Duration = Duration::from_secs(1);
/// A timestamp placing a frame this much later than it arrived is a jump.
const MAX_AHEAD: Duration = Duration::from_secs(1);
/// A frame arriving this much later than its timestamp says re-anchors.
const MAX_BEHIND: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Visitor = 0,
    Callee = 1,
}

/// A frame's RTP timestamp and the clock it ticks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTime {
    pub rtp: u32,
    pub clock_rate: u32,
}

/// See the module documentation.
#[derive(Debug)]
pub struct TwoChannelMixer {
    start: Instant,
    tracks: [Track; 2],
}

/// One channel: samples not yet interleaved, and where its clock stands.
#[derive(Debug, Default)]
struct Track {
    pending: VecDeque<i16>,
    /// Samples placed since `start` (written or pending).
    placed: u64,
    /// The last frame's timestamp and the position it was placed at.
    last: Option<(MediaTime, i64)>,
}

fn samples_in(duration: Duration) -> u64 {
    (duration.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000) as u64
}

impl Track {
    /// Where a frame with timestamp `time` starts, by the channel's clock.
    fn position_by_clock(&self, time: MediaTime) -> Option<i64> {
        let (last, position) = self.last?;
        if last.clock_rate != time.clock_rate || time.clock_rate == 0 {
            return None;
        }
        // Signed difference: timestamps wrap, packets may come reordered.
        let ticks = i64::from(time.rtp.wrapping_sub(last.rtp) as i32);
        Some(position + ticks * i64::from(SAMPLE_RATE) / i64::from(time.clock_rate))
    }

    fn fill_silence(&mut self, until: u64) {
        let missing = until.saturating_sub(self.placed);
        self.pending
            .extend(std::iter::repeat_n(0, missing as usize));
        self.placed = self.placed.max(until);
    }
}

impl TwoChannelMixer {
    /// A mixer whose position 0 is `start`, the moment the gate opened.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            tracks: [Track::default(), Track::default()],
        }
    }

    /// Places `samples` stamped `time` that arrived at `at` on `channel`.
    pub fn push(&mut self, channel: Channel, at: Instant, time: MediaTime, samples: &[i16]) {
        let index = channel as usize;
        let len = samples.len() as i64;
        let arrived = samples_in(at.saturating_duration_since(self.start)) as i64 - len;
        let track = &mut self.tracks[index];
        let ahead = samples_in(MAX_AHEAD) as i64;
        let behind = samples_in(MAX_BEHIND) as i64;
        let position = match track.position_by_clock(time) {
            Some(position) if (arrived - behind..=arrived + ahead).contains(&position) => position,
            _ => arrived.max(track.placed as i64),
        };
        track.last = Some((time, position));
        if position > track.placed as i64 {
            track.fill_silence(position as u64);
        }
        let overlap = (track.placed as i64 - position).clamp(0, len) as usize;
        let fresh = &samples[overlap..];
        track.pending.extend(fresh);
        track.placed += fresh.len() as u64;
        let placed = track.placed;
        let other = &mut self.tracks[1 - index];
        let lag = samples_in(MAX_LAG);
        if placed > other.placed + lag {
            other.fill_silence(placed - lag);
        }
    }

    /// Appends every sample frame both channels have to `out`.
    pub fn drain(&mut self, out: &mut Vec<u8>) {
        let ready = self.tracks[0]
            .pending
            .len()
            .min(self.tracks[1].pending.len());
        out.reserve(ready * 4);
        for _ in 0..ready {
            for track in &mut self.tracks {
                let sample = track.pending.pop_front().unwrap_or(0);
                out.extend_from_slice(&sample.to_le_bytes());
            }
        }
    }

    /// Pads the shorter channel with silence and drains everything.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let longest = self.tracks[0].placed.max(self.tracks[1].placed);
        for track in &mut self.tracks {
            track.fill_silence(longest);
        }
        self.drain(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;
    const TICK: Duration = Duration::from_millis(20);

    fn channels(bytes: &[u8]) -> (Vec<i16>, Vec<i16>) {
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let left = samples.iter().step_by(2).copied().collect();
        let right = samples.iter().skip(1).step_by(2).copied().collect();
        (left, right)
    }

    /// The timestamp of 8 kHz frame `n` of a stream starting at `base`.
    fn g711(base: u32, n: u32) -> MediaTime {
        MediaTime {
            rtp: base.wrapping_add(n * FRAME as u32),
            clock_rate: 8_000,
        }
    }

    #[test]
    fn both_channels_interleave_in_step() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=10u32 {
            mixer.push(Channel::Visitor, start + TICK * n, g711(7, n), &[1; FRAME]);
            mixer.push(Channel::Callee, start + TICK * n, g711(99, n), &[2; FRAME]);
            mixer.drain(&mut out);
        }
        let (visitor, callee) = channels(&out);
        assert_eq!(visitor, vec![1; 10 * FRAME]);
        assert_eq!(callee, vec![2; 10 * FRAME]);
    }

    #[test]
    fn lost_frames_become_silence_so_later_audio_stays_in_place() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=20u32 {
            mixer.push(Channel::Callee, start + TICK * n, g711(0, n), &[2; FRAME]);
            // The visitor is lost for frames 6..=15.
            if !(6..=15).contains(&n) {
                mixer.push(Channel::Visitor, start + TICK * n, g711(0, n), &[1; FRAME]);
            }
        }
        mixer.finish(&mut out);
        let (visitor, callee) = channels(&out);
        assert_eq!(callee.len(), 20 * FRAME);
        assert_eq!(visitor.len(), 20 * FRAME);
        assert_eq!(&visitor[..5 * FRAME], &[1; 5 * FRAME][..]);
        assert_eq!(&visitor[5 * FRAME..15 * FRAME], &[0; 10 * FRAME][..]);
        assert_eq!(&visitor[15 * FRAME..], &[1; 5 * FRAME][..]);
    }

    #[test]
    fn a_burst_after_a_stall_lands_in_place_without_added_silence() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=40u32 {
            mixer.push(Channel::Callee, start + TICK * n, g711(0, n), &[2; FRAME]);
            // Frames 6..=25 are held up 400 ms, then come all at once.
            let arrival = match n {
                6..=25 => start + TICK * 25 + Duration::from_millis(5),
                _ => start + TICK * n,
            };
            if n <= 5 || n >= 25 {
                let from = if n == 25 { 6 } else { n };
                for late in from..=n {
                    mixer.push(
                        Channel::Visitor,
                        arrival,
                        g711(500, late),
                        &[late as i16; FRAME],
                    );
                }
            }
        }
        mixer.finish(&mut out);
        let (visitor, _) = channels(&out);
        let expected: Vec<i16> = (1..=40).flat_map(|n| [n as i16; FRAME]).collect();
        assert_eq!(visitor, expected);
    }

    #[test]
    fn a_silent_channel_does_not_hold_the_other_back() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=100u32 {
            mixer.push(Channel::Visitor, start + TICK * n, g711(0, n), &[1; FRAME]);
        }
        mixer.drain(&mut out);
        let (visitor, callee) = channels(&out);
        // All but the last second is out already, the callee side silent.
        assert_eq!(visitor.len(), 50 * FRAME);
        assert!(callee.iter().all(|&s| s == 0));
    }

    #[test]
    fn arrival_jitter_adds_no_silence() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=10u32 {
            let late = Duration::from_millis(if n % 2 == 0 { 90 } else { 0 });
            mixer.push(
                Channel::Visitor,
                start + TICK * n + late,
                g711(0, n),
                &[1; FRAME],
            );
            mixer.push(Channel::Callee, start + TICK * n, g711(0, n), &[2; FRAME]);
        }
        mixer.finish(&mut out);
        let (visitor, _) = channels(&out);
        assert_eq!(visitor, vec![1; 10 * FRAME]);
    }

    #[test]
    fn a_repeated_frame_adds_nothing() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in [1, 2, 2, 3, 2, 4] {
            mixer.push(
                Channel::Visitor,
                start + TICK * n,
                g711(0, n),
                &[n as i16; FRAME],
            );
        }
        mixer.finish(&mut out);
        let (visitor, _) = channels(&out);
        let expected: Vec<i16> = (1..=4).flat_map(|n| [n as i16; FRAME]).collect();
        assert_eq!(visitor, expected);
    }

    #[test]
    fn timestamps_that_wrap_keep_counting() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        let base = u32::MAX - 3 * FRAME as u32;
        for n in 1..=8u32 {
            mixer.push(
                Channel::Visitor,
                start + TICK * n,
                g711(base, n),
                &[1; FRAME],
            );
        }
        mixer.finish(&mut out);
        assert_eq!(channels(&out).0, vec![1; 8 * FRAME]);
    }

    #[test]
    fn a_timestamp_jump_re_anchors_the_channel_at_arrival() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=20u32 {
            // A new stream from frame 11 on: its timestamps start elsewhere.
            let time = if n <= 10 {
                g711(0, n)
            } else {
                g711(3_000_000, n)
            };
            mixer.push(Channel::Visitor, start + TICK * n, time, &[1; FRAME]);
        }
        mixer.finish(&mut out);
        assert_eq!(channels(&out).0, vec![1; 20 * FRAME]);
    }

    #[test]
    fn opus_timestamps_tick_at_48_khz() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in [1u32, 2, 5, 6] {
            let time = MediaTime {
                rtp: 960 * n,
                clock_rate: 48_000,
            };
            mixer.push(Channel::Visitor, start + TICK * n, time, &[1; FRAME]);
        }
        mixer.finish(&mut out);
        let (visitor, _) = channels(&out);
        let mut expected = vec![1; 2 * FRAME];
        expected.extend([0; 2 * FRAME]);
        expected.extend([1; 2 * FRAME]);
        assert_eq!(visitor, expected);
    }
}

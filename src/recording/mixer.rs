//! Two recording channels (visitor, callee) kept aligned in time.
//!
//! Each channel's frames are placed by their arrival time since the gate
//! opened: a gap longer than [`MAX_JITTER`] (lost packets, a silent
//! direction) is filled with silence, so a word on one channel lines up with
//! the other channel's audio of the same moment. A channel that sends
//! nothing at all is filled with silence once the other is [`MAX_LAG`]
//! ahead, so the recording never waits for it. Output is interleaved 16-bit
//! little-endian PCM, visitor first. No I/O, no clock: times are inputs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const SAMPLE_RATE: u32 = 8_000;
/// Arrival jitter tolerated before a gap counts as missing audio.
const MAX_JITTER: Duration = Duration::from_millis(60);
/// How far one channel may run ahead of a silent other.
const MAX_LAG: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Visitor = 0,
    Callee = 1,
}

/// See the module documentation.
#[derive(Debug)]
pub struct TwoChannelMixer {
    start: Instant,
    pending: [VecDeque<i16>; 2],
    /// Samples placed on each channel since `start` (written or pending).
    placed: [u64; 2],
}

fn samples_in(duration: Duration) -> u64 {
    (duration.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000) as u64
}

impl TwoChannelMixer {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            pending: [VecDeque::new(), VecDeque::new()],
            placed: [0, 0],
        }
    }

    /// Places `samples` that arrived at `at` (the frame's end) on `channel`.
    pub fn push(&mut self, channel: Channel, at: Instant, samples: &[i16]) {
        let index = channel as usize;
        let len = samples.len() as u64;
        let end = samples_in(at.saturating_duration_since(self.start));
        let due = end.saturating_sub(len);
        if due > self.placed[index] + samples_in(MAX_JITTER) {
            self.fill_silence(index, due);
        }
        self.pending[index].extend(samples);
        self.placed[index] += len;
        let other = 1 - index;
        let lag = samples_in(MAX_LAG);
        if self.placed[index] > self.placed[other] + lag {
            self.fill_silence(other, self.placed[index] - lag);
        }
    }

    fn fill_silence(&mut self, index: usize, until: u64) {
        let missing = until.saturating_sub(self.placed[index]);
        self.pending[index].extend(std::iter::repeat_n(0, missing as usize));
        self.placed[index] = self.placed[index].max(until);
    }

    /// Appends every sample frame both channels have to `out`.
    pub fn drain(&mut self, out: &mut Vec<u8>) {
        let ready = self.pending[0].len().min(self.pending[1].len());
        out.reserve(ready * 4);
        for _ in 0..ready {
            for channel in &mut self.pending {
                let sample = channel.pop_front().unwrap_or(0);
                out.extend_from_slice(&sample.to_le_bytes());
            }
        }
    }

    /// Pads the shorter channel with silence and drains everything.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let longest = self.placed[0].max(self.placed[1]);
        self.fill_silence(0, longest);
        self.fill_silence(1, longest);
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

    #[test]
    fn both_channels_interleave_in_step() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=10u32 {
            mixer.push(Channel::Visitor, start + TICK * n, &[1; FRAME]);
            mixer.push(Channel::Callee, start + TICK * n, &[2; FRAME]);
            mixer.drain(&mut out);
        }
        let (visitor, callee) = channels(&out);
        assert_eq!(visitor, vec![1; 10 * FRAME]);
        assert_eq!(callee, vec![2; 10 * FRAME]);
    }

    #[test]
    fn a_gap_is_filled_with_silence_so_later_audio_stays_in_place() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=20u32 {
            mixer.push(Channel::Callee, start + TICK * n, &[2; FRAME]);
            // The visitor is lost for frames 6..=15.
            if !(6..=15).contains(&n) {
                mixer.push(Channel::Visitor, start + TICK * n, &[1; FRAME]);
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
    fn a_silent_channel_does_not_hold_the_other_back() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=50u32 {
            mixer.push(Channel::Visitor, start + TICK * n, &[1; FRAME]);
        }
        mixer.drain(&mut out);
        let (visitor, callee) = channels(&out);
        // All but the last 200 ms are out already, the callee side silent.
        assert_eq!(visitor.len(), 40 * FRAME);
        assert!(callee.iter().all(|&s| s == 0));
    }

    #[test]
    fn jitter_within_the_tolerance_adds_no_silence() {
        let start = Instant::now();
        let mut mixer = TwoChannelMixer::new(start);
        let mut out = Vec::new();
        for n in 1..=10u32 {
            let late = Duration::from_millis(if n % 2 == 0 { 40 } else { 0 });
            mixer.push(Channel::Visitor, start + TICK * n + late, &[1; FRAME]);
            mixer.push(Channel::Callee, start + TICK * n, &[2; FRAME]);
        }
        mixer.finish(&mut out);
        let (visitor, _) = channels(&out);
        assert_eq!(visitor, vec![1; 10 * FRAME]);
    }
}

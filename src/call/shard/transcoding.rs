//! A shard's transcoding: libopus for the shard's transcoded calls, on the
//! shard's own thread, after the passthrough work of each round.
//!
//! The shard queues each packet of a transcoded call with
//! [`Transcoding::submit`] while it reads, sends what the round relayed
//! untouched, then converts what waits, a few packets at a time
//! ([`Transcoding::next`], [`Transcoding::convert`]). A passthrough packet
//! so never waits for the transcoding of its own round, and at most for
//! [`PER_ROUND`] conversions of an earlier one.
//!
//! With a phone line's narrowband Opus, a packet costs about as much to
//! transcode as to relay (`cargo bench --bench transcode`), and much less
//! than handing it to another thread and back on the same core (a wake-up
//! and two context switches, which cost a shard more than the libopus
//! work itself). So nothing leaves the shard's thread.
//!
//! Invariants:
//! - A call's packets are converted in the order they were queued, by that
//!   call's own transcoders ([`CallTranscoders`]).
//! - The shard never waits: past [`WAITING`] packets queued and not
//!   converted, a packet is dropped (counted by the caller), as a lost
//!   packet.
//! - Nothing is converted after it has waited [`MAX_WAIT`] in the queue:
//!   a shard with more transcoding than its core can do drops its oldest
//!   transcoded audio, which the far end has concealed by then, rather
//!   than delay all of it; the caller counts those
//!   ([`Transcoding::take_late`]).
//! - [`Transcoding::forget`] frees a call's transcoders and drops its
//!   packets still waiting.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::call::media::offload::{CallTranscoders, TranscodeRequest, Transcoded};

/// Packets converted per round of the shard, before it reads again: about
/// 0.2 to 0.5 ms of libopus, the longest a passthrough packet arriving
/// meanwhile waits for transcoding.
pub(super) const PER_ROUND: usize = 24;
/// Packets queued and not yet converted: about 40 ms of 250 transcoded
/// calls, both ways.
const WAITING: usize = 1_000;
/// The longest a packet waits to be converted: a packet's time.
const MAX_WAIT: Duration = Duration::from_millis(20);

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Transcoding {
    calls: HashMap<u64, CallTranscoders>,
    /// Each packet, its call and when it was queued.
    waiting: VecDeque<(u64, TranscodeRequest, Instant)>,
    /// Packets dropped for waiting too long, since the last count taken.
    late: u64,
}

impl Transcoding {
    /// Queues one packet of `call` at `now`; false if too many wait
    /// already.
    pub(super) fn submit(&mut self, now: Instant, call: u64, request: TranscodeRequest) -> bool {
        if self.waiting.len() >= WAITING {
            return false;
        }
        self.waiting.push_back((call, request, now));
        true
    }

    /// True while packets wait to be converted.
    pub(super) fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The packet that has waited longest, and its call, unless it has
    /// waited longer than [`MAX_WAIT`] at `now`: such are dropped.
    pub(super) fn next(&mut self, now: Instant) -> Option<(u64, TranscodeRequest)> {
        while let Some((call, request, queued_at)) = self.waiting.pop_front() {
            if now.saturating_duration_since(queued_at) <= MAX_WAIT {
                return Some((call, request));
            }
            self.late += 1;
        }
        None
    }

    /// Packets dropped for waiting too long since the last call.
    pub(super) fn take_late(&mut self) -> u64 {
        std::mem::take(&mut self.late)
    }

    /// Converts one packet of `call` (taken with [`Self::next`]) with the
    /// call's transcoders.
    pub(super) fn convert(&mut self, call: u64, request: TranscodeRequest) -> Transcoded {
        self.calls.entry(call).or_default().convert(request)
    }

    /// `call` has left: its transcoders go, and its packets still waiting.
    pub(super) fn forget(&mut self, call: u64) {
        self.calls.remove(&call);
        self.waiting.retain(|(waiting, ..)| *waiting != call);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::call::media::offload::Toward;
    use crate::domain::Codec;

    fn to_browser(payload: Vec<u8>) -> TranscodeRequest {
        TranscodeRequest {
            from: Codec::Pcmu,
            to: Codec::Opus,
            payload,
            toward: Toward::Browser { marker: false },
            received_at: Instant::now(),
        }
    }

    /// Converts everything waiting: each call and its frame count.
    fn convert_all(transcoding: &mut Transcoding) -> Vec<(u64, usize)> {
        let mut converted = Vec::new();
        while let Some((call, request)) = transcoding.next(Instant::now()) {
            converted.push((call, transcoding.convert(call, request).frames.len()));
        }
        converted
    }

    #[test]
    fn each_call_is_converted_in_order_by_its_own_transcoders() {
        let mut transcoding = Transcoding::default();
        // Each call sends 10 ms twice: only its own two halves make a frame.
        for call in [1, 2, 1, 2] {
            assert!(transcoding.submit(Instant::now(), call, to_browser(vec![0xff; 80])));
        }
        assert!(transcoding.has_waiting());
        assert_eq!(
            convert_all(&mut transcoding),
            [(1, 0), (2, 0), (1, 1), (2, 1)]
        );
        assert!(!transcoding.has_waiting());
    }

    #[test]
    fn a_forgotten_call_loses_its_waiting_packets_and_starts_afresh() {
        let mut transcoding = Transcoding::default();
        for call in [1, 2, 1] {
            assert!(transcoding.submit(Instant::now(), call, to_browser(vec![0xff; 80])));
        }
        let (call, request) = transcoding.next(Instant::now()).unwrap();
        assert_eq!(transcoding.convert(call, request).frames.len(), 0);
        transcoding.forget(1);
        assert_eq!(convert_all(&mut transcoding), [(2, 0)]);
        // Its next half makes no frame: the encoder's first half is gone.
        assert!(transcoding.submit(Instant::now(), 1, to_browser(vec![0xff; 80])));
        assert_eq!(convert_all(&mut transcoding), [(1, 0)]);
    }

    #[test]
    fn past_its_limit_the_queue_refuses_rather_than_grows() {
        let mut transcoding = Transcoding::default();
        for _ in 0..WAITING {
            assert!(transcoding.submit(Instant::now(), 1, to_browser(vec![0xff; 160])));
        }
        assert!(!transcoding.submit(Instant::now(), 2, to_browser(vec![0xff; 160])));
        transcoding.next(Instant::now());
        assert!(transcoding.submit(Instant::now(), 2, to_browser(vec![0xff; 160])));
    }

    #[test]
    fn audio_that_waited_too_long_is_dropped_and_counted_not_converted() {
        let mut transcoding = Transcoding::default();
        let start = Instant::now();
        let ms = Duration::from_millis;
        for (call, queued) in [(1, start), (2, start + ms(5)), (3, start + ms(10))] {
            assert!(transcoding.submit(queued, call, to_browser(vec![0xff; 160])));
        }
        // Call 1's packet has waited just its time.
        let now = start + MAX_WAIT;
        assert_eq!(transcoding.next(now).map(|(call, _)| call), Some(1));
        assert_eq!(transcoding.take_late(), 0);
        // 6 ms on, call 2's has waited too long, call 3's not.
        let later = now + ms(6);
        assert_eq!(transcoding.next(later).map(|(call, _)| call), Some(3));
        assert_eq!(transcoding.take_late(), 1);
        assert_eq!(transcoding.take_late(), 0, "counted once");
        assert!(transcoding.next(later).is_none());
    }
}

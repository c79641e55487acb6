//! A shard's transcoding: libopus for the shard's transcoded calls, on the
//! shard's own thread for the first few, then on a transcoding thread of
//! the shard's.
//!
//! The shard hands each packet of a transcoded call over with
//! [`TranscodeLink::submit`] and takes the results back with
//! [`TranscodeLink::take`], after each round of reads and at each turn.
//!
//! With a phone line's narrowband Opus, a packet costs about as much to
//! transcode as to relay (`cargo bench --bench transcode`), and much less
//! than handing it to another thread and back on the same core (two
//! context switches). So the first [`INLINE_CALLS`] transcoded calls of a
//! shard are converted at once, on the shard: their packets leave in the
//! round they arrived in. Past that, a new transcoded call goes to the
//! thread, which runs at the lowest priority (nice 19): on a busy core the
//! kernel runs the shards first, and transcoding takes the time they
//! leave, so a shard full of transcoding cannot make its passthrough calls
//! wait.
//!
//! Invariants:
//! - A call's packets are converted in the order they were handed over,
//!   by that call's own transcoders ([`CallTranscoders`]), all on the
//!   shard or all on the thread: a call stays where its first packet went.
//! - The shard never waits: past [`OUTSTANDING`] packets handed to the
//!   thread and not taken back, a packet is dropped (counted by the
//!   caller), as a lost packet.
//! - [`TranscodeLink::forget`] frees a call's transcoders (and its place
//!   on the shard); results for a call that has left are the shard's to
//!   ignore.
//! - The thread ends when the shard drops its link.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use mio::Waker;
use tracing::debug;

use crate::call::media::offload::{CallTranscoders, TranscodeRequest, Transcoded};
use crate::supervise::{CoreFailure, ThreadWatch};

/// Packets handed over and not yet taken back: 1 s of 50 transcoded
/// calls, both ways.
const OUTSTANDING: usize = 5_000;
/// Results made before the shard is woken for them, when more work waits.
const WORK_PER_WAKE: usize = 32;
/// Transcoded calls a shard converts on its own thread at once: at about
/// 10 µs a packet each way (narrowband Opus, 20 ms) and 100 packets a
/// second each, about a quarter of a core.
const INLINE_CALLS: usize = 256;
/// The niceness of the thread: the lowest priority an ordinary process may
/// give.
const NICENESS: i32 = 19;

enum Job {
    Convert {
        call: u64,
        request: TranscodeRequest,
    },
    Forget {
        call: u64,
    },
}

/// The shard's end of its transcoding thread.
pub(super) struct TranscodeLink {
    jobs: Sender<Job>,
    results: Receiver<(u64, Transcoded)>,
    /// Packets handed to the thread whose results the shard has not taken
    /// yet.
    outstanding: usize,
    /// How many calls may be converted on the shard ([`INLINE_CALLS`]).
    inline_calls: usize,
    /// The calls converted on the shard's own thread, and their
    /// transcoders.
    inline: HashMap<u64, CallTranscoders>,
    /// The calls handed to the thread: a call stays where it started.
    offloaded: HashSet<u64>,
    /// Results of inline conversions, not yet taken.
    ready: VecDeque<(u64, Transcoded)>,
}

impl TranscodeLink {
    /// Starts shard `index`'s transcoding thread, which wakes the shard
    /// through `waker` when results are ready; a panic on it is the
    /// engine's `failure`.
    pub(super) fn spawn(index: usize, waker: Arc<Waker>, failure: CoreFailure) -> io::Result<Self> {
        let (jobs, queued) = mpsc::channel();
        let (done, results) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("transcode-{index}"))
            .spawn(move || {
                let _watch = ThreadWatch {
                    part: "transcoder",
                    failure,
                };
                // On Linux, process 0 is the calling thread alone.
                if let Err(error) = rustix::process::setpriority_process(None, NICENESS) {
                    debug!(%error, "the transcoder runs at the shards' priority");
                }
                work(&queued, &done, &waker);
            })?;
        Ok(Self {
            jobs,
            results,
            outstanding: 0,
            inline_calls: INLINE_CALLS,
            inline: HashMap::new(),
            offloaded: HashSet::new(),
            ready: VecDeque::new(),
        })
    }

    /// Converts one packet of `call` now, or hands it over; false if too
    /// many wait already.
    pub(super) fn submit(&mut self, call: u64, request: TranscodeRequest) -> bool {
        let room_inline = self.inline.len() < self.inline_calls && !self.offloaded.contains(&call);
        if room_inline || self.inline.contains_key(&call) {
            let transcoders = self.inline.entry(call).or_default();
            self.ready.push_back((call, transcoders.convert(request)));
            return true;
        }
        if self.outstanding >= OUTSTANDING {
            return false;
        }
        self.offloaded.insert(call);
        let sent = self.jobs.send(Job::Convert { call, request }).is_ok();
        self.outstanding += usize::from(sent);
        sent
    }

    /// `call` has left: its transcoders go once its last packets are done.
    pub(super) fn forget(&mut self, call: u64) {
        if self.inline.remove(&call).is_none() && self.offloaded.remove(&call) {
            let _ = self.jobs.send(Job::Forget { call });
        }
    }

    /// The next result, if one is ready.
    pub(super) fn take(&mut self) -> Option<(u64, Transcoded)> {
        if let Some(result) = self.ready.pop_front() {
            return Some(result);
        }
        let result = self.results.try_recv().ok()?;
        self.outstanding = self.outstanding.saturating_sub(1);
        Some(result)
    }
}

fn work(queued: &Receiver<Job>, done: &Sender<(u64, Transcoded)>, waker: &Waker) {
    let mut calls: HashMap<u64, CallTranscoders> = HashMap::new();
    // Waits for the first job of a batch, then does all that is queued,
    // waking the shard every few results and at the end. The shard
    // dropping its link ends the thread.
    while let Ok(first) = queued.recv() {
        let mut next = Some(first);
        let mut unannounced = 0;
        while let Some(job) = next.take() {
            match job {
                Job::Convert { call, request } => {
                    let transcoded = calls.entry(call).or_default().convert(request);
                    if done.send((call, transcoded)).is_err() {
                        return;
                    }
                    unannounced += 1;
                }
                Job::Forget { call } => {
                    calls.remove(&call);
                }
            }
            if unannounced == WORK_PER_WAKE {
                let _ = waker.wake();
                unannounced = 0;
            }
            next = queued.try_recv().ok();
        }
        if unannounced > 0 {
            let _ = waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use mio::{Events, Poll, Token};

    use super::*;
    use crate::call::media::offload::Toward;
    use crate::domain::Codec;

    const WAKE: Token = Token(7);

    fn to_browser(payload: Vec<u8>) -> TranscodeRequest {
        TranscodeRequest {
            from: Codec::Pcmu,
            to: Codec::Opus,
            payload,
            toward: Toward::Browser { marker: false },
            received_at: Instant::now(),
        }
    }

    /// Waits for the thread's wake-up, then takes every result.
    fn results(
        poll: &mut Poll,
        link: &mut TranscodeLink,
        expected: usize,
    ) -> Vec<(u64, Transcoded)> {
        let mut events = Events::with_capacity(4);
        let mut taken = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while taken.len() < expected && Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            taken.extend(std::iter::from_fn(|| link.take()));
        }
        taken
    }

    #[test]
    fn each_call_is_converted_in_order_by_its_own_transcoders_and_the_shard_is_woken() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let mut link = TranscodeLink::spawn(0, waker, CoreFailure::default()).unwrap();
        link.inline_calls = 0;
        // Each call sends 10 ms twice: only its own two halves make a frame.
        for call in [1, 2] {
            assert!(link.submit(call, to_browser(vec![0xff; 80])));
        }
        for call in [1, 2] {
            assert!(link.submit(call, to_browser(vec![0xff; 80])));
        }
        let done = results(&mut poll, &mut link, 4);
        let frames: Vec<(u64, usize)> = done
            .iter()
            .map(|(call, transcoded)| (*call, transcoded.frames.len()))
            .collect();
        assert_eq!(frames, [(1, 0), (2, 0), (1, 1), (2, 1)]);
        assert_eq!(link.outstanding, 0);

        // A forgotten call starts afresh: its next half makes no frame.
        link.forget(1);
        assert!(link.submit(1, to_browser(vec![0xff; 80])));
        let done = results(&mut poll, &mut link, 1);
        assert_eq!(done.len(), 1);
        assert!(done[0].1.frames.is_empty());
    }

    #[test]
    fn the_first_calls_are_converted_at_once_on_the_shard_and_stay_there() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let mut link = TranscodeLink::spawn(0, waker, CoreFailure::default()).unwrap();
        link.inline_calls = 1;
        // Call 1 takes the shard's one place: its result is there at once.
        assert!(link.submit(1, to_browser(vec![0xff; 160])));
        let (call, done) = link.take().expect("converted on the shard");
        assert_eq!((call, done.frames.len()), (1, 1));
        // Call 2 goes to the thread, and stays there when the place frees.
        assert!(link.submit(2, to_browser(vec![0xff; 80])));
        assert!(link.take().is_none(), "not converted on the shard");
        link.forget(1);
        assert!(link.submit(2, to_browser(vec![0xff; 80])));
        let done = results(&mut poll, &mut link, 2);
        let frames: Vec<(u64, usize)> = done
            .iter()
            .map(|(call, transcoded)| (*call, transcoded.frames.len()))
            .collect();
        assert_eq!(frames, [(2, 0), (2, 1)], "one encoder kept both halves");
        // The freed place goes to the next new call.
        assert!(link.submit(3, to_browser(vec![0xff; 160])));
        assert_eq!(link.take().map(|(call, _)| call), Some(3));
        assert_eq!(link.outstanding, 0);
    }

    #[test]
    fn past_its_limit_the_link_refuses_rather_than_waits() {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let mut link = TranscodeLink::spawn(0, waker, CoreFailure::default()).unwrap();
        link.inline_calls = 0;
        link.outstanding = OUTSTANDING;
        assert!(!link.submit(1, to_browser(vec![0xff; 160])));
        link.outstanding = OUTSTANDING - 1;
        assert!(link.submit(1, to_browser(vec![0xff; 160])));
    }
}

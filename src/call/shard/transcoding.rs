//! A shard's transcoding thread: libopus for the shard's transcoded calls,
//! off the shard's own thread.
//!
//! The shard hands each packet of a transcoded call over with
//! [`TranscodeLink::submit`] and takes the results back with
//! [`TranscodeLink::take`] in its next turn; the thread wakes the shard
//! after each batch of work. Passthrough calls on the shard never wait
//! for libopus.
//!
//! The thread runs at the lowest priority (nice 19): on a busy core the
//! kernel runs the shards first, and transcoding takes the time they leave.
//! Transcoded calls then wait, not the others.
//!
//! Invariants:
//! - A call's packets are converted in the order they were handed over,
//!   by that call's own transcoders ([`CallTranscoders`]).
//! - The shard never waits: past [`OUTSTANDING`] packets handed over and
//!   not taken back, a packet is dropped (counted by the caller), as a lost
//!   packet.
//! - [`TranscodeLink::forget`] frees a call's transcoders; results for a
//!   call that has left are the shard's to ignore.
//! - The thread ends when the shard drops its link.

use std::cell::Cell;
use std::collections::HashMap;
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
    /// Packets handed over whose results the shard has not taken yet.
    outstanding: Cell<usize>,
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
            outstanding: Cell::new(0),
        })
    }

    /// Hands one packet of `call` over; false if too many wait already.
    pub(super) fn submit(&self, call: u64, request: TranscodeRequest) -> bool {
        let outstanding = self.outstanding.get();
        if outstanding >= OUTSTANDING {
            return false;
        }
        let sent = self.jobs.send(Job::Convert { call, request }).is_ok();
        self.outstanding.set(outstanding + usize::from(sent));
        sent
    }

    /// `call` has left: its transcoders go once its last packets are done.
    pub(super) fn forget(&self, call: u64) {
        let _ = self.jobs.send(Job::Forget { call });
    }

    /// The next result, if one is ready.
    pub(super) fn take(&self) -> Option<(u64, Transcoded)> {
        let result = self.results.try_recv().ok()?;
        self.outstanding
            .set(self.outstanding.get().saturating_sub(1));
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
    fn results(poll: &mut Poll, link: &TranscodeLink, expected: usize) -> Vec<(u64, Transcoded)> {
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
        let link = TranscodeLink::spawn(0, waker, CoreFailure::default()).unwrap();
        // Each call sends 10 ms twice: only its own two halves make a frame.
        for call in [1, 2] {
            assert!(link.submit(call, to_browser(vec![0xff; 80])));
        }
        for call in [1, 2] {
            assert!(link.submit(call, to_browser(vec![0xff; 80])));
        }
        let done = results(&mut poll, &link, 4);
        let frames: Vec<(u64, usize)> = done
            .iter()
            .map(|(call, transcoded)| (*call, transcoded.frames.len()))
            .collect();
        assert_eq!(frames, [(1, 0), (2, 0), (1, 1), (2, 1)]);
        assert_eq!(link.outstanding.get(), 0);

        // A forgotten call starts afresh: its next half makes no frame.
        link.forget(1);
        assert!(link.submit(1, to_browser(vec![0xff; 80])));
        let done = results(&mut poll, &link, 1);
        assert_eq!(done.len(), 1);
        assert!(done[0].1.frames.is_empty());
    }

    #[test]
    fn past_its_limit_the_link_refuses_rather_than_waits() {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let link = TranscodeLink::spawn(0, waker, CoreFailure::default()).unwrap();
        link.outstanding.set(OUTSTANDING);
        assert!(!link.submit(1, to_browser(vec![0xff; 160])));
        link.outstanding.set(OUTSTANDING - 1);
        assert!(link.submit(1, to_browser(vec![0xff; 160])));
    }
}

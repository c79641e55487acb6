//! [`HandshakeGate`]: how much handshake work a shard does per turn of its
//! loop, so media always goes first. Sans-IO.
//!
//! A STUN check costs the call an HMAC, and a DTLS record may cost a key
//! exchange and a signature, against a few microseconds for an SRTP
//! packet. A burst of them (many calls setting up at once, or a peer
//! that verified once and then floods ClientHellos) must not hold back the
//! packets of calls already talking. So each turn handles at most
//! [`PER_TURN`] checks and DTLS records; the rest wait, copied, in a queue
//! of at most [`WAITING`] that the next turns serve first and in order of
//! arrival; what finds the queue full is shed (a browser retransmits).
//!
//! Invariants: a datagram is either handled in its turn, waits, or is
//! shed, never reordered behind a later one of the same kind; the queue's
//! buffers are allocated on first use and then reused, so a sustained
//! burst allocates nothing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::webrtc::batch::MAX_DATAGRAM;
use crate::webrtc::demux::{PacketClass, classify};

/// Checks and DTLS records handled per turn. A turn with a full browser
/// read takes a few hundred media datagrams; a handful of handshakes
/// beside them keep call setup quick without moving media's tail.
pub const PER_TURN: usize = 16;
/// Checks and DTLS records that may wait for a later turn.
pub const WAITING: usize = 128;

/// Whether `datagram` is handshake work: a STUN check or a DTLS record.
pub fn is_handshake(datagram: &[u8]) -> bool {
    matches!(classify(datagram), PacketClass::Stun | PacketClass::Dtls)
}

/// What to do with a handshake datagram now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Handle it in this turn.
    Now,
    /// A copy waits for a later turn.
    Queued,
    /// The queue is full: drop it.
    Shed,
}

/// A datagram waiting for its turn, for the call in slot `slot` (whose id
/// was `call` when it arrived).
#[derive(Debug)]
pub struct Waiting {
    pub call: u64,
    pub slot: usize,
    pub from: SocketAddr,
    pub received_at: Instant,
    len: usize,
    buffer: Box<[u8]>,
}

impl Waiting {
    /// The datagram, to be worked on in place.
    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.buffer[..self.len]
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct HandshakeGate {
    /// Handled in this turn so far.
    spent: usize,
    waiting: VecDeque<Waiting>,
    spare: Vec<Box<[u8]>>,
    /// Buffers made so far, at most [`WAITING`].
    made: usize,
}

impl HandshakeGate {
    /// Starts a turn's count afresh.
    pub fn new_turn(&mut self) {
        self.spent = 0;
    }

    /// Whether datagrams wait for a later turn.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Decides for a handshake datagram that just arrived; see [`Admit`].
    pub fn admit(
        &mut self,
        call: u64,
        slot: usize,
        from: SocketAddr,
        received_at: Instant,
        bytes: &[u8],
    ) -> Admit {
        if self.waiting.is_empty() && self.spent < PER_TURN {
            self.spent += 1;
            return Admit::Now;
        }
        let Some(mut buffer) = self.take_buffer() else {
            return Admit::Shed;
        };
        let len = bytes.len().min(buffer.len());
        buffer[..len].copy_from_slice(&bytes[..len]);
        self.waiting.push_back(Waiting {
            call,
            slot,
            from,
            received_at,
            len,
            buffer,
        });
        Admit::Queued
    }

    /// The next waiting datagram this turn may still handle; hand it back
    /// with [`HandshakeGate::recycle`] once handled.
    pub fn next_waiting(&mut self) -> Option<Waiting> {
        if self.spent >= PER_TURN {
            return None;
        }
        let waiting = self.waiting.pop_front()?;
        self.spent += 1;
        Some(waiting)
    }

    /// Takes back a handled datagram's buffer.
    pub fn recycle(&mut self, waiting: Waiting) {
        self.spare.push(waiting.buffer);
    }

    fn take_buffer(&mut self) -> Option<Box<[u8]>> {
        if let Some(buffer) = self.spare.pop() {
            return Some(buffer);
        }
        (self.made < WAITING).then(|| {
            self.made += 1;
            vec![0; MAX_DATAGRAM].into_boxed_slice()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECK: &[u8] = &[0, 1, 0, 0];
    const CLIENT_HELLO: &[u8] = &[22, 254, 253, 0];

    fn from() -> SocketAddr {
        "192.0.2.1:5000".parse().unwrap()
    }

    #[test]
    fn only_checks_and_dtls_records_are_handshake_work() {
        assert!(is_handshake(CHECK));
        assert!(is_handshake(CLIENT_HELLO));
        assert!(!is_handshake(&[0x80, 0, 0, 1]), "rtp");
        assert!(!is_handshake(&[0x80, 200, 0, 1]), "rtcp");
        assert!(!is_handshake(&[]));
    }

    #[test]
    fn a_burst_is_served_a_turn_at_a_time_in_order_and_the_excess_shed() {
        let now = Instant::now();
        let mut gate = HandshakeGate::default();
        gate.new_turn();
        let burst = PER_TURN + WAITING + 5;
        let admitted: Vec<Admit> = (0..burst)
            .map(|i| {
                let mut bytes = CLIENT_HELLO.to_vec();
                bytes.extend((i as u32).to_be_bytes());
                gate.admit(7, 3, from(), now, &bytes)
            })
            .collect();
        assert!(admitted[..PER_TURN].iter().all(|a| *a == Admit::Now));
        assert!(
            admitted[PER_TURN..PER_TURN + WAITING]
                .iter()
                .all(|a| *a == Admit::Queued)
        );
        assert!(
            admitted[PER_TURN + WAITING..]
                .iter()
                .all(|a| *a == Admit::Shed)
        );
        assert!(gate.next_waiting().is_none(), "this turn's work is done");

        let mut served = Vec::new();
        let mut turns = 0;
        while gate.has_waiting() {
            gate.new_turn();
            turns += 1;
            let mut this_turn = 0;
            while let Some(mut waiting) = gate.next_waiting() {
                assert_eq!((waiting.call, waiting.slot), (7, 3));
                let bytes = waiting.bytes();
                served.push(u32::from_be_bytes(bytes[4..8].try_into().unwrap()));
                this_turn += 1;
                gate.recycle(waiting);
            }
            assert!(this_turn <= PER_TURN);
        }
        let expected: Vec<u32> = (PER_TURN as u32..(PER_TURN + WAITING) as u32).collect();
        assert_eq!(served, expected, "every queued one, in order of arrival");
        assert_eq!(turns, WAITING.div_ceil(PER_TURN));
    }

    #[test]
    fn a_new_arrival_waits_behind_those_already_waiting() {
        let now = Instant::now();
        let mut gate = HandshakeGate::default();
        gate.new_turn();
        for _ in 0..=PER_TURN {
            gate.admit(1, 0, from(), now, CHECK);
        }
        gate.new_turn();
        assert_eq!(
            gate.admit(2, 1, from(), now, CHECK),
            Admit::Queued,
            "not ahead of the one waiting since last turn"
        );
        let first = gate.next_waiting().unwrap();
        assert_eq!(first.call, 1);
        gate.recycle(first);
        assert_eq!(gate.next_waiting().unwrap().call, 2);
        assert!(!gate.has_waiting());
    }

    #[test]
    fn buffers_are_made_once_and_reused() {
        let now = Instant::now();
        let mut gate = HandshakeGate::default();
        for _ in 0..10 {
            gate.new_turn();
            for _ in 0..PER_TURN + 4 {
                gate.admit(1, 0, from(), now, CHECK);
            }
            gate.new_turn();
            while let Some(waiting) = gate.next_waiting() {
                gate.recycle(waiting);
            }
        }
        assert_eq!(gate.made, 4, "four waited at a time, ten times over");
    }
}

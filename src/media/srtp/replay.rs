//! Per-SSRC bookkeeping: SRTP index (ROC) estimation, the 128-packet replay window, and
//! the fixed-size stream tables of the sender and the receiver.
//!
//! The receiver's table is only written through [`ReceiverStreams::accept_rtp`] and
//! [`ReceiverStreams::accept_rtcp`], which the caller invokes after a tag has verified;
//! everything a not-yet-authenticated packet may touch is read-only.

use super::error::SrtpError;

/// At most this many SSRCs are tracked per direction (a relay leg carries a handful).
pub const MAX_STREAMS: usize = 8;

/// Width of the replay window (RFC 3711 §3.3.2 asks for at least 64).
const WINDOW_SIZE: u64 = u128::BITS as u64;

/// RTP sequence numbers are 16 bits; the ROC counts their wraps (RFC 3711 §3.3.1).
const SEQ_MODULUS: i64 = 1 << 16;
const HALF_SEQ: i64 = 1 << 15;
/// The SRTP packet index is 48 bits: 32-bit ROC || 16-bit SEQ.
const MAX_SRTP_INDEX: u64 = (1 << 48) - 1;

/// RFC 3711 §3.3.1 / Appendix A: the index of a packet with sequence number `seq`, given
/// the highest index seen so far on the stream (whose low 16 bits are s_l and high bits
/// the ROC). `None` when the guess falls before index 0 or beyond 2^48 - 1.
pub(crate) fn estimate_srtp_index(highest: u64, seq: u16) -> Option<u64> {
    let roc = (highest >> 16) as i64;
    let s_l = (highest & 0xffff) as i64;
    let seq = i64::from(seq);
    let guessed_roc = if s_l < HALF_SEQ {
        if seq - s_l > HALF_SEQ { roc - 1 } else { roc }
    } else if s_l - HALF_SEQ > seq {
        roc + 1
    } else {
        roc
    };
    let index = guessed_roc.checked_mul(SEQ_MODULUS)? + seq;
    u64::try_from(index).ok().filter(|&i| i <= MAX_SRTP_INDEX)
}

/// Sliding window over the 128 highest indices: bit `n` of `seen` is index `highest - n`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplayWindow {
    highest: u64,
    seen: u128,
}

impl ReplayWindow {
    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Read-only test, safe to run before authentication.
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let age = self.highest - index;
        // Too old to tell is treated as a replay (RFC 3711 §3.3.2).
        if age >= WINDOW_SIZE || self.seen >> age & 1 == 1 {
            return Err(SrtpError::ReplayedPacket);
        }
        Ok(())
    }

    fn starting_at(index: u64) -> Self {
        ReplayWindow {
            highest: index,
            seen: 1,
        }
    }

    fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= WINDOW_SIZE {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = index;
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }
}

/// What the receiver remembers of one authenticated SSRC.
#[derive(Clone, Copy, Debug)]
struct ReceiverStream {
    ssrc: u32,
    rtp: Option<ReplayWindow>,
    rtcp: Option<ReplayWindow>,
    /// Value of the table's clock at the last authenticated packet (for LRU eviction).
    last_used: u64,
}

/// Fixed table of receive streams; never allocates, evicts the least recently used.
#[derive(Debug, Default)]
pub(crate) struct ReceiverStreams {
    slots: [Option<ReceiverStream>; MAX_STREAMS],
    clock: u64,
}

impl ReceiverStreams {
    fn find(&self, ssrc: u32) -> Option<&ReceiverStream> {
        self.slots.iter().flatten().find(|s| s.ssrc == ssrc)
    }

    pub(crate) fn rtp_window(&self, ssrc: u32) -> Option<&ReplayWindow> {
        self.find(ssrc).and_then(|s| s.rtp.as_ref())
    }

    pub(crate) fn rtcp_window(&self, ssrc: u32) -> Option<&ReplayWindow> {
        self.find(ssrc).and_then(|s| s.rtcp.as_ref())
    }

    /// Records an authenticated SRTP packet.
    pub(crate) fn accept_rtp(&mut self, ssrc: u32, index: u64) {
        let stream = self.touch(ssrc);
        match &mut stream.rtp {
            Some(window) => window.accept(index),
            none => *none = Some(ReplayWindow::starting_at(index)),
        }
    }

    /// Records an authenticated SRTCP packet.
    pub(crate) fn accept_rtcp(&mut self, ssrc: u32, index: u32) {
        let stream = self.touch(ssrc);
        match &mut stream.rtcp {
            Some(window) => window.accept(u64::from(index)),
            none => *none = Some(ReplayWindow::starting_at(u64::from(index))),
        }
    }

    /// The slot of `ssrc`, created (in a free or the least recently used slot) if needed.
    fn touch(&mut self, ssrc: u32) -> &mut ReceiverStream {
        self.clock += 1;
        let slot = self
            .slots
            .iter()
            .position(|s| s.is_some_and(|s| s.ssrc == ssrc))
            .or_else(|| self.slots.iter().position(Option::is_none))
            .unwrap_or_else(|| self.least_recently_used());
        let clock = self.clock;
        let stream = self.slots[slot]
            .take()
            .filter(|s| s.ssrc == ssrc)
            .unwrap_or(ReceiverStream {
                ssrc,
                rtp: None,
                rtcp: None,
                last_used: clock,
            });
        self.slots[slot].insert(ReceiverStream {
            last_used: clock,
            ..stream
        })
    }

    fn least_recently_used(&self) -> usize {
        (0..MAX_STREAMS)
            .min_by_key(|&i| self.slots[i].map_or(0, |s| s.last_used))
            .unwrap_or(0)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, ssrc: u32) -> bool {
        self.find(ssrc).is_some()
    }
}

/// The sender's rollover state: the highest index sent per SSRC.
#[derive(Debug, Default)]
pub(crate) struct SenderStreams {
    slots: [Option<(u32, u64)>; MAX_STREAMS],
}

impl SenderStreams {
    /// The SRTP index for the next packet `(ssrc, seq)`, recorded as sent.
    ///
    /// Sender state is never evicted: forgetting a ROC and restarting it at 0 would reuse
    /// keystream, so a ninth SSRC is refused instead.
    pub(crate) fn next_index(&mut self, ssrc: u32, seq: u16) -> Result<u64, SrtpError> {
        if let Some((_, highest)) = self.slots.iter_mut().flatten().find(|(s, _)| *s == ssrc) {
            let index = estimate_srtp_index(*highest, seq).ok_or(SrtpError::IndexOutOfRange)?;
            *highest = (*highest).max(index);
            return Ok(index);
        }
        let free = self
            .slots
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(SrtpError::TooManyStreams)?;
        // RFC 3711 §3.3.1: a new stream starts with ROC 0.
        *free = Some((ssrc, u64::from(seq)));
        Ok(u64::from(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_estimate_follows_appendix_a() {
        // Plain progress and reordering within one ROC.
        assert_eq!(estimate_srtp_index(100, 101), Some(101));
        assert_eq!(estimate_srtp_index(100, 90), Some(90));
        // Wrap forward: s_l high, small seq means ROC + 1.
        assert_eq!(estimate_srtp_index(65530, 5), Some(0x1_0005));
        // A late packet from before the wrap: s_l low, large seq means ROC - 1.
        assert_eq!(estimate_srtp_index(0x1_0005, 65531), Some(65531));
        // ROC - 1 below zero cannot exist.
        assert_eq!(estimate_srtp_index(5, 65531), None);
        // Nor can an index past 2^48 - 1.
        assert_eq!(estimate_srtp_index(MAX_SRTP_INDEX, 3), None);
    }

    #[test]
    fn window_rejects_duplicates_and_too_old() {
        let mut w = ReplayWindow::starting_at(1000);
        assert!(w.check(1000).is_err());
        assert!(w.check(1001).is_ok());
        assert!(w.check(999).is_ok());
        w.accept(999);
        assert!(w.check(999).is_err());
        assert!(w.check(1000 - 127).is_ok());
        assert!(w.check(1000 - 128).is_err());
        w.accept(1000 + 500);
        assert!(w.check(1000).is_err(), "fell out of the window");
        assert!(w.check(1499).is_ok());
    }

    #[test]
    fn receiver_table_evicts_least_recently_used() {
        let mut table = ReceiverStreams::default();
        for ssrc in 0..MAX_STREAMS as u32 {
            table.accept_rtp(ssrc, 1);
        }
        table.accept_rtp(0, 2); // 0 is now the most recent; 1 the least.
        table.accept_rtcp(100, 7);
        assert_eq!(table.len(), MAX_STREAMS);
        assert!(table.contains(0) && table.contains(100) && !table.contains(1));
        assert_eq!(table.rtp_window(0).map(ReplayWindow::highest), Some(2));
        assert!(table.rtp_window(100).is_none());
        assert_eq!(table.rtcp_window(100).map(ReplayWindow::highest), Some(7));
    }

    #[test]
    fn sender_table_tracks_roc_and_refuses_a_ninth_ssrc() {
        let mut table = SenderStreams::default();
        assert_eq!(table.next_index(1, 65535), Ok(65535));
        assert_eq!(table.next_index(1, 0), Ok(0x1_0000));
        assert_eq!(
            table.next_index(1, 65535),
            Ok(65535),
            "retransmission before wrap"
        );
        assert_eq!(table.next_index(1, 1), Ok(0x1_0001));
        for ssrc in 2..=MAX_STREAMS as u32 {
            assert!(table.next_index(ssrc, 0).is_ok());
        }
        assert_eq!(table.next_index(99, 0), Err(SrtpError::TooManyStreams));
    }
}

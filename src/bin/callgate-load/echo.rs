//! [`EchoLedger`]: one call's stamped audio and the echoes that came back.
//!
//! Every packet a call sends carries a stamp at the start of its PCMU
//! payload: a magic, the call's index, the packet's number and its send
//! time. The far end sends the payload back untouched (PCMU passes through
//! the relay), so an echoed packet names itself: its round trip is read
//! from it, and packets are matched without a table.
//!
//! Loss counts only packets sent after the call's first echo: before it,
//! the far end may not have answered yet, and a relay drops audio it has
//! nowhere to send.

use std::time::{Duration, Instant};

/// 20 ms of 8 kHz PCMU.
pub const FRAME_BYTES: usize = 160;
pub const FRAME_INTERVAL: Duration = Duration::from_millis(20);
const MAGIC: [u8; 4] = *b"CGLT";
/// Magic, call index, packet number, send time in µs.
const STAMP_BYTES: usize = 4 + 4 + 4 + 8;
/// µ-law silence, for the rest of the payload.
const SILENCE: u8 = 0xff;

/// What one call measured.
#[derive(Debug, Clone, Default)]
pub struct EchoStats {
    /// Every audio packet sent, including those before the first echo.
    pub sent_total: u64,
    /// Packets sent after the first echo: the ones loss is counted on.
    pub sent_measured: u64,
    /// Distinct measured packets that came back.
    pub echoed_measured: u64,
    /// Round trip of each echoed measured packet, in µs.
    pub rtt_us: Vec<u32>,
    /// Echoes that were not ours, or came twice.
    pub foreign: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct EchoLedger {
    index: u32,
    /// Send times are stamped relative to this.
    epoch: Instant,
    /// Number of the next packet, the stamp's counter.
    next_packet: u32,
    /// First packet number loss is counted on; set at the first echo.
    measure_from: Option<u32>,
    /// One bit per measured packet: seen on the echo.
    echoed: Vec<u64>,
    /// When the first echo arrived.
    first_echo_at: Option<Instant>,
    stats: EchoStats,
}

impl EchoLedger {
    pub fn new(index: u32, epoch: Instant) -> Self {
        Self {
            index,
            epoch,
            next_packet: 0,
            measure_from: None,
            echoed: Vec::new(),
            first_echo_at: None,
            stats: EchoStats::default(),
        }
    }

    /// The next packet's payload, stamped with `now`. It counts as sent
    /// only once [`Self::sent`] is called.
    pub fn payload(&self, now: Instant) -> [u8; FRAME_BYTES] {
        let mut payload = [SILENCE; FRAME_BYTES];
        payload[..4].copy_from_slice(&MAGIC);
        payload[4..8].copy_from_slice(&self.index.to_be_bytes());
        payload[8..12].copy_from_slice(&self.next_packet.to_be_bytes());
        payload[12..20].copy_from_slice(&self.micros(now).to_be_bytes());
        payload
    }

    /// The packet of the last [`Self::payload`] went out.
    pub fn sent(&mut self) {
        self.next_packet = self.next_packet.wrapping_add(1);
        self.stats.sent_total += 1;
        if self.measure_from.is_some() {
            self.stats.sent_measured += 1;
        }
    }

    /// Packets sent so far: the number the next one carries.
    pub fn packets_sent(&self) -> u32 {
        self.next_packet
    }

    /// Whether this is the call's first packet (for the RTP marker bit).
    pub fn is_first(&self) -> bool {
        self.next_packet == 0
    }

    /// An echoed payload that arrived at `received_at`.
    pub fn on_echo(&mut self, received_at: Instant, payload: &[u8]) {
        let Some(stamp) = Stamp::read(payload).filter(|s| s.index == self.index) else {
            self.stats.foreign += 1;
            return;
        };
        self.first_echo_at.get_or_insert(received_at);
        let measure_from = *self.measure_from.get_or_insert(self.next_packet);
        let Some(offset) = stamp.number.checked_sub(measure_from) else {
            return;
        };
        if !self.mark_echoed(offset as usize) {
            self.stats.foreign += 1;
            return;
        }
        self.stats.echoed_measured += 1;
        let rtt = self.micros(received_at).saturating_sub(stamp.sent_us);
        self.stats
            .rtt_us
            .push(u32::try_from(rtt).unwrap_or(u32::MAX));
    }

    /// An echo whose payload carries no stamp (a transcoded call's audio
    /// comes back re-encoded): it counts against loss, but is not timed.
    /// Loss is counted from the first such echo on, as for stamped ones.
    pub fn on_unstamped_echo(&mut self, received_at: Instant) {
        self.first_echo_at.get_or_insert(received_at);
        match self.measure_from {
            Some(_) => self.stats.echoed_measured += 1,
            None => self.measure_from = Some(self.next_packet),
        }
    }

    /// Whether audio has come back at least once.
    pub fn echoing(&self) -> bool {
        self.measure_from.is_some()
    }

    pub fn first_echo_at(&self) -> Option<Instant> {
        self.first_echo_at
    }

    /// Whether every measured packet sent so far has come back.
    pub fn all_echoed(&self) -> bool {
        self.stats.echoed_measured >= self.stats.sent_measured
    }

    pub fn into_stats(self) -> EchoStats {
        self.stats
    }

    fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Sets the packet's bit; false if it was already set.
    fn mark_echoed(&mut self, offset: usize) -> bool {
        let (word, bit) = (offset / 64, 1u64 << (offset % 64));
        if self.echoed.len() <= word {
            self.echoed.resize(word + 1, 0);
        }
        let fresh = self.echoed[word] & bit == 0;
        self.echoed[word] |= bit;
        fresh
    }
}

/// What [`EchoLedger::payload`] puts at the start of a payload.
struct Stamp {
    index: u32,
    number: u32,
    sent_us: u64,
}

impl Stamp {
    fn read(payload: &[u8]) -> Option<Self> {
        let stamp = payload.get(..STAMP_BYTES)?;
        if stamp[..4] != MAGIC {
            return None;
        }
        let word = |at: usize| {
            u32::from_be_bytes([stamp[at], stamp[at + 1], stamp[at + 2], stamp[at + 3]])
        };
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&stamp[12..20]);
        Some(Self {
            index: word(4),
            number: word(8),
            sent_us: u64::from_be_bytes(sent),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_foreign_payloads_do_not() {
        let epoch = Instant::now();
        let mut ledger = EchoLedger::new(7, epoch);
        for _ in 0..42 {
            ledger.sent();
        }
        let payload = ledger.payload(epoch + Duration::from_micros(3_000_000_123));
        assert_eq!(payload[FRAME_BYTES - 1], SILENCE);
        let read = Stamp::read(&payload).unwrap();
        assert_eq!(
            (read.index, read.number, read.sent_us),
            (7, 42, 3_000_000_123)
        );
        assert!(Stamp::read(&[SILENCE; FRAME_BYTES]).is_none());
        assert!(Stamp::read(b"CGLT").is_none());
    }

    #[test]
    fn unstamped_echoes_count_for_loss_from_the_first_but_are_not_timed() {
        let now = Instant::now();
        let mut ledger = EchoLedger::new(1, now);
        for _ in 0..4 {
            ledger.sent();
        }
        ledger.on_unstamped_echo(now);
        for _ in 0..3 {
            ledger.sent();
        }
        ledger.on_unstamped_echo(now);
        ledger.on_unstamped_echo(now);
        assert!(ledger.echoing() && !ledger.all_echoed());
        ledger.on_unstamped_echo(now);
        assert!(ledger.all_echoed());
        let stats = ledger.into_stats();
        assert_eq!((stats.sent_measured, stats.echoed_measured), (3, 3));
        assert!(stats.rtt_us.is_empty());
        assert_eq!(stats.foreign, 0);
    }

    #[test]
    fn loss_counts_from_the_first_echo_and_duplicates_count_once() {
        let now = Instant::now();
        let mut ledger = EchoLedger::new(1, now);
        let mut payloads = Vec::new();
        for _ in 0..8 {
            payloads.push(ledger.payload(now));
            ledger.sent();
        }
        assert!(!ledger.echoing());
        // The first echo (of packet 2) arrives once 8 packets went out:
        // loss is counted from packet 8 on.
        ledger.on_echo(now, &payloads[2]);
        assert!(ledger.echoing());
        for _ in 0..3 {
            payloads.push(ledger.payload(now));
            ledger.sent();
        }
        ledger.on_echo(now, &payloads[8]);
        ledger.on_echo(now, &payloads[8]);
        ledger.on_echo(now, &payloads[10]);
        let mut other = EchoLedger::new(2, now);
        other.sent();
        ledger.on_echo(now, &other.payload(now));
        assert!(!ledger.all_echoed());
        let stats = ledger.into_stats();
        assert_eq!(stats.sent_total, 11);
        assert_eq!(stats.sent_measured, 3);
        assert_eq!(stats.echoed_measured, 2);
        assert_eq!(stats.foreign, 2);
    }
}

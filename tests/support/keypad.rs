//! The callee's keypad, both ends of it: a phone on the trunk's media port
//! that talks silence and presses keys as RFC 4733 events the way carriers
//! send them ([`TrunkPhone`]), and the keypad tones a listener hears in
//! decoded audio ([`keypad_tones`], a Goertzel detector over 20 ms frames).

use std::net::{SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::rtp::{PACKET_INTERVAL, RtpPacket, SAMPLES_PER_PACKET};

/// A key press the phone makes, `at` after its first packet.
#[derive(Debug, Clone, Copy)]
pub struct Press {
    pub at: Duration,
    /// The RFC 4733 event code (0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`).
    pub event: u8,
    /// The telephone-event payload type the trunk negotiated at that time.
    pub payload_type: u8,
}

/// The packets of one press as a carrier's gateway sends them: none carries
/// the marker bit, the duration grows every 20 ms for 120 ms, and the end
/// packet goes four times (one more than RFC 4733 asks).
fn press_packets(press: Press, ssrc: u32, sequence: &mut u16, timestamp: u32) -> Vec<RtpPacket> {
    let updates = [
        (false, 160u16),
        (false, 320),
        (false, 480),
        (false, 640),
        (false, 800),
    ];
    let ends = [(true, 960u16); 4];
    updates
        .into_iter()
        .chain(ends)
        .map(|(end, duration)| {
            let [d0, d1] = duration.to_be_bytes();
            let packet = RtpPacket {
                payload_type: press.payload_type,
                marker: false,
                sequence: *sequence,
                timestamp,
                ssrc,
                payload: vec![press.event, if end { 0x8a } else { 0x0a }, d0, d1],
            };
            *sequence = sequence.wrapping_add(1);
            packet
        })
        .collect()
}

/// The phone's whole stream, one packet per 20 ms: µ-law silence, and the
/// events of each press in place of the audio while the key is down.
pub fn phone_stream(presses: &[Press], length: Duration, ssrc: u32) -> Vec<RtpPacket> {
    let slots = (length.as_millis() / PACKET_INTERVAL.as_millis()) as u32;
    let mut packets = Vec::new();
    let mut sequence = 1000u16;
    let mut slot = 0u32;
    while slot < slots {
        let timestamp = slot * SAMPLES_PER_PACKET as u32;
        let at = PACKET_INTERVAL * slot;
        if let Some(press) = presses
            .iter()
            .find(|p| p.at <= at && at < p.at + PACKET_INTERVAL)
        {
            let events = press_packets(*press, ssrc, &mut sequence, timestamp);
            slot += events.len() as u32;
            packets.extend(events);
            continue;
        }
        packets.push(RtpPacket {
            payload_type: 0,
            marker: slot == 0,
            sequence,
            timestamp,
            ssrc,
            payload: vec![0xff; SAMPLES_PER_PACKET],
        });
        sequence = sequence.wrapping_add(1);
        slot += 1;
    }
    packets
}

/// A phone on a socket the trunk's SDP names: it waits for the node's
/// first packet (so it knows where the node's media is), then sends its
/// stream from there, paced in real time.
pub struct TrunkPhone {
    thread: JoinHandle<Option<Instant>>,
}

impl TrunkPhone {
    /// Starts on `socket`, waiting up to `wait` for the node.
    pub fn start(socket: UdpSocket, presses: Vec<Press>, length: Duration, wait: Duration) -> Self {
        let thread = std::thread::spawn(move || {
            socket.set_read_timeout(Some(wait)).ok()?;
            let mut buf = [0u8; 2048];
            let (_, node): (usize, SocketAddr) = socket.recv_from(&mut buf).ok()?;
            let start = Instant::now();
            for (index, packet) in phone_stream(&presses, length, 0x0ca1_1ee5)
                .iter()
                .enumerate()
            {
                let due = start + PACKET_INTERVAL * index as u32;
                if let Some(left) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(left);
                }
                socket.send_to(&packet.to_bytes(), node).ok()?;
            }
            Some(start)
        });
        Self { thread }
    }

    /// Waits for the stream to end; `None` if the node never sent a packet.
    pub fn finish(self) -> Option<Instant> {
        self.thread.join().expect("phone thread")
    }
}

/// Row and column frequencies of the keypad (ITU-T Q.23).
pub const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
pub const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
pub const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The energy of `frequency` in `frame`, on the scale of the frame's own
/// energy (a pure tone of that frequency scores its whole energy).
fn goertzel(frame: &[f64], frequency: f64, rate: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in frame {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    2.0 * power / frame.len() as f64
}

/// The key whose two tones make up most of `frame`, if one does.
fn frame_key(frame: &[f64], rate: f64) -> Option<char> {
    let energy: f64 = frame.iter().map(|x| x * x).sum();
    // Quieter than about -45 dBFS is silence.
    if energy / (frame.len() as f64) < 180.0 * 180.0 {
        return None;
    }
    let strongest = |group: &[f64; 4]| {
        let powers = group.map(|f| goertzel(frame, f, rate));
        let (index, &best) = powers
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        let runner_up = powers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, p)| *p)
            .fold(0.0, f64::max);
        (best > 8.0 * runner_up).then_some((index, best))
    };
    let (row, row_power) = strongest(&ROWS)?;
    let (column, column_power) = strongest(&COLUMNS)?;
    ((row_power + column_power) > 0.6 * energy).then_some(KEYS[row][column])
}

/// The keys heard in `samples` (mono, `rate` Hz), in order: a key counts
/// once it fills two 20 ms frames in a row, and again only after a frame
/// without it.
pub fn keypad_tones(samples: &[i16], rate: u32) -> String {
    let frame_len = rate as usize / 50;
    let mut keys = String::new();
    let mut run: Option<(char, u32)> = None;
    for frame in samples.chunks_exact(frame_len) {
        let frame: Vec<f64> = frame.iter().map(|&s| f64::from(s)).collect();
        let key = frame_key(&frame, f64::from(rate));
        run = match (key, run) {
            (Some(k), Some((current, frames))) if k == current => {
                if frames + 1 == 2 {
                    keys.push(k);
                }
                Some((k, frames + 1))
            }
            (Some(k), _) => Some((k, 1)),
            (None, _) => None,
        };
    }
    keys
}

//! `--flood-pps`: junk aimed at the node's browser ports while the calls
//! run, to see that calls carry on through it.
//!
//! From sockets that belong to no call, [`Flood`] sends, in turn:
//! datagrams outside RFC 7983's classes (the kernel filter's share), RTP
//! with random SSRCs and tags, STUN checks naming a live call's ICE
//! username with a wrong MESSAGE-INTEGRITY (the per-call budget's share),
//! and DTLS ClientHellos. Each call also sends, from its own verified
//! address, a replay of its last SRTP packet, an RTP packet with a random
//! SSRC and a bad tag, and a check with a wrong integrity ([`own_junk`]);
//! the node must drop all of it, so a call that hears an echo twice or
//! loses one shows it.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sockets the flood sends from, in turn.
const SOURCES: usize = 32;

/// A call's browser port and our ICE username fragment there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub port: SocketAddr,
    pub ufrag: String,
}

/// The node's candidate and ICE username fragment in `answer`.
pub fn target_of(answer: &str) -> Option<Target> {
    let mut ufrag = None;
    let mut port = None;
    for line in answer.lines() {
        if let Some(value) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(value.trim().to_owned());
        }
        if let Some(candidate) = line.strip_prefix("a=candidate:") {
            // foundation component transport priority address port typ ...
            let fields: Vec<&str> = candidate.split_whitespace().collect();
            if let (Some(ip), Some(number)) = (fields.get(4), fields.get(5)) {
                let address = ip.parse::<IpAddr>().ok();
                let number = number.parse::<u16>().ok();
                if let (Some(ip), Some(number)) = (address, number) {
                    port.get_or_insert(SocketAddr::new(ip, number));
                }
            }
        }
    }
    Some(Target {
        port: port?,
        ufrag: ufrag?,
    })
}

/// Makes junk of each kind, random where it is not shaped.
#[derive(Debug, Default)]
pub struct Junk;

impl Junk {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        rand::fill(&mut bytes[..]);
        bytes
    }

    /// RTP (payload type 0) with a random SSRC, payload and tag.
    pub fn rtp(&mut self) -> Vec<u8> {
        let mut packet = vec![0x80, 0x00];
        packet.extend(self.bytes(10));
        packet.extend(self.bytes(170));
        packet
    }

    /// A STUN binding request naming `ufrag` with a wrong integrity.
    pub fn check(&mut self, ufrag: &str) -> Vec<u8> {
        let username = format!("{ufrag}:junk");
        let mut attributes = vec![0x00, 0x06];
        attributes.extend((username.len() as u16).to_be_bytes());
        attributes.extend(username.as_bytes());
        attributes.resize(attributes.len().div_ceil(4) * 4, 0);
        // MESSAGE-INTEGRITY: 20 bytes no one computed.
        attributes.extend([0x00, 0x08, 0x00, 0x14]);
        attributes.extend(self.bytes(20));
        let mut message = vec![0x00, 0x01];
        message.extend((attributes.len() as u16).to_be_bytes());
        message.extend([0x21, 0x12, 0xA4, 0x42]);
        message.extend(self.bytes(12));
        message.extend(attributes);
        message
    }

    /// A DTLS 1.2 record carrying the start of a ClientHello.
    fn client_hello(&mut self) -> Vec<u8> {
        let body = self.bytes(120);
        let mut record = vec![22, 0xfe, 0xfd, 0, 0];
        record.extend(self.bytes(6));
        record.extend(((body.len() + 12) as u16).to_be_bytes());
        record.extend([
            1,
            0,
            0,
            body.len() as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            body.len() as u8,
        ]);
        record.extend(body);
        record
    }

    /// Bytes no RFC 7983 class starts with (the first byte is 4..=19).
    fn outside_classes(&mut self) -> Vec<u8> {
        let mut bytes = self.bytes(100);
        bytes[0] = 4 + (bytes[0] % 16);
        bytes
    }
}

/// The junk a call sends from its own address at each of its packets:
/// `last_media`, its last SRTP packet, again; RTP with a random SSRC and
/// a bad tag; a check naming the node's fragment with a wrong integrity.
pub fn own_junk(junk: &mut Junk, last_media: Option<&[u8]>, node_ufrag: &str) -> Vec<Vec<u8>> {
    let mut datagrams = vec![junk.rtp(), junk.check(node_ufrag)];
    if let Some(replay) = last_media {
        datagrams.push(replay.to_vec());
    }
    datagrams
}

/// The flood's thread; see the module documentation.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Flood {
    /// Starts sending `pps` datagrams a second at `targets` from sockets
    /// on `local_ip`.
    pub fn start(targets: Vec<Target>, pps: u32, local_ip: IpAddr) -> std::io::Result<Self> {
        let sources = (0..SOURCES)
            .map(|_| UdpSocket::bind((local_ip, 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || send(&sources, &targets, pps, &flag));
        Ok(Self { stop, thread })
    }

    /// Stops the flood; how many datagrams it sent.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

fn send(sources: &[UdpSocket], targets: &[Target], pps: u32, stop: &AtomicBool) -> u64 {
    let mut junk = Junk;
    let per_ms = u64::from(pps).div_ceil(1000);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) && !targets.is_empty() {
        let due = start.elapsed().as_millis() as u64 * per_ms;
        while sent < due {
            let target = &targets[turn % targets.len()];
            let datagram = match turn % 4 {
                0 => junk.outside_classes(),
                1 => junk.rtp(),
                2 => junk.check(&target.ufrag),
                _ => junk.client_hello(),
            };
            // A full socket buffer costs the flood a datagram, no more.
            let _ = sources[turn % sources.len()].send_to(&datagram, target.port);
            sent += 1;
            turn += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_read_from_the_answer() {
        let answer = "v=0\r\na=ice-ufrag:abcDEF\r\na=ice-pwd:x\r\n\
                      a=candidate:1 1 udp 2130706431 127.0.0.1 40001 typ host\r\n";
        assert_eq!(
            target_of(answer),
            Some(Target {
                port: "127.0.0.1:40001".parse().unwrap(),
                ufrag: "abcDEF".to_owned(),
            })
        );
        assert_eq!(target_of("v=0\r\na=ice-ufrag:x\r\n"), None);
    }

    #[test]
    fn junk_has_the_shape_it_claims() {
        let mut junk = Junk;
        let check = junk.check("frag");
        assert_eq!(&check[4..8], &[0x21, 0x12, 0xA4, 0x42], "a STUN cookie");
        assert_eq!(
            usize::from(u16::from_be_bytes([check[2], check[3]])) + 20,
            check.len()
        );
        assert_eq!(junk.rtp()[0], 0x80);
        assert_eq!(junk.client_hello()[0], 22);
        assert!((4..=19).contains(&junk.outside_classes()[0]));
    }
}

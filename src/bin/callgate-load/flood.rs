//! `--flood-pps`: junk aimed at the node's browser ports while the calls
//! run, to see that calls carry on through it.
//!
//! From sockets that belong to no call, [`Flood`] sends, in turn:
//! datagrams outside RFC 7983's classes (the kernel filter's share), RTP
//! with random SSRCs and tags, STUN checks naming a live call's ICE
//! username with a wrong MESSAGE-INTEGRITY (the per-call and per-source
//! budgets' share), and DTLS ClientHellos. On loopback the sockets sit on
//! [`SOURCES`] random addresses of 127.0.0.0/8, so the junk comes from
//! many hosts; it leaves in `sendmmsg` batches, so one thread reaches a
//! few hundred thousand datagrams a second. With `--rtc-clients`, each
//! call also sends, from its own verified address, a replay of its last
//! SRTP packet, an RTP packet with a random SSRC and a bad tag, a check
//! with a wrong integrity, a truncated check and a DTLS record that is no
//! part of its association ([`own_junk`]); the node must drop all of it,
//! so a call that hears an echo twice or loses one shows it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use callgate::webrtc::batch::SendBatch;

/// Sockets the flood sends from, in turn.
const SOURCES: usize = 64;
/// Datagrams per `sendmmsg`.
const BATCH: usize = 32;

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

    /// The `turn`th datagram of the flood at `target`, written to `out`.
    fn write_flood(&mut self, turn: usize, target: &Target, out: &mut Vec<u8>) {
        out.clear();
        match turn % 4 {
            0 => {
                out.resize(100, 0);
                rand::fill(&mut out[..]);
                out[0] = 4 + (out[0] % 16);
            }
            1 => {
                out.resize(182, 0);
                rand::fill(&mut out[..]);
                out[..2].copy_from_slice(&[0x80, 0x00]);
            }
            2 => out.extend(self.check(&target.ufrag)),
            _ => out.extend(self.client_hello()),
        }
    }

    /// A close_notify alert in the clear (epoch 0), as a forger would send
    /// it to end a call whose association is encrypted.
    fn plain_close_notify(&mut self) -> Vec<u8> {
        let mut record = vec![21, 0xfe, 0xfd, 0, 0];
        record.extend(self.bytes(6));
        record.extend([0, 2, 1, 0]);
        record
    }

    /// A check naming `ufrag` cut off inside its attributes.
    fn truncated_check(&mut self, ufrag: &str) -> Vec<u8> {
        let mut check = self.check(ufrag);
        check.truncate(20 + 6);
        check
    }

    /// A DTLS application-data record of random bytes: after the
    /// handshake, no part of the call's association.
    fn stray_record(&mut self) -> Vec<u8> {
        let body = self.bytes(48);
        let mut record = vec![23, 0xfe, 0xfd, 0, 1];
        record.extend(self.bytes(6));
        record.extend((body.len() as u16).to_be_bytes());
        record.extend(body);
        record
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
}

/// The junk a call sends from its own address at each of its packets:
/// `last_media`, its last SRTP packet, again; RTP with a random SSRC and
/// a bad tag; a check naming the node's fragment with a wrong integrity,
/// and one cut short; a DTLS ClientHello, a stray DTLS record and a
/// close_notify in the clear.
pub fn own_junk(junk: &mut Junk, last_media: Option<&[u8]>, node_ufrag: &str) -> Vec<Vec<u8>> {
    let mut datagrams = vec![
        junk.rtp(),
        junk.check(node_ufrag),
        junk.truncated_check(node_ufrag),
        junk.client_hello(),
        junk.stray_record(),
        junk.plain_close_notify(),
    ];
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
    /// on `local_ip`, or on random loopback addresses if it is one.
    pub fn start(targets: Vec<Target>, pps: u32, local_ip: IpAddr) -> std::io::Result<Self> {
        let sources = (0..SOURCES)
            .map(|_| UdpSocket::bind((source_address(local_ip), 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        for source in &sources {
            // A full socket costs the flood datagrams, never a wait.
            source.set_nonblocking(true)?;
        }
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

/// `local_ip`, or a random address of 127.0.0.0/8 if it is IPv4
/// loopback (Linux answers on all of them).
fn source_address(local_ip: IpAddr) -> IpAddr {
    match local_ip {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let [_, a, b, c] = rand::random::<[u8; 4]>();
            IpAddr::V4(Ipv4Addr::new(127, a, b, c.max(2)))
        }
        other => other,
    }
}

/// Sends at `pps` until `stop`; how many datagrams the sockets took.
fn send(sources: &[UdpSocket], targets: &[Target], pps: u32, stop: &AtomicBool) -> u64 {
    let mut junk = Junk;
    let mut batch = SendBatch::with_capacity(BATCH);
    let mut datagram = Vec::with_capacity(256);
    let per_ms = u64::from(pps).div_ceil(1000);
    let start = Instant::now();
    let (mut made, mut sent) = (0u64, 0u64);
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) && !targets.is_empty() {
        let due = start.elapsed().as_millis() as u64 * per_ms;
        while made < due {
            let target = &targets[turn % targets.len()];
            junk.write_flood(turn, target, &mut datagram);
            batch.push(target.port, &datagram);
            made += 1;
            turn += 1;
            if batch.is_full() || made == due {
                let source = &sources[(turn / BATCH) % sources.len()];
                sent += batch.flush(source).sent as u64;
            }
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
        let target = Target {
            port: "127.0.0.1:9".parse().unwrap(),
            ufrag: "frag".to_owned(),
        };
        let mut out = Vec::new();
        let firsts: Vec<u8> = (0..4)
            .map(|turn| {
                junk.write_flood(turn, &target, &mut out);
                out[0]
            })
            .collect();
        assert!((4..=19).contains(&firsts[0]), "outside every class");
        assert_eq!(&firsts[1..], &[0x80, 0x00, 22], "rtp, a check, dtls");
        assert_eq!(junk.truncated_check("frag").len(), 26);
        assert_eq!(junk.stray_record()[0], 23);
        assert_eq!(junk.plain_close_notify()[0], 21);
    }
}

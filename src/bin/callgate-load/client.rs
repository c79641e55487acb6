//! [`LoadClient`]: one call's browser side, sans-IO, on the `rtc` crate: a
//! full-ICE controlling agent (the node is ICE-lite), DTLS-SRTP, PCMU in
//! 20 ms packets.
//!
//! Every packet we send carries a stamp at the start of its PCMU payload:
//! a magic, the call's index, the packet's number and its send time. The
//! echo trunk sends the payload back untouched (PCMU passes through the
//! node), so an echoed packet names itself: its round trip is read from it,
//! and packets are matched without a table.
//!
//! Loss counts only packets sent after the call's first echo: before it,
//! the trunk leg may not have answered yet, and the node drops browser
//! audio it has nowhere to send.
//!
//! Invariant (as for the node's session): after every input
//! (`handle_*`, `send_audio`), drain [`LoadClient::poll_transmit`], then
//! sleep until [`LoadClient::poll_timeout`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use callgate::webrtc::peer::offering_peer;
use callgate::webrtc::{AudioCodec, BrowserMedia};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

/// 20 ms of 8 kHz PCMU.
pub const FRAME_BYTES: usize = 160;
pub const FRAME_INTERVAL: Duration = Duration::from_millis(20);
const PCMU: u8 = 0;
const MAGIC: [u8; 4] = *b"CGLT";
/// Magic, call index, packet number, send time in µs.
const STAMP_BYTES: usize = 4 + 4 + 4 + 8;
/// µ-law silence, for the rest of the payload.
const SILENCE: u8 = 0xff;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up the WebRTC peer: {0}")]
    Setup(String),
    #[error("the node's answer is unusable: {0}")]
    Answer(String),
    #[error(
        "the node answered without PCMU (payload type 0); the load tool needs \
         the node's webrtc.browser_codec to be \"g711\""
    )]
    NotPcmu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Connecting,
    Connected,
    Failed,
}

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
pub struct LoadClient {
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    local: SocketAddr,
    ssrc: u32,
    index: u32,
    epoch: Instant,
    state: ClientState,
    rtp_sequence: u16,
    rtp_timestamp: u32,
    /// Number of the next packet, the stamp's counter.
    next_packet: u32,
    /// First packet number loss is counted on; set at the first echo.
    measure_from: Option<u32>,
    /// One bit per measured packet: seen on the echo.
    echoed: Vec<u64>,
    stats: EchoStats,
}

impl LoadClient {
    /// A client on the socket bound at `local`, numbered `index` in the run;
    /// send times are stamped relative to `epoch`. Returns the offer SDP.
    pub fn new(
        now: Instant,
        epoch: Instant,
        local: SocketAddr,
        index: u32,
    ) -> Result<(Self, String), ClientError> {
        let ssrc = rand::random::<u32>() | 1;
        let media = BrowserMedia {
            codec: AudioCodec::Pcmu,
            payload_type: PCMU,
            telephone_event: None,
        };
        let (pc, sender, offer) = offering_peer(now, local, &media, ssrc)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let client = Self {
            pc,
            sender,
            local,
            ssrc,
            index,
            epoch,
            state: ClientState::Connecting,
            rtp_sequence: rand::random(),
            rtp_timestamp: rand::random(),
            next_packet: 0,
            measure_from: None,
            echoed: Vec::new(),
            stats: EchoStats::default(),
        };
        Ok((client, offer))
    }

    /// The node's answer to our offer.
    pub fn handle_answer(&mut self, now: Instant, sdp: &str) -> Result<(), ClientError> {
        if audio_formats(sdp).first() != Some(&"0") {
            return Err(ClientError::NotPcmu);
        }
        let answer = RTCSessionDescription::answer(sdp.to_owned())
            .map_err(|e| ClientError::Answer(e.to_string()))?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(|e| ClientError::Answer(e.to_string()))?;
        self.collect(now);
        Ok(())
    }

    /// A datagram from `from`. A bad one is the sender's problem: dropped.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: BytesMut) {
        let message = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: bytes,
        };
        let _ = self.pc.handle_read(message);
        self.collect(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.pc.handle_timeout(now);
        self.collect(now);
    }

    /// Sends the next 20 ms packet, stamped.
    pub fn send_audio(&mut self, now: Instant) {
        if self.state != ClientState::Connected {
            return;
        }
        let number = self.next_packet;
        let stamp = Stamp {
            index: self.index,
            number,
            sent_us: self.micros(now),
        };
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                marker: number == 0,
                payload_type: PCMU,
                sequence_number: self.rtp_sequence,
                timestamp: self.rtp_timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: stamp.payload(),
        };
        let Some(mut sender) = self.pc.rtp_sender(self.sender) else {
            return;
        };
        if sender.write_rtp(now, packet).is_err() {
            return;
        }
        self.next_packet = number.wrapping_add(1);
        self.rtp_sequence = self.rtp_sequence.wrapping_add(1);
        self.rtp_timestamp = self.rtp_timestamp.wrapping_add(FRAME_BYTES as u32);
        self.stats.sent_total += 1;
        if self.measure_from.is_some() {
            self.stats.sent_measured += 1;
        }
    }

    /// The next datagram to send: (destination, bytes).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, BytesMut)> {
        let out = self.pc.poll_write()?;
        Some((out.transport.peer_addr, out.message))
    }

    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Whether audio has come back at least once.
    pub fn echoing(&self) -> bool {
        self.measure_from.is_some()
    }

    /// Whether every measured packet sent so far has come back.
    pub fn all_echoed(&self) -> bool {
        self.stats.echoed_measured >= self.stats.sent_measured
    }

    pub fn into_stats(self) -> EchoStats {
        self.stats
    }

    /// Ends the DTLS association (close_notify); drain `poll_transmit` after.
    pub fn close(&mut self) {
        let _ = self.pc.close();
    }

    fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    fn collect(&mut self, now: Instant) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                self.on_state(state);
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                self.on_echo(now, &packet.payload);
            }
        }
    }

    fn on_state(&mut self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => self.state = ClientState::Connected,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                self.state = ClientState::Failed;
            }
            _ => {}
        }
    }

    fn on_echo(&mut self, now: Instant, payload: &Bytes) {
        let Some(stamp) = Stamp::read(payload).filter(|s| s.index == self.index) else {
            self.stats.foreign += 1;
            return;
        };
        let measure_from = *self.measure_from.get_or_insert(self.next_packet);
        let Some(offset) = stamp.number.checked_sub(measure_from) else {
            return;
        };
        if !self.mark_echoed(offset as usize) {
            self.stats.foreign += 1;
            return;
        }
        self.stats.echoed_measured += 1;
        let rtt = self.micros(now).saturating_sub(stamp.sent_us);
        self.stats
            .rtt_us
            .push(u32::try_from(rtt).unwrap_or(u32::MAX));
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

/// What [`LoadClient::send_audio`] puts at the start of a payload.
struct Stamp {
    index: u32,
    number: u32,
    sent_us: u64,
}

impl Stamp {
    /// A 20 ms payload that starts with this stamp.
    fn payload(&self) -> Bytes {
        let mut payload = BytesMut::with_capacity(FRAME_BYTES);
        payload.extend_from_slice(&MAGIC);
        payload.extend_from_slice(&self.index.to_be_bytes());
        payload.extend_from_slice(&self.number.to_be_bytes());
        payload.extend_from_slice(&self.sent_us.to_be_bytes());
        payload.resize(FRAME_BYTES, SILENCE);
        payload.freeze()
    }

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

/// The payload types of the answer's first audio section, in order.
fn audio_formats(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .find_map(|line| line.strip_prefix("m=audio "))
        .map(|rest| rest.split_whitespace().skip(2).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_foreign_payloads_do_not() {
        let stamp = Stamp {
            index: 7,
            number: 42,
            sent_us: 3_000_000_123,
        };
        let payload = stamp.payload();
        assert_eq!(payload.len(), FRAME_BYTES);
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
    fn loss_counts_from_the_first_echo_and_duplicates_count_once() {
        let now = Instant::now();
        let local: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        let (mut client, _) = LoadClient::new(now, now, local, 1).unwrap();
        let echo = |number: u32| {
            Stamp {
                index: 1,
                number,
                sent_us: 0,
            }
            .payload()
        };
        client.next_packet = 5;
        client.on_echo(now, &echo(2));
        assert!(client.echoing());
        assert_eq!(client.measure_from, Some(5));
        client.stats.sent_measured = 3;
        client.on_echo(now, &echo(5));
        client.on_echo(now, &echo(5));
        client.on_echo(now, &echo(7));
        assert_eq!(client.stats.echoed_measured, 2);
        assert_eq!(client.stats.foreign, 1);
        assert!(!client.all_echoed());
    }

    #[test]
    fn only_a_pcmu_answer_is_accepted() {
        assert_eq!(
            audio_formats("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\n"),
            ["0", "101"]
        );
        let now = Instant::now();
        let local: SocketAddr = "127.0.0.1:50002".parse().unwrap();
        let (mut client, _) = LoadClient::new(now, now, local, 1).unwrap();
        let opus = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert!(matches!(
            client.handle_answer(now, opus),
            Err(ClientError::NotPcmu)
        ));
    }
}

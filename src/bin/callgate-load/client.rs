//! [`LoadClient`]: one call's browser side, sans-IO, on the `rtc` crate: a
//! full-ICE controlling agent (the node is ICE-lite), DTLS-SRTP, PCMU in
//! 20 ms packets.
//!
//! Its audio is stamped and its echoes counted by an [`EchoLedger`].
//!
//! Invariant (as for the node's session): after every input
//! (`handle_*`, `send_audio`), drain [`LoadClient::poll_transmit`], then
//! sleep until [`LoadClient::poll_timeout`].

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use callgate::domain::Codec;
use callgate::webrtc::BrowserMedia;
use callgate::webrtc::peer::offering_peer;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::echo::{EchoLedger, EchoStats, FRAME_BYTES};

const PCMU: u8 = 0;

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

/// See the module documentation.
pub struct LoadClient {
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    local: SocketAddr,
    ssrc: u32,
    state: ClientState,
    rtp_sequence: u16,
    rtp_timestamp: u32,
    ledger: EchoLedger,
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
            codec: Codec::Pcmu,
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
            state: ClientState::Connecting,
            rtp_sequence: rand::random(),
            rtp_timestamp: rand::random(),
            ledger: EchoLedger::new(index, epoch),
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
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                marker: self.ledger.is_first(),
                payload_type: PCMU,
                sequence_number: self.rtp_sequence,
                timestamp: self.rtp_timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(&self.ledger.payload(now)),
        };
        let Some(mut sender) = self.pc.rtp_sender(self.sender) else {
            return;
        };
        if sender.write_rtp(now, packet).is_err() {
            return;
        }
        self.ledger.sent();
        self.rtp_sequence = self.rtp_sequence.wrapping_add(1);
        self.rtp_timestamp = self.rtp_timestamp.wrapping_add(FRAME_BYTES as u32);
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
        self.ledger.echoing()
    }

    /// Whether every measured packet sent so far has come back.
    pub fn all_echoed(&self) -> bool {
        self.ledger.all_echoed()
    }

    pub fn into_stats(self) -> EchoStats {
        self.ledger.into_stats()
    }

    /// Ends the DTLS association (close_notify); drain `poll_transmit` after.
    pub fn close(&mut self) {
        let _ = self.pc.close();
    }

    fn collect(&mut self, now: Instant) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                self.on_state(state);
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                self.ledger.on_echo(now, &packet.payload);
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

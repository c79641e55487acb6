//! [`BrowserSession`]: one call's browser leg, a sans-IO wrapper around the
//! `rtc` crate's `RTCPeerConnection`.
//!
//! The session answers the browser's offer as an ICE-lite agent (RFC 8445
//! §2.5) with one host candidate, the node's shared browser port, and the
//! ICE credentials the [`super::BrowserPort`] routes by. DTLS-SRTP (RFC
//! 5763/5764) runs inside `rtc`, which checks the browser's certificate
//! against the fingerprint in its offer. Only one audio codec (plus
//! telephone-event) is put into the answer, so the browser sends exactly
//! what the relay expects. RTCP sender and receiver reports come from
//! `rtc`'s report interceptors.
//!
//! Invariant (str0m style): after every input (`handle_datagram`,
//! `handle_timeout`, `send_rtp`), the owner drains [`BrowserSession::poll_transmit`]
//! and [`BrowserSession::poll_event`] until both return `None`, then sleeps
//! until [`BrowserSession::poll_timeout`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::WebrtcError;
use super::offer::{AudioCodec, BrowserMedia};

/// What the session hands its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The connection failed; `ice` tells whether ICE never completed
    /// (otherwise DTLS failed after ICE).
    Failed { ice: bool },
    /// One audio packet from the browser, already SRTP-decrypted.
    Audio(BrowserFrame),
}

/// An RTP audio packet from the browser, header fields as it sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserFrame {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// What every session of a node shares.
#[derive(Clone)]
pub struct SessionSettings {
    /// The address in our candidate and in every datagram's local side.
    pub candidate: SocketAddr,
    /// One DTLS certificate for all sessions: generating a key pair per call
    /// would cost milliseconds of CPU on the signalling path.
    pub certificate: RTCCertificate,
}

/// See the module documentation.
pub struct BrowserSession {
    pc: RTCPeerConnection,
    sender: RTCRtpSenderId,
    candidate: SocketAddr,
    media: BrowserMedia,
    ssrc: u32,
    ice_connected: bool,
    events: VecDeque<SessionEvent>,
}

impl BrowserSession {
    /// Answers `offer` (already checked by [`super::offer::inspect`]) with
    /// `media`'s codec, using the ICE credentials the port will route by.
    /// Returns the session and the answer SDP.
    pub fn answer(
        settings: &SessionSettings,
        offer: &str,
        media: BrowserMedia,
        ice_ufrag: &str,
        ice_pwd: &str,
        now: Instant,
    ) -> Result<(Self, String), WebrtcError> {
        let setting_engine = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ice_ufrag.to_owned(), ice_pwd.to_owned())
            .build();
        let mut media_engine = MediaEngine::default();
        for (params, kind) in codec_parameters(&media) {
            media_engine
                .register_codec(params, kind)
                .map_err(|e| WebrtcError::Negotiation(e.to_string()))?;
        }
        let config = RTCConfigurationBuilder::new()
            .with_certificates(vec![settings.certificate.clone()])
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .with_interceptor_registry(configure_rtcp_reports(Registry::new()))
            .build(now)
            .map_err(|e| WebrtcError::Negotiation(e.to_string()))?;
        let description = RTCSessionDescription::offer(offer.to_owned())
            .map_err(|e| WebrtcError::BadOffer(e.to_string()))?;
        pc.set_remote_description(now, description)
            .map_err(|e| WebrtcError::BadOffer(e.to_string()))?;
        let ssrc = rand::random::<u32>();
        let sender = pc
            .add_track(outgoing_track(&media, ssrc))
            .map_err(|e| WebrtcError::Negotiation(e.to_string()))?;
        add_host_candidate(&mut pc, settings.candidate)?;
        let answer = pc
            .create_answer(None)
            .map_err(|e| WebrtcError::Negotiation(e.to_string()))?;
        pc.set_local_description(now, answer)
            .map_err(|e| WebrtcError::Negotiation(e.to_string()))?;
        let answer_sdp = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| WebrtcError::Negotiation("no local description".to_owned()))?;
        let session = Self {
            pc,
            sender,
            candidate: settings.candidate,
            media,
            ssrc,
            ice_connected: false,
            events: VecDeque::new(),
        };
        Ok((session, answer_sdp))
    }

    /// The codec and payload types in our answer.
    pub fn media(&self) -> &BrowserMedia {
        &self.media
    }

    /// Our SSRC towards the browser.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// A datagram from the browser's address `from`. Errors are the
    /// browser's (a bad packet); the session stays usable.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: BytesMut,
    ) -> Result<(), WebrtcError> {
        let message = TaggedBytesMut {
            now,
            transport: self.transport(from),
            message: datagram,
        };
        let result = self.pc.handle_read(message);
        self.collect(now);
        result.map_err(|e| WebrtcError::Packet(e.to_string()))
    }

    /// Sends one audio packet to the browser; the header must already be
    /// in our stream's numbering (see `media::rtp::StreamRewriter`).
    pub fn send_rtp(
        &mut self,
        now: Instant,
        header: OutgoingHeader,
        payload: Bytes,
    ) -> Result<(), WebrtcError> {
        if !self.pc_connected() {
            return Ok(());
        }
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                marker: header.marker,
                payload_type: header.payload_type,
                sequence_number: header.sequence,
                timestamp: header.timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload,
        };
        let mut sender = self
            .pc
            .rtp_sender(self.sender)
            .ok_or_else(|| WebrtcError::Negotiation("rtp sender is gone".to_owned()))?;
        sender
            .write_rtp(now, packet)
            .map_err(|e| WebrtcError::Packet(e.to_string()))
    }

    /// The next datagram to send: (destination, bytes).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, BytesMut)> {
        let out = self.pc.poll_write()?;
        Some((out.transport.peer_addr, out.message))
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        // A timer error is rtc's own bookkeeping; the connection state
        // events report anything the call must act on.
        let _ = self.pc.handle_timeout(now);
        self.collect(now);
    }

    /// Ends the DTLS association (close_notify) and stops the timers.
    pub fn close(&mut self) {
        let _ = self.pc.close();
    }

    fn pc_connected(&self) -> bool {
        self.ice_connected
    }

    fn transport(&self, peer: SocketAddr) -> TransportContext {
        TransportContext {
            local_addr: self.candidate,
            peer_addr: peer,
            transport_protocol: TransportProtocol::UDP,
            ecn: None,
        }
    }

    /// Moves rtc's events and received media into our queue.
    fn collect(&mut self, _now: Instant) {
        while let Some(event) = self.pc.poll_event() {
            self.on_pc_event(event);
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                self.events.push_back(SessionEvent::Audio(BrowserFrame {
                    payload_type: packet.header.payload_type,
                    sequence: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    ssrc: packet.header.ssrc,
                    marker: packet.header.marker,
                    payload: packet.payload,
                }));
            }
        }
    }

    fn on_pc_event(&mut self, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => match state {
                RTCIceConnectionState::Connected | RTCIceConnectionState::Completed => {
                    self.ice_connected = true;
                }
                RTCIceConnectionState::Failed => {
                    self.events.push_back(SessionEvent::Failed { ice: true });
                }
                _ => {}
            },
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                RTCPeerConnectionState::Connected => {
                    self.events.push_back(SessionEvent::Connected);
                }
                RTCPeerConnectionState::Failed => {
                    let ice = !self.ice_connected;
                    self.events.push_back(SessionEvent::Failed { ice });
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// Header values of a packet we send to the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingHeader {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
}

fn codec_parameters(media: &BrowserMedia) -> Vec<(RTCRtpCodecParameters, RtpCodecKind)> {
    let (mime, clock_rate, channels, fmtp) = match media.codec {
        AudioCodec::Pcmu => (MIME_TYPE_PCMU, 8_000, 0, ""),
        AudioCodec::Pcma => (MIME_TYPE_PCMA, 8_000, 0, ""),
        AudioCodec::Opus => (MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1"),
    };
    let mut codecs = vec![(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: media.payload_type,
        },
        RtpCodecKind::Audio,
    )];
    if let Some(event) = media.telephone_event {
        codecs.push((
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
                    clock_rate: event.clock_rate,
                    channels: 0,
                    sdp_fmtp_line: "0-16".to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type: event.payload_type,
            },
            RtpCodecKind::Audio,
        ));
    }
    codecs
}

/// The one audio track a peer sends: `media`'s codec under `ssrc`. The
/// node's sessions send on it; a client playing the browser (the load tool,
/// benchmarks) offers with it, see [`offering_peer`].
pub fn outgoing_track(media: &BrowserMedia, ssrc: u32) -> rtc::media_stream::MediaStreamTrack {
    let codec = codec_parameters(media)
        .into_iter()
        .next()
        .map(|(params, _)| params.rtp_codec)
        .unwrap_or_default();
    rtc::media_stream::MediaStreamTrack::new(
        "callgate".to_owned(),
        "callgate-audio".to_owned(),
        "callgate-audio".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )
}

/// Adds `address` as `pc`'s one UDP host candidate: the node's shared
/// browser port in a session, the client's own socket in a peer.
pub fn add_host_candidate(
    pc: &mut RTCPeerConnection,
    address: SocketAddr,
) -> Result<(), WebrtcError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: address.ip().to_string(),
            port: address.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(|e| WebrtcError::Negotiation(e.to_string()))?;
    let init = RTCIceCandidate::from(&candidate)
        .to_json()
        .map_err(|e| WebrtcError::Negotiation(e.to_string()))?;
    pc.add_local_candidate(init)
        .map_err(|e| WebrtcError::Negotiation(e.to_string()))
}

/// A full-ICE peer that offers like a browser (rtc's default codecs, so
/// Opus, G.711 and more) and sends `media` under `ssrc` from one host
/// candidate at `address`. It is the other end of a [`BrowserSession`] for
/// clients and benchmarks that play the browser; the node never uses it.
/// Returns the peer, its audio sender and the offer SDP.
pub fn offering_peer(
    now: Instant,
    address: SocketAddr,
    media: &BrowserMedia,
    ssrc: u32,
) -> Result<(RTCPeerConnection, RTCRtpSenderId, String), WebrtcError> {
    let negotiation = |e: rtc::shared::error::Error| WebrtcError::Negotiation(e.to_string());
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_default_codecs()
        .map_err(negotiation)?;
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .build(now)
        .map_err(negotiation)?;
    let sender = pc
        .add_track(outgoing_track(media, ssrc))
        .map_err(negotiation)?;
    add_host_candidate(&mut pc, address)?;
    let offer = pc.create_offer(None).map_err(negotiation)?;
    pc.set_local_description(now, offer).map_err(negotiation)?;
    let sdp = pc
        .local_description()
        .map(|d| d.sdp)
        .ok_or_else(|| WebrtcError::Negotiation("no local description".to_owned()))?;
    Ok((pc, sender, sdp))
}

#[cfg(test)]
mod tests;

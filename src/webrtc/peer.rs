//! The other end of a [`super::BrowserSession`]: a full-ICE `rtc` peer that
//! offers like a browser, for clients and benchmarks that play the visitor
//! (the load tool, the relay benchmark, the session's tests). The node
//! itself never uses it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};

use super::WebrtcError;
use super::offer::BrowserMedia;
use crate::domain::Codec;

/// Time between a peer's connectivity checks (RFC 8445 §14.2, Ta).
const CHECK_PACING: Duration = Duration::from_millis(50);

fn codec_parameters(media: &BrowserMedia) -> Vec<(RTCRtpCodecParameters, RtpCodecKind)> {
    let (mime, clock_rate, channels, fmtp) = match media.codec {
        Codec::Pcmu => (MIME_TYPE_PCMU, 8_000, 0, ""),
        Codec::Pcma => (MIME_TYPE_PCMA, 8_000, 0, ""),
        Codec::Opus => (MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1"),
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

/// A full-ICE peer that offers like a browser (`media`'s codec, and
/// telephone-event when `media` has it) and sends `media` under `ssrc`
/// from one host candidate at `address`. It is the other end of a
/// [`BrowserSession`] for clients and benchmarks that play the browser;
/// the node never uses it. Returns the peer, its audio sender and the
/// offer SDP.
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
    let codecs = codec_parameters(media);
    // Browsers offer telephone-event beside their audio; rtc's defaults
    // have none.
    for (event, kind) in codecs.iter().skip(1) {
        media_engine
            .register_codec(event.clone(), *kind)
            .map_err(negotiation)?;
    }
    // Paced like a browser: RFC 8445 §14.2's Ta of 50 ms between checks,
    // not rtc's 200 ms, whose nominating check would otherwise add up to a
    // tick to every measured call setup. 28 attempts keep rtc's 1.4 s.
    let setting_engine = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(CHECK_PACING), Some(28))
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(setting_engine)
        .with_media_engine(media_engine)
        .build(now)
        .map_err(negotiation)?;
    let sender = pc
        .add_track(outgoing_track(media, ssrc))
        .map_err(negotiation)?;
    if codecs.len() > 1 {
        let preferred = codecs.into_iter().map(|(codec, _)| codec).collect();
        let transceiver = pc.get_transceivers().next();
        if let Some(mut transceiver) = transceiver.and_then(|id| pc.rtp_transceiver(id)) {
            transceiver
                .set_codec_preferences(preferred)
                .map_err(negotiation)?;
        }
    }
    add_host_candidate(&mut pc, address)?;
    let offer = pc.create_offer(None).map_err(negotiation)?;
    pc.set_local_description(now, offer).map_err(negotiation)?;
    let sdp = pc
        .local_description()
        .map(|d| d.sdp)
        .ok_or_else(|| WebrtcError::Negotiation("no local description".to_owned()))?;
    Ok((pc, sender, sdp))
}

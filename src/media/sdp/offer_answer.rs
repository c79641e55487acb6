//! RFC 3264 offer/answer for the trunk leg, from our side of one dialog.
//!
//! [`Negotiator`] writes our offers, checks the answers to them, and answers
//! the peer's offers (initial INVITEs to the echo trunk, and re-INVITEs for
//! hold, unhold or a new media address). Each exchange ends in a
//! [`NegotiatedMedia`]: where to send, what to send, and what the peer allows.
//! A failed exchange leaves the previous [`NegotiatedMedia`] in force, as
//! RFC 3264 §8 requires when an offer is refused.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::error::SdpError;
use super::parse::{MediaDescription, SessionDescription};
use super::types::{CryptoAttribute, CryptoSuite, Direction};
use super::write::{AudioDescription, CodecPayload, LocalDescription, MediaLine, SdpSession};
use crate::domain::{Codec, TelephoneEvent};

/// The one SDES suite the relay's SRTP layer is set up for.
const SUPPORTED_SUITE: CryptoSuite = CryptoSuite::AesCm128HmacSha1_80;
/// Tag of the single `a=crypto` line in our offers.
const OFFER_CRYPTO_TAG: u32 = 1;
/// Packetisation we accept from a peer; anything else falls back to ours.
const PTIME_RANGE_MS: std::ops::RangeInclusive<u32> = 10..=200;

/// SRTP master key (16 bytes) followed by master salt (14 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeySalt([u8; 30]);

impl SrtpKeySalt {
    #[must_use]
    pub fn new(bytes: [u8; 30]) -> SrtpKeySalt {
        SrtpKeySalt(bytes)
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 30] {
        &self.0
    }
}

impl fmt::Debug for SrtpKeySalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SrtpKeySalt(<redacted>)")
    }
}

/// Our side of the trunk leg's media, as configured for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMediaConfig {
    pub address: IpAddr,
    pub rtp_port: u16,
    /// Where we take RTCP when it is not multiplexed.
    pub rtcp_port: u16,
    /// Offer RTCP multiplexing, and accept it when offered (RFC 5761).
    pub rtcp_mux: bool,
    /// In preference order, from configuration. A trunk carries G.711:
    /// any other codec here is neither offered nor accepted.
    pub codecs: Vec<Codec>,
    pub dtmf: Option<TelephoneEvent>,
    pub ptime_ms: u32,
    /// When set, SRTP is required: offers are `RTP/SAVP` and plain RTP peers
    /// are refused.
    pub srtp: Option<SrtpKeySalt>,
}

impl LocalMediaConfig {
    /// PCMU then PCMA, telephone-event at PT 101, 20 ms, RTCP on the next
    /// port (RFC 3550 §11), no multiplexing, no SRTP.
    #[must_use]
    pub fn new(address: IpAddr, rtp_port: u16) -> LocalMediaConfig {
        LocalMediaConfig {
            address,
            rtp_port,
            rtcp_port: rtp_port.saturating_add(1),
            rtcp_mux: false,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            dtmf: Some(TelephoneEvent::default()),
            ptime_ms: 20,
            srtp: None,
        }
    }

    fn validate(&self) -> Result<(), SdpError> {
        let fail = |reason| Err(SdpError::BadLocalConfig { reason });
        if self.codecs.is_empty() {
            return fail("no codecs configured");
        }
        if self.rtp_port == 0 || self.rtcp_port == 0 {
            return fail("rtp and rtcp ports must not be zero");
        }
        if !PTIME_RANGE_MS.contains(&self.ptime_ms) {
            return fail("ptime must be between 10 and 200 ms");
        }
        match self.dtmf {
            Some(dtmf) if !(96..=127).contains(&dtmf.payload_type) => {
                fail("telephone-event needs a dynamic payload type (96-127)")
            }
            Some(dtmf) if dtmf.clock_rate != 8000 => {
                fail("telephone-event must use the codecs' 8000 Hz clock")
            }
            _ => Ok(()),
        }
    }
}

/// The outcome of one offer/answer exchange, from our point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP; `0.0.0.0` when the peer asked for no media.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: `a=rtcp` if given, else the RTP port plus one;
    /// `None` when RTCP is multiplexed (or the RTP port is 65535).
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub codec: Codec,
    /// Payload type the peer expects for `codec`.
    pub codec_pt: u8,
    /// Payload type the peer expects for telephone-event, when agreed.
    pub dtmf_pt: Option<u8>,
    /// Packetisation the peer asked to receive, else ours.
    pub ptime_ms: u32,
    /// What we may do: send when it sends, receive when it receives.
    pub direction: Direction,
    /// The peer's SRTP key, when SRTP was agreed.
    pub remote_crypto: Option<CryptoAttribute>,
    /// The peer stopped taking our media (sendonly, inactive or
    /// `c=0.0.0.0`) while we wanted to send.
    pub on_hold: bool,
}

/// Our answer to a peer's offer: the text to send and what it agrees.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    pub sdp: String,
    pub media: NegotiatedMedia,
}

impl fmt::Debug for Answer {
    /// The SDP text carries our address and key, so Debug shows only its size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("sdp", &format_args!("<{} bytes>", self.sdp.len()))
            .field("media", &self.media)
            .finish()
    }
}

/// What we put in an offer still awaiting its answer.
#[derive(Debug, Clone)]
struct PendingOffer {
    codecs: Vec<Codec>,
    dtmf: Option<TelephoneEvent>,
    crypto: Option<CryptoAttribute>,
    rtcp_mux: bool,
    direction: Direction,
}

/// Offer/answer state of one dialog's trunk-side audio.
#[derive(Debug, Clone)]
pub struct Negotiator {
    config: LocalMediaConfig,
    session: SdpSession,
    direction: Direction,
    pending: Option<PendingOffer>,
    current: Option<NegotiatedMedia>,
}

impl Negotiator {
    /// `session_id` goes into every `o=` line of the dialog; see
    /// [`SdpSession::new`].
    pub fn new(config: LocalMediaConfig, session_id: u64) -> Result<Negotiator, SdpError> {
        config.validate()?;
        Ok(Negotiator {
            config,
            session: SdpSession::new(session_id),
            direction: Direction::SendRecv,
            pending: None,
            current: None,
        })
    }

    #[must_use]
    pub fn config(&self) -> &LocalMediaConfig {
        &self.config
    }

    /// The media agreed by the last successful exchange.
    #[must_use]
    pub fn current(&self) -> Option<&NegotiatedMedia> {
        self.current.as_ref()
    }

    /// The `o=` version of the last SDP we sent.
    #[must_use]
    pub fn session_version(&self) -> u64 {
        self.session.version()
    }

    /// What we want for the stream in later offers and answers; sendonly puts
    /// the peer on hold (RFC 3264 §8.4).
    pub fn set_direction(&mut self, direction: Direction) {
        self.direction = direction;
    }

    /// Writes an offer and remembers it until its answer arrives.
    pub fn create_offer(&mut self) -> Result<String, SdpError> {
        if self.pending.is_some() {
            return Err(SdpError::OfferPending);
        }
        let crypto = self.config.srtp.as_ref().map(|key| CryptoAttribute {
            tag: OFFER_CRYPTO_TAG,
            suite: SUPPORTED_SUITE,
            key_salt: key.as_bytes().to_vec(),
            lifetime: None,
            mki: None,
            session_params: Vec::new(),
        });
        let config = &self.config;
        // With mux offered, a=rtcp is only needed when the fallback port is
        // not the implied RTP port + 1.
        let implied_rtcp = config.rtp_port.checked_add(1) == Some(config.rtcp_port);
        let audio = AudioDescription {
            port: config.rtp_port,
            codecs: config
                .codecs
                .iter()
                .filter_map(|&codec| {
                    let payload_type = codec.static_payload_type()?;
                    Some(CodecPayload {
                        payload_type,
                        codec,
                    })
                })
                .collect(),
            dtmf: config.dtmf,
            ptime_ms: config.ptime_ms,
            rtcp_port: (!config.rtcp_mux || !implied_rtcp).then_some(config.rtcp_port),
            rtcp_mux: config.rtcp_mux,
            crypto: crypto.clone(),
            direction: self.direction,
        };
        self.pending = Some(PendingOffer {
            codecs: config.codecs.clone(),
            dtmf: config.dtmf,
            crypto,
            rtcp_mux: config.rtcp_mux,
            direction: self.direction,
        });
        let description = LocalDescription {
            address: config.address,
            media: vec![MediaLine::Audio(audio)],
        };
        Ok(self.session.write(&description))
    }

    /// Our offer was refused (a 488, a 491, a timeout): the previous media
    /// stays in force and a new offer may be made.
    pub fn handle_offer_rejected(&mut self) {
        self.pending = None;
    }

    /// Checks the peer's answer to our outstanding offer.
    pub fn handle_answer(&mut self, body: &[u8]) -> Result<NegotiatedMedia, SdpError> {
        let offer = self.pending.take().ok_or(SdpError::NoPendingOffer)?;
        let sdp = SessionDescription::parse(body)?;
        // Our offers carry one m= line, so the answer's first is its reply.
        let media = sdp
            .media
            .first()
            .filter(|m| m.is_audio())
            .ok_or(SdpError::NoAudio)?;
        if media.port == 0 {
            return Err(SdpError::AudioRejected);
        }
        match (secure_profile(media)?, offer.crypto.is_some()) {
            (true, false) => return Err(SdpError::UnsupportedProfile),
            (false, true) => return Err(SdpError::CryptoMissing),
            _ => {}
        }
        let (codec_pt, codec) = first_codec(media, &offer.codecs).ok_or(SdpError::NoCommonCodec)?;
        let dtmf_pt = offer
            .dtmf
            .and_then(|dtmf| telephone_event_pt(media, dtmf.clock_rate));
        let remote_crypto = match &offer.crypto {
            Some(ours) => Some(answered_crypto(media, ours)?),
            None => None,
        };
        let negotiated = negotiate(
            &sdp,
            media,
            Agreement {
                codec,
                codec_pt,
                dtmf_pt,
                remote_crypto,
                rtcp_mux: offer.rtcp_mux && media.rtcp_mux,
                local_direction: offer.direction,
                default_ptime: self.config.ptime_ms,
            },
        )?;
        self.current = Some(negotiated.clone());
        Ok(negotiated)
    }

    /// Answers the peer's offer: the first audio stream we can take is
    /// accepted, every other `m=` line is rejected with port 0. On an error
    /// (answer with 488) nothing changes.
    pub fn handle_offer(&mut self, body: &[u8]) -> Result<Answer, SdpError> {
        if self.pending.is_some() {
            return Err(SdpError::OfferPending);
        }
        let sdp = SessionDescription::parse(body)?;
        let mut first_error = None;
        let mut accepted = None;
        for (index, media) in sdp.media.iter().enumerate() {
            if !media.is_audio() || media.port == 0 {
                continue;
            }
            match self.accept_audio(&sdp, media) {
                Ok(stream) => {
                    accepted = Some((index, stream));
                    break;
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        let Some((accepted_index, (audio, negotiated))) = accepted else {
            return Err(first_error.unwrap_or(SdpError::AudioRejected));
        };
        let mut audio = Some(audio);
        let media = sdp
            .media
            .iter()
            .enumerate()
            .map(
                |(index, offered)| match audio.take_if(|_| index == accepted_index) {
                    Some(audio) => MediaLine::Audio(audio),
                    None => MediaLine::Rejected {
                        kind: offered.kind.clone(),
                        protocol: offered.protocol.clone(),
                        formats: offered.formats.clone(),
                    },
                },
            )
            .collect();
        let description = LocalDescription {
            address: self.config.address,
            media,
        };
        let sdp = self.session.write(&description);
        self.current = Some(negotiated.clone());
        Ok(Answer {
            sdp,
            media: negotiated,
        })
    }

    /// Our side of one offered audio stream, or why we cannot take it.
    fn accept_audio(
        &self,
        sdp: &SessionDescription,
        media: &MediaDescription,
    ) -> Result<(AudioDescription, NegotiatedMedia), SdpError> {
        let config = &self.config;
        let secure = secure_profile(media)?;
        let (codec_pt, codec) =
            first_codec(media, &config.codecs).ok_or(SdpError::NoCommonCodec)?;
        // Keep the offerer's PT number: it is what the offerer will send.
        let dtmf = config.dtmf.and_then(|_| {
            telephone_event_pt(media, codec.clock_rate()).map(|payload_type| TelephoneEvent {
                payload_type,
                clock_rate: codec.clock_rate(),
            })
        });
        let (remote_crypto, local_crypto) = self.answer_crypto(media, secure)?;
        let rtcp_mux = config.rtcp_mux && media.rtcp_mux;
        let negotiated = negotiate(
            sdp,
            media,
            Agreement {
                codec,
                codec_pt,
                dtmf_pt: dtmf.map(|d| d.payload_type),
                remote_crypto,
                rtcp_mux,
                local_direction: self.direction,
                default_ptime: config.ptime_ms,
            },
        )?;
        let audio = AudioDescription {
            port: config.rtp_port,
            codecs: vec![CodecPayload {
                payload_type: codec_pt,
                codec,
            }],
            dtmf,
            ptime_ms: config.ptime_ms,
            rtcp_port: (!rtcp_mux).then_some(config.rtcp_port),
            rtcp_mux,
            crypto: local_crypto,
            // RFC 3264 §6.1: the offer's direction seen from our side.
            direction: negotiated.direction,
        };
        Ok((audio, negotiated))
    }

    /// The peer's key and our reply to it, for an offered stream.
    fn answer_crypto(
        &self,
        media: &MediaDescription,
        secure: bool,
    ) -> Result<(Option<CryptoAttribute>, Option<CryptoAttribute>), SdpError> {
        let key = match (&self.config.srtp, secure) {
            (None, false) => return Ok((None, None)),
            (None, true) => return Err(SdpError::SrtpNotEnabled),
            (Some(_), false) => return Err(SdpError::CryptoMissing),
            (Some(key), true) => key,
        };
        if media.crypto.is_empty() {
            return Err(SdpError::CryptoMissing);
        }
        let remote = media
            .crypto
            .iter()
            .find(|c| c.suite == SUPPORTED_SUITE && c.is_usable())
            .ok_or(SdpError::UnsupportedCryptoSuite)?;
        // RFC 4568 §7.1.2: the answer names the accepted line by its tag.
        let ours = CryptoAttribute {
            tag: remote.tag,
            suite: remote.suite.clone(),
            key_salt: key.as_bytes().to_vec(),
            lifetime: None,
            mki: None,
            session_params: Vec::new(),
        };
        Ok((Some(remote.clone()), Some(ours)))
    }
}

/// Whether a stream's profile is SRTP; only plain AVP and SAVP are carried.
fn secure_profile(media: &MediaDescription) -> Result<bool, SdpError> {
    if media.protocol.eq_ignore_ascii_case("RTP/AVP") {
        Ok(false)
    } else if media.protocol.eq_ignore_ascii_case("RTP/SAVP") {
        Ok(true)
    } else {
        Err(SdpError::UnsupportedProfile)
    }
}

/// The first payload type, in the section's order, that is one of `ours`
/// and G.711 (what a trunk carries).
fn first_codec(media: &MediaDescription, ours: &[Codec]) -> Option<(u8, Codec)> {
    media.payload_types.iter().find_map(|&pt| {
        let encoding = media.encoding(pt)?;
        let codec = Codec::from_encoding(encoding.name, encoding.clock_rate)?;
        (codec.is_g711() && ours.contains(&codec)).then_some((pt, codec))
    })
}

fn telephone_event_pt(media: &MediaDescription, clock_rate: u32) -> Option<u8> {
    media.payload_types.iter().copied().find(|&pt| {
        media.encoding(pt).is_some_and(|e| {
            e.name.eq_ignore_ascii_case(TelephoneEvent::ENCODING_NAME) && e.clock_rate == clock_rate
        })
    })
}

/// The peer's key from its answer to our `a=crypto` offer.
fn answered_crypto(
    media: &MediaDescription,
    ours: &CryptoAttribute,
) -> Result<CryptoAttribute, SdpError> {
    let answered = media
        .crypto
        .iter()
        .find(|c| c.tag == ours.tag)
        .ok_or(SdpError::CryptoMissing)?;
    if answered.suite != ours.suite || !answered.is_usable() {
        return Err(SdpError::UnsupportedCryptoSuite);
    }
    Ok(answered.clone())
}

/// What an exchange agreed apart from the peer's addresses and direction.
struct Agreement {
    codec: Codec,
    codec_pt: u8,
    dtmf_pt: Option<u8>,
    remote_crypto: Option<CryptoAttribute>,
    rtcp_mux: bool,
    local_direction: Direction,
    default_ptime: u32,
}

fn negotiate(
    sdp: &SessionDescription,
    media: &MediaDescription,
    agreed: Agreement,
) -> Result<NegotiatedMedia, SdpError> {
    let ip = sdp.connection_for(media).ok_or(SdpError::NoConnection)?;
    let mut remote_direction = sdp.direction_for(media);
    if ip.is_unspecified() {
        // RFC 3264 §8.4: c=0.0.0.0 means send neither RTP nor RTCP there.
        remote_direction = Direction::from_flags(remote_direction.sends(), false);
    }
    let remote_rtcp = match (agreed.rtcp_mux, media.rtcp) {
        (true, _) => None,
        (false, Some(rtcp)) => Some(SocketAddr::new(rtcp.address.unwrap_or(ip), rtcp.port)),
        (false, None) => media
            .port
            .checked_add(1)
            .map(|port| SocketAddr::new(ip, port)),
    };
    let mut ptime_ms = sdp
        .ptime_for(media)
        .filter(|ms| PTIME_RANGE_MS.contains(ms))
        .unwrap_or(agreed.default_ptime);
    if let Some(max) = media.maxptime.filter(|ms| PTIME_RANGE_MS.contains(ms)) {
        ptime_ms = ptime_ms.min(max);
    }
    let direction = agreed
        .local_direction
        .intersect(remote_direction.reversed());
    Ok(NegotiatedMedia {
        remote_rtp: SocketAddr::new(ip, media.port),
        remote_rtcp,
        rtcp_mux: agreed.rtcp_mux,
        codec: agreed.codec,
        codec_pt: agreed.codec_pt,
        dtmf_pt: agreed.dtmf_pt,
        ptime_ms,
        direction,
        remote_crypto: agreed.remote_crypto,
        on_hold: agreed.local_direction.sends() && !remote_direction.receives(),
    })
}

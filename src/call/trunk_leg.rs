//! The trunk side of one call's signalling: a [`TrunkCall`] and the SDP of
//! its media.
//!
//! The leg builds an offer for the ports the call's media owns, for
//! whichever trunk the agent tries (codecs and SRTP come from that trunk's
//! settings), turns the answer from 183 or 200 into a [`RemoteMedia`] for
//! the media to apply, answers the trunk's re-INVITEs (hold stops our
//! sending; a new address re-latches), and reports all of it as a few
//! [`LegEvent`]s. Each event that changes the media is preceded by
//! [`LegEvent::Media`] with the description to apply. An answer we cannot
//! use (no common codec) ends the call with BYE and disposition `failed`,
//! cause 488.
//!
//! [`TrunkLeg::next_event`] is cancel-safe: the call's driver polls it in a
//! `select!` that may drop it at any await. The one await that is not a
//! queue read, sending our answer to a re-INVITE, is kept in the leg with
//! the event it brings, so a dropped future loses neither the 200 OK nor a
//! `Hold` (which closes the consent gate). The new description is reported
//! before the 200 OK leaves, so the media follows the trunk's new address
//! from its first packet.

use std::collections::VecDeque;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tracing::{debug, warn};

use crate::domain::{Codec, Disposition, TelephoneEvent};
use crate::media::MediaError;
use crate::media::endpoint::RemoteMedia;
use crate::media::sdp::{LocalMediaConfig, NegotiatedMedia, Negotiator, SdpError, SrtpKeySalt};
use crate::media::srtp::SrtpKeyMaterial;
use crate::sip::{
    CallEnd, CallRequest, EndCause, OfferBuilder, SipAgent, SipError, TrunkCall, TrunkEvent,
    TrunkReason, TrunkSettings,
};

/// Where the leg's media lives.
#[derive(Debug, Clone, Copy)]
pub struct MediaPlan {
    /// The local address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// The address announced in SDP (a public address behind NAT).
    pub announce_ip: IpAddr,
}

/// The local ports of the leg's media, as the offer announces them.
#[derive(Debug, Clone, Copy)]
pub struct LocalPorts {
    pub rtp: u16,
    pub rtcp: u16,
}

/// What happened on the trunk leg, for the call's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    Trying {
        trunk: String,
    },
    Ringing,
    /// Early media flows (ringback or announcements from a 183).
    EarlyMedia,
    Answered {
        codec: Codec,
    },
    /// The trunk put the call on hold (`true`) or took it off (`false`).
    Hold(bool),
    /// The trunk moved its media to a new address or codec.
    MediaUpdated,
    /// The description the media must apply now: it precedes the
    /// `EarlyMedia`, `Answered`, `Hold` or `MediaUpdated` it brings.
    Media(RemoteMedia),
    /// A keypad digit the trunk sent in a SIP INFO, for the browser.
    Dtmf(char),
    Ended(CallEnd),
}

#[derive(Debug, thiserror::Error)]
pub enum LegError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Sip(#[from] SipError),
    #[error("sdp: {0}")]
    Sdp(#[from] SdpError),
}

/// Offer state for the trunk attempt in flight: the negotiator and our key.
struct Attempt {
    negotiator: Negotiator,
    srtp_local: Option<SrtpKeyMaterial>,
}

/// Our reply to a re-INVITE on its way, and the event to report once it
/// is sent.
struct PendingReply {
    sending: Pin<Box<dyn Future<Output = ()> + Send>>,
    event: Option<LegEvent>,
}

pub struct TrunkLeg {
    call: TrunkCall,
    attempt: Arc<Mutex<Option<Attempt>>>,
    on_hold: bool,
    failure: Option<CallEnd>,
    reply: Option<PendingReply>,
    /// Events that follow a [`LegEvent::Media`] already returned.
    queued: VecDeque<LegEvent>,
}

impl TrunkLeg {
    /// Place the call, offering media on `ports` of `announce_ip`; events
    /// follow from [`TrunkLeg::next_event`].
    pub fn start(
        agent: &SipAgent,
        ports: LocalPorts,
        announce_ip: IpAddr,
        request: CallRequest,
    ) -> Result<Self, LegError> {
        let attempt = Arc::new(Mutex::new(None));
        let offer = offer_builder(ports, announce_ip, attempt.clone());
        let call = agent.place_call(request, offer)?;
        Ok(Self {
            call,
            attempt,
            on_hold: false,
            failure: None,
            reply: None,
            queued: VecDeque::new(),
        })
    }

    /// Hang up: CANCEL before the answer, BYE after.
    pub fn hangup(&self) {
        self.call.hangup();
    }

    /// The next event; `None` after `Ended`. Cancel-safe (see the module
    /// documentation).
    pub async fn next_event(&mut self) -> Option<LegEvent> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(event);
            }
            if let Some(reply) = self.reply.as_mut() {
                reply.sending.as_mut().await;
                let event = self.reply.take().and_then(|reply| reply.event);
                match event {
                    Some(event) => return Some(event),
                    None => continue,
                }
            }
            let event = self.call.next_event().await?;
            if let Some(leg_event) = self.on_trunk_event(event) {
                return Some(leg_event);
            }
        }
    }

    fn on_trunk_event(&mut self, event: TrunkEvent) -> Option<LegEvent> {
        match event {
            TrunkEvent::Trying { trunk } => Some(LegEvent::Trying { trunk }),
            TrunkEvent::Ringing => Some(LegEvent::Ringing),
            TrunkEvent::EarlyMedia { sdp } => match self.apply_answer(&sdp) {
                Ok((_, remote)) => self.with_media(remote, LegEvent::EarlyMedia),
                Err(e) => {
                    // Early media we cannot play is not fatal: the 200 decides.
                    debug!(error = %e, "ignoring unusable early-media sdp");
                    Some(LegEvent::Ringing)
                }
            },
            TrunkEvent::Answered { sdp } => self.on_answered(&sdp),
            TrunkEvent::RemoteOffer { sdp, reply } => match self.answer_offer(&sdp) {
                Ok((answer, remote, event)) => {
                    self.reply = Some(PendingReply {
                        sending: Box::pin(reply.accept(answer.into_bytes())),
                        event: Some(event),
                    });
                    Some(LegEvent::Media(remote))
                }
                Err(e) => {
                    debug!(error = %e, "refusing the trunk's re-INVITE offer");
                    self.reply = Some(PendingReply {
                        sending: Box::pin(reply.reject(488)),
                        event: None,
                    });
                    None
                }
            },
            TrunkEvent::Dtmf(digit) => Some(LegEvent::Dtmf(digit)),
            TrunkEvent::Ended(end) => Some(LegEvent::Ended(self.failure.take().unwrap_or(end))),
        }
    }

    /// Reports `remote` now and `event` right after it.
    fn with_media(&mut self, remote: RemoteMedia, event: LegEvent) -> Option<LegEvent> {
        self.queued.push_back(event);
        Some(LegEvent::Media(remote))
    }

    fn on_answered(&mut self, sdp: &[u8]) -> Option<LegEvent> {
        match self.apply_answer(sdp) {
            Ok((media, remote)) => {
                self.with_media(remote, LegEvent::Answered { codec: media.codec })
            }
            Err(e) => {
                warn!(error = %e, "the trunk's answer is unusable, hanging up");
                self.failure = Some(CallEnd {
                    disposition: Disposition::Failed,
                    sip_code: Some(488),
                    ended_by: EndCause::Local,
                    trunk: None,
                    reason: TrunkReason::default(),
                });
                self.call.hangup();
                None
            }
        }
    }

    /// Take an answer to our offer; a 200 repeating the 183's SDP is fine.
    fn apply_answer(&mut self, sdp: &[u8]) -> Result<(NegotiatedMedia, RemoteMedia), LegError> {
        let mut slot = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = slot.as_mut().ok_or(SdpError::NoPendingOffer)?;
        let media = match attempt.negotiator.handle_answer(sdp) {
            Ok(media) => media,
            // An answer from a 183 already stands; the 200 may repeat it or
            // carry no SDP at all (RFC 3261 §13.2.1).
            Err(e) => attempt.negotiator.current().cloned().ok_or(e)?,
        };
        let remote = remote_media(&media, attempt.srtp_local.as_ref())?;
        Ok((media, remote))
    }

    /// Answer a re-INVITE: returns our SDP, the new description and what
    /// changed.
    fn answer_offer(&mut self, sdp: &[u8]) -> Result<(String, RemoteMedia, LegEvent), LegError> {
        let mut slot = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = slot.as_mut().ok_or(SdpError::NoPendingOffer)?;
        let answer = attempt.negotiator.handle_offer(sdp)?;
        let remote = remote_media(&answer.media, attempt.srtp_local.as_ref())?;
        drop(slot);
        let hold = answer.media.on_hold || !answer.media.direction.sends();
        let event = if hold != self.on_hold {
            self.on_hold = hold;
            LegEvent::Hold(hold)
        } else {
            LegEvent::MediaUpdated
        };
        Ok((answer.sdp, remote, event))
    }
}

/// Build a fresh offer for each trunk the agent tries.
fn offer_builder(
    ports: LocalPorts,
    announce_ip: IpAddr,
    slot: Arc<Mutex<Option<Attempt>>>,
) -> OfferBuilder {
    Arc::new(move |trunk: &TrunkSettings| {
        let srtp_local = trunk.srtp.then(SrtpKeyMaterial::generate);
        let mut config = LocalMediaConfig::new(announce_ip, ports.rtp);
        config.rtcp_port = ports.rtcp;
        config.codecs = trunk.codecs.clone();
        config.dtmf = Some(TelephoneEvent {
            payload_type: trunk.dtmf_payload_type,
            ..TelephoneEvent::default()
        });
        config.srtp = srtp_local.as_ref().map(|k| SrtpKeySalt::new(k.to_bytes()));
        let offer = Negotiator::new(config, rand::random::<u32>().into()).and_then(|mut n| {
            let sdp = n.create_offer()?;
            Ok((n, sdp))
        });
        match offer {
            Ok((negotiator, sdp)) => {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Attempt {
                    negotiator,
                    srtp_local,
                });
                sdp.into_bytes()
            }
            Err(e) => {
                // Config validation makes this unreachable in practice; an
                // empty offer makes the trunk refuse the call visibly.
                warn!(error = %e, trunk = %trunk.name, "could not build an sdp offer");
                Vec::new()
            }
        }
    })
}

/// The endpoint's view of a negotiated stream.
pub fn remote_media(
    media: &NegotiatedMedia,
    srtp_local: Option<&SrtpKeyMaterial>,
) -> Result<RemoteMedia, LegError> {
    let srtp = match (&media.remote_crypto, srtp_local) {
        (Some(remote), Some(local)) => Some((
            local.clone(),
            SrtpKeyMaterial::from_bytes(&remote.key_salt).map_err(MediaError::from)?,
        )),
        _ => None,
    };
    let remote = RemoteMedia {
        rtp: media.remote_rtp,
        rtcp: if media.rtcp_mux {
            None
        } else {
            media.remote_rtcp
        },
        audio_pt: media.codec_pt,
        clock_rate: media.codec.clock_rate(),
        dtmf_pt: media.dtmf_pt,
        srtp,
        send: media.direction.sends() && !media.on_hold,
        recv: media.direction.receives(),
    };
    remote.validate()?;
    Ok(remote)
}

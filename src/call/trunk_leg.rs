//! The trunk side of one call: a [`TrunkCall`] and its [`RtpEndpoint`].
//!
//! The leg binds a port pair, builds an offer for whichever trunk the agent
//! tries (codecs and SRTP come from that trunk's settings), applies the
//! answer from 183 or 200 to the endpoint, answers the trunk's re-INVITEs
//! (hold stops our sending; a new address re-latches), and turns all of it
//! into a few [`LegEvent`]s. An answer we cannot use (no common codec) ends
//! the call with BYE and disposition `failed`, cause 488.
//!
//! [`TrunkLeg::next_event`] is cancel-safe: the call's driver polls it in a
//! `select!` that may drop it at any await. The one await that is not a
//! queue read, sending our answer to a re-INVITE, is kept in the leg with
//! the event it brings, so a dropped future loses neither the 200 OK nor a
//! `Hold` (which closes the consent gate).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::media::MediaError;
use crate::media::endpoint::{MediaEvent, RemoteMedia, RtpEndpoint};
use crate::media::ports::PortAllocator;
use crate::media::sdp::{
    Codec, LocalMediaConfig, NegotiatedMedia, Negotiator, SdpError, SrtpKeySalt, TelephoneEvent,
};
use crate::media::srtp::SrtpKeyMaterial;
use crate::sip::{
    CallEnd, CallRequest, Disposition, EndedBy, OfferBuilder, SipAgent, SipError, TrunkCall,
    TrunkEvent, TrunkSettings,
};

/// Where the leg's media lives.
#[derive(Debug, Clone, Copy)]
pub struct MediaPlan {
    /// The local address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// The address announced in SDP (a public address behind NAT).
    pub announce_ip: IpAddr,
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
    endpoint: RtpEndpoint,
    attempt: Arc<Mutex<Option<Attempt>>>,
    on_hold: bool,
    failure: Option<CallEnd>,
    reply: Option<PendingReply>,
}

impl TrunkLeg {
    /// Bind media and place the call; events follow from [`TrunkLeg::next_event`].
    pub fn start(
        agent: &SipAgent,
        ports: &PortAllocator,
        plan: MediaPlan,
        request: CallRequest,
    ) -> Result<Self, LegError> {
        let endpoint = RtpEndpoint::bind(ports, plan.bind_ip)?;
        let attempt = Arc::new(Mutex::new(None));
        let offer = offer_builder(&endpoint, plan.announce_ip, attempt.clone());
        let call = agent.place_call(request, offer)?;
        Ok(Self {
            call,
            endpoint,
            attempt,
            on_hold: false,
            failure: None,
            reply: None,
        })
    }

    /// The endpoint: send audio and DTMF to the trunk, read its stats.
    pub fn endpoint(&self) -> &RtpEndpoint {
        &self.endpoint
    }

    /// Audio frames and DTMF digits from the trunk (once).
    pub fn take_media(&mut self) -> Option<mpsc::Receiver<MediaEvent>> {
        self.endpoint.take_events()
    }

    /// Hang up: CANCEL before the answer, BYE after.
    pub fn hangup(&self) {
        self.call.hangup();
    }

    /// The next event; `None` after `Ended`. Cancel-safe (see the module
    /// documentation).
    pub async fn next_event(&mut self) -> Option<LegEvent> {
        loop {
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

    /// Stop the media task and free the ports.
    pub async fn close(self) {
        self.endpoint.close().await;
    }

    fn on_trunk_event(&mut self, event: TrunkEvent) -> Option<LegEvent> {
        match event {
            TrunkEvent::Trying { trunk } => Some(LegEvent::Trying { trunk }),
            TrunkEvent::Ringing => Some(LegEvent::Ringing),
            TrunkEvent::EarlyMedia { sdp } => match self.apply_answer(&sdp) {
                Ok(_) => Some(LegEvent::EarlyMedia),
                Err(e) => {
                    // Early media we cannot play is not fatal: the 200 decides.
                    debug!(error = %e, "ignoring unusable early-media sdp");
                    Some(LegEvent::Ringing)
                }
            },
            TrunkEvent::Answered { sdp } => self.on_answered(&sdp),
            TrunkEvent::RemoteOffer { sdp, reply } => {
                let pending = match self.answer_offer(&sdp) {
                    Ok((answer, event)) => PendingReply {
                        sending: Box::pin(reply.accept(answer.into_bytes())),
                        event: Some(event),
                    },
                    Err(e) => {
                        debug!(error = %e, "refusing the trunk's re-INVITE offer");
                        PendingReply {
                            sending: Box::pin(reply.reject(488)),
                            event: None,
                        }
                    }
                };
                self.reply = Some(pending);
                None
            }
            TrunkEvent::Ended(end) => Some(LegEvent::Ended(self.failure.take().unwrap_or(end))),
        }
    }

    fn on_answered(&mut self, sdp: &[u8]) -> Option<LegEvent> {
        match self.apply_answer(sdp) {
            Ok(media) => Some(LegEvent::Answered { codec: media.codec }),
            Err(e) => {
                warn!(error = %e, "the trunk's answer is unusable, hanging up");
                self.failure = Some(CallEnd {
                    disposition: Disposition::Failed,
                    sip_code: Some(488),
                    ended_by: EndedBy::Local,
                    trunk: None,
                });
                self.call.hangup();
                None
            }
        }
    }

    /// Apply an answer to our offer; a 200 repeating the 183's SDP is fine.
    fn apply_answer(&mut self, sdp: &[u8]) -> Result<NegotiatedMedia, LegError> {
        let mut slot = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = slot.as_mut().ok_or(SdpError::NoPendingOffer)?;
        let media = match attempt.negotiator.handle_answer(sdp) {
            Ok(media) => media,
            // An answer from a 183 already stands; the 200 may repeat it or
            // carry no SDP at all (RFC 3261 §13.2.1).
            Err(e) => attempt.negotiator.current().cloned().ok_or(e)?,
        };
        let remote = remote_media(&media, attempt.srtp_local.as_ref())?;
        drop(slot);
        self.endpoint.set_remote(remote)?;
        Ok(media)
    }

    /// Answer a re-INVITE: returns our SDP and what changed.
    fn answer_offer(&mut self, sdp: &[u8]) -> Result<(String, LegEvent), LegError> {
        let mut slot = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = slot.as_mut().ok_or(SdpError::NoPendingOffer)?;
        let answer = attempt.negotiator.handle_offer(sdp)?;
        let remote = remote_media(&answer.media, attempt.srtp_local.as_ref())?;
        drop(slot);
        self.endpoint.set_remote(remote)?;
        let hold = answer.media.on_hold || !answer.media.direction.sends();
        let event = if hold != self.on_hold {
            self.on_hold = hold;
            LegEvent::Hold(hold)
        } else {
            LegEvent::MediaUpdated
        };
        Ok((answer.sdp, event))
    }
}

/// Build a fresh offer for each trunk the agent tries.
fn offer_builder(
    endpoint: &RtpEndpoint,
    announce_ip: IpAddr,
    slot: Arc<Mutex<Option<Attempt>>>,
) -> OfferBuilder {
    let rtp_port = endpoint.local_rtp_addr().port();
    let rtcp_port = endpoint.local_rtcp_addr().port();
    Arc::new(move |trunk: &TrunkSettings| {
        let srtp_local = trunk.srtp.then(SrtpKeyMaterial::generate);
        let mut config = LocalMediaConfig::new(announce_ip, rtp_port);
        config.rtcp_port = rtcp_port;
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
            SrtpKeyMaterial::from_bytes(&remote.key_salt)?,
        )),
        _ => None,
    };
    Ok(RemoteMedia {
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
    })
}

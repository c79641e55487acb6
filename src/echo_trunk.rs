//! The built-in echo trunk: a loopback SIP user agent that answers every
//! call and sends each caller's audio and DTMF straight back.
//!
//! It lets a node with no external service complete a real call (the
//! embedded default routes the demo number here), and it is a real peer:
//! its own SIP agent and RTP endpoints, reached over loopback like any trunk.
//! It only accepts plain RTP with G.711; anything else gets 488.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::call::trunk_leg::remote_media;
use crate::media::endpoint::{MediaEvent, RtpEndpoint};
use crate::media::ports::PortAllocator;
use crate::media::sdp::{LocalMediaConfig, Negotiator};
use crate::sip::{AgentSettings, InboundCall, InboundEvent, SipAgent, SipError};

/// No echo call outlives this, whatever the caller does.
const MAX_ECHO_CALL: Duration = Duration::from_secs(3600);

/// A running echo trunk.
pub struct EchoTrunk {
    agent: SipAgent,
}

impl EchoTrunk {
    /// Listen for SIP on `listen` (loopback) and echo every call.
    pub async fn start(
        listen: SocketAddr,
        ports: Arc<PortAllocator>,
        cancel: CancellationToken,
    ) -> Result<Self, SipError> {
        let settings = AgentSettings::loopback(listen, "callgate-echo");
        let (agent, inbound) = SipAgent::start(settings, cancel.clone()).await?;
        let inbound = inbound.ok_or(SipError::NoListener)?;
        tokio::spawn(serve(inbound, ports, listen.ip(), cancel));
        info!("echo trunk ready");
        Ok(Self { agent })
    }

    /// The SIP address the echo trunk listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.agent.local_addrs().first().copied()
    }

    pub fn shutdown(&self) {
        self.agent.shutdown();
    }
}

async fn serve(
    mut inbound: mpsc::Receiver<InboundCall>,
    ports: Arc<PortAllocator>,
    ip: IpAddr,
    cancel: CancellationToken,
) {
    loop {
        let call = tokio::select! {
            _ = cancel.cancelled() => return,
            call = inbound.recv() => match call { Some(call) => call, None => return },
        };
        let ports = ports.clone();
        let cancel = cancel.child_token();
        tokio::spawn(async move { echo_call(call, &ports, ip, cancel).await });
    }
}

async fn echo_call(
    mut call: InboundCall,
    ports: &PortAllocator,
    ip: IpAddr,
    cancel: CancellationToken,
) {
    let mut endpoint = match RtpEndpoint::bind(ports, ip) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            debug!(error = %e, "echo trunk has no free media port");
            call.reject(503).await;
            return;
        }
    };
    let mut config = LocalMediaConfig::new(ip, endpoint.local_rtp_addr().port());
    config.rtcp_port = endpoint.local_rtcp_addr().port();
    let answered = Negotiator::new(config, rand::random::<u32>().into())
        .and_then(|mut n| n.handle_offer(call.offer()).map(|answer| (n, answer)));
    let (mut negotiator, answer) = match answered {
        Ok(ok) => ok,
        Err(e) => {
            debug!(error = %e, "echo trunk refuses the offer");
            call.reject(488).await;
            endpoint.close().await;
            return;
        }
    };
    let applied = remote_media(&answer.media, None).map(|remote| endpoint.set_remote(remote));
    if !matches!(applied, Ok(Ok(()))) || call.accept(answer.sdp.into_bytes()).await.is_err() {
        call.reject(500).await;
        endpoint.close().await;
        return;
    }
    let Some(mut media) = endpoint.take_events() else {
        endpoint.close().await;
        return;
    };
    let limit = tokio::time::sleep(MAX_ECHO_CALL);
    tokio::pin!(limit);
    loop {
        tokio::select! {
            event = call.next_event() => match event {
                Some(InboundEvent::RemoteOffer { sdp, reply }) => {
                    match answer_reoffer(&mut negotiator, &endpoint, &sdp) {
                        Some(answer) => reply.accept(answer.into_bytes()).await,
                        None => reply.reject(488).await,
                    }
                }
                Some(InboundEvent::Ended) | None => break,
            },
            event = media.recv() => match event {
                Some(MediaEvent::Frame(frame)) => {
                    // G.711 carries one byte per sample.
                    let _ = endpoint.send_audio(&frame.payload, frame.payload.len() as u32);
                }
                Some(MediaEvent::Dtmf { digit, .. }) => {
                    let _ = endpoint.send_dtmf(&digit.to_string());
                }
                Some(MediaEvent::DtmfContinued { .. }) => {}
                None => break,
            },
            _ = &mut limit => { let _ = call.hangup().await; break; }
            _ = cancel.cancelled() => { let _ = call.hangup().await; break; }
        }
    }
    endpoint.close().await;
}

/// Answer a re-INVITE (hold, unhold, a new address) and move the media.
fn answer_reoffer(
    negotiator: &mut Negotiator,
    endpoint: &RtpEndpoint,
    offer: &[u8],
) -> Option<String> {
    let answer = negotiator.handle_offer(offer).ok()?;
    let remote = remote_media(&answer.media, None).ok()?;
    endpoint.set_remote(remote).ok()?;
    Some(answer.sdp)
}

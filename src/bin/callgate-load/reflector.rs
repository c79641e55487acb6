//! `--reflect-trunk ADDR`: the load tool plays the node's SIP trunk too.
//!
//! [`ReflectorTrunk`] answers every INVITE on `ADDR` (plain RTP, G.711, as
//! the node's own echo trunk does) and hands the call's RTP socket to a
//! [`Pump`] as a reflector: every packet the node relays to the trunk goes
//! back on the call's next 20 ms tick. The pump is the one carrying the
//! calls' own audio when the run lends it ([`PumpLender`]), so the load's
//! calls and their far end share one thread, as with rtpengine; otherwise
//! the trunk's own. The
//! far end then costs a few microseconds per packet on the load's core,
//! with no second set of threads competing there, so the node under test
//! is fed traffic paced by the load, not by a busy far end.
//!
//! Re-INVITEs (hold, a new address) are refused with 488: the load's calls
//! never send one. A call's sockets stay with the pump until the run ends.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;

use callgate::domain::Codec;
use callgate::media::sdp::{LocalMediaConfig, Negotiator};
use callgate::sip::{AgentSettings, InboundCall, InboundEvent, SipAgent, SipError};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::pump::{Pump, Role, Stream};

/// Where the run lends the trunk the pump of its current round.
#[derive(Clone, Default)]
pub struct PumpLender(Arc<std::sync::Mutex<Option<Arc<Pump>>>>);

impl PumpLender {
    /// New calls' RTP goes to `pump` (`None`: the trunk's own).
    pub fn lend(&self, pump: Option<Arc<Pump>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = pump;
    }

    fn borrowed(&self) -> Option<Arc<Pump>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Why the reflecting trunk could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReflectorError {
    #[error("cannot start its pump: {0}")]
    Pump(std::io::Error),
    #[error("cannot listen for SIP on {listen}: {source}")]
    Listen {
        listen: SocketAddr,
        source: SipError,
    },
    #[error("its SIP agent takes no calls")]
    NoInbound,
}

/// See the module documentation.
pub struct ReflectorTrunk {
    agent: SipAgent,
    cancel: CancellationToken,
    pump: Arc<Pump>,
    lender: PumpLender,
    /// Each answered call's RTCP socket: bound so the node's reports land
    /// somewhere, never read.
    rtcp_sinks: Arc<Mutex<Vec<UdpSocket>>>,
}

impl ReflectorTrunk {
    pub async fn start(listen: SocketAddr) -> Result<Self, ReflectorError> {
        let pump = Arc::new(Pump::start().map_err(ReflectorError::Pump)?);
        let cancel = CancellationToken::new();
        let settings = AgentSettings::loopback(listen, "callgate-load-reflector");
        let (agent, inbound) = SipAgent::start(settings, cancel.clone())
            .await
            .map_err(|source| ReflectorError::Listen { listen, source })?;
        let mut inbound = inbound.ok_or(ReflectorError::NoInbound)?;
        let rtcp_sinks = Arc::new(Mutex::new(Vec::new()));
        let lender = PumpLender::default();
        let (own, sinks, serve_cancel) = (pump.clone(), rtcp_sinks.clone(), cancel.clone());
        let serve_lender = lender.clone();
        tokio::spawn(async move {
            loop {
                let call = tokio::select! {
                    () = serve_cancel.cancelled() => return,
                    call = inbound.recv() => match call { Some(call) => call, None => return },
                };
                let pump = serve_lender.borrowed().unwrap_or_else(|| own.clone());
                tokio::spawn(answer(call, listen.ip(), pump, sinks.clone()));
            }
        });
        Ok(Self {
            agent,
            cancel,
            pump,
            lender,
            rtcp_sinks,
        })
    }

    pub fn lender(&self) -> PumpLender {
        self.lender.clone()
    }

    /// Stops answering and reflecting.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.agent.shutdown();
        self.rtcp_sinks.lock().await.clear();
        let pump = self.pump;
        let _ = tokio::task::spawn_blocking(move || pump.stop()).await;
    }
}

/// Answers one call and reflects its RTP until the run ends.
async fn answer(
    mut call: InboundCall,
    ip: IpAddr,
    pump: Arc<Pump>,
    sinks: Arc<Mutex<Vec<UdpSocket>>>,
) {
    let Ok((rtp, rtcp)) = bind_pair(ip) else {
        call.reject(503).await;
        return;
    };
    let (Ok(rtp_addr), Ok(rtcp_addr)) = (rtp.local_addr(), rtcp.local_addr()) else {
        call.reject(503).await;
        return;
    };
    let mut config = LocalMediaConfig::new(ip, rtp_addr.port());
    config.rtcp_port = rtcp_addr.port();
    config.codecs = vec![Codec::Pcmu, Codec::Pcma];
    let answered = Negotiator::new(config, rand::random::<u32>().into())
        .and_then(|mut negotiator| negotiator.handle_offer(call.offer()));
    let answer = match answered {
        Ok(answer) => answer,
        Err(_) => {
            call.reject(488).await;
            return;
        }
    };
    let stream = Stream {
        socket: rtp,
        remote: answer.media.remote_rtp,
        role: Role::reflector(),
    };
    if pump.add(stream).is_err() || call.accept(answer.sdp.into_bytes()).await.is_err() {
        return;
    }
    sinks.lock().await.push(rtcp);
    while let Some(event) = call.next_event().await {
        match event {
            InboundEvent::RemoteOffer { reply, .. } => reply.reject(488).await,
            InboundEvent::Ended => return,
        }
    }
}

/// An RTP socket and an RTCP socket on `ip`.
fn bind_pair(ip: IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    Ok((UdpSocket::bind((ip, 0))?, UdpSocket::bind((ip, 0))?))
}

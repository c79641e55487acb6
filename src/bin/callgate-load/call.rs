//! One call's task: a UDP socket of its own, the [`LoadClient`] driven over
//! it, and the call's signalling (placed, then hung up).
//!
//! The call reports itself ready once audio comes back (or drops its ready
//! sender when it gives up), keeps sending 20 ms packets until told to
//! stop, waits briefly for the echoes still on their way, and hangs up. A
//! refusal by the node is the run's failure (a bad setting, the node gone)
//! and comes back as an error; anything that goes wrong with this call's
//! media is this call's failure, counted in its [`CallOutcome`].

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, ClientState, LoadClient};
use crate::echo::{EchoStats, FRAME_INTERVAL};
use crate::flood::{self, Junk, Target};
use crate::node::{NodeClient, NodeError, PlacedCall};
use crate::pump::SourceOutcome;

/// From the offer's answer to the first echo: ICE, DTLS and the trunk's
/// answer, with room for a node that is busy setting up many calls.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long echoes still on their way are waited for after the last send.
const DRAIN: Duration = Duration::from_secs(1);
/// Larger than any datagram the node sends (DTLS flights, SRTP).
const RECV_BUFFER: usize = 2048;

/// What a call needs from the run.
#[derive(Clone)]
pub struct CallSetup {
    pub index: u32,
    pub node: NodeClient,
    pub local_ip: IpAddr,
    /// Send times are stamped relative to this.
    pub epoch: Instant,
    /// With a flood: where the call's browser port and fragment go, and
    /// the call sends its own junk once it echoes.
    pub flood_targets: Option<Arc<Mutex<Vec<Target>>>>,
}

/// How one call went.
#[derive(Debug, Clone, Default)]
pub struct CallOutcome {
    pub connected: bool,
    pub echoed: bool,
    /// From sending the offer to the first echo: signalling, ICE, DTLS,
    /// the trunk's answer and one round trip.
    pub setup: Option<Duration>,
    /// Why the call failed, if it did.
    pub failure: Option<String>,
    pub stats: EchoStats,
}

/// Runs one call until `stop` (or its own failure). `ready` gets `true`
/// once audio echoes; it is dropped unsent if the call fails first.
pub async fn run(
    setup: CallSetup,
    ready: oneshot::Sender<bool>,
    stop: CancellationToken,
) -> Result<CallOutcome, NodeError> {
    let socket = match UdpSocket::bind((setup.local_ip, 0)).await {
        Ok(socket) => socket,
        Err(e) => return Ok(failed(format!("cannot bind a UDP socket: {e}"))),
    };
    let local = match socket.local_addr() {
        Ok(local) => local,
        Err(e) => return Ok(failed(format!("cannot bind a UDP socket: {e}"))),
    };
    let (mut client, offer) = match LoadClient::new(Instant::now(), setup.epoch, local, setup.index)
    {
        Ok(created) => created,
        Err(e) => return Ok(failed(e.to_string())),
    };
    let placing = Instant::now();
    let placed = setup.node.place_call(&offer).await?;
    let own_junk = match (&setup.flood_targets, flood::target_of(&placed.answer)) {
        (Some(targets), Some(target)) => {
            let ufrag = target.ufrag.clone();
            targets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(target);
            Some(OwnJunk {
                junk: Junk,
                ufrag,
                last_media: None,
            })
        }
        _ => None,
    };
    let mut first_echo = None;
    let mut media = Media {
        socket: &socket,
        client: &mut client,
        own_junk,
    };
    let result = drive(&mut media, &placed, ready, &stop, &mut first_echo).await;
    let hung_up = setup.node.hang_up(&placed).await;
    media.client.close();
    media.flush().await;
    hung_up?;
    let connected = client.state() == ClientState::Connected || client.echoing();
    let echoed = client.echoing();
    Ok(CallOutcome {
        connected,
        echoed,
        setup: first_echo.map(|at: Instant| at - placing),
        failure: result.err().map(|failure| failure.to_string()),
        stats: client.into_stats(),
    })
}

impl From<SourceOutcome> for CallOutcome {
    fn from(outcome: SourceOutcome) -> Self {
        let failure = match (&outcome.failure, outcome.echoed) {
            (Some(reason), _) => Some(reason.clone()),
            (None, false) => Some("no audio echoed".to_owned()),
            (None, true) => None,
        };
        Self {
            connected: outcome.connected,
            echoed: outcome.echoed,
            setup: outcome.setup,
            failure,
            stats: outcome.stats,
        }
    }
}

fn failed(reason: String) -> CallOutcome {
    CallOutcome {
        failure: Some(reason),
        ..CallOutcome::default()
    }
}

/// The junk a call sends from its own address in a flood.
struct OwnJunk {
    junk: Junk,
    /// The node's ICE username fragment for this call.
    ufrag: String,
    /// The last SRTP packet sent, to replay.
    last_media: Option<Vec<u8>>,
}

/// The call's socket and client, and its junk in a flood.
struct Media<'a> {
    socket: &'a UdpSocket,
    client: &'a mut LoadClient,
    own_junk: Option<OwnJunk>,
}

impl Media<'_> {
    async fn flush(&mut self) {
        while let Some((to, bytes)) = self.client.poll_transmit() {
            // A failed send costs that datagram: loss is what the run measures.
            let _ = self.socket.send_to(&bytes, to).await;
            if let Some(own) = &mut self.own_junk
                && is_srtp(&bytes)
            {
                own.last_media = Some(bytes.to_vec());
            }
        }
    }

    /// After each audio packet once the call echoes: junk from this
    /// call's own, verified address.
    async fn send_own_junk(&mut self, to: std::net::SocketAddr) {
        let Some(own) = &mut self.own_junk else {
            return;
        };
        for datagram in flood::own_junk(&mut own.junk, own.last_media.as_deref(), &own.ufrag) {
            let _ = self.socket.send_to(&datagram, to).await;
        }
    }
}

/// RTP, not RTCP (RFC 5761 §4): SRTP media.
fn is_srtp(bytes: &[u8]) -> bool {
    matches!(bytes, [128..=191, second, ..] if !(64..=95).contains(&(second & 0x7f)))
}

/// The call's media until it is stopped and drained; `Err` names why the
/// call failed. `first_echo` is set when audio first comes back.
async fn drive(
    media: &mut Media<'_>,
    placed: &PlacedCall,
    ready: oneshot::Sender<bool>,
    stop: &CancellationToken,
    first_echo: &mut Option<Instant>,
) -> Result<(), CallFailure> {
    let ready_by = Instant::now() + READY_TIMEOUT;
    let node_port = flood::target_of(&placed.answer).map(|target| target.port);
    media.client.handle_answer(Instant::now(), &placed.answer)?;
    let mut ready = Some(ready);
    let mut ticker: Option<Interval> = None;
    let mut drain_until: Option<Instant> = None;
    let mut buffer = vec![0u8; RECV_BUFFER];
    loop {
        media.flush().await;
        let client = &mut *media.client;
        let now = Instant::now();
        if client.state() == ClientState::Failed {
            return Err(CallFailure::Handshake);
        }
        if ticker.is_none() && client.state() == ClientState::Connected {
            ticker = Some(audio_ticker());
        }
        if client.echoing() {
            if let Some(ready) = ready.take() {
                *first_echo = Some(now);
                let _ = ready.send(true);
            }
        } else if now >= ready_by {
            return Err(CallFailure::NotReady {
                connected: client.state() == ClientState::Connected,
            });
        }
        if let Some(until) = drain_until {
            if client.all_echoed() || now >= until {
                return match ready {
                    None => Ok(()),
                    Some(_) => Err(CallFailure::StoppedEarly),
                };
            }
        }
        let wake = [
            client.poll_timeout(),
            drain_until,
            ready.as_ref().map(|_| ready_by),
        ]
        .into_iter()
        .flatten()
        .fold(now + Duration::from_secs(1), Instant::min);
        let echoing = client.echoing();
        tokio::select! {
            received = media.socket.recv_from(&mut buffer) => {
                if let Ok((len, from)) = received {
                    let bytes = BytesMut::from(&buffer[..len]);
                    client.handle_datagram(Instant::now(), from, bytes);
                }
            }
            () = tick(&mut ticker), if drain_until.is_none() => {
                client.send_audio(Instant::now());
                if let (true, Some(to)) = (echoing, node_port) {
                    media.flush().await;
                    media.send_own_junk(to).await;
                }
            }
            () = tokio::time::sleep_until(wake.into()) => client.handle_timeout(Instant::now()),
            () = stop.cancelled(), if drain_until.is_none() => {
                drain_until = Some(Instant::now() + DRAIN);
            }
        }
    }
}

/// Why a call failed, as the report counts it.
#[derive(Debug, thiserror::Error)]
enum CallFailure {
    #[error(transparent)]
    Answer(#[from] ClientError),
    #[error("ICE or DTLS failed")]
    Handshake,
    #[error(
        "{} within {} s",
        if *connected { "no audio echoed" } else { "ICE and DTLS not connected" },
        READY_TIMEOUT.as_secs()
    )]
    NotReady { connected: bool },
    #[error("stopped before audio echoed")]
    StoppedEarly,
}

fn audio_ticker() -> Interval {
    let mut ticker = tokio::time::interval(FRAME_INTERVAL);
    // A late tick is skipped, not made up in a burst: a real browser's
    // capture clock does not catch up either.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

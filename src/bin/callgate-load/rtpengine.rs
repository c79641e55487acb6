//! `--rtpengine ADDR`: the same calls through rtpengine instead of a
//! callgate node, for a side-by-side measure of the relay's cost.
//!
//! rtpengine is the reference WebRTC-to-RTP media relay. Each call is set
//! up over its ng protocol ([`crate::ng`]) as the closest match to a
//! callgate call: the visitor's leg is SRTP (AES_CM_128_HMAC_SHA1_80 keyed
//! by SDES, `RTP/SAVP`), the trunk's leg plain RTP (`RTP/AVP`), PCMU in
//! 20 ms packets both ways. The SDP on both sides is our trunk leg's own
//! offer/answer ([`callgate::media::sdp::Negotiator`]).
//!
//! Both legs' far ends live in one [`Pump`]: a source per call sends
//! stamped SRTP to rtpengine, and a reflector per call sends each RTP
//! packet rtpengine relays back the way it came. So every packet crosses
//! the relay twice and the relay's CPU is relay only, as with a callgate
//! node whose trunk is another node's echo.
//!
//! The run has one round: calls placed at the ramp rate, a wait until each
//! echoes, the steady window, then `delete` for each. The figures are the
//! same as a node's ([`crate::report`]); packets relayed are counted where
//! they land (at a reflector or back at a source) since rtpengine has no
//! `/metrics`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use callgate::domain::Codec;
use callgate::media::sdp::{LocalMediaConfig, Negotiator, SrtpKeySalt};
use callgate::media::srtp::sdes::{self, SrtpKeyMaterial};

use crate::call::CallOutcome;
use crate::echo::EchoLedger;
use crate::ng::{NgClient, NgError, Value, dictionary};
use crate::pump::{Pump, Role, Source, SrtpPair, Stream};
use crate::run::Measurements;
use callgate::proc_stat::{ProcessError, ProcessStats};

/// From the last call placed to every call echoing.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum RtpengineError {
    #[error(transparent)]
    Ng(#[from] NgError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot set up a call's media: {0}")]
    Media(String),
    #[error("cannot start the media pump: {0}")]
    Pump(std::io::Error),
}

/// What to run.
pub struct RtpenginePlan {
    pub ng: SocketAddr,
    pub local_ip: IpAddr,
    pub calls: u32,
    pub duration: Duration,
    pub ramp_per_sec: f64,
    /// rtpengine's process, for its CPU time and memory.
    pub process: Option<ProcessStats>,
}

/// Runs the round; see the module documentation.
pub fn run(plan: &RtpenginePlan) -> Result<Measurements, RtpengineError> {
    let mut ng = NgClient::connect(plan.ng)?;
    let rss_before_kib = plan
        .process
        .as_ref()
        .map(ProcessStats::rss_kib)
        .transpose()?;
    let pump = Pump::start().map_err(RtpengineError::Pump)?;
    let epoch = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / plan.ramp_per_sec);
    let run_id: u32 = rand::random();
    let mut placed = Vec::new();
    let mut failure = None;
    for index in 0..plan.calls {
        let call_id = format!("callgate-load-{run_id:08x}-{index}");
        match place(&mut ng, &pump, plan.local_ip, &call_id, index, epoch) {
            Ok(()) => placed.push(call_id),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        std::thread::sleep(gap);
    }
    let measured = match failure {
        Some(e) => Err(e),
        None => measure(plan, &pump, rss_before_kib),
    };
    let outcomes = pump.stop();
    for call_id in &placed {
        let _ = ng.request(
            "delete",
            dictionary([
                ("command", "delete".into()),
                ("call-id", call_id.as_str().into()),
                // Now, not after rtpengine's default 30 s grace.
                ("delete delay", Value::Integer(0)),
            ]),
        );
    }
    let mut measured = measured?;
    measured.outcomes = outcomes.into_iter().map(CallOutcome::from).collect();
    Ok(measured)
}

/// Waits for every call to echo, then measures the steady window.
fn measure(
    plan: &RtpenginePlan,
    pump: &Pump,
    rss_before_kib: Option<u64>,
) -> Result<Measurements, RtpengineError> {
    let counters = pump.counters();
    let ready_by = Instant::now() + READY_TIMEOUT;
    while counters.echoing.load(Ordering::Relaxed) < plan.calls && Instant::now() < ready_by {
        std::thread::sleep(Duration::from_millis(50));
    }
    let relayed = || {
        counters.to_sources.load(Ordering::Relaxed) + counters.to_reflectors.load(Ordering::Relaxed)
    };
    let cpu = || {
        plan.process
            .as_ref()
            .map(ProcessStats::cpu_time)
            .transpose()
    };
    let (start, relayed_before, cpu_before) = (Instant::now(), relayed(), cpu()?);
    let lag_before = counters.lag.snapshot();
    std::thread::sleep(plan.duration);
    let (end, relayed_after, cpu_after) = (Instant::now(), relayed(), cpu()?);
    Ok(Measurements {
        load_lag: counters.lag.snapshot().since(&lag_before),
        steady: end - start,
        node_cpu: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.saturating_sub(before)),
        rss_before_kib,
        rss_during_kib: plan
            .process
            .as_ref()
            .map(ProcessStats::rss_kib)
            .transpose()?,
        last_round_up: counters.echoing.load(Ordering::Relaxed),
        relayed: Some(relayed_after - relayed_before),
        ..Measurements::default()
    })
}

/// Sets up one call over ng and hands its two far ends to the pump.
fn place(
    ng: &mut NgClient,
    pump: &Pump,
    local_ip: IpAddr,
    call_id: &str,
    index: u32,
    epoch: Instant,
) -> Result<(), RtpengineError> {
    let media = |e: &dyn std::fmt::Display| RtpengineError::Media(e.to_string());
    let visitor = UdpSocket::bind((local_ip, 0)).map_err(|e| media(&e))?;
    let trunk = UdpSocket::bind((local_ip, 0)).map_err(|e| media(&e))?;
    let ours = SrtpKeyMaterial::generate();
    let mut visitor_side = Negotiator::new(
        leg_config(&visitor, Some(SrtpKeySalt::new(ours.to_bytes())))?,
        rand::random(),
    )
    .map_err(|e| media(&e))?;
    let mut trunk_side =
        Negotiator::new(leg_config(&trunk, None)?, rand::random()).map_err(|e| media(&e))?;

    let offer = visitor_side.create_offer().map_err(|e| media(&e))?;
    let reply = ng.request(
        "offer",
        dictionary([
            ("command", "offer".into()),
            ("call-id", call_id.into()),
            ("from-tag", "visitor".into()),
            ("transport-protocol", "RTP/AVP".into()),
            ("sdp", offer.as_str().into()),
        ]),
    )?;
    let to_trunk = sdp_of(&reply)?;
    let answer = trunk_side
        .handle_offer(to_trunk.as_bytes())
        .map_err(|e| media(&e))?;
    let reply = ng.request(
        "answer",
        dictionary([
            ("command", "answer".into()),
            ("call-id", call_id.into()),
            ("from-tag", "visitor".into()),
            ("to-tag", "trunk".into()),
            ("sdp", answer.sdp.as_str().into()),
        ]),
    )?;
    let to_visitor = visitor_side
        .handle_answer(sdp_of(&reply)?.as_bytes())
        .map_err(|e| media(&e))?;
    let theirs = to_visitor
        .remote_crypto
        .as_ref()
        .ok_or_else(|| RtpengineError::Media("rtpengine answered without SRTP".to_owned()))?;
    let theirs = SrtpKeyMaterial::from_bytes(&theirs.key_salt).map_err(|e| media(&e))?;
    let srtp = SrtpPair {
        sender: sdes::sender(&ours).map_err(|e| media(&e))?,
        receiver: sdes::receiver(&theirs).map_err(|e| media(&e))?,
    };
    pump.add(Stream {
        socket: trunk,
        remote: answer.media.remote_rtp,
        role: Role::reflector(),
    })
    .map_err(|e| media(&e))?;
    pump.add(Stream {
        socket: visitor,
        remote: to_visitor.remote_rtp,
        role: Role::Source(Box::new(Source::new(
            EchoLedger::new(index, epoch),
            Some(srtp),
        ))),
    })
    .map_err(|e| media(&e))
}

/// One leg's media: PCMU only, RTCP multiplexed (so nothing lands on an
/// unbound port), SRTP when keyed.
fn leg_config(
    socket: &UdpSocket,
    srtp: Option<SrtpKeySalt>,
) -> Result<LocalMediaConfig, RtpengineError> {
    let local = socket
        .local_addr()
        .map_err(|e| RtpengineError::Media(e.to_string()))?;
    let mut config = LocalMediaConfig::new(local.ip(), local.port());
    config.codecs = vec![Codec::Pcmu];
    config.dtmf = None;
    config.rtcp_mux = true;
    config.srtp = srtp;
    Ok(config)
}

fn sdp_of(reply: &Value) -> Result<String, RtpengineError> {
    reply
        .text("sdp")
        .map(str::to_owned)
        .ok_or(RtpengineError::Ng(NgError::Malformed))
}

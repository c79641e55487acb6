//! The run: rounds of concurrent calls, each with a steady window over
//! which the node's figures are taken.
//!
//! A round places `calls` calls at `ramp_per_sec`, waits until every one
//! echoes audio (or has failed), then measures for `duration` with all of
//! them up: two `/metrics` scrapes and, with the node's pid, its CPU time
//! around the window and its RSS at the window's end. Then every call is
//! stopped and hung up. `repeat` rounds run one after another; their
//! windows add up. The node's RSS before the first call is the baseline.
//!
//! With `flood_pps`, the steady window runs under a flood of junk at the
//! calls' browser ports, and with `rtc_clients` each call sends junk of its
//! own once it echoes ([`crate::flood`]).
//!
//! The first refusal by the node stops the whole run: every call placed so
//! far is hung up and the refusal is the run's error.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use callgate::proc_stat::{ProcessError, ProcessStats};
use callgate::webrtc::WebrtcError;

use crate::call::{self, CallOutcome, CallSetup};
use crate::echo::EchoLedger;
use crate::flood::{Flood, Target, target_of};
use crate::handshake::{Handshake, Identity};
use crate::node::PlacedCall;
use crate::node::{NodeClient, NodeError};
use crate::pump::{Pump, Role, Source, Stream};
use crate::reflector::PumpLender;
use crate::scrape::{self, Histogram};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("the node's /metrics has no {0} relay-latency histogram")]
    NoHistogram(&'static str),
    #[error("a call task failed: {0}")]
    Task(String),
    #[error("cannot start the flood: {0}")]
    Flood(std::io::Error),
    #[error("cannot start the media pump: {0}")]
    Pump(std::io::Error),
    #[error("cannot make the calls' DTLS certificate: {0}")]
    Identity(WebrtcError),
}

/// What to run.
pub struct Plan {
    pub node: NodeClient,
    pub local_ip: IpAddr,
    pub calls: u32,
    pub repeat: u32,
    pub duration: Duration,
    pub ramp_per_sec: f64,
    pub process: Option<ProcessStats>,
    /// Junk datagrams a second at the browser ports over the steady
    /// windows (0: none); see [`crate::flood`].
    pub flood_pps: u32,
    /// Each call on its own `rtc` peer connection and task ([`crate::call`])
    /// instead of the one-thread [`Pump`]; only these send junk of their
    /// own in a flood.
    pub rtc_clients: bool,
    /// With `--reflect-trunk`: where each round lends its pump to the
    /// trunk, so the calls and their far end share its thread.
    pub trunk: Option<PumpLender>,
    /// How many of each round's calls (its first ones) offer Opus only, so
    /// the node transcodes them; they send this 20 ms frame.
    pub opus_calls: u32,
    pub opus_frame: Arc<[u8]>,
}

/// Everything the run observed, for the report.
#[derive(Debug, Default)]
pub struct Measurements {
    pub outcomes: Vec<CallOutcome>,
    /// The steady windows' total length.
    pub steady: Duration,
    pub to_trunk: Histogram,
    pub to_browser: Histogram,
    /// The node's CPU time over the steady windows.
    pub node_cpu: Option<Duration>,
    pub rss_before_kib: Option<u64>,
    /// At the end of the last round's steady window.
    pub rss_during_kib: Option<u64>,
    /// Calls up (echoing) in the last round's steady window.
    pub last_round_up: u32,
    /// `callgate_calls_active` at the end of the last steady window.
    pub node_calls_active: Option<u32>,
    /// Junk datagrams the flood sent, with `--flood-pps`.
    pub flood_sent: Option<u64>,
    /// Packets relayed over the steady windows as counted where they
    /// landed, for a relay without `/metrics`; `None` takes the node's
    /// relay-latency histograms' counts.
    pub relayed: Option<u64>,
    /// How late the pump's sends left their clocks over the steady
    /// windows (empty on `--rtc-clients`).
    pub load_lag: Histogram,
}

/// The node's cumulative figures at one moment.
struct Snapshot {
    at: Instant,
    to_trunk: Histogram,
    to_browser: Histogram,
    cpu: Option<Duration>,
    calls_active: Option<u32>,
}

impl Snapshot {
    async fn take(plan: &Plan) -> Result<Self, RunError> {
        let text = plan.node.metrics().await?;
        let cpu = plan
            .process
            .as_ref()
            .map(ProcessStats::cpu_time)
            .transpose()?;
        Ok(Self {
            at: Instant::now(),
            to_trunk: Histogram::parse(&text, "to_trunk")
                .ok_or(RunError::NoHistogram("to_trunk"))?,
            to_browser: Histogram::parse(&text, "to_browser")
                .ok_or(RunError::NoHistogram("to_browser"))?,
            cpu,
            calls_active: scrape::value(&text, "callgate_calls_active").map(|v| v as u32),
        })
    }
}

type CallTask = JoinHandle<Result<CallOutcome, NodeError>>;

/// From the last call placed to every call echoing: ICE, DTLS and the
/// trunk's answer, with room for a node busy setting up many calls.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs every round; see the module documentation.
pub async fn run(plan: &Plan) -> Result<Measurements, RunError> {
    plan.node.check_health().await?;
    let rss_before_kib = plan
        .process
        .as_ref()
        .map(ProcessStats::rss_kib)
        .transpose()?;
    let mut measured = Measurements {
        rss_before_kib,
        ..Measurements::default()
    };
    let epoch = Instant::now();
    let identity = Identity::generate().map_err(RunError::Identity)?;
    for round in 0..plan.repeat {
        match plan.rtc_clients {
            true => run_round(plan, epoch, round, &mut measured).await?,
            false => run_pumped_round(plan, epoch, round, &identity, &mut measured).await?,
        }
    }
    Ok(measured)
}

/// A round whose calls all run on one [`Pump`]: each call's socket is
/// handed over with its handshake once the node has answered.
async fn run_pumped_round(
    plan: &Plan,
    epoch: Instant,
    round: u32,
    identity: &Arc<Identity>,
    measured: &mut Measurements,
) -> Result<(), RunError> {
    let pump = Arc::new(Pump::start().map_err(RunError::Pump)?);
    if let Some(trunk) = &plan.trunk {
        trunk.lend(Some(pump.clone()));
    }
    let gap = Duration::from_secs_f64(1.0 / plan.ramp_per_sec);
    let mut next = tokio::time::Instant::now();
    let mut placed = Vec::new();
    let mut refused = None;
    for i in 0..plan.calls {
        let index = round.wrapping_mul(plan.calls).wrapping_add(i);
        let opus = (i < plan.opus_calls).then(|| plan.opus_frame.clone());
        match place_on_pump(plan, &pump, identity, index, opus, epoch).await {
            Ok(call) => placed.push(call),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        next += gap;
        tokio::time::sleep_until(next).await;
    }
    let window = match refused {
        Some(_) => None,
        None => {
            let ready_by = Instant::now() + READY_TIMEOUT;
            let counters = pump.counters();
            while counters.echoing.load(Ordering::Relaxed) < plan.calls && Instant::now() < ready_by
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            measured.last_round_up = counters.echoing.load(Ordering::Relaxed);
            let flood = match plan.flood_pps {
                0 => None,
                pps => {
                    let targets = placed.iter().filter_map(|call| target_of(&call.answer));
                    let flood = Flood::start(targets.collect(), pps, plan.local_ip);
                    Some(flood.map_err(RunError::Flood)?)
                }
            };
            let lag_before = counters.lag.snapshot();
            let window = steady_window(plan, &CancellationToken::new()).await;
            measured
                .load_lag
                .add(&counters.lag.snapshot().since(&lag_before));
            if let Some(flood) = flood {
                *measured.flood_sent.get_or_insert(0) += flood.stop();
            }
            Some(window)
        }
    };
    if let Some(trunk) = &plan.trunk {
        trunk.lend(None);
    }
    let outcomes = tokio::task::spawn_blocking(move || pump.stop())
        .await
        .map_err(|e| RunError::Task(e.to_string()))?;
    let hang_ups = placed.iter().map(|call| plan.node.hang_up(call));
    let hung_up: Result<Vec<()>, NodeError> = futures_util::future::join_all(hang_ups)
        .await
        .into_iter()
        .collect();
    if let Some(e) = refused {
        return Err(e);
    }
    hung_up?;
    if let Some(window) = window {
        record_window(window?, measured);
    }
    measured
        .outcomes
        .extend(outcomes.into_iter().map(CallOutcome::from));
    Ok(())
}

/// Places one call and hands its socket and handshake to the pump.
async fn place_on_pump(
    plan: &Plan,
    pump: &Pump,
    identity: &Arc<Identity>,
    index: u32,
    opus: Option<Arc<[u8]>>,
    epoch: Instant,
) -> Result<PlacedCall, RunError> {
    let bind = RunError::Pump;
    let socket = std::net::UdpSocket::bind((plan.local_ip, 0)).map_err(bind)?;
    let local = socket.local_addr().map_err(bind)?;
    let (mut handshake, offer) =
        Handshake::new(identity.clone(), local, rand::random(), opus.is_some());
    let placing = Instant::now();
    let placed = plan.node.place_call(&offer).await?;
    let mut source = Source::new(EchoLedger::new(index, epoch), None).placed_at(placing);
    if let Some(frame) = opus {
        source = source.opus(frame);
    }
    let source = Box::new(source);
    let (remote, role) = match handshake.handle_answer(Instant::now(), &placed.answer) {
        Ok(candidate) => (candidate, Role::Handshaking(Box::new(handshake), source)),
        Err(error) => (local, Role::Failed(source, error.to_string())),
    };
    pump.add(Stream {
        socket,
        remote,
        role,
    })
    .map_err(RunError::Pump)?;
    Ok(placed)
}

async fn run_round(
    plan: &Plan,
    epoch: Instant,
    round: u32,
    measured: &mut Measurements,
) -> Result<(), RunError> {
    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let targets = (plan.flood_pps > 0).then(Arc::default);
    let (tasks, readies) = place_calls(plan, epoch, round, &targets, &stop, &abort).await;
    let up = wait_ready(readies, &abort).await;
    let flood = match targets {
        Some(targets) => {
            let targets = targets.lock().unwrap_or_else(|e| e.into_inner()).clone();
            Some(Flood::start(targets, plan.flood_pps, plan.local_ip).map_err(RunError::Flood)?)
        }
        None => None,
    };
    let window = match abort.is_cancelled() {
        true => None,
        false => Some(steady_window(plan, &abort).await),
    };
    if let Some(flood) = flood {
        *measured.flood_sent.get_or_insert(0) += flood.stop();
    }
    stop.cancel();
    let outcomes = join(tasks).await?;
    if let Some(window) = window {
        record_window(window?, measured);
    }
    measured.last_round_up = up;
    measured.outcomes.extend(outcomes);
    Ok(())
}

/// Adds one steady window's figures to the run's.
fn record_window(window: (Snapshot, Snapshot, Option<u64>), measured: &mut Measurements) {
    let (before, after, rss) = window;
    {
        measured.steady += after.at - before.at;
        measured
            .to_trunk
            .add(&after.to_trunk.since(&before.to_trunk));
        measured
            .to_browser
            .add(&after.to_browser.since(&before.to_browser));
        if let (Some(start), Some(end)) = (before.cpu, after.cpu) {
            let total = measured.node_cpu.unwrap_or_default();
            measured.node_cpu = Some(total + end.saturating_sub(start));
        }
        measured.rss_during_kib = rss.or(measured.rss_during_kib);
        measured.node_calls_active = after.calls_active;
    }
}

/// Starts the round's calls at the ramp rate; stops early on `abort`.
async fn place_calls(
    plan: &Plan,
    epoch: Instant,
    round: u32,
    flood_targets: &Option<Arc<Mutex<Vec<Target>>>>,
    stop: &CancellationToken,
    abort: &CancellationToken,
) -> (Vec<CallTask>, Vec<oneshot::Receiver<bool>>) {
    let gap = Duration::from_secs_f64(1.0 / plan.ramp_per_sec);
    let mut next = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    let mut readies = Vec::new();
    for i in 0..plan.calls {
        let setup = CallSetup {
            index: round.wrapping_mul(plan.calls).wrapping_add(i),
            node: plan.node.clone(),
            local_ip: plan.local_ip,
            epoch,
            flood_targets: flood_targets.clone(),
        };
        let (ready, ready_rx) = oneshot::channel();
        let (call_stop, call_abort) = (stop.clone(), abort.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = call::run(setup, ready, call_stop).await;
            if outcome.is_err() {
                call_abort.cancel();
            }
            outcome
        }));
        readies.push(ready_rx);
        next += gap;
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = abort.cancelled() => break,
        }
    }
    (tasks, readies)
}

/// How many calls echo audio once each has either done so or given up.
async fn wait_ready(readies: Vec<oneshot::Receiver<bool>>, abort: &CancellationToken) -> u32 {
    let mut up = 0;
    for ready in readies {
        tokio::select! {
            echoing = ready => up += u32::from(echoing.unwrap_or(false)),
            () = abort.cancelled() => break,
        }
    }
    up
}

/// Scrapes around `duration` with every call up; the RSS at the end.
async fn steady_window(
    plan: &Plan,
    abort: &CancellationToken,
) -> Result<(Snapshot, Snapshot, Option<u64>), RunError> {
    let before = Snapshot::take(plan).await?;
    tokio::select! {
        () = tokio::time::sleep(plan.duration) => {}
        () = abort.cancelled() => {}
    }
    let after = Snapshot::take(plan).await?;
    let rss = plan
        .process
        .as_ref()
        .map(ProcessStats::rss_kib)
        .transpose()?;
    Ok((before, after, rss))
}

/// Every call's outcome, or the first refusal by the node.
async fn join(tasks: Vec<CallTask>) -> Result<Vec<CallOutcome>, RunError> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(e)) => {
                first_error.get_or_insert(RunError::Node(e));
            }
            Err(e) => {
                first_error.get_or_insert(RunError::Task(e.to_string()));
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(outcomes),
    }
}

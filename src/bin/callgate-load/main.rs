//! `callgate-load`: places concurrent WebRTC calls through a running
//! callgate node to its echo trunk and reports what a node operator sizes
//! by: calls connected, packet loss, echo round trip, the node's own relay
//! latency, and the node's CPU and memory per call.
//!
//! Each call is a real WebRTC client on the `rtc` crate with a UDP socket
//! of its own (full ICE, DTLS-SRTP, PCMU in 20 ms packets), placed over the
//! node's public signalling contract. See [`run`] for how a run is timed
//! and [`report`] for what each figure means.
//!
//! With `--rtpengine ADDR` the same calls run through rtpengine instead,
//! set up over its ng protocol, for a side-by-side measure ([`rtpengine`]).
//!
//! Exit codes, as the node's own command line: 0 when every call connected
//! and echoed audio, 64 for bad usage, 1 for any other failure (the node
//! unreachable or refusing calls, or calls that failed), with a one-line
//! reason on stderr: `callgate-load: <reason>`.
#![forbid(unsafe_code)]

mod call;
mod client;
mod echo;
mod flood;
mod handshake;
mod ng;
mod node;
mod pump;
mod reflector;
mod report;
mod rtpengine;
mod run;
mod scrape;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use axum::http::Uri;
use clap::Parser;
use clap::error::ErrorKind;

use callgate::proc_stat::ProcessStats;
use node::NodeClient;
use report::Report;
use run::Plan;

const EX_USAGE: u8 = 64;
/// Beyond this one machine runs out of ports and file descriptors anyway.
const MAX_CALLS: u32 = 20_000;

#[derive(Debug, Parser)]
#[command(
    name = "callgate-load",
    version,
    about = "Places concurrent WebRTC calls through a callgate node to its echo trunk \
             and reports loss, latency, CPU and memory per call"
)]
struct Args {
    /// The node's base URL
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    node: String,
    /// The widget to call through (its route must lead to an echo trunk)
    #[arg(long, default_value = "demo")]
    widget: String,
    /// Calls up at once
    #[arg(long, default_value_t = 10)]
    calls: u32,
    /// Seconds of the steady window, with every call up
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// New calls per second while ramping up
    #[arg(long, default_value_t = 50.0)]
    ramp_per_sec: f64,
    /// Rounds to run one after another (each places --calls calls)
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// The node's process id, for its CPU time and memory (same machine)
    #[arg(long, value_name = "PID")]
    node_pid: Option<u32>,
    /// The Origin header of call requests; default: the node's own origin
    /// (the --node URL), which the demo widget allows
    #[arg(long)]
    origin: Option<String>,
    /// Print one JSON object instead of lines
    #[arg(long)]
    json: bool,
    /// The consent every call request carries: `granted` records calls on
    /// a recording number (to measure what recording costs), `declined`
    /// does not; without it the request carries none
    #[arg(long, value_parser = ["granted", "declined"])]
    consent: Option<String>,
    /// Junk datagrams a second at the calls' browser ports over the steady
    /// window (random bytes, random-SSRC RTP, checks with a wrong
    /// integrity, DTLS ClientHellos) from many addresses; with
    /// --rtc-clients each call also replays its SRTP and sends junk from
    /// its own address
    #[arg(long, default_value_t = 0)]
    flood_pps: u32,
    /// Run each call on its own rtc peer connection and task, instead of
    /// all calls' media on one thread after each call's own ICE check and
    /// DTLS handshake
    #[arg(long)]
    rtc_clients: bool,
    /// Run the calls through rtpengine instead of a node: its ng control
    /// address (host:port). Each call's visitor leg is SDES-SRTP, its
    /// trunk leg plain RTP reflected by this tool; --node-pid names
    /// rtpengine's process
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["flood_pps", "consent", "repeat"])]
    rtpengine: Option<SocketAddr>,
    /// Play the node's SIP trunk as well: answer its INVITEs on this
    /// address (host:port, where the node's route sends its calls) and
    /// send each call's RTP back on a 20 ms clock of its own, on one
    /// thread of this tool
    #[arg(long, value_name = "ADDR", conflicts_with = "rtpengine")]
    reflect_trunk: Option<SocketAddr>,
    /// Of each round's calls, this many (the first placed) offer Opus only,
    /// so the node transcodes them to its trunk's G.711 and back. Their
    /// echoes come back re-encoded: they count for loss but are not timed
    /// (the node's callgate_relay_transcoded_latency_seconds times them)
    #[arg(long, default_value_t = 0, conflicts_with_all = ["rtpengine", "rtc_clients"])]
    opus_calls: u32,
}

enum Failure {
    Usage(String),
    Other(String),
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(reason)) => {
            eprintln!("callgate-load: {reason}");
            ExitCode::from(EX_USAGE)
        }
        Err(Failure::Other(reason)) => {
            eprintln!("callgate-load: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Failure> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    check_numbers(&args)?;
    let process = args
        .node_pid
        .map(ProcessStats::open)
        .transpose()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let report = match args.rtpengine {
        Some(ng) => run_rtpengine(&args, ng, process)?,
        None => run_node(&args, process)?,
    };
    match args.json {
        true => println!("{}", report.to_json()),
        false => print!("{}", report.to_text()),
    }
    if report.failed > 0 || report.calls_with_echo < report.calls {
        let bad = report.calls - report.calls_with_echo.min(report.calls);
        return Err(Failure::Other(format!(
            "{bad} of {} calls failed or echoed no audio",
            report.calls
        )));
    }
    Ok(())
}

fn run_rtpengine(
    args: &Args,
    ng: SocketAddr,
    process: Option<ProcessStats>,
) -> Result<Report, Failure> {
    let plan = rtpengine::RtpenginePlan {
        ng,
        local_ip: local_ip_to(ng)?,
        calls: args.calls,
        duration: Duration::from_secs_f64(args.duration),
        ramp_per_sec: args.ramp_per_sec,
        process,
    };
    let measured = rtpengine::run(&plan).map_err(|e| Failure::Other(e.to_string()))?;
    Ok(Report::new(&measured))
}

/// 20 ms of a 440 Hz tone as one Opus frame, the audio of Opus calls,
/// encoded as a browser does once the node's answer has said
/// `maxplaybackrate=8000`: from 48 kHz capture, in Opus' speech mode,
/// narrowband, at 32 kb/s.
fn opus_frame() -> Result<std::sync::Arc<[u8]>, Failure> {
    let libopus = |e: opus::Error| Failure::Other(format!("libopus: {e}"));
    let tone: Vec<i16> = (0..960)
        .map(|i| ((f64::from(i) * std::f64::consts::TAU * 440.0 / 48_000.0).sin() * 8000.0) as i16)
        .collect();
    let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
        .map_err(libopus)?;
    encoder
        .set_max_bandwidth(opus::Bandwidth::Narrowband)
        .map_err(libopus)?;
    encoder
        .set_bitrate(opus::Bitrate::Bits(32_000))
        .map_err(libopus)?;
    // The encoder settles on its mode over its first frames: the last of
    // 10 is what a call in progress sends.
    let mut frame = [0u8; 400];
    let mut len = 0;
    for _ in 0..10 {
        len = encoder.encode(&tone, &mut frame).map_err(libopus)?;
    }
    Ok(frame[..len].into())
}

fn run_node(args: &Args, process: Option<ProcessStats>) -> Result<Report, Failure> {
    let base = node_base(&args.node)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))?;
    let origin = args.origin.clone().unwrap_or_else(|| base.clone());
    let report = runtime.block_on(async {
        let local_ip = local_ip_towards(&base).await?;
        let trunk = match args.reflect_trunk {
            Some(listen) => Some(
                reflector::ReflectorTrunk::start(listen)
                    .await
                    .map_err(|e| Failure::Other(format!("the reflecting trunk: {e}")))?,
            ),
            None => None,
        };
        let plan = Plan {
            node: NodeClient::new(base.clone(), args.widget.clone(), origin)
                .with_consent(args.consent.clone()),
            local_ip,
            calls: args.calls,
            repeat: args.repeat,
            duration: Duration::from_secs_f64(args.duration),
            ramp_per_sec: args.ramp_per_sec,
            process,
            flood_pps: args.flood_pps,
            rtc_clients: args.rtc_clients,
            trunk: trunk.as_ref().map(reflector::ReflectorTrunk::lender),
            opus_calls: args.opus_calls.min(args.calls),
            opus_frame: opus_frame()?,
        };
        let measured = run::run(&plan).await;
        if let Some(trunk) = trunk {
            trunk.stop().await;
        }
        let measured = measured.map_err(|e| Failure::Other(e.to_string()))?;
        Ok::<_, Failure>(Report::new(&measured))
    })?;
    Ok(report)
}

/// `None` when `--help` or `--version` was printed; any other clap error
/// is a usage error.
fn parse_args() -> Result<Option<Args>, Failure> {
    match Args::try_parse() {
        Ok(args) => Ok(Some(args)),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Ok(None)
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let reason = first.strip_prefix("error: ").unwrap_or(first);
            Err(Failure::Usage(format!(
                "{reason} (see 'callgate-load --help')"
            )))
        }
    }
}

/// `http://host:port` from `--node`, without a trailing slash.
fn node_base(node: &str) -> Result<String, Failure> {
    let bad = |why: &str| Failure::Usage(format!("--node {node:?}: {why}"));
    let uri: Uri = node.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(
            "must start with http:// (the load tool speaks plain HTTP)",
        ));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("must be the node's base URL, without a path"));
    }
    Ok(format!("http://{authority}"))
}

fn check_numbers(args: &Args) -> Result<(), Failure> {
    let usage = |message: String| Err(Failure::Usage(message));
    if !(1..=MAX_CALLS).contains(&args.calls) {
        return usage(format!("--calls must be between 1 and {MAX_CALLS}"));
    }
    if args.repeat == 0 {
        return usage("--repeat must be at least 1".to_owned());
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        return usage("--duration must be a number of seconds above 0".to_owned());
    }
    if !(args.ramp_per_sec.is_finite() && args.ramp_per_sec > 0.0) {
        return usage("--ramp-per-sec must be a number above 0".to_owned());
    }
    Ok(())
}

/// The local address the machine would use to reach the node: the calls'
/// sockets bind it, so their ICE host candidate is one the node can reach.
async fn local_ip_towards(base: &str) -> Result<IpAddr, Failure> {
    let authority = base.trim_start_matches("http://");
    let unreachable =
        |reason: String| Failure::Other(format!("cannot reach the node at {base}: {reason}"));
    let node: SocketAddr = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("the host name has no address".to_owned()))?;
    local_ip_to(node)
}

/// The local address the machine would use to reach `node`.
fn local_ip_to(node: SocketAddr) -> Result<IpAddr, Failure> {
    let unreachable = |reason: String| Failure::Other(format!("cannot reach {node}: {reason}"));
    let any: SocketAddr = match node {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap_or(node),
        SocketAddr::V6(_) => "[::]:0".parse().unwrap_or(node),
    };
    let probe = std::net::UdpSocket::bind(any).map_err(|e| unreachable(e.to_string()))?;
    // Connecting a UDP socket sends nothing; it only picks the route.
    probe
        .connect(node)
        .map_err(|e| unreachable(e.to_string()))?;
    probe
        .local_addr()
        .map(|a| a.ip())
        .map_err(|e| unreachable(e.to_string()))
}

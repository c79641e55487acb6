//! The node's Prometheus metrics: one [`Metrics`] per node, built at start
//! and passed down (no global registry), rendered by `GET /metrics`.
//!
//! Invariants:
//! - Every label value comes from a fixed set: an enum argument
//!   ([`Disposition`], [`DropReason`], [`BrowserDrop`], [`RefusedReason`],
//!   [`ConnectionRefusal`]) or
//!   a handle resolved here (leg, direction, SIP response class). The label
//!   vectors are private, so no call id, number, IP or widget id can become a
//!   label, and the series count is a constant.
//! - Every series exists from the start (at zero), so a family shows its
//!   `HELP`/`TYPE` lines before the first event and rates never see a gap.
//! - The packet path records through handles resolved once here: an
//!   increment or an observation is a few relaxed atomic operations, with no
//!   label formatting, hashing or lock.
//! - The SIP agent's counters stay its own atomics; a collector
//!   reads them at scrape time.

mod http;
mod quality;
mod recording;
mod register;
mod sip;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry,
    TextEncoder,
};

pub use self::http::{ConnectionRefusal, HttpMetrics};
pub use self::quality::QualityMetrics;
pub use self::recording::{DeletionReason, RecordingMetrics};
pub use self::register::MetricsError;
use self::register::{children, counter, counter_vec};
use self::sip::SipCollector;
pub use self::sip::SipSource;
use crate::cluster::ClusterMetrics;
use crate::cluster::handoff::HandoffOutcome;
use crate::domain::Disposition;
use crate::media::endpoint::{DropCounts, DropReason};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Relay latency buckets, 10 µs to 20 ms: a relay hop that takes longer than
/// a packet interval (20 ms) is already audible.
const LATENCY_BUCKETS: [f64; 11] = [
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 20e-3,
];

/// Why the HTTP surface refused a request, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusedReason {
    RateLimited,
    Origin,
    Concurrency,
    BadRequest,
    Draining,
    /// The number is outside its tenant's dialing allowance.
    NotAllowed,
    /// The number's minutes for the day are used.
    DailyMinutes,
}

impl RefusedReason {
    pub const ALL: [RefusedReason; 7] = [
        RefusedReason::RateLimited,
        RefusedReason::Origin,
        RefusedReason::Concurrency,
        RefusedReason::BadRequest,
        RefusedReason::Draining,
        RefusedReason::NotAllowed,
        RefusedReason::DailyMinutes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusedReason::RateLimited => "rate_limited",
            RefusedReason::Origin => "origin",
            RefusedReason::Concurrency => "concurrency",
            RefusedReason::BadRequest => "bad_request",
            RefusedReason::Draining => "draining",
            RefusedReason::NotAllowed => "not_allowed",
            RefusedReason::DailyMinutes => "daily_minutes",
        }
    }
}

/// Why a browser-leg packet was dropped, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrowserDrop {
    /// Not parseable as STUN, DTLS, RTP or RTCP.
    Malformed,
    /// From an address that belongs to no call.
    UnknownPeer,
    /// SRTP or SRTCP authentication or replay check failed.
    Srtp,
    /// Audio of a transcoded call (either way) that its shard had no time
    /// for: it waited too long to be converted, or the queue was full.
    QueueFull,
    /// A check from an address the call has not verified, over the call's
    /// budget for such checks.
    UnverifiedCheck,
    /// Routed to a call whose session refused it: a check that did not
    /// verify, a DTLS record out of place.
    Other,
    /// Dropped by the kernel before the node read it: outside RFC 7983's
    /// classes (the port's socket filter), or the port's receive buffer
    /// was full. The kernel counts both as one.
    Kernel,
    /// A check or DTLS record over the shard's handshake work per turn,
    /// with its queue of waiting ones full.
    HandshakeShed,
}

impl BrowserDrop {
    pub const ALL: [BrowserDrop; 8] = [
        BrowserDrop::Malformed,
        BrowserDrop::UnknownPeer,
        BrowserDrop::Srtp,
        BrowserDrop::QueueFull,
        BrowserDrop::UnverifiedCheck,
        BrowserDrop::Other,
        BrowserDrop::Kernel,
        BrowserDrop::HandshakeShed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BrowserDrop::Malformed => "malformed",
            BrowserDrop::UnknownPeer => "unknown_peer",
            BrowserDrop::Srtp => "srtp",
            BrowserDrop::QueueFull => "queue_full",
            BrowserDrop::UnverifiedCheck => "unverified_check",
            BrowserDrop::Other => "other",
            BrowserDrop::Kernel => "kernel",
            BrowserDrop::HandshakeShed => "handshake_shed",
        }
    }
}

/// Every trunk-leg drop reason, in the order of [`trunk_drop_index`].
const TRUNK_DROPS: [DropReason; 12] = [
    DropReason::NotRtp,
    DropReason::Malformed,
    DropReason::UnknownPayloadType,
    DropReason::SrtpAuth,
    DropReason::SrtpReplay,
    DropReason::RtcpOnRtpPort,
    DropReason::MalformedRtcp,
    DropReason::UnexpectedSource,
    DropReason::NotReceiving,
    DropReason::NotNegotiated,
    DropReason::ConsumerLagging,
    DropReason::SendFailed,
];

/// The label of a trunk-leg drop reason (the `DropCounts` field name).
pub fn trunk_drop_label(reason: DropReason) -> &'static str {
    match reason {
        DropReason::NotRtp => "not_rtp",
        DropReason::Malformed => "malformed",
        DropReason::UnknownPayloadType => "unknown_payload_type",
        DropReason::SrtpAuth => "srtp_auth",
        DropReason::SrtpReplay => "srtp_replay",
        DropReason::RtcpOnRtpPort => "rtcp_on_rtp_port",
        DropReason::MalformedRtcp => "malformed_rtcp",
        DropReason::UnexpectedSource => "unexpected_source",
        DropReason::NotReceiving => "not_receiving",
        DropReason::NotNegotiated => "not_negotiated",
        DropReason::ConsumerLagging => "consumer_lagging",
        DropReason::SendFailed => "send_failed",
    }
}

// An exhaustive match, so a new reason fails to compile until it is placed.
fn trunk_drop_index(reason: DropReason) -> usize {
    match reason {
        DropReason::NotRtp => 0,
        DropReason::Malformed => 1,
        DropReason::UnknownPayloadType => 2,
        DropReason::SrtpAuth => 3,
        DropReason::SrtpReplay => 4,
        DropReason::RtcpOnRtpPort => 5,
        DropReason::MalformedRtcp => 6,
        DropReason::UnexpectedSource => 7,
        DropReason::NotReceiving => 8,
        DropReason::NotNegotiated => 9,
        DropReason::ConsumerLagging => 10,
        DropReason::SendFailed => 11,
    }
}

/// Call counts: started, in progress, ended by disposition.
#[derive(Clone)]
pub struct CallMetrics {
    active: IntGauge,
    started: IntCounter,
    ended: [IntCounter; 7],
}

/// Where a call's code runs: its control task, or its media on a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPart {
    Control,
    Media,
}

impl CallPart {
    pub const ALL: [Self; 2] = [Self::Control, Self::Media];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Control => "control",
            Self::Media => "media",
        }
    }
}

/// One call in `callgate_calls_active`; dropping it takes the call out.
#[must_use = "the call leaves callgate_calls_active when this is dropped"]
#[derive(Debug)]
pub struct ActiveCall {
    active: IntGauge,
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.active.dec();
    }
}

/// Relayed-packet counters and relay latency, resolved once.
///
/// `browser_in` counts packets received from browsers, `trunk_out` packets
/// sent to trunks, and so on. Clone a handle into the packet loop.
#[derive(Clone)]
pub struct RelayMetrics {
    pub browser_in: IntCounter,
    pub browser_out: IntCounter,
    pub trunk_in: IntCounter,
    pub trunk_out: IntCounter,
    /// From a browser packet's arrival to its send toward the trunk, for
    /// packets relayed as they are (no transcoding).
    pub latency_to_trunk: Histogram,
    /// From a trunk packet's arrival to its send toward the browser, for
    /// packets relayed as they are (no transcoding).
    pub latency_to_browser: Histogram,
    /// The same for packets whose audio was transcoded (Opus): they wait
    /// for the transcoder, at a lower priority than the relay.
    pub transcoded_to_trunk: Histogram,
    pub transcoded_to_browser: Histogram,
}

/// Dropped-packet counters by leg and reason, resolved once.
#[derive(Clone)]
pub struct DropMetrics {
    browser: [IntCounter; BrowserDrop::ALL.len()],
    trunk: [IntCounter; 12],
    trunk_kernel: IntCounter,
}

impl DropMetrics {
    pub fn browser(&self, reason: BrowserDrop) -> &IntCounter {
        &self.browser[reason as usize]
    }

    pub fn trunk(&self, reason: DropReason) -> &IntCounter {
        &self.trunk[trunk_drop_index(reason)]
    }

    /// Trunk datagrams the kernel dropped before the node read them, a
    /// call's socket buffer being full (`reason="kernel"`).
    pub fn trunk_kernel(&self) -> &IntCounter {
        &self.trunk_kernel
    }

    /// Adds a trunk endpoint's drop counts (e.g. its final snapshot when
    /// the call ends, or the difference between two snapshots).
    pub fn add_trunk(&self, counts: &DropCounts) {
        for reason in TRUNK_DROPS {
            let n = counts.get(reason);
            if n > 0 {
                self.trunk(reason).inc_by(n);
            }
        }
    }
}

/// The node's metrics. Build one in `main`, share it as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    pub calls: CallMetrics,
    pub relay: RelayMetrics,
    pub drops: DropMetrics,
    /// Each leg's loss, jitter, round trip and MOS per quality window.
    pub quality: QualityMetrics,
    pub ice_failures: IntCounter,
    pub dtls_failures: IntCounter,
    pub recording: RecordingMetrics,
    pub http: HttpMetrics,
    /// `callgate_webhook_deliveries_total{outcome}`: `delivered`, `retry`, `failed`.
    pub webhook_deliveries: IntCounterVec,
    /// `callgate_node_draining`: 1 while an operator's drain lasts.
    pub draining: IntGauge,
    /// `callgate_cdrs_waiting`: CDRs the store has not taken yet.
    pub cdrs_waiting: IntGauge,
    /// `callgate_cluster_redis_up`, `callgate_cluster_nodes` and
    /// `callgate_cluster_handoffs_total`.
    pub cluster: ClusterMetrics,
    /// `callgate_call_panics_total{part}`: see [`Metrics::call_panicked`].
    call_panics: IntCounterVec,
    /// `callgate_runtime_tasks_alive`: set at each scrape.
    tasks_alive: IntGauge,
    refused: [IntCounter; RefusedReason::ALL.len()],
    sip: SipCollector,
}

impl Metrics {
    /// Registers every family, with every series at zero.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let calls = register_calls(&registry)?;
        let relay = register_relay(&registry)?;
        let drops = register_drops(&registry)?;
        let quality = QualityMetrics::register(&registry)?;
        let ice_failures = counter(
            &registry,
            "callgate_ice_failures_total",
            "Browser legs whose ICE connectivity checks failed.",
        )?;
        let dtls_failures = counter(
            &registry,
            "callgate_dtls_failures_total",
            "Browser legs whose DTLS handshake failed.",
        )?;
        let refused = register_refused(&registry)?;
        let recording = RecordingMetrics::register(&registry)?;
        let http = HttpMetrics::register(&registry)?;
        let webhook_deliveries = counter_vec(
            &registry,
            "callgate_webhook_deliveries_total",
            "Webhook delivery attempts by outcome: delivered, retry (failed, tried again later), failed (given up).",
            &["outcome"],
        )?;
        for outcome in ["delivered", "retry", "failed"] {
            webhook_deliveries.with_label_values(&[outcome]);
        }
        let draining = IntGauge::new(
            "callgate_node_draining",
            "1 while the node is draining: new calls refused, calls in progress going on.",
        )?;
        registry.register(Box::new(draining.clone()))?;
        let cdrs_waiting = IntGauge::new(
            "callgate_cdrs_waiting",
            "CDRs of ended calls the store has not taken yet: kept in the spool and retried.",
        )?;
        registry.register(Box::new(cdrs_waiting.clone()))?;
        let cluster = ClusterMetrics {
            redis_up: IntGauge::new(
                "callgate_cluster_redis_up",
                "1 while the cluster's Redis answers; 0 while it does not (new calls are admitted on this node's own limits), and always 0 on a node without [cluster].",
            )?,
            nodes: IntGauge::new(
                "callgate_cluster_nodes",
                "Nodes with a fresh registry entry, this one included, at the last heartbeat; 0 without [cluster].",
            )?,
            handoffs: counter_vec(
                &registry,
                "callgate_cluster_handoffs_total",
                "New calls this node handed to the node placement chose, by outcome: handed_over, or failed (the owner did not answer; the call was placed here).",
                &["outcome"],
            )?,
            lost_calls: counter(
                &registry,
                "callgate_cluster_lost_calls_total",
                "Calls of lost nodes whose CDRs this node wrote (end_reason node_lost): a node whose heartbeat stopped, or an earlier run of this node that died.",
            )?,
        };
        for outcome in HandoffOutcome::ALL {
            cluster.handoffs.with_label_values(&[outcome.as_str()]);
        }
        registry.register(Box::new(cluster.redis_up.clone()))?;
        registry.register(Box::new(cluster.nodes.clone()))?;
        let call_panics = counter_vec(
            &registry,
            "callgate_call_panics_total",
            "Panics contained within one call (which ended as failed), in its control task or its media.",
            &["part"],
        )?;
        for part in CallPart::ALL {
            call_panics.with_label_values(&[part.as_str()]);
        }
        let tasks_alive = IntGauge::new(
            "callgate_runtime_tasks_alive",
            "Tasks alive on the node's async runtime at the scrape: a count that keeps growing with steady traffic is a leak.",
        )?;
        registry.register(Box::new(tasks_alive.clone()))?;
        let sip = SipCollector::new()?;
        registry.register(Box::new(sip.clone()))?;
        Ok(Self {
            registry,
            calls,
            relay,
            drops,
            quality,
            ice_failures,
            dtls_failures,
            recording,
            http,
            webhook_deliveries,
            draining,
            cdrs_waiting,
            cluster,
            call_panics,
            tasks_alive,
            refused,
            sip,
        })
    }

    /// A panic in one call's `part` was contained: that call alone ended.
    pub fn call_panicked(&self, part: CallPart) {
        self.call_panics.with_label_values(&[part.as_str()]).inc();
    }

    /// Counts a new call and holds it in `callgate_calls_active` until the
    /// returned guard is dropped.
    pub fn call_started(&self) -> ActiveCall {
        self.calls.started.inc();
        self.calls.active.inc();
        ActiveCall {
            active: self.calls.active.clone(),
        }
    }

    pub fn call_ended(&self, disposition: Disposition) {
        self.calls.ended[disposition as usize].inc();
    }

    pub fn http_refused(&self, reason: RefusedReason) {
        self.refused[reason as usize].inc();
    }

    /// Exports the SIP agent's counters from now on (replacing any source
    /// attached before). Until one is attached the SIP families read zero.
    pub fn attach_sip(&self, source: impl SipSource) {
        self.sip.attach(Box::new(source));
    }

    /// Every family in the Prometheus text exposition format (0.0.4).
    /// Called on the node's runtime, it first reads that runtime's task count.
    pub fn render(&self) -> String {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let alive = runtime.metrics().num_alive_tasks();
            self.tasks_alive
                .set(i64::try_from(alive).unwrap_or(i64::MAX));
        }
        let families = self.registry.gather();
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(%error, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl CallMetrics {
    pub fn active(&self) -> i64 {
        self.active.get()
    }

    pub fn started(&self) -> u64 {
        self.started.get()
    }

    pub fn ended(&self, disposition: Disposition) -> u64 {
        self.ended[disposition as usize].get()
    }
}

fn register_calls(registry: &Registry) -> Result<CallMetrics, MetricsError> {
    let active = IntGauge::new("callgate_calls_active", "Calls in progress on this node.")?;
    registry.register(Box::new(active.clone()))?;
    let started = counter(
        registry,
        "callgate_calls_started_total",
        "Calls accepted for placement on a trunk.",
    )?;
    let ended = counter_vec(
        registry,
        "callgate_calls_ended_total",
        "Calls ended, by disposition.",
        &["disposition"],
    )?;
    let ended = children(&ended, Disposition::ALL, |d| [d.as_str()])?;
    Ok(CallMetrics {
        active,
        started,
        ended,
    })
}

fn register_relay(registry: &Registry) -> Result<RelayMetrics, MetricsError> {
    let packets = counter_vec(
        registry,
        "callgate_packets_relayed_total",
        "Media packets relayed, by leg and direction (in = received from that leg).",
        &["leg", "direction"],
    )?;
    let opts = HistogramOpts::new(
        "callgate_relay_latency_seconds",
        "Time from a media packet's arrival on one leg to its send on the other.",
    )
    .buckets(LATENCY_BUCKETS.to_vec());
    let latency = HistogramVec::new(opts, &["direction"])?;
    registry.register(Box::new(latency.clone()))?;
    let opts = HistogramOpts::new(
        "callgate_relay_transcoded_latency_seconds",
        "Time from a transcoded media packet's arrival on one leg to its send on the other.",
    )
    .buckets(LATENCY_BUCKETS.to_vec());
    let transcoded = HistogramVec::new(opts, &["direction"])?;
    registry.register(Box::new(transcoded.clone()))?;
    let get = |leg, dir| packets.get_metric_with_label_values(&[leg, dir]);
    Ok(RelayMetrics {
        browser_in: get("browser", "in")?,
        browser_out: get("browser", "out")?,
        trunk_in: get("trunk", "in")?,
        trunk_out: get("trunk", "out")?,
        latency_to_trunk: latency.get_metric_with_label_values(&["to_trunk"])?,
        latency_to_browser: latency.get_metric_with_label_values(&["to_browser"])?,
        transcoded_to_trunk: transcoded.get_metric_with_label_values(&["to_trunk"])?,
        transcoded_to_browser: transcoded.get_metric_with_label_values(&["to_browser"])?,
    })
}

fn register_drops(registry: &Registry) -> Result<DropMetrics, MetricsError> {
    let dropped = counter_vec(
        registry,
        "callgate_packets_dropped_total",
        "Packets dropped, by leg and reason.",
        &["leg", "reason"],
    )?;
    Ok(DropMetrics {
        browser: children(&dropped, BrowserDrop::ALL, |r| ["browser", r.as_str()])?,
        trunk: children(&dropped, TRUNK_DROPS, |r| ["trunk", trunk_drop_label(r)])?,
        trunk_kernel: dropped.get_metric_with_label_values(&["trunk", "kernel"])?,
    })
}

fn register_refused(
    registry: &Registry,
) -> Result<[IntCounter; RefusedReason::ALL.len()], MetricsError> {
    let refused = counter_vec(
        registry,
        "callgate_http_requests_refused_total",
        "Signalling requests refused before any call work, by reason.",
        &["reason"],
    )?;
    children(&refused, RefusedReason::ALL, |r| [r.as_str()])
}

#[cfg(test)]
mod tests;

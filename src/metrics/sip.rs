//! Exports the SIP agent's own counters ([`SipCounters`], atomics the agent
//! bumps) as Prometheus counters, read at scrape time.
//!
//! The agent keeps counting whether or not anyone scrapes; this collector
//! only copies the current values into metric families when gathered, so
//! the SIP path never knows about Prometheus.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use super::register::MetricsError;
use crate::sip::{SipAgent, SipCounters};

/// Something that owns the SIP counters: the agent, or the counters alone.
pub trait SipSource: Send + Sync + 'static {
    fn sip_counters(&self) -> &SipCounters;
}

impl SipSource for SipAgent {
    fn sip_counters(&self) -> &SipCounters {
        self.counters()
    }
}

impl SipSource for Arc<SipCounters> {
    fn sip_counters(&self) -> &SipCounters {
        self
    }
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Picks one counter out of [`SipCounters`].
type Cell = fn(&SipCounters) -> &AtomicU64;

/// The plain (unlabelled) families, with the counter each one reads.
const PLAIN: [(&str, &str, Cell); 9] = [
    (
        "callgate_sip_invites_sent_total",
        "INVITEs sent to trunks, one per trunk tried (retransmissions excluded).",
        |c| &c.invites_sent,
    ),
    (
        "callgate_sip_invite_timeouts_total",
        "INVITE transactions that got no final response in time.",
        |c| &c.invite_timeouts,
    ),
    (
        "callgate_sip_transport_errors_total",
        "SIP requests that failed in the transport (connect, send).",
        |c| &c.transport_errors,
    ),
    (
        "callgate_sip_options_probe_failures_total",
        "OPTIONS health probes of trunks that failed.",
        |c| &c.options_probe_failures,
    ),
    (
        "callgate_sip_inbound_refused_total",
        "Inbound INVITEs refused (403) by an agent that takes no inbound calls.",
        |c| &c.inbound_refused,
    ),
    (
        "callgate_sip_unknown_sources_total",
        "SIP datagrams and connections from neither a trunk, its proxy nor a trusted network, dropped unread.",
        |c| &c.unknown_sources,
    ),
    (
        "callgate_sip_foreign_dialog_requests_total",
        "Requests naming a call in progress from a trusted address other than that call's trunk, its proxy or a trusted network, answered as naming no call.",
        |c| &c.foreign_dialog_requests,
    ),
    (
        "callgate_sip_connections_refused_total",
        "TCP/TLS connections closed unread because their source already held its cap (sip.max_connections_per_source).",
        |c| &c.connections_refused,
    ),
    (
        "callgate_sip_requests_shed_total",
        "SIP requests dropped unread because their source had sent its budget (sip.requests_per_second_per_source).",
        |c| &c.requests_shed,
    ),
];

const RESPONSES: (&str, &str) = (
    "callgate_sip_responses_total",
    "SIP responses to our INVITEs, by class.",
);

struct Inner {
    descs: Vec<Desc>,
    source: RwLock<Option<Box<dyn SipSource>>>,
}

/// The collector registered with the node's registry.
#[derive(Clone)]
pub(super) struct SipCollector {
    inner: Arc<Inner>,
}

impl SipCollector {
    pub(super) fn new() -> Result<Self, MetricsError> {
        let mut descs = Vec::with_capacity(PLAIN.len() + 1);
        let (name, help) = RESPONSES;
        descs.push(Desc::new(
            name.into(),
            help.into(),
            vec!["class".into()],
            HashMap::new(),
        )?);
        for (name, help, _) in PLAIN {
            descs.push(Desc::new(name.into(), help.into(), vec![], HashMap::new())?);
        }
        let inner = Inner {
            descs,
            source: RwLock::new(None),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub(super) fn attach(&self, source: Box<dyn SipSource>) {
        let mut slot = self
            .inner
            .source
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(source);
    }
}

impl Collector for SipCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let slot = self
            .inner
            .source
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let counters = slot.as_ref().map(|s| s.sip_counters());
        let read = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        let mut families = Vec::with_capacity(PLAIN.len() + 1);
        let responses = CLASSES
            .iter()
            .enumerate()
            .map(|(i, class)| {
                let value = counters.map_or(0, |c| read(&c.responses_by_class[i]));
                counter_metric(value, Some(("class", class)))
            })
            .collect();
        families.push(family(RESPONSES.0, RESPONSES.1, responses));
        for (name, help, cell) in PLAIN {
            let value = counters.map_or(0, |c| read(cell(c)));
            families.push(family(name, help, vec![counter_metric(value, None)]));
        }
        families
    }
}

fn counter_metric(value: u64, label: Option<(&str, &str)>) -> proto::Metric {
    let mut metric = proto::Metric::default();
    if let Some((name, value)) = label {
        let mut pair = LabelPair::default();
        pair.set_name(name.to_owned());
        pair.set_value(value.to_owned());
        metric.set_label(vec![pair]);
    }
    let mut counter = proto::Counter::default();
    // Exact up to 2^53, far beyond what a node counts between restarts.
    counter.set_value(value as f64);
    metric.set_counter(counter);
    metric
}

fn family(name: &str, help: &str, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(MetricType::COUNTER);
    family.set_metric(metrics);
    family
}

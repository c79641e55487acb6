//! The HTTP connection families: connections open, refused at accept by
//! which cap (a fixed set), and closed on a timeout.

use prometheus::{IntCounter, IntGauge, Registry};

use super::register::{MetricsError, children, counter, counter_vec};

/// Which cap refused a connection as it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// The node holds `http.max_connections` already.
    NodeFull,
    /// The peer's address holds `http.max_connections_per_ip` already.
    AddressFull,
}

impl ConnectionRefusal {
    pub const ALL: [ConnectionRefusal; 2] =
        [ConnectionRefusal::NodeFull, ConnectionRefusal::AddressFull];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionRefusal::NodeFull => "node_full",
            ConnectionRefusal::AddressFull => "address_full",
        }
    }
}

/// Handles the HTTP server records into. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    open: IntGauge,
    refused: [IntCounter; 2],
    timed_out: IntCounter,
}

impl HttpMetrics {
    pub(super) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let open = IntGauge::new(
            "callgate_http_connections_open",
            "HTTP connections open now (WebSockets included).",
        )?;
        registry.register(Box::new(open.clone()))?;
        let refused = counter_vec(
            registry,
            "callgate_http_connections_refused_total",
            "HTTP connections closed as they were accepted, by the cap they were over: node_full, address_full.",
            &["reason"],
        )?;
        Ok(Self {
            open,
            refused: children(&refused, ConnectionRefusal::ALL, |r| [r.as_str()])?,
            timed_out: counter(
                registry,
                "callgate_http_connections_timed_out_total",
                "HTTP connections closed because a request head was too slow or the connection sat idle.",
            )?,
        })
    }

    pub fn connection_opened(&self) {
        self.open.inc();
    }

    pub fn connection_closed(&self) {
        self.open.dec();
    }

    pub fn connection_refused(&self, refusal: ConnectionRefusal) {
        self.refused[refusal as usize].inc();
    }

    pub fn connection_timed_out(&self) {
        self.timed_out.inc();
    }
}

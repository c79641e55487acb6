//! How much one trusted source may ask of the SIP port: a cap on the TCP
//! and TLS connections it holds open, and a budget of requests a second.
//!
//! The port reads only trusted sources ([`super::sources`]), but a trunk
//! that misbehaves (a reconnect loop, a retransmission storm) must not be
//! able to take every file descriptor or grow the SIP stack's queues
//! without end. [`SourceBudgets`] is the bookkeeping, with no I/O; the
//! endpoint's transport inspector ([`AdmissionInspector`]) applies it to
//! every event at the head of the stack's receive queue, before any
//! transaction is looked up, so a shed request costs a map lookup:
//! - a connection past its source's cap is closed at once, unread, and
//!   whatever it had already sent is dropped;
//! - a request past its source's budget is dropped (a UDP peer sends it
//!   again on its own timer, when the budget has refilled). Responses are
//!   never shed: they answer our own requests.
//!
//! Our own connections to a trunk are not counted (they are ours, and a
//! trunk holding many connections to us must not stop us reaching it).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rsipstack::sip::{Host, SipMessage};
use rsipstack::transaction::endpoint::TransportEventInspector;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};

use super::counters::SipCounters;
use super::settings::SourceLimits;

/// Past this many sources tracked, idle ones (no connection, full budget)
/// are forgotten, so a trusted network's many addresses stay bounded.
const TRACKED_SOURCES: usize = 4096;

/// What one source holds and has left.
#[derive(Debug, Clone, Copy)]
struct Source {
    connections: u32,
    /// Requests it may still send now (fractional: refilled continuously).
    tokens: f64,
    refilled: Instant,
}

/// Per-source connections and request budgets (pure bookkeeping).
#[derive(Debug)]
pub(crate) struct SourceBudgets {
    limits: SourceLimits,
    sources: HashMap<IpAddr, Source>,
}

impl SourceBudgets {
    pub(crate) fn new(limits: SourceLimits) -> Self {
        Self {
            limits,
            sources: HashMap::new(),
        }
    }

    /// Whether `ip` may hold one more connection; if so it is counted until
    /// [`Self::connection_closed`].
    pub(crate) fn connection_opened(&mut self, ip: IpAddr, now: Instant) -> bool {
        let cap = self.limits.max_connections;
        let source = self.source(ip, now);
        if source.connections >= cap {
            return false;
        }
        source.connections += 1;
        true
    }

    /// A connection counted by [`Self::connection_opened`] has closed.
    pub(crate) fn connection_closed(&mut self, ip: IpAddr) {
        if let Some(source) = self.sources.get_mut(&ip) {
            source.connections = source.connections.saturating_sub(1);
        }
    }

    /// Whether a request from `ip` fits its budget at `now` (and takes
    /// its share of it).
    pub(crate) fn request(&mut self, ip: IpAddr, now: Instant) -> bool {
        let (rate, burst) = (self.rate(), self.burst());
        let source = self.source(ip, now);
        let elapsed = now.saturating_duration_since(source.refilled).as_secs_f64();
        source.tokens = (source.tokens + elapsed * rate).min(burst);
        source.refilled = now;
        if source.tokens < 1.0 {
            return false;
        }
        source.tokens -= 1.0;
        true
    }

    fn rate(&self) -> f64 {
        f64::from(self.limits.requests_per_second)
    }

    /// Two seconds of requests may come at once.
    fn burst(&self) -> f64 {
        2.0 * self.rate()
    }

    fn source(&mut self, ip: IpAddr, now: Instant) -> &mut Source {
        if self.sources.len() >= TRACKED_SOURCES && !self.sources.contains_key(&ip) {
            self.forget_idle(now);
        }
        let burst = self.burst();
        self.sources.entry(ip).or_insert(Source {
            connections: 0,
            tokens: burst,
            refilled: now,
        })
    }

    /// Drops sources that hold no connection and whose budget has refilled,
    /// so forgetting them changes nothing; if that is not enough (many
    /// addresses at once), every source that holds no connection. Each
    /// address has its own budget anyway, so a forgotten one gains at most
    /// what a new one has.
    fn forget_idle(&mut self, now: Instant) {
        let (rate, burst) = (self.rate(), self.burst());
        self.sources.retain(|_, source| {
            let elapsed = now.saturating_duration_since(source.refilled).as_secs_f64();
            source.connections > 0 || source.tokens + elapsed * rate < burst
        });
        if self.sources.len() >= TRACKED_SOURCES {
            self.sources.retain(|_, source| source.connections > 0);
        }
    }
}

/// The endpoint's transport inspector: [`SourceBudgets`] applied to the
/// stack's events, with what it sheds counted.
pub(crate) struct AdmissionInspector {
    budgets: Mutex<SourceBudgets>,
    /// Our listeners' addresses: a connection on one of them was accepted.
    listeners: Vec<SipAddr>,
    /// Connections closed for being past the cap, until the stack reports
    /// them closed: anything they sent meanwhile is dropped.
    refused: Mutex<HashSet<SipAddr>>,
    counters: Arc<SipCounters>,
}

impl AdmissionInspector {
    pub(crate) fn new(
        limits: SourceLimits,
        listeners: Vec<SipAddr>,
        counters: Arc<SipCounters>,
    ) -> Self {
        Self {
            budgets: Mutex::new(SourceBudgets::new(limits)),
            listeners,
            refused: Mutex::default(),
            counters,
        }
    }

    /// The remote address and IP of a connection accepted on our listeners.
    fn accepted(&self, connection: &SipConnection) -> Option<(SipAddr, IpAddr)> {
        if !connection.is_reliable() || !self.listeners.contains(connection.get_addr()) {
            return None;
        }
        let remote = connection.get_remote_addr()?;
        match remote.addr.host {
            Host::IpAddr(ip) => Some((remote.clone(), ip.to_canonical())),
            Host::Domain(_) => None,
        }
    }

    async fn opened(&self, connection: SipConnection) -> Option<TransportEvent> {
        let Some((remote, ip)) = self.accepted(&connection) else {
            return Some(TransportEvent::New(connection));
        };
        if self.budgets().connection_opened(ip, Instant::now()) {
            return Some(TransportEvent::New(connection));
        }
        self.counters
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        self.refused().insert(remote);
        // The stack still reads it until the peer closes its side (or the
        // idle timeout); what it reads is dropped below.
        connection.close().await.ok();
        None
    }

    fn closed(&self, connection: SipConnection) -> Option<TransportEvent> {
        if let Some((remote, ip)) = self.accepted(&connection) {
            if self.refused().remove(&remote) {
                return None;
            }
            self.budgets().connection_closed(ip);
        }
        Some(TransportEvent::Closed(connection))
    }

    fn incoming(
        &self,
        message: SipMessage,
        connection: SipConnection,
        from: SipAddr,
    ) -> Option<TransportEvent> {
        let from_refused = connection.is_reliable()
            && connection
                .get_remote_addr()
                .is_some_and(|remote| self.refused().contains(remote));
        if from_refused {
            return None;
        }
        let over_budget = match (&message, &from.addr.host) {
            (SipMessage::Request(_), Host::IpAddr(ip)) => {
                !self.budgets().request(ip.to_canonical(), Instant::now())
            }
            _ => false,
        };
        if over_budget {
            self.counters.requests_shed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(TransportEvent::Incoming(message, connection, from))
    }

    fn budgets(&self) -> MutexGuard<'_, SourceBudgets> {
        self.budgets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refused(&self) -> MutexGuard<'_, HashSet<SipAddr>> {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl TransportEventInspector for AdmissionInspector {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        match event {
            TransportEvent::New(connection) => self.opened(connection).await,
            TransportEvent::Closed(connection) => self.closed(connection),
            TransportEvent::Incoming(message, connection, from) => {
                self.incoming(message, connection, from)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budgets(max_connections: u32, requests_per_second: u32) -> SourceBudgets {
        SourceBudgets::new(SourceLimits {
            max_connections,
            requests_per_second,
        })
    }

    const TRUNK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));

    #[test]
    fn a_source_holds_at_most_its_cap_and_a_closed_connection_frees_a_place() {
        let mut budgets = budgets(2, 10);
        let now = Instant::now();
        assert!(budgets.connection_opened(TRUNK, now));
        assert!(budgets.connection_opened(TRUNK, now));
        assert!(
            !budgets.connection_opened(TRUNK, now),
            "the third is refused"
        );
        assert!(budgets.connection_opened(OTHER, now), "caps are per source");
        budgets.connection_closed(TRUNK);
        assert!(budgets.connection_opened(TRUNK, now));
        assert!(!budgets.connection_opened(TRUNK, now));
    }

    #[test]
    fn a_burst_of_two_seconds_passes_then_the_rate_refills_it() {
        let mut budgets = budgets(2, 10);
        let start = Instant::now();
        let passed = (0..100).filter(|_| budgets.request(TRUNK, start)).count();
        assert_eq!(passed, 20, "two seconds' worth at once");
        assert!(budgets.request(OTHER, start), "budgets are per source");

        let later = start + Duration::from_millis(500);
        let passed = (0..100).filter(|_| budgets.request(TRUNK, later)).count();
        assert_eq!(passed, 5, "half a second refills five");

        let much_later = later + Duration::from_secs(60);
        let passed = (0..100)
            .filter(|_| budgets.request(TRUNK, much_later))
            .count();
        assert_eq!(passed, 20, "the budget never grows past its burst");
    }

    #[test]
    fn many_sources_are_bounded_and_forgetting_one_changes_nothing() {
        let mut budgets = budgets(1, 1);
        let start = Instant::now();
        assert!(budgets.connection_opened(TRUNK, start));
        for n in 0..(2 * TRACKED_SOURCES as u32) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            budgets.request(ip, start);
        }
        assert!(budgets.sources.len() <= TRACKED_SOURCES);
        assert!(
            !budgets.connection_opened(TRUNK, start),
            "a source holding a connection is never forgotten"
        );

        // An address seen once and refilled since is forgotten; it comes
        // back with a full budget, as it would have had anyway.
        let refilled = start + Duration::from_secs(10);
        budgets.forget_idle(refilled);
        assert_eq!(budgets.sources.len(), 1, "only the connected source stays");
        assert!(budgets.request(IpAddr::from([10, 0, 0, 1]), refilled));
    }
}

//! Who may speak to the node's SIP port: the configured trunks and their
//! outbound proxies, and the networks the operator adds.
//!
//! The transport asks [`TrustedSources::allows`] for every datagram and
//! every accepted TCP or TLS connection before anything is parsed. A trunk
//! named by a host name is resolved as the SIP stack resolves it (RFC 3263:
//! SRV, then A and AAAA), at start and again every minute, so a carrier that
//! moves its signalling is followed. A name that stops resolving keeps its
//! last addresses.

use std::net::IpAddr;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use ipnet::IpNet;
use rsipstack::resolver::SipResolver;
use rsipstack::sip::{Domain, Host, HostWithPort, Port, Transport};

/// How often names are resolved again.
pub(crate) const REFRESH: Duration = Duration::from_secs(60);
/// How soon a failed resolution is tried again.
pub(crate) const RETRY: Duration = Duration::from_secs(10);

/// A trunk or proxy named by a host name, and how the stack reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    domain: Domain,
    port: Option<Port>,
    transport: Transport,
}

/// The addresses the SIP port answers; cheap to ask from the packet path.
#[derive(Debug)]
pub(crate) struct TrustedSources {
    /// The operator's networks and the trunks given as addresses.
    fixed: Vec<IpNet>,
    names: Vec<Name>,
    /// Each name's last successful resolution, in the order of `names`.
    resolved: RwLock<Vec<Vec<IpAddr>>>,
}

impl TrustedSources {
    /// Sources for `peers` (each trunk's host and its proxy's, with the
    /// transport used towards it) and the operator's `extra` networks.
    pub(crate) fn new(
        peers: impl IntoIterator<Item = (HostWithPort, Transport)>,
        extra: &[IpNet],
    ) -> Self {
        let mut fixed = extra.to_vec();
        let mut names = Vec::new();
        for (host_with_port, transport) in peers {
            match host_with_port.host {
                Host::IpAddr(ip) => fixed.push(IpNet::from(ip.to_canonical())),
                // A trunk without a proxy is its own next hop: once is enough.
                Host::Domain(domain) => {
                    let name = Name {
                        domain,
                        port: host_with_port.port,
                        transport,
                    };
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        let resolved = RwLock::new(vec![Vec::new(); names.len()]);
        Self {
            fixed,
            names,
            resolved,
        }
    }

    /// Whether a packet or connection from `ip` may be read.
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        if self.fixed.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        let resolved = self.resolved.read().unwrap_or_else(PoisonError::into_inner);
        resolved.iter().flatten().any(|known| *known == ip)
    }

    /// Whether any source is named by a host name (and needs refreshing).
    pub(crate) fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// Resolves every name once; returns whether all of them resolved.
    /// A name that fails keeps the addresses it had.
    pub(crate) async fn refresh(&self, resolver: &SipResolver) -> bool {
        let mut all_resolved = true;
        for (index, name) in self.names.iter().enumerate() {
            let secure = name.transport == Transport::Tls;
            let lookup = resolver.lookup(&name.domain, name.port, Some(name.transport), secure);
            let addresses: Vec<IpAddr> = match lookup.await {
                Ok(targets) => targets.iter().map(|t| t.addr.ip().to_canonical()).collect(),
                Err(_) => Vec::new(),
            };
            if addresses.is_empty() {
                all_resolved = false;
                continue;
            }
            let mut resolved = self
                .resolved
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            resolved[index] = addresses;
        }
        all_resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(host: &str) -> (HostWithPort, Transport) {
        let host_with_port = HostWithPort::try_from(host).expect("host");
        (host_with_port, Transport::Udp)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn trunks_given_as_addresses_and_extra_networks_are_allowed_and_nothing_else() {
        let extra = ["198.51.100.0/24".parse().expect("net")];
        let sources = TrustedSources::new([peer("192.0.2.7:5060"), peer("[2001:db8::5]")], &extra);
        assert!(!sources.has_names());
        for allowed in [
            "192.0.2.7",
            "198.51.100.200",
            "2001:db8::5",
            "::ffff:192.0.2.7",
        ] {
            assert!(sources.allows(ip(allowed)), "{allowed}");
        }
        for refused in ["192.0.2.8", "198.51.101.1", "2001:db8::6", "127.0.0.1"] {
            assert!(!sources.allows(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn a_trunk_that_is_its_own_next_hop_is_resolved_once() {
        let sources = TrustedSources::new(
            [peer("sip.carrier.example"), peer("sip.carrier.example")],
            &[],
        );
        assert_eq!(sources.names.len(), 1);
    }

    #[test]
    fn a_name_allows_nothing_until_it_resolves() {
        let sources = TrustedSources::new([peer("sip.carrier.example:5060")], &[]);
        assert!(sources.has_names());
        assert!(!sources.allows(ip("192.0.2.7")));
        sources.resolved.write().unwrap()[0] = vec![ip("192.0.2.7")];
        assert!(sources.allows(ip("192.0.2.7")));
        assert!(!sources.allows(ip("192.0.2.8")));
    }

    #[tokio::test]
    async fn a_name_that_stops_resolving_keeps_its_last_addresses() {
        let sources = TrustedSources::new([peer("no-such-host.invalid:5060")], &[]);
        sources.resolved.write().unwrap()[0] = vec![ip("192.0.2.7")];
        // `.invalid` never resolves (RFC 6761 §6.4), with or without DNS.
        assert!(!sources.refresh(&SipResolver::new()).await);
        assert!(sources.allows(ip("192.0.2.7")));
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let sources = TrustedSources::new([peer("localhost:5060")], &[]);
        assert!(sources.refresh(&SipResolver::new()).await);
        assert!(sources.allows(ip("127.0.0.1")) || sources.allows(ip("::1")));
    }
}

//! Who may speak to the node's SIP port: the configured trunks and their
//! outbound proxies, and the networks the operator adds; and within a
//! call, who may speak for its dialog: that call's trunk (or its proxy) and
//! the operator's networks, not another trunk.
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
/// Trunks are numbered in the order they were given.
#[derive(Debug)]
pub(crate) struct TrustedSources {
    /// The operator's networks: trusted for every trunk's calls.
    networks: Vec<IpNet>,
    /// Trunks (and proxies) given as addresses, with the trunk each is for.
    addresses: Vec<(usize, IpAddr)>,
    names: Vec<Name>,
    /// The trunks each name is for, in the order of `names`.
    name_trunks: Vec<Vec<usize>>,
    /// Each name's last successful resolution, in the order of `names`.
    resolved: RwLock<Vec<Vec<IpAddr>>>,
}

impl TrustedSources {
    /// Sources for `peers` (for each trunk, by its number: its host and its
    /// proxy's, with the transport used towards it) and the operator's
    /// `networks`.
    pub(crate) fn new(
        peers: impl IntoIterator<Item = (usize, HostWithPort, Transport)>,
        networks: &[IpNet],
    ) -> Self {
        let mut addresses = Vec::new();
        let mut names: Vec<Name> = Vec::new();
        let mut name_trunks: Vec<Vec<usize>> = Vec::new();
        for (trunk, host_with_port, transport) in peers {
            match host_with_port.host {
                Host::IpAddr(ip) => addresses.push((trunk, ip.to_canonical())),
                // A trunk without a proxy is its own next hop, and trunks
                // may share a proxy: each name is resolved once.
                Host::Domain(domain) => {
                    let name = Name {
                        domain,
                        port: host_with_port.port,
                        transport,
                    };
                    let index = names.iter().position(|n| *n == name).unwrap_or_else(|| {
                        names.push(name);
                        name_trunks.push(Vec::new());
                        names.len() - 1
                    });
                    if !name_trunks[index].contains(&trunk) {
                        name_trunks[index].push(trunk);
                    }
                }
            }
        }
        let resolved = RwLock::new(vec![Vec::new(); names.len()]);
        Self {
            networks: networks.to_vec(),
            addresses,
            names,
            name_trunks,
            resolved,
        }
    }

    /// Whether a packet or connection from `ip` may be read.
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        self.allows_where(ip, |_| true)
    }

    /// Whether `ip` may speak for a call on trunk number `trunk`: it is
    /// that trunk's (or its proxy's), or in the operator's networks.
    pub(crate) fn allows_for(&self, trunk: usize, ip: IpAddr) -> bool {
        self.allows_where(ip, |of| of == trunk)
    }

    fn allows_where(&self, ip: IpAddr, trunk_matches: impl Fn(usize) -> bool) -> bool {
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        if self.networks.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        if (self.addresses.iter()).any(|(trunk, known)| *known == ip && trunk_matches(*trunk)) {
            return true;
        }
        let resolved = self.resolved.read().unwrap_or_else(PoisonError::into_inner);
        resolved
            .iter()
            .zip(&self.name_trunks)
            .any(|(known, trunks)| known.contains(&ip) && trunks.iter().any(|t| trunk_matches(*t)))
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

    fn peer(host: &str) -> (usize, HostWithPort, Transport) {
        peer_of(0, host)
    }

    fn peer_of(trunk: usize, host: &str) -> (usize, HostWithPort, Transport) {
        let host_with_port = HostWithPort::try_from(host).expect("host");
        (trunk, host_with_port, Transport::Udp)
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

    #[test]
    fn a_call_hears_only_its_own_trunk_its_proxy_and_the_operator_networks() {
        let extra = ["198.51.100.0/24".parse().expect("net")];
        let sources = TrustedSources::new(
            [
                peer_of(0, "192.0.2.7:5060"),
                peer_of(0, "192.0.2.100"),
                peer_of(1, "192.0.2.8"),
                peer_of(1, "sip.shared-proxy.example"),
                peer_of(2, "sip.shared-proxy.example"),
            ],
            &extra,
        );
        sources.resolved.write().unwrap()[0] = vec![ip("203.0.113.5")];
        assert!(sources.allows_for(0, ip("192.0.2.7")));
        assert!(sources.allows_for(0, ip("192.0.2.100")), "its proxy");
        assert!(
            sources.allows_for(0, ip("198.51.100.9")),
            "an operator network"
        );
        assert!(!sources.allows_for(0, ip("192.0.2.8")), "another trunk");
        assert!(!sources.allows_for(0, ip("203.0.113.5")), "others' proxy");
        assert!(sources.allows_for(1, ip("203.0.113.5")));
        assert!(sources.allows_for(2, ip("203.0.113.5")), "a shared proxy");
        assert!(!sources.allows_for(2, ip("192.0.2.8")));
        assert!(sources.allows(ip("192.0.2.8")), "the port still reads it");
        assert_eq!(sources.names.len(), 1);
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

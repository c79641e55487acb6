//! Trunks and routes resolved for the agent: targets, route sets, health.
//!
//! A route is an ordered list of trunks. New calls skip trunks that are down
//! and fail over to the next one when a trunk cannot carry the call.

use std::collections::HashMap;
use std::sync::Arc;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::sip::{HostWithPort, Param, Transport, Uri};
use rsipstack::transport::SipAddr;

use super::error::SipError;
use super::health::TrunkHealth;
use super::settings::{RouteSettings, SipTransport, TrunkSettings};

/// A trunk ready to receive requests.
#[derive(Debug)]
pub struct Trunk {
    pub settings: TrunkSettings,
    /// Where requests are sent first: the outbound proxy, or the trunk itself.
    pub next_hop: SipAddr,
    /// `Route` header to preload when an outbound proxy is configured (RFC 3261 §8.1.2).
    pub proxy_route: Option<Uri>,
    /// The trunk's own host and port, used in Request-URIs.
    pub host: HostWithPort,
    pub health: TrunkHealth,
}

impl Trunk {
    pub fn resolve(settings: TrunkSettings, down_after: u32) -> Result<Self, SipError> {
        let transport = rsip_transport(settings.transport);
        let host = parse_host(&settings.address, settings.transport, &settings.name)?;
        let (next_hop, proxy_route) = match &settings.outbound_proxy {
            Some(proxy) => {
                let proxy_host = parse_host(proxy, settings.transport, &settings.name)?;
                let mut params = vec![Param::Lr];
                if transport != Transport::Udp {
                    params.push(Param::Transport(transport));
                }
                let route = Uri {
                    scheme: Some(rsipstack::sip::Scheme::Sip),
                    host_with_port: proxy_host.clone(),
                    params,
                    ..Default::default()
                };
                (SipAddr::new(transport, proxy_host), Some(route))
            }
            None => (SipAddr::new(transport, host.clone()), None),
        };
        Ok(Self {
            settings,
            next_hop,
            proxy_route,
            host,
            health: TrunkHealth::new(down_after),
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The Request-URI for a call to `user` through this trunk.
    pub fn request_uri(&self, user: &str) -> Uri {
        let mut params = Vec::new();
        let transport = rsip_transport(self.settings.transport);
        if transport != Transport::Udp {
            params.push(Param::Transport(transport));
        }
        Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: Some(rsipstack::sip::Auth {
                user: user.to_owned(),
                password: None,
            }),
            host_with_port: self.host.clone(),
            params,
            ..Default::default()
        }
    }

    /// The From URI the trunk sees.
    pub fn caller_uri(&self, local: &HostWithPort) -> Uri {
        let host_with_port = match &self.settings.from_domain {
            Some(domain) => {
                HostWithPort::try_from(domain.as_str()).unwrap_or_else(|_| local.clone())
            }
            None => local.clone(),
        };
        Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: Some(rsipstack::sip::Auth {
                user: self.settings.from_user.clone(),
                password: None,
            }),
            host_with_port,
            ..Default::default()
        }
    }

    pub fn credential(&self) -> Option<Credential> {
        self.settings.credentials.as_ref().map(|c| Credential {
            username: c.username.clone(),
            password: c.password.expose().to_owned(),
            realm: None,
            auth_username: None,
        })
    }
}

/// Routes by name, each an ordered list of shared trunks.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: HashMap<String, Vec<Arc<Trunk>>>,
    trunks: Vec<Arc<Trunk>>,
}

impl RouteTable {
    pub fn build(
        trunks: Vec<TrunkSettings>,
        routes: Vec<RouteSettings>,
        down_after: u32,
    ) -> Result<Self, SipError> {
        let mut by_name = HashMap::new();
        let mut all = Vec::new();
        for settings in trunks {
            let trunk = Arc::new(Trunk::resolve(settings, down_after)?);
            by_name.insert(trunk.name().to_owned(), trunk.clone());
            all.push(trunk);
        }
        let mut table = HashMap::new();
        for route in routes {
            let mut members = Vec::new();
            for name in &route.trunks {
                let trunk = by_name.get(name).ok_or_else(|| SipError::UnknownTrunk {
                    route: route.name.clone(),
                    trunk: name.clone(),
                })?;
                members.push(trunk.clone());
            }
            table.insert(route.name, members);
        }
        Ok(Self {
            routes: table,
            trunks: all,
        })
    }

    /// The trunks to try for a new call on `route`, up trunks first in
    /// configured order. Down trunks are kept at the end: when every trunk
    /// is down, trying one beats refusing the call outright.
    pub fn candidates(&self, route: &str) -> Result<Vec<Arc<Trunk>>, SipError> {
        let members = self
            .routes
            .get(route)
            .ok_or_else(|| SipError::UnknownRoute(route.to_owned()))?;
        let (up, down): (Vec<_>, Vec<_>) = members.iter().cloned().partition(|t| t.health.is_up());
        if up.is_empty() {
            return Ok(down);
        }
        Ok(up)
    }

    pub fn trunks(&self) -> &[Arc<Trunk>] {
        &self.trunks
    }
}

fn rsip_transport(t: SipTransport) -> Transport {
    match t {
        SipTransport::Udp => Transport::Udp,
        SipTransport::Tcp => Transport::Tcp,
        SipTransport::Tls => Transport::Tls,
    }
}

fn parse_host(value: &str, transport: SipTransport, trunk: &str) -> Result<HostWithPort, SipError> {
    let mut host = HostWithPort::try_from(value).map_err(|_| SipError::BadAddress {
        trunk: trunk.to_owned(),
    })?;
    if host.port.is_none() {
        host.port = Some(transport.default_port().into());
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::settings::SipTransport;

    fn trunk(name: &str, transport: SipTransport, proxy: Option<&str>) -> TrunkSettings {
        TrunkSettings {
            name: name.into(),
            address: "192.0.2.10".into(),
            transport,
            outbound_proxy: proxy.map(str::to_owned),
            from_user: "callgate".into(),
            from_domain: None,
            credentials: None,
            tls_ca_pem: None,
            tls_server_name: None,
            srtp: false,
            codecs: vec![crate::domain::Codec::Pcmu],
            dtmf_payload_type: 101,
        }
    }

    #[test]
    fn default_ports_follow_the_transport() {
        let t = Trunk::resolve(trunk("a", SipTransport::Tls, None), 3).unwrap();
        assert_eq!(t.next_hop.addr.port.map(|p| p.value()), Some(5061));
        assert_eq!(
            t.request_uri("+15550100").to_string(),
            "sip:+15550100@192.0.2.10:5061;transport=TLS"
        );
    }

    #[test]
    fn outbound_proxy_is_the_next_hop_and_a_loose_route() {
        let t =
            Trunk::resolve(trunk("a", SipTransport::Udp, Some("198.51.100.7:5070")), 3).unwrap();
        assert_eq!(t.next_hop.addr.to_string(), "198.51.100.7:5070");
        assert_eq!(
            t.proxy_route.as_ref().unwrap().to_string(),
            "sip:198.51.100.7:5070;lr"
        );
        assert_eq!(t.request_uri("100").to_string(), "sip:100@192.0.2.10:5060");
    }

    #[test]
    fn failover_order_skips_down_trunks() {
        let table = RouteTable::build(
            vec![
                trunk("a", SipTransport::Udp, None),
                trunk("b", SipTransport::Udp, None),
            ],
            vec![RouteSettings {
                name: "r".into(),
                trunks: vec!["a".into(), "b".into()],
            }],
            1,
        )
        .unwrap();
        let names = |v: Vec<Arc<Trunk>>| v.iter().map(|t| t.name().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(table.candidates("r").unwrap()), ["a", "b"]);
        table.trunks()[0].health.handle_failure();
        assert_eq!(names(table.candidates("r").unwrap()), ["b"]);
        table.trunks()[1].health.handle_failure();
        assert_eq!(
            names(table.candidates("r").unwrap()),
            ["a", "b"],
            "all down: try them all"
        );
        assert!(matches!(
            table.candidates("nope"),
            Err(SipError::UnknownRoute(_))
        ));
    }

    #[test]
    fn a_route_naming_an_unknown_trunk_is_refused() {
        let err = RouteTable::build(
            vec![],
            vec![RouteSettings {
                name: "r".into(),
                trunks: vec!["x".into()],
            }],
            1,
        )
        .unwrap_err();
        assert!(matches!(err, SipError::UnknownTrunk { .. }));
    }
}

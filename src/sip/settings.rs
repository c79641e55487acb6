//! The trunk leg's resolved settings: what the agent needs, already validated.
//!
//! `config` owns the file format and its validation; this module owns the
//! runtime shape (addresses parsed, secrets and PEM files loaded), so the SIP
//! code never reads files or environment variables itself.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::domain::Codec;
use crate::privacy::Secret;

/// A SIP transport towards a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
}

impl SipTransport {
    /// The default port for the transport (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            SipTransport::Tls => 5061,
            SipTransport::Udp | SipTransport::Tcp => 5060,
        }
    }
}

/// Digest credentials for a trunk; the password never prints and is
/// wiped from memory when dropped.
#[derive(Clone)]
pub struct DigestCredentials {
    pub username: String,
    pub password: Secret,
}

impl fmt::Debug for DigestCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestCredentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// One SIP trunk: where calls go and how to speak to it.
#[derive(Debug, Clone)]
pub struct TrunkSettings {
    pub name: String,
    /// `host` or `host:port`.
    pub address: String,
    pub transport: SipTransport,
    /// `host` or `host:port` of a proxy every request of a call goes through.
    pub outbound_proxy: Option<String>,
    pub from_user: String,
    pub from_domain: Option<String>,
    pub credentials: Option<DigestCredentials>,
    /// Extra trust anchors (PEM) for a TLS trunk, beside the system roots.
    pub tls_ca_pem: Option<Vec<u8>>,
    pub tls_server_name: Option<String>,
    /// Offer SDES-SRTP (RFC 4568) on this trunk.
    pub srtp: bool,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    pub dtmf_payload_type: u8,
}

/// A named, ordered list of trunks; later ones are failover targets.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    pub name: String,
    pub trunks: Vec<String>,
}

/// A TLS listener's certificate and key (PEM).
#[derive(Clone)]
pub struct TlsListenSettings {
    pub addr: SocketAddr,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for TlsListenSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListenSettings")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What one trusted source may ask of a network-facing agent (see
/// `admission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLimits {
    /// TCP and TLS connections it may hold open to our listeners.
    pub max_connections: u32,
    /// Requests a second, with two seconds' worth at once.
    pub requests_per_second: u32,
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            max_connections: 32,
            requests_per_second: 200,
        }
    }
}

/// Everything the SIP agent of one node needs.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub listen_udp: SocketAddr,
    pub listen_tcp: Option<SocketAddr>,
    pub listen_tls: Option<TlsListenSettings>,
    pub user_agent: String,
    pub ring_timeout: Duration,
    pub max_call_duration: Duration,
    /// `None` turns OPTIONS health probes off.
    pub options_interval: Option<Duration>,
    pub trunk_down_after_failures: u32,
    /// Give up on an INVITE that gets no final response (RFC 3261 Timer B).
    pub invite_timeout: Duration,
    /// System trust anchors (PEM) for TLS trunks, loaded by the caller.
    pub system_ca_pem: Option<Vec<u8>>,
    pub trunks: Vec<TrunkSettings>,
    pub routes: Vec<RouteSettings>,
    /// Hand inbound INVITEs to the owner instead of refusing them.
    pub accept_inbound: bool,
    /// `Some`: read only what comes from the trunks, their proxies and these
    /// networks. `None`: read everything (an agent bound to loopback alone).
    pub trusted_sources: Option<Vec<IpNet>>,
    /// Applied to each trusted source when `trusted_sources` is set.
    pub source_limits: SourceLimits,
    /// The RFC 4028 session interval our INVITEs ask for (with the trunk
    /// as refresher); `None` asks for none, though a trunk's own timer is
    /// still honoured.
    pub session_expires: Option<Duration>,
}

impl AgentSettings {
    /// Settings for a loopback agent with no trunks (the built-in echo trunk).
    pub fn loopback(listen_udp: SocketAddr, user_agent: &str) -> Self {
        Self {
            listen_udp,
            listen_tcp: None,
            listen_tls: None,
            user_agent: user_agent.to_owned(),
            ring_timeout: Duration::from_secs(60),
            max_call_duration: Duration::from_secs(4 * 3600),
            options_interval: None,
            trunk_down_after_failures: 3,
            invite_timeout: Duration::from_secs(32),
            system_ca_pem: None,
            trunks: Vec::new(),
            routes: Vec::new(),
            accept_inbound: true,
            trusted_sources: None,
            source_limits: SourceLimits::default(),
            session_expires: Some(Duration::from_secs(1800)),
        }
    }
}

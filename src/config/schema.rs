//! The configuration's shape: [`Config`] and the sections it holds
//! (those with checks of their own live in their own files), the names
//! and newtypes they use, and what a loaded config answers about itself.

use std::fmt;
use std::iter::StepBy;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::address::HostPort;
use super::calls::{DatabaseConfig, LimitsConfig, WebrtcConfig};
use super::cluster::ClusterConfig;
use super::http::HttpConfig;
use super::recording::RecordingConfig;
use super::webhooks::WebhooksConfig;
use crate::domain::Codec;
use crate::privacy::Secret;

/// The name of the trunk that `[echo_trunk] enabled = true` adds.
pub const ECHO_TRUNK_NAME: &str = "echo";

/// Where a loaded config came from; the node warns loudly on the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    EmbeddedDefault,
    File(PathBuf),
    /// Text handed to [`Config::load`] directly.
    Text,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub node: NodeConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub echo_trunk: EchoTrunkConfig,
    pub webrtc: WebrtcConfig,
    pub limits: LimitsConfig,
    pub database: DatabaseConfig,
    pub recording: RecordingConfig,
    pub webhooks: WebhooksConfig,
    pub cluster: ClusterConfig,
    pub source: ConfigSource,
}

impl Config {
    /// How long a drain lets calls in progress go on
    /// (`node.drain_timeout_secs`, or the maximum call duration).
    pub fn drain_timeout(&self) -> Duration {
        match self.node.drain_timeout_secs {
            0 => self.sip.max_call_duration(),
            secs => Duration::from_secs(secs.into()),
        }
    }

    /// The trunk with this name, if configured.
    pub fn trunk(&self, name: &str) -> Option<&TrunkConfig> {
        self.sip.trunks.iter().find(|t| t.name.as_str() == name)
    }

    /// The route with this name, if configured.
    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.sip.routes.iter().find(|r| r.name.as_str() == name)
    }
}

macro_rules! name_newtype {
    ($(#[$doc:meta] $name:ident),+) => {$(
        #[$doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )+};
}

name_newtype!(
    /// The node's name in logs, health output and (later) the cluster registry.
    NodeId,
    /// A trunk's unique name (`[a-z0-9_-]`), referenced by routes.
    TrunkName,
    /// A route's unique name (`[a-z0-9_-]`).
    RouteName
);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Databases and encrypted recordings live here; created at start.
    pub data_dir: PathBuf,
    /// How long the first SIGTERM lets calls in progress go on before they
    /// are hung up; 0 means the maximum call duration.
    pub drain_timeout_secs: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: NodeId::new("node-1"),
            data_dir: PathBuf::from("./data"),
            drain_timeout_secs: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A level (`info`) or tracing directives (`info,callgate::sip=debug`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    pub listen_udp: SocketAddr,
    pub listen_tcp: Option<SocketAddr>,
    /// Requires `tls_cert_file` and `tls_key_file`.
    pub listen_tls: Option<SocketAddr>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub user_agent: String,
    pub ring_timeout_secs: u32,
    pub max_call_duration_secs: u32,
    /// OPTIONS keepalive towards each trunk; 0 turns it off.
    pub options_interval_secs: u32,
    /// Consecutive failed OPTIONS or INVITEs after which a trunk counts as down.
    pub trunk_down_after_failures: u32,
    /// RFC 3261 §17.1.1.2 Timer B, 64*T1 with T1 = 500 ms.
    pub invite_timeout_secs: u32,
    /// Networks, besides the trunks and their proxies, whose SIP the node
    /// reads (a carrier's published signalling ranges). Anything else sent
    /// to the SIP ports is dropped unread.
    pub trusted_sources: Vec<String>,
    /// TCP and TLS connections one trusted source may hold open.
    pub max_connections_per_source: u32,
    /// Requests a second one trusted source may send (two seconds' worth
    /// at once); past it they are dropped.
    pub requests_per_second_per_source: u32,
    /// The RFC 4028 session interval our INVITEs ask for, the trunk
    /// refreshing; 0 asks for none.
    pub session_expires_secs: u32,
    /// Read from `[[sip.trunks]]`; the echo trunk, when enabled, is appended.
    #[serde(skip)]
    pub trunks: Vec<TrunkConfig>,
    #[serde(skip)]
    pub routes: Vec<RouteConfig>,
}

impl SipConfig {
    pub fn ring_timeout(&self) -> Duration {
        Duration::from_secs(self.ring_timeout_secs.into())
    }

    pub fn max_call_duration(&self) -> Duration {
        Duration::from_secs(self.max_call_duration_secs.into())
    }

    /// `None` when keepalives are off.
    pub fn options_interval(&self) -> Option<Duration> {
        (self.options_interval_secs > 0)
            .then(|| Duration::from_secs(self.options_interval_secs.into()))
    }

    /// `None` when our INVITEs ask for no session timer.
    pub fn session_expires(&self) -> Option<Duration> {
        (self.session_expires_secs > 0)
            .then(|| Duration::from_secs(self.session_expires_secs.into()))
    }

    pub fn invite_timeout(&self) -> Duration {
        Duration::from_secs(self.invite_timeout_secs.into())
    }

    /// The parsed `trusted_sources` (validated at load, so none is dropped
    /// from a loaded config).
    pub fn trusted_source_nets(&self) -> Vec<IpNet> {
        let parsed = self
            .trusted_sources
            .iter()
            .map(|e| super::http::parse_net(e));
        parsed.filter_map(Result::ok).collect()
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen_udp: SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)),
            listen_tcp: None,
            listen_tls: None,
            tls_cert_file: None,
            tls_key_file: None,
            user_agent: "callgate".to_owned(),
            ring_timeout_secs: 60,
            max_call_duration_secs: 14_400,
            options_interval_secs: 30,
            trunk_down_after_failures: 3,
            invite_timeout_secs: 32,
            trusted_sources: Vec::new(),
            max_connections_per_source: 32,
            requests_per_second_per_source: 200,
            session_expires_secs: 1800,
            trunks: Vec::new(),
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// RFC 3261 §19.1.2: 5060 for UDP and TCP, 5061 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => 5060,
            Self::Tls => 5061,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    #[default]
    Off,
    /// RFC 4568 keys in the SDP; only allowed over TLS, which keeps them secret.
    Sdes,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: TrunkName,
    pub address: HostPort,
    #[serde(default)]
    pub transport: Transport,
    /// Where requests go first; `address` still names the request target.
    #[serde(default)]
    pub outbound_proxy: Option<HostPort>,
    #[serde(default = "default_from_user")]
    pub from_user: String,
    /// The From host; the trunk's host when unset.
    #[serde(default)]
    pub from_domain: Option<String>,
    /// Digest auth user (RFC 3261 §22); needs `password_env` or `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM roots for a TLS trunk; the system roots when unset.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// The name checked in the trunk's certificate; the address host when unset.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    #[serde(default)]
    pub srtp: SrtpMode,
    /// In order of preference.
    #[serde(default = "default_codecs")]
    pub codecs: Vec<Codec>,
    /// RFC 4733 telephone-event payload type (dynamic range 96-127).
    #[serde(default = "default_dtmf_payload_type")]
    pub dtmf_payload_type: u8,
    /// Resolved at load time from `password_env` or `password_file`.
    #[serde(skip)]
    pub password: Option<Secret>,
}

impl TrunkConfig {
    /// The port requests are addressed to: the configured one, else the
    /// transport's default.
    pub fn port(&self) -> u16 {
        self.address.port.unwrap_or(self.transport.default_port())
    }

    /// The first hop (the outbound proxy when set, else the trunk) with its
    /// port resolved.
    pub fn next_hop(&self) -> (&str, u16) {
        match &self.outbound_proxy {
            Some(proxy) => (
                &proxy.host,
                proxy.port.unwrap_or(self.transport.default_port()),
            ),
            None => (&self.address.host, self.port()),
        }
    }

    /// The trunk the echo user agent answers on.
    pub(super) fn echo(listen: SocketAddr) -> Self {
        Self {
            name: TrunkName::new(ECHO_TRUNK_NAME),
            address: HostPort {
                host: listen.ip().to_string(),
                port: Some(listen.port()),
            },
            transport: Transport::Udp,
            outbound_proxy: None,
            from_user: default_from_user(),
            from_domain: None,
            username: None,
            password_env: None,
            password_file: None,
            tls_ca_file: None,
            tls_server_name: None,
            srtp: SrtpMode::Off,
            codecs: default_codecs(),
            dtmf_payload_type: default_dtmf_payload_type(),
            password: None,
        }
    }
}

fn default_from_user() -> String {
    "callgate".to_owned()
}

fn default_codecs() -> Vec<Codec> {
    vec![Codec::Pcmu, Codec::Pcma]
}

fn default_dtmf_payload_type() -> u8 {
    101
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: RouteName,
    /// Tried in this order: the next one takes over when one fails.
    pub trunks: Vec<TrunkName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    pub bind_ip: IpAddr,
    /// Announced in SDP instead of `bind_ip` (behind 1:1 NAT).
    pub public_ip: Option<IpAddr>,
    /// Must be even: RTP takes even ports and RTCP the odd one above
    /// (RFC 3550 §11).
    pub rtp_port_min: u16,
    /// May be odd: it is the RTCP port of the highest pair.
    pub rtp_port_max: u16,
}

impl MediaConfig {
    /// The even RTP ports whose RTCP port (`+1`) still fits under the maximum.
    pub fn rtp_ports(&self) -> StepBy<RangeInclusive<u16>> {
        (self.rtp_port_min..=self.rtp_port_max.saturating_sub(1)).step_by(2)
    }

    /// The address put into SDP.
    pub fn announced_ip(&self) -> IpAddr {
        self.public_ip.unwrap_or(self.bind_ip)
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: None,
            rtp_port_min: 20_000,
            rtp_port_max: 29_999,
        }
    }
}

/// A built-in SIP user agent on loopback that answers and echoes audio.
/// Off unless enabled; the embedded default enables it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EchoTrunkConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
}

impl Default for EchoTrunkConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5098)),
        }
    }
}

//! The node's trunk side: the RTP port allocator, the SIP agent and the
//! built-in echo trunk, built from the validated config.
//!
//! Reading files (TLS certificates, CA bundles) happens here, at start, so
//! the SIP code never touches the file system.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::call::MediaPlan;
use crate::config::{Config, SrtpMode, Transport, TrunkConfig};
use crate::echo_trunk::EchoTrunk;
use crate::media::MediaError;
use crate::media::ports::PortAllocator;
use crate::sip::{
    AgentSettings, DigestCredentials, RouteSettings, SipAgent, SipError, SipTransport,
    SourceLimits, TlsListenSettings, TrunkSettings,
};

/// How long the calls' last CANCELs and BYEs get to be answered once the
/// calls are over, at shutdown: over UDP each has been sent, and resent
/// once, within it.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);

/// Where Linux distributions keep the system's trust anchors, most common first.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

#[derive(Debug, thiserror::Error)]
pub enum TrunkSideError {
    #[error("{what} {}: {error}", .path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("media.rtp_port_min/max: {0}")]
    Ports(#[from] MediaError),
    #[error(transparent)]
    Sip(#[from] SipError),
    #[error("the {0} stopped before the node did")]
    CoreStopped(&'static str),
}

/// What the trunk side hands to the rest of the node.
pub struct TrunkSide {
    pub agent: SipAgent,
    pub ports: Arc<PortAllocator>,
    pub media: MediaPlan,
    pub echo: Option<EchoTrunk>,
    /// Stops both agents however the trunk side goes away; [`Self::run`]
    /// stops them in order first.
    _stop_on_drop: DropGuard,
}

impl TrunkSide {
    /// Bind the echo trunk first (the SIP agent may probe it at once), then
    /// the agent. Both run until [`TrunkSide::run`] stops them, or the
    /// trunk side is dropped.
    pub async fn start(config: &Config) -> Result<Self, TrunkSideError> {
        let stop = CancellationToken::new();
        let media = &config.media;
        let ports = Arc::new(PortAllocator::new(media.rtp_port_min, media.rtp_port_max)?);
        let echo = match config.echo_trunk.enabled {
            true => Some(
                EchoTrunk::start(config.echo_trunk.listen, ports.clone(), stop.child_token())
                    .await?,
            ),
            false => None,
        };
        let (agent, _) = SipAgent::start(agent_settings(config)?, stop.child_token()).await?;
        let plan = MediaPlan {
            bind_ip: media.bind_ip,
            announce_ip: media.announced_ip(),
        };
        Ok(Self {
            agent,
            ports,
            media: plan,
            echo,
            _stop_on_drop: stop.drop_guard(),
        })
    }

    /// Runs until `stop`, then stops the agents once the calls' last
    /// CANCELs and BYEs are out. A core task of the SIP agent that stops
    /// before then ends it at once, with an error that names the task.
    pub async fn run(self, stop: CancellationToken) -> Result<(), TrunkSideError> {
        let failed = tokio::select! {
            () = stop.cancelled() => None,
            part = self.agent.failure().wait() => Some(part),
        };
        if failed.is_none() {
            self.agent.wait_for_goodbyes(GOODBYE_GRACE).await;
        }
        self.agent.shutdown();
        if let Some(echo) = &self.echo {
            echo.shutdown();
        }
        failed.map_or(Ok(()), |part| Err(TrunkSideError::CoreStopped(part)))
    }
}

/// The SIP agent's settings from the config, with files read.
pub fn agent_settings(config: &Config) -> Result<AgentSettings, TrunkSideError> {
    let sip = &config.sip;
    let listen_tls = match (sip.listen_tls, &sip.tls_cert_file, &sip.tls_key_file) {
        (Some(addr), Some(cert), Some(key)) => Some(TlsListenSettings {
            addr,
            cert_pem: read("sip.tls_cert_file", cert)?,
            key_pem: read("sip.tls_key_file", key)?,
        }),
        _ => None,
    };
    let trunks = sip
        .trunks
        .iter()
        .map(trunk_settings)
        .collect::<Result<Vec<_>, _>>()?;
    let system_ca_pem = match trunks.iter().any(|t| t.transport == SipTransport::Tls) {
        true => SYSTEM_CA_BUNDLES.iter().find_map(|p| std::fs::read(p).ok()),
        false => None,
    };
    Ok(AgentSettings {
        listen_udp: sip.listen_udp,
        listen_tcp: sip.listen_tcp,
        listen_tls,
        user_agent: sip.user_agent.clone(),
        ring_timeout: sip.ring_timeout(),
        max_call_duration: sip.max_call_duration(),
        options_interval: sip.options_interval(),
        trunk_down_after_failures: sip.trunk_down_after_failures,
        invite_timeout: sip.invite_timeout(),
        system_ca_pem,
        trunks,
        routes: sip
            .routes
            .iter()
            .map(|r| RouteSettings {
                name: r.name.to_string(),
                trunks: r.trunks.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        accept_inbound: false,
        trusted_sources: Some(sip.trusted_source_nets()),
        source_limits: SourceLimits {
            max_connections: sip.max_connections_per_source,
            requests_per_second: sip.requests_per_second_per_source,
        },
        session_expires: sip.session_expires(),
    })
}

fn trunk_settings(trunk: &TrunkConfig) -> Result<TrunkSettings, TrunkSideError> {
    let credentials = match (&trunk.username, &trunk.password) {
        (Some(username), Some(password)) => Some(DigestCredentials {
            username: username.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    let tls_ca_pem = match &trunk.tls_ca_file {
        Some(path) => Some(read("sip.trunks.tls_ca_file", path)?),
        None => None,
    };
    Ok(TrunkSettings {
        name: trunk.name.to_string(),
        address: trunk.address.to_string(),
        transport: match trunk.transport {
            Transport::Udp => SipTransport::Udp,
            Transport::Tcp => SipTransport::Tcp,
            Transport::Tls => SipTransport::Tls,
        },
        outbound_proxy: trunk.outbound_proxy.as_ref().map(ToString::to_string),
        from_user: trunk.from_user.clone(),
        from_domain: trunk.from_domain.clone(),
        credentials,
        tls_ca_pem,
        tls_server_name: trunk.tls_server_name.clone(),
        srtp: trunk.srtp == SrtpMode::Sdes,
        codecs: trunk.codecs.clone(),
        dtmf_payload_type: trunk.dtmf_payload_type,
    })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TrunkSideError> {
    std::fs::read(path).map_err(|error| TrunkSideError::ReadFile {
        what,
        path: path.to_owned(),
        error,
    })
}

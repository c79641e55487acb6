//! The node's SIP user agent: transports, the dialog layer, request dispatch
//! and trunk health probes, on rsipstack.
//!
//! One `SipAgent` serves every call of a node. It owns the rsipstack endpoint
//! (UDP, and TCP/TLS when configured), routes in-dialog requests to their
//! dialogs, answers out-of-dialog OPTIONS, hands inbound INVITEs to the owner
//! when asked to (the built-in echo trunk) and refuses them otherwise, and
//! probes trunks with OPTIONS so routing can skip trunks that are down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ipnet::IpNet;
use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog::Dialog;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::resolver::SipResolver;
use rsipstack::sip::{
    Method, SipMessage, StatusCode, StatusCodeKind, Transport as SipTransportKind, Uri,
};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::{Transaction, TransactionReceiver, make_tag};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{
    TcpListenerConnection, TlsConfig, TlsListenerConnection, TransportLayer,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::admission::AdmissionInspector;
use super::agent_inner::AgentInner;
use super::call::{self, CallRequest, OfferBuilder, TrunkCall};
use super::counters::SipCounters;
use super::error::SipError;
use super::health::HealthChange;
use super::inbound::InboundCall;
use super::pinning::{DialogPins, EdgeInspector};
use super::reason::TrunkReason;
use super::settings::AgentSettings;
use super::sources::{self, TrustedSources};
use super::trunk::{RouteTable, Trunk};
use crate::supervise::CoreFailure;

/// How long the start waits for the trunks' names to resolve.
const FIRST_RESOLUTION: Duration = Duration::from_secs(5);

/// A running SIP user agent. Dropping it does not stop it: call `shutdown`.
#[derive(Clone)]
pub struct SipAgent {
    inner: Arc<AgentInner>,
}

impl SipAgent {
    /// Starts (`true`) or ends a drain: while it lasts, out-of-dialog
    /// OPTIONS and new inbound INVITEs are answered 503 Service
    /// Unavailable; calls in progress go on.
    pub fn set_draining(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::Release);
    }

    /// Bind the configured transports and start serving.
    ///
    /// Returns the agent and, when `settings.accept_inbound` is set, the
    /// stream of inbound calls; otherwise inbound INVITEs get 403.
    pub async fn start(
        settings: AgentSettings,
        cancel: CancellationToken,
    ) -> Result<(Self, Option<mpsc::Receiver<InboundCall>>), SipError> {
        // rsipstack's TLS uses the process-wide rustls provider; install ring
        // once (a second install by another component is harmless).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let routes = RouteTable::build(
            settings.trunks.clone(),
            settings.routes.clone(),
            settings.trunk_down_after_failures,
        )?;
        let transport = bind_transports(&settings, &cancel).await?;
        let counters = Arc::new(SipCounters::default());
        let sources = match &settings.trusted_sources {
            Some(extra) => Some(trust_only(&transport, &routes, extra, &counters).await),
            None => None,
        };
        let pins = Arc::new(DialogPins::default());
        let option = EndpointOption {
            t1x64: settings.invite_timeout,
            // Call-IDs name no third party's domain.
            callid_suffix: Some("callgate".to_owned()),
            ..Default::default()
        };
        let admission = sources.is_some().then(|| {
            let listeners = transport.get_listen_addrs();
            AdmissionInspector::new(settings.source_limits, listeners, counters.clone())
        });
        let mut builder = EndpointBuilder::new();
        builder
            .with_user_agent(&settings.user_agent)
            .with_cancel_token(cancel.child_token())
            .with_option(option)
            .with_inspector(Box::new(EdgeInspector {
                pins: pins.clone(),
                sources: sources.clone(),
                counters: counters.clone(),
            }));
        if let Some(admission) = admission {
            builder.with_transport_inspector(Box::new(admission));
        }
        let endpoint = builder.with_transport_layer(transport).build();
        let local_host = endpoint
            .get_addrs()
            .first()
            .map(|a| a.addr.clone())
            .ok_or(SipError::NoListener)?;
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| SipError::Stack(e.to_string()))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let inner = Arc::new(AgentInner {
            endpoint,
            dialogs,
            routes,
            settings,
            local_host,
            counters,
            cancel,
            calls: TaskTracker::new(),
            failure: CoreFailure::default(),
            pins,
            draining: AtomicBool::new(false),
        });
        let serve_inner = inner.clone();
        inner.spawn_core("sip transport", async move {
            serve_inner.endpoint.serve().await;
        });
        let (inbound_tx, inbound_rx) = if inner.settings.accept_inbound {
            let (tx, rx) = mpsc::channel(64);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let dispatcher = dispatch_incoming(inner.clone(), incoming, inbound_tx);
        inner.spawn_core("sip dispatcher", dispatcher);
        if let Some(sources) = sources.filter(|s| s.has_names()) {
            let refresher = refresh_sources(sources, inner.cancel.clone());
            inner.spawn_core("sip source refresher", refresher);
        }
        if let Some(interval) = inner.settings.options_interval {
            for trunk in inner.routes.trunks() {
                let probe = probe_trunk(inner.clone(), trunk.clone(), interval);
                inner.spawn_core("sip trunk probe", probe);
            }
        }
        Ok((Self { inner }, inbound_rx))
    }

    /// Place a call to `request.callee` on `request.route`.
    ///
    /// Returns at once; progress arrives as [`super::TrunkEvent`]s on the
    /// returned handle. `offer` builds the SDP offer for the trunk chosen
    /// (codecs and SRTP differ per trunk, and failover may pick another).
    pub fn place_call(
        &self,
        request: CallRequest,
        offer: OfferBuilder,
    ) -> Result<TrunkCall, SipError> {
        call::spawn(self.inner.clone(), request, offer)
    }

    /// The addresses the agent listens on (UDP first).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner
            .endpoint
            .get_addrs()
            .iter()
            .filter_map(|a| a.get_socketaddr().ok())
            .collect()
    }

    pub fn counters(&self) -> &SipCounters {
        &self.inner.counters
    }

    /// Whether the named trunk is currently considered up.
    pub fn trunk_is_up(&self, name: &str) -> Option<bool> {
        self.inner
            .routes
            .trunks()
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.health.is_up())
    }

    /// Waits, up to `grace`, for the calls to finish their SIP: a call's
    /// end reaches its owner at once, and its CANCEL or BYE may still be on
    /// its way. A call whose INVITE never had a provisional response cannot
    /// be cancelled (RFC 3261 §9.1) and is not waited for past `grace`.
    /// New calls can still be placed meanwhile.
    pub async fn wait_for_goodbyes(&self, grace: Duration) {
        let calls = &self.inner.calls;
        calls.close();
        let _ = tokio::time::timeout(grace, calls.wait()).await;
        calls.reopen();
    }

    /// Hears of a core task of the agent that stopped on its own: the
    /// agent no longer works, and its owner must stop the node.
    pub fn failure(&self) -> &CoreFailure {
        &self.inner.failure
    }

    /// Stop the transports and every task of this agent.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.endpoint.shutdown();
    }
}

async fn bind_transports(
    settings: &AgentSettings,
    cancel: &CancellationToken,
) -> Result<TransportLayer, SipError> {
    let layer = TransportLayer::new(cancel.child_token());
    let udp =
        UdpConnection::create_connection(settings.listen_udp, None, Some(cancel.child_token()))
            .await
            .map_err(|e| SipError::Bind {
                what: "sip.listen_udp",
                addr: settings.listen_udp,
                reason: e.to_string(),
            })?;
    layer.add_transport(udp.into());
    if let Some(addr) = settings.listen_tcp {
        let tcp = TcpListenerConnection::new(addr, None)
            .await
            .map_err(|e| SipError::Bind {
                what: "sip.listen_tcp",
                addr,
                reason: e.to_string(),
            })?;
        layer.add_transport(tcp.into());
    }
    let client_tls = client_tls_config(settings);
    if let Some(tls) = &settings.listen_tls {
        let mut config = client_tls.clone();
        config.cert = Some(tls.cert_pem.clone());
        config.key = Some(tls.key_pem.clone());
        let listener = TlsListenerConnection::new(tls.addr, None, config)
            .await
            .map_err(|e| SipError::Bind {
                what: "sip.listen_tls",
                addr: tls.addr,
                reason: e.to_string(),
            })?;
        layer.add_transport(listener.into());
    }
    layer.set_tls_config(client_tls);
    Ok(layer)
}

/// Makes the transport read only what comes from the trunks, their proxies
/// and the `extra` networks; names are resolved once before this returns
/// (bounded, so a dead resolver does not hold the start).
async fn trust_only(
    transport: &TransportLayer,
    routes: &RouteTable,
    extra: &[IpNet],
    counters: &Arc<SipCounters>,
) -> Arc<TrustedSources> {
    let peers = routes
        .trunks()
        .iter()
        .enumerate()
        .flat_map(|(number, trunk)| {
            let transport = trunk.next_hop.r#type.unwrap_or(SipTransportKind::Udp);
            [
                (number, trunk.host.clone(), transport),
                (number, trunk.next_hop.addr.clone(), transport),
            ]
        });
    let sources = Arc::new(TrustedSources::new(peers, extra));
    if sources.has_names() {
        let resolver = SipResolver::new();
        let first = sources.refresh(&resolver);
        if !matches!(
            tokio::time::timeout(FIRST_RESOLUTION, first).await,
            Ok(true)
        ) {
            warn!("a trunk's host name did not resolve; its requests are dropped until it does");
        }
    }
    let (check, counters) = (sources.clone(), counters.clone());
    transport.set_whitelist(move |ip| {
        let allowed = check.allows(ip);
        if !allowed {
            counters.unknown_sources.fetch_add(1, Ordering::Relaxed);
        }
        std::future::ready(allowed)
    });
    sources
}

/// Resolves the trunks' names again, every [`sources::REFRESH`], or
/// [`sources::RETRY`] after a failure, until the agent stops.
async fn refresh_sources(sources: Arc<TrustedSources>, cancel: CancellationToken) {
    let resolver = SipResolver::new();
    let mut wait = sources::REFRESH;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = match sources.refresh(&resolver).await {
            true => sources::REFRESH,
            false => sources::RETRY,
        };
    }
}

/// Trust anchors for TLS trunks: the system roots plus every trunk's own CA.
fn client_tls_config(settings: &AgentSettings) -> TlsConfig {
    let mut pem = settings.system_ca_pem.clone().unwrap_or_default();
    for trunk in &settings.trunks {
        if let Some(ca) = &trunk.tls_ca_pem {
            pem.push(b'\n');
            pem.extend_from_slice(ca);
        }
    }
    let sni_hostname = settings
        .trunks
        .iter()
        .find_map(|t| t.tls_server_name.clone());
    TlsConfig {
        ca_certs: (!pem.is_empty()).then_some(pem),
        sni_hostname,
        ..Default::default()
    }
}

async fn dispatch_incoming(
    inner: Arc<AgentInner>,
    mut incoming: TransactionReceiver,
    inbound: Option<mpsc::Sender<InboundCall>>,
) {
    loop {
        let tx = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            tx = incoming.recv() => match tx { Some(tx) => tx, None => return },
        };
        fail::fail_point!("sip-dispatch");
        match inner.dialogs.match_dialog(&tx) {
            Some(Dialog::Invite(mut dialog)) => {
                if tx.original.method == Method::Bye {
                    let reason = TrunkReason::of_bye(&tx.original);
                    let call_id = &dialog.id().call_id;
                    inner.pins.note_bye_reason(call_id, reason);
                }
                tokio::spawn(async move {
                    let mut tx = tx;
                    if let Err(e) = dialog.handle(&mut tx).await {
                        debug!(error = %e, "in-dialog request failed");
                    }
                });
            }
            Some(_) => reply_and_log(tx, StatusCode::CallTransactionDoesNotExist),
            None => handle_out_of_dialog(&inner, tx, inbound.as_ref()),
        }
    }
}

fn handle_out_of_dialog(
    inner: &Arc<AgentInner>,
    tx: Transaction,
    inbound: Option<&mpsc::Sender<InboundCall>>,
) {
    let draining = inner.draining.load(Ordering::Acquire);
    match tx.original.method {
        Method::Options | Method::Invite if draining => {
            reply_and_log(tx, StatusCode::ServiceUnavailable)
        }
        Method::Options => reply_and_log(tx, StatusCode::OK),
        Method::Ack => {}
        Method::Invite => match inbound {
            Some(sender) => super::inbound::accept_new(inner.clone(), tx, sender.clone()),
            None => {
                inner
                    .counters
                    .inbound_refused
                    .fetch_add(1, Ordering::Relaxed);
                reply_and_log(tx, StatusCode::Forbidden)
            }
        },
        Method::Bye | Method::Cancel | Method::Info | Method::Update => {
            reply_and_log(tx, StatusCode::CallTransactionDoesNotExist)
        }
        _ => reply_and_log(tx, StatusCode::MethodNotAllowed),
    }
}

fn reply_and_log(mut tx: Transaction, status: StatusCode) {
    tokio::spawn(async move {
        if let Err(e) = tx.reply(status).await {
            debug!(error = %e, "could not send a reply");
        }
    });
}

/// Probe one trunk with out-of-dialog OPTIONS (RFC 3261 §11) forever.
async fn probe_trunk(inner: Arc<AgentInner>, trunk: Arc<Trunk>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let change = match send_options(&inner, &trunk).await {
            // 408 is also how rsipstack reports a probe nobody answered.
            Ok(code) if code != 503 && code != 408 => trunk.health.handle_success(),
            Ok(_) | Err(_) => {
                inner
                    .counters
                    .options_probe_failures
                    .fetch_add(1, Ordering::Relaxed);
                trunk.health.handle_failure()
            }
        };
        match change {
            Some(HealthChange::WentDown) => warn!(
                trunk = trunk.name(),
                "trunk marked down after failed probes"
            ),
            Some(HealthChange::CameUp) => info!(trunk = trunk.name(), "trunk is up again"),
            None => {}
        }
    }
}

/// Send one OPTIONS and return the final status code.
async fn send_options(inner: &AgentInner, trunk: &Trunk) -> Result<u16, SipError> {
    let endpoint = &inner.endpoint.inner;
    let via = endpoint
        .get_via(None, None)
        .map_err(|e| SipError::Stack(e.to_string()))?;
    let target = Uri {
        scheme: Some(rsipstack::sip::Scheme::Sip),
        host_with_port: trunk.host.clone(),
        ..Default::default()
    };
    let from = rsipstack::sip::typed::From {
        display_name: None,
        uri: trunk.caller_uri(&inner.local_host),
        params: vec![],
    }
    .with_tag(make_tag());
    let to = rsipstack::sip::typed::To {
        display_name: None,
        uri: target.clone(),
        params: vec![],
    };
    let mut request = endpoint.make_request(Method::Options, target, via, from, to, 1, None);
    if let Some(route) = &trunk.proxy_route {
        request.headers.push(rsipstack::sip::Header::Route(
            rsipstack::sip::headers::untyped::Route::new(format!("<{route}>")),
        ));
    }
    let key = TransactionKey::from_request(&request, TransactionRole::Client)
        .map_err(|e| SipError::Stack(e.to_string()))?;
    let mut tx = Transaction::new_client(key, request, endpoint.clone(), None);
    tx.destination = Some(trunk.next_hop.clone());
    tx.send()
        .await
        .map_err(|e| SipError::Stack(e.to_string()))?;
    while let Some(message) = tx.receive().await {
        if let SipMessage::Response(response) = message {
            if response.status_code.kind() != StatusCodeKind::Provisional {
                return Ok(response.status_code.code());
            }
        }
    }
    Err(SipError::Timeout)
}

//! The node's browser side: the store, the shared browser port, the call
//! service, the webhook worker and the signalling, admin, dashboard and
//! metrics routes, built from the config and the trunk side's handles.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

use super::lost_calls;
use super::trunk_side::TrunkSide;
use crate::call::cdr_writer::{self, CdrWriter, CdrWriterParts};
use crate::call::service::{CallService, CallServiceParts};
use crate::call::shard::{Engine, EngineError, EngineSettings};
use crate::cluster::{Cluster, ClusterError, ClusterSettings, LocalLoad};
use crate::config::Config;
use crate::http::Readiness;
use crate::http::admin::{self, AdminState, NodeControl};
use crate::http::admission::Admission;
use crate::http::guard::origin_of;
use crate::http::handoff::HandoffClient;
use crate::http::lookups::LookupBudget;
use crate::http::signalling::{self, SignallingState};
use crate::keys::{KeyRing, SEALED_PREFIX};
use crate::metrics::{BrowserDrop, Metrics};
use crate::proc_stat::CpuMeter;
use crate::recording::recorder::{RecorderParts, Recorders};
use crate::recording::retention;
use crate::recording::storage::RecordingStorage;
use crate::recording::uploader::{PendingUpload, UploadRetry, Uploader, UploaderParts};
use crate::store::{Store, StoreError};
use crate::supervise::{self, CoreFailure};
use crate::webhooks::{self, Webhooks, WorkerSettings};
use crate::webrtc::{PortCounters, SessionSettings, WebrtcError};

/// How often the browser ports' drop counters are copied into the metrics.
const PORT_COUNTER_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum BrowserSideError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("webrtc.listen {addr}: {}", crate::http::describe_io(.error))]
    Bind {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("{0}")]
    Engine(EngineError),
    #[error(transparent)]
    Webrtc(#[from] WebrtcError),
    #[error("recording: {0}")]
    Recording(#[from] crate::recording::setup::SetupError),
    #[error("the {0} stopped before the node did")]
    CoreStopped(&'static str),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

pub struct BrowserSide {
    pub routes: Router,
    pub calls: CallService,
    pub metrics: Arc<Metrics>,
    /// The node's drain and status, as its operator routes see them.
    pub node: NodeControl,
    port_counters: Vec<Arc<PortCounters>>,
    store: Store,
    recording_storage: RecordingStorage,
    cdr_retention: Duration,
    uploads: Background,
    cdr_writer: Background,
    webhooks: Webhooks,
    webhook_settings: WorkerSettings,
    cluster: Option<Cluster>,
}

/// A background task (the uploader, the CDR writer), stopped when this is
/// dropped (also when starting the rest fails).
struct Background {
    task: tokio::task::JoinHandle<()>,
    stop: tokio_util::sync::DropGuard,
}

impl BrowserSide {
    /// `base_url` is where browsers reach this node's HTTP.
    pub async fn start(
        config: &Config,
        metrics: Arc<Metrics>,
        trunk_side: &TrunkSide,
        base_url: &str,
        readiness: &Readiness,
    ) -> Result<Self, BrowserSideError> {
        metrics.attach_sip(trunk_side.agent.clone());
        let store = Store::open(&config.database.url_for(&config.node.data_dir)).await?;
        if config.route("demo").is_some() {
            store.seed_demo().await?;
        }
        let webrtc = &config.webrtc;
        let (engine, settings) = start_engine(config, &metrics)?;
        let shards = engine.shard_count();
        let port_counters = engine.counters();
        let recording_storage = crate::recording::setup::storage(config)?;
        let keys = Arc::new(crate::recording::setup::key_ring(config)?);
        seal_webhook_secrets(&store, &keys).await;
        let webhooks = Webhooks::new(store.clone());
        let (uploader, uploads) =
            start_uploads(&store, &recording_storage, &metrics, &webhooks).await;
        let (cdrs, cdr_writer) = start_cdr_writer(config, &store, &webhooks, &metrics);
        let lost_call_cdrs = cdrs.clone();
        let calls = CallService::new(CallServiceParts {
            webhooks: webhooks.clone(),
            node_id: config.node.id.to_string(),
            engine,
            settings,
            agent: trunk_side.agent.clone(),
            ports: trunk_side.ports.clone(),
            plan: trunk_side.media,
            browser_codec: webrtc.browser_codec,
            disconnect_timeout: webrtc.disconnect_timeout(),
            route_codecs: route_codecs(config),
            store: store.clone(),
            observer: metrics.clone(),
            metrics: metrics.clone(),
            recorders: Some(recorders(
                config,
                &store,
                &recording_storage,
                &keys,
                &metrics,
                uploader,
                &webhooks,
            )),
            cdrs,
        });
        let cluster = start_cluster(config, base_url, shards, &calls, readiness, &metrics)?;
        if let Some(cluster) = &cluster {
            join_cluster(cluster, &calls, lost_call_cdrs);
        }
        let node = NodeControl {
            id: config.node.id.clone(),
            readiness: readiness.clone(),
            calls: calls.clone(),
            metrics: metrics.clone(),
            sip: trunk_side.agent.clone(),
            cluster: cluster.clone(),
        };
        let state = signalling_state(
            config,
            base_url,
            &calls,
            &store,
            cluster.clone(),
            readiness,
            &metrics,
        );
        let admin = AdminState {
            store: store.clone(),
            keys: keys.clone(),
            storage: recording_storage.clone(),
            routes: config
                .sip
                .routes
                .iter()
                .map(|r| r.name.to_string())
                .collect(),
            base_url: base_url.to_owned(),
            limits: config.limits.clone(),
            webhooks_allow_private: config.webhooks.allow_private_targets,
            node: node.clone(),
        };
        let routes = http_routes(config, state, admin, &metrics);
        let webhook_settings = webhook_settings(config, &metrics, keys.clone());
        Ok(Self {
            routes,
            calls,
            metrics,
            node,
            port_counters,
            store,
            recording_storage,
            cdr_retention: Duration::from_secs(
                u64::from(config.database.cdr_retention_days) * 24 * 60 * 60,
            ),
            uploads,
            cdr_writer,
            webhooks,
            webhook_settings,
            cluster,
        })
    }

    /// Runs until `stop`: copies port counters into metrics; on stop, hangs
    /// up every call and waits (bounded by the node's drain) for them.
    /// A core task (a media thread, the CDR writer, the uploader, the
    /// webhook worker, the retention sweeper) that stops before then is a
    /// failure: the calls are drained the same way, and the error names it.
    pub async fn run(self, stop: CancellationToken) -> Result<(), BrowserSideError> {
        let failure = CoreFailure::default();
        let tasks_stop = stop.child_token();
        let core =
            |part, task| supervise::watch_core(part, task, tasks_stop.clone(), failure.clone());
        let sweeper = retention::Sweeper {
            store: self.store.clone(),
            storage: self.recording_storage.clone(),
            metrics: self.metrics.recording.clone(),
            clock: retention::SweepClock::start(),
            interval: retention::SWEEP_INTERVAL,
            cdr_retention: self.cdr_retention,
        };
        let sweeper = core(
            "retention sweeper",
            tokio::spawn(retention::run(sweeper, tasks_stop.child_token())),
        );
        // Stops with the node; what it has not sent stays queued.
        let worker = core(
            "webhook worker",
            tokio::spawn(webhooks::run(
                self.webhooks.clone(),
                self.webhook_settings.clone(),
                tasks_stop.child_token(),
            )),
        );
        // Stops after the calls, so their leases are released and the node
        // leaves the registry cleanly.
        let cluster_stop = CancellationToken::new();
        let cluster = self
            .cluster
            .clone()
            .map(|cluster| core("cluster", tokio::spawn(cluster.run(cluster_stop.clone()))));
        let cdr_writer = core("cdr writer", self.cdr_writer.task);
        let uploader = core("uploader", self.uploads.task);
        let media = self.calls.media_failure().clone();
        let mut copied = PortSnapshot::default();
        let mut tick = tokio::time::interval(PORT_COUNTER_INTERVAL);
        let failed = loop {
            tokio::select! {
                () = stop.cancelled() => break None,
                part = failure.wait() => break Some(part),
                part = media.wait() => break Some(part),
                _ = tick.tick() => copied.copy_into(&self.port_counters, &self.metrics),
            }
        };
        tasks_stop.cancel();
        self.calls.drain();
        while self.calls.active() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = sweeper.await;
        cluster_stop.cancel();
        if let Some(cluster) = cluster {
            let _ = cluster.await;
        }
        // After the calls: the last CDRs are written or left in the spool.
        drop(self.cdr_writer.stop);
        let _ = cdr_writer.await;
        // After the calls: their recorders may have handed it recordings.
        // What it has not stored waits in the spool for the next start.
        drop(self.uploads.stop);
        let _ = uploader.await;
        let _ = worker.await;
        failed.map_or(Ok(()), |part| Err(BrowserSideError::CoreStopped(part)))
    }
}

/// The node's handle on the cluster, with `[cluster]`; its heartbeat task
/// runs with the node (see [`BrowserSide::run`]).
fn start_cluster(
    config: &Config,
    base_url: &str,
    shards: usize,
    calls: &CallService,
    readiness: &Readiness,
    metrics: &Metrics,
) -> Result<Option<Cluster>, BrowserSideError> {
    let cluster = &config.cluster;
    let (Some(redis_url), Some(secret)) = (&cluster.redis_url, &cluster.secret) else {
        return Ok(None);
    };
    let settings = ClusterSettings {
        node_id: config.node.id.to_string(),
        region: cluster.region.clone(),
        public_url: cluster.public_url.as_deref().unwrap_or(base_url).to_owned(),
        internal_url: cluster
            .internal_url
            .as_deref()
            .unwrap_or(base_url)
            .to_owned(),
        redis_url: redis_url.clone(),
        redis_password: cluster.redis_password.clone(),
        redis_ca: match &cluster.redis_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| ClusterError::Ca(e.to_string()))?),
            None => None,
        },
        secret: secret.clone(),
        heartbeat: cluster.heartbeat(),
        lease: cluster.lease(),
        shards: u32::try_from(shards).unwrap_or(u32::MAX),
    };
    let (calls, readiness) = (calls.clone(), readiness.clone());
    let cpu = CpuMeter::own();
    let load = Arc::new(move || LocalLoad {
        draining: readiness.is_draining(),
        calls: u32::try_from(calls.active()).unwrap_or(u32::MAX),
        cpu_percent: cpu.as_ref().and_then(CpuMeter::percent).unwrap_or(0),
    });
    let cluster = Cluster::new(settings, load, metrics.cluster.clone())?;
    tracing::info!(region = %config.cluster.region, "cluster mode: announcing this node in Redis");
    Ok(Some(cluster))
}

/// Starts the uploader and hands it what the last run left in the spool.
async fn start_uploads(
    store: &Store,
    storage: &RecordingStorage,
    metrics: &Metrics,
    webhooks: &Webhooks,
) -> (Uploader, Background) {
    let stop = CancellationToken::new();
    let parts = UploaderParts {
        storage: storage.clone(),
        store: store.clone(),
        metrics: metrics.recording.clone(),
        retry: UploadRetry::default(),
        webhooks: webhooks.clone(),
    };
    let (uploader, task) = Uploader::start(parts, stop.clone());
    hand_over_spooled(store, storage, &uploader).await;
    let stop = stop.drop_guard();
    (uploader, Background { task, stop })
}

/// Recordings the last run left in this node's spool, handed to the
/// uploader: finished ones that waited for the store, and ones cut by a
/// stop mid-call, which are marked incomplete first (they keep what was
/// sealed).
async fn hand_over_spooled(store: &Store, storage: &RecordingStorage, uploader: &Uploader) {
    let unfinished = match store.unfinished_recordings().await {
        Ok(unfinished) => unfinished,
        Err(error) => {
            tracing::warn!(%error, "cannot look for recordings left in the spool");
            return;
        }
    };
    let (mut waiting, mut interrupted) = (0, 0);
    for recording in unfinished {
        if !storage.spool_path(&recording.id).exists() {
            continue;
        }
        if recording.ended_at.is_none() {
            if let Err(error) = store.end_recording(&recording.id, false, 0, 0).await {
                tracing::warn!(recording = %recording.id, %error, "cannot mark an interrupted recording");
                continue;
            }
            interrupted += 1;
        } else {
            waiting += 1;
        }
        uploader.upload_now(PendingUpload {
            id: recording.id,
            object_path: recording.object_path,
        });
    }
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "recordings interrupted by the last stop are stored as they are, marked incomplete"
        );
    }
    if waiting > 0 {
        tracing::info!(
            count = waiting,
            "storing recordings that waited in the spool"
        );
    }
}

fn recorders(
    config: &Config,
    store: &Store,
    storage: &RecordingStorage,
    keys: &Arc<KeyRing>,
    metrics: &Metrics,
    uploader: Uploader,
    webhooks: &Webhooks,
) -> Recorders {
    Recorders::new(RecorderParts {
        storage: storage.clone(),
        keys: keys.clone(),
        store: store.clone(),
        queue_frames: config.recording.queue_frames as usize,
        metrics: metrics.recording.clone(),
        uploader,
        webhooks: webhooks.clone(),
    })
}

fn webhook_settings(config: &Config, metrics: &Metrics, keys: Arc<KeyRing>) -> WorkerSettings {
    let retry = &config.webhooks;
    WorkerSettings {
        backoff: webhooks::sign::Backoff {
            initial: Duration::from_secs(retry.retry_initial_secs.into()),
            max: Duration::from_secs(retry.retry_max_secs.into()),
            give_up_after: Duration::from_secs(u64::from(retry.give_up_hours) * 3600),
        },
        deliveries: metrics.webhook_deliveries.clone(),
        allow_private_targets: retry.allow_private_targets,
        keys,
    }
}

/// Seals the webhook secrets a node from before sealing stored as issued,
/// so no copy of the database made from now on holds them.
async fn seal_webhook_secrets(store: &Store, keys: &KeyRing) {
    let unsealed = match store.unsealed_webhook_secrets(SEALED_PREFIX).await {
        Ok(unsealed) => unsealed,
        Err(error) => {
            tracing::warn!(%error, "cannot look for unsealed webhook secrets");
            return;
        }
    };
    for (tenant, secret) in unsealed {
        let sealed = keys.seal_secret(&secret, &tenant);
        if let Err(error) = store.reseal_webhook_secret(&tenant, &secret, &sealed).await {
            tracing::warn!(%error, "cannot seal a webhook secret");
        }
    }
}

/// The media shards on the browser port, and each shard's session
/// settings: its own candidate and the node's DTLS certificate.
fn start_engine(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<(Engine, Vec<SessionSettings>), BrowserSideError> {
    let webrtc = &config.webrtc;
    let engine = Engine::start(
        EngineSettings {
            listen: webrtc.listen,
            shards: usize::from(webrtc.shards),
            pin: true,
        },
        metrics.clone(),
    )
    .map_err(|error| match error {
        EngineError::Bind { addr, error } => BrowserSideError::Bind { addr, error },
        other => BrowserSideError::Engine(other),
    })?;
    warn_on_small_buffer(&engine);
    tracing::info!(shards = engine.shard_count(), "media shards started");
    let certificate = crate::webrtc::generate_certificate()?;
    let settings = engine
        .local_addrs()
        .into_iter()
        .enumerate()
        .map(|(index, local)| {
            let candidate = webrtc.shard_candidate(index, local);
            SessionSettings::new(candidate, certificate.clone())
        })
        .collect();
    Ok((engine, settings))
}

/// Tells the cluster of each call this node places, and writes the CDRs of
/// the calls whose node died, as the cluster hands them to this node.
fn join_cluster(cluster: &Cluster, calls: &CallService, cdrs: CdrWriter) {
    calls.announce_to(Arc::new(lost_calls::ClusterCalls(cluster.clone())));
    if let Some(lost) = cluster.take_lost_calls() {
        tokio::spawn(lost_calls::finalise(lost, cdrs));
    }
}

/// The CDR writer, with its spool under the node's data directory.
fn start_cdr_writer(
    config: &Config,
    store: &Store,
    webhooks: &Webhooks,
    metrics: &Metrics,
) -> (CdrWriter, Background) {
    let stop = CancellationToken::new();
    let (cdrs, task) = CdrWriter::start(
        CdrWriterParts {
            store: store.clone(),
            webhooks: webhooks.clone(),
            spool_dir: config.node.data_dir.join(cdr_writer::SPOOL_DIR),
            waiting: metrics.cdrs_waiting.clone(),
        },
        stop.clone(),
    );
    let background = Background {
        task,
        stop: stop.drop_guard(),
    };
    (cdrs, background)
}

/// What the signalling routes share: the calls, the store, the limits, and
/// how this node is reached.
fn signalling_state(
    config: &Config,
    base_url: &str,
    calls: &CallService,
    store: &Store,
    cluster: Option<Cluster>,
    readiness: &Readiness,
    metrics: &Arc<Metrics>,
) -> SignallingState {
    let webrtc = &config.webrtc;
    SignallingState {
        calls: calls.clone(),
        store: store.clone(),
        admission: Admission::new(&config.limits, cluster.clone()),
        own_origin: origin_of(base_url),
        base_url: base_url.to_owned(),
        public_url: config
            .cluster
            .public_url
            .as_deref()
            .unwrap_or(base_url)
            .to_owned(),
        cluster,
        handoffs: HandoffClient::new(),
        ice_servers: webrtc.ice_servers.clone(),
        turn_credential_ttl: webrtc.turn_credential_ttl(),
        trusted_proxies: config.http.trusted_proxy_nets().into(),
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        default_allowance: Arc::new(config.limits.default_allowance()),
    }
}

/// The node's HTTP routes: signalling, the admin API, the dashboard and,
/// unless it has a listener of its own, `/metrics`.
fn http_routes(
    config: &Config,
    state: SignallingState,
    admin: AdminState,
    metrics: &Arc<Metrics>,
) -> Router {
    let lookups = LookupBudget::new(
        config.limits.lookups_per_minute_per_ip,
        config.http.trusted_proxy_nets().into(),
        metrics.clone(),
    );
    let routes = signalling::routes(state, lookups.clone())
        .merge(admin::routes(admin, lookups))
        .merge(crate::http::dashboard::routes());
    match config.http.metrics_listen {
        Some(_) => routes,
        None => routes.merge(crate::http::metrics_router(metrics.clone())),
    }
}

/// A capped receive buffer drops datagrams under load long before the CPU
/// is busy; say so once, at start, with the setting that lifts the cap.
fn warn_on_small_buffer(engine: &Engine) {
    let wanted = crate::webrtc::port::RECV_BUFFER_BYTES;
    // Linux reports twice what it set aside; half of what we asked for
    // still holds some 80 ms of 1,000 calls.
    let reported = engine.recv_buffer_size();
    if reported / 2 < wanted / 2 {
        tracing::warn!(
            granted_kib = reported / 2 / 1024,
            wanted_kib = wanted / 1024,
            "the browser ports' receive buffers are capped by net.core.rmem_max; \
             raise it for many concurrent calls"
        );
    }
}

/// The codecs of each route's first trunk, in the trunk's order.
fn route_codecs(config: &Config) -> HashMap<String, Vec<crate::domain::Codec>> {
    config
        .sip
        .routes
        .iter()
        .filter_map(|route| {
            let trunk = config.trunk(route.trunks.first()?.as_str())?;
            Some((route.name.to_string(), trunk.codecs.clone()))
        })
        .collect()
}

#[derive(Default)]
struct PortSnapshot {
    unknown_peer: u64,
    malformed: u64,
    unverified_checks: u64,
    queue_full: u64,
    kernel_dropped: u64,
    handshake_shed: u64,
    trunk_kernel_dropped: u64,
}

impl PortSnapshot {
    /// Adds what every shard's port counted since the last copy.
    fn copy_into(&mut self, shards: &[Arc<PortCounters>], metrics: &Metrics) {
        let total = |counter: fn(&PortCounters) -> &AtomicU64| -> u64 {
            shards
                .iter()
                .map(|counters| counter(counters).load(Ordering::Relaxed))
                .sum()
        };
        let pairs = [
            (
                total(|c| &c.unknown_peer),
                &mut self.unknown_peer,
                BrowserDrop::UnknownPeer,
            ),
            (
                total(|c| &c.malformed),
                &mut self.malformed,
                BrowserDrop::Malformed,
            ),
            (
                total(|c| &c.unverified_checks),
                &mut self.unverified_checks,
                BrowserDrop::UnverifiedCheck,
            ),
            (
                total(|c| &c.queue_full),
                &mut self.queue_full,
                BrowserDrop::QueueFull,
            ),
            (
                total(|c| &c.kernel_dropped),
                &mut self.kernel_dropped,
                BrowserDrop::Kernel,
            ),
            (
                total(|c| &c.handshake_shed),
                &mut self.handshake_shed,
                BrowserDrop::HandshakeShed,
            ),
        ];
        for (now, seen, reason) in pairs {
            metrics
                .drops
                .browser(reason)
                .inc_by(now.saturating_sub(*seen));
            *seen = now;
        }
        let now = total(|c| &c.trunk_kernel_dropped);
        let seen = &mut self.trunk_kernel_dropped;
        metrics
            .drops
            .trunk_kernel()
            .inc_by(now.saturating_sub(*seen));
        *seen = now;
    }
}
